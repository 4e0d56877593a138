// The MLX primitives that run the CPU kernels, and the entry points of
// kernels.h that build them.
//
// Each primitive's eval_cpu allocates its output and hands the work to the
// stream's command encoder, as MLX's own CPU primitives do, so the kernels run
// in order with the rest of the lazy graph.
#include "mlx/src/cpp/kernels.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "mlx/allocator.h"
#include "mlx/backend/cpu/encoder.h"
#include "mlx/ops.h"
#include "mlx/primitives.h"
#include "mlx/stream.h"

#include "attention.h"
#include "conv.h"
#include "elementwise.h"
#include "lstm.h"
#include "matmul.h"
#include "pool.h"
#include "primitive.h"
#include "quantized.h"
#include "simd.h"

namespace mlx_shim::kernels {

using namespace detail;

namespace {

std::atomic<bool>& enabled_flag() {
  static std::atomic<bool> flag = [] {
    const char* v = std::getenv("MLX_ASR_CUSTOM_KERNELS");
    return !(v != nullptr && (std::strcmp(v, "0") == 0 || std::strcmp(v, "off") == 0 ||
                              std::strcmp(v, "false") == 0));
  }();
  return flag;
}

void alloc_or_donate(const mx::array& in, mx::array& out) {
  if (in.is_donatable() && in.flags().row_contiguous && in.dtype() == out.dtype() &&
      in.size() == out.size()) {
    out.copy_shared_buffer(in);
  } else {
    out.set_data(mx::allocator::malloc(out.nbytes()));
  }
}

class CpuOnly : public mx::UnaryPrimitive {
 public:
  using mx::UnaryPrimitive::UnaryPrimitive;
  void eval_gpu(const std::vector<mx::array>&, mx::array&) override {
    throw std::runtime_error(std::string(name()) + " has no GPU kernel");
  }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override {
    return {inputs[0].shape()};
  }

 protected:
  // Runs `task` on this primitive's stream, in order with the rest of the
  // lazy graph, as MLX's own CPU primitives do.
  template <class F>
  void encode(const std::vector<mx::array>& inputs, mx::array& out, F&& task) {
    auto& enc = mx::cpu::get_command_encoder(stream());
    for (auto& a : inputs) enc.set_input_array(a);
    enc.set_output_array(out);
    enc.dispatch(std::forward<F>(task));
  }
};

class SoftmaxLast : public CpuOnly {
 public:
  using CpuOnly::CpuOnly;
  const char* name() const override { return "MlxAsrSoftmaxLast"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    return dynamic_cast<const SoftmaxLast*>(&other) != nullptr;
  }
  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override {
    const auto& in = inputs[0];
    require_row_contiguous(in, name());
    alloc_or_donate(in, out);
    size_t n = in.ndim() == 0 ? 1 : static_cast<size_t>(in.shape(-1));
    size_t rows = n == 0 ? 0 : in.size() / n;
    const float* x = in.data<float>();
    float* y = out.data<float>();
    encode(inputs, out, [x, y, rows, n] {
      parallel_rows(rows, static_cast<double>(rows) * n * 8, [&](size_t r0, size_t r1) {
        for (size_t r = r0; r < r1; ++r) softmax_row(x + r * n, y + r * n, n, n);
      });
    });
  }
};

// One element function over a whole f32 array (GELU, SiLU), in blocks of
// 4096 elements split over the pool; `cost` is its work per element.
class ElementMap : public CpuOnly {
 public:
  using Span = void (*)(const float*, float*, size_t);
  ElementMap(mx::Stream s, const char* name, Span span, double cost)
      : CpuOnly(s), name_(name), span_(span), cost_(cost) {}
  const char* name() const override { return name_; }
  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const ElementMap*>(&other);
    return o != nullptr && o->span_ == span_;
  }
  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override {
    const auto& in = inputs[0];
    require_row_contiguous(in, name());
    alloc_or_donate(in, out);
    size_t n = in.size();
    const float* x = in.data<float>();
    float* y = out.data<float>();
    encode(inputs, out, [x, y, n, span = span_, cost = cost_] {
      constexpr size_t kBlock = 4096;
      size_t blocks = (n + kBlock - 1) / kBlock;
      parallel_rows(blocks, static_cast<double>(n) * cost, [&](size_t b0, size_t b1) {
        size_t i0 = b0 * kBlock, i1 = std::min(n, b1 * kBlock);
        if (i1 > i0) span(x + i0, y + i0, i1 - i0);
      });
    });
  }

 private:
  const char* name_;
  Span span_;
  double cost_;
};

// The gated linear unit over the last axis: [..., 2n] -> [..., n], the first
// half times the sigmoid of the second.
class GluLast : public CpuOnly {
 public:
  using CpuOnly::CpuOnly;
  const char* name() const override { return "MlxAsrGluLast"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    return dynamic_cast<const GluLast*>(&other) != nullptr;
  }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override {
    auto shape = inputs[0].shape();
    shape.back() /= 2;
    return {shape};
  }
  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override {
    const auto& in = inputs[0];
    require_row_contiguous(in, name());
    out.set_data(mx::allocator::malloc(out.nbytes()));
    size_t n = static_cast<size_t>(out.shape(-1));
    size_t rows = n == 0 ? 0 : out.size() / n;
    const float* x = in.data<float>();
    float* y = out.data<float>();
    encode(inputs, out, [x, y, rows, n] {
      parallel_rows(rows, static_cast<double>(rows) * n * 12, [&](size_t r0, size_t r1) {
        for (size_t r = r0; r < r1; ++r) glu_span(x + 2 * r * n, x + (2 * r + 1) * n, y + r * n, n);
      });
    });
  }
};

class LayerNormLast : public CpuOnly {
 public:
  LayerNormLast(mx::Stream s, float eps, bool has_w, bool has_b)
      : CpuOnly(s), eps_(eps), has_w_(has_w), has_b_(has_b) {}
  const char* name() const override { return "MlxAsrLayerNorm"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const LayerNormLast*>(&other);
    return o != nullptr && o->eps_ == eps_ && o->has_w_ == has_w_ && o->has_b_ == has_b_;
  }
  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override {
    const auto& in = inputs[0];
    require_row_contiguous(in, name());
    size_t idx = 1;
    const float* w = nullptr;
    const float* b = nullptr;
    if (has_w_) {
      require_row_contiguous(inputs[idx], name());
      w = inputs[idx++].data<float>();
    }
    if (has_b_) {
      require_row_contiguous(inputs[idx], name());
      b = inputs[idx++].data<float>();
    }
    alloc_or_donate(in, out);
    size_t n = static_cast<size_t>(in.shape(-1));
    size_t rows = n == 0 ? 0 : in.size() / n;
    const float* x = in.data<float>();
    float* y = out.data<float>();
    float eps = eps_;
    encode(inputs, out, [x, y, w, b, rows, n, eps] {
      parallel_rows(rows, static_cast<double>(rows) * n * 6, [&](size_t r0, size_t r1) {
        for (size_t r = r0; r < r1; ++r) layer_norm_row(x + r * n, y + r * n, n, w, b, eps);
      });
    });
  }

 private:
  float eps_;
  bool has_w_, has_b_;
};

template <class T>
OperandOf<T> operand_of(const mx::array& a) {
  const auto& st = a.strides();
  OperandOf<T> o{reinterpret_cast<const T*>(a.data<void>()), st[0], st[1], st[2], st[3], {}};
  for (int i = 0; i < 4; ++i) o.dims[i] = a.shape(i);
  return o;
}

// A row-major copy of an f32 view of up to four axes, in f32 or f16. MLX's
// own copy walks a transposed view value by value, and its f32 -> f16
// conversion is a software routine in builds for baseline x86-64; the
// decoder's cross-attention keys and values take both, per window.
class RowMajorCopy : public CpuOnly {
 public:
  RowMajorCopy(mx::Stream s, mx::Dtype dtype) : CpuOnly(s), dtype_(dtype) {}
  const char* name() const override { return "MlxAsrRowMajorCopy"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const RowMajorCopy*>(&other);
    return o != nullptr && o->dtype_ == dtype_;
  }
  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override {
    const auto& in = inputs[0];
    out.set_data(mx::allocator::malloc(out.nbytes()));
    std::array<int64_t, 4> dims{1, 1, 1, 1}, strides{0, 0, 0, 0};
    int lead = 4 - static_cast<int>(in.ndim());
    for (int i = 0; i < static_cast<int>(in.ndim()); ++i) {
      dims[lead + i] = in.shape(i);
      strides[lead + i] = in.strides()[i];
    }
    const float* x = in.data<float>();
    if (dtype_ == mx::float16) {
      auto* y = out.data<_Float16>();
      encode(inputs, out, [=] { row_major_run(x, dims, strides, y); });
    } else {
      float* y = out.data<float>();
      encode(inputs, out, [=] { row_major_run(x, dims, strides, y); });
    }
  }

 private:
  mx::Dtype dtype_;
};

// Rows `rows` of a [B, H, C, D] cache as a new [N, H, C, D], of which
// only the first `filled` positions of each (row, head) are copied: beam
// search reorders its self-attention caches most steps, and MLX's take
// copied all C positions (C up to twice the filled ones), on one thread.
// The other positions are left as the allocator gives them; the caches
// write each before anything reads it.
class SelectRows : public CpuOnly {
 public:
  SelectRows(mx::Stream s, std::vector<int32_t> rows, int filled)
      : CpuOnly(s), rows_(std::move(rows)), filled_(filled) {}
  const char* name() const override { return "MlxAsrSelectRows"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const SelectRows*>(&other);
    return o != nullptr && o->rows_ == rows_ && o->filled_ == filled_;
  }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override {
    auto shape = inputs[0].shape();
    shape[0] = static_cast<int>(rows_.size());
    return {shape};
  }
  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override {
    const auto& in = inputs[0];
    require_row_contiguous(in, name());
    out.set_data(mx::allocator::malloc(out.nbytes()));
    size_t heads = static_cast<size_t>(in.shape(1));
    size_t block = static_cast<size_t>(in.shape(2)) * in.shape(3) * in.itemsize();
    size_t bytes = static_cast<size_t>(filled_) * in.shape(3) * in.itemsize();
    const auto* x = in.data<uint8_t>();
    auto* y = out.data<uint8_t>();
    encode(inputs, out, [x, y, heads, block, bytes, rows = rows_] {
      size_t n = rows.size() * heads;
      parallel_rows(n, static_cast<double>(n * bytes), [&](size_t i0, size_t i1) {
        for (size_t i = i0; i < i1; ++i) {
          size_t r = i / heads, h = i % heads;
          const uint8_t* from = x + (static_cast<size_t>(rows[r]) * heads + h) * block;
          std::memcpy(y + i * block, from, bytes);
        }
      });
    });
  }

 private:
  std::vector<int32_t> rows_;
  int filled_;
};

class Attention : public CpuOnly {
 public:
  Attention(mx::Stream s, float scale, bool causal) : CpuOnly(s), scale_(scale), causal_(causal) {}
  const char* name() const override { return "MlxAsrAttention"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const Attention*>(&other);
    return o != nullptr && o->scale_ == scale_ && o->causal_ == causal_;
  }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override {
    auto shape = inputs[0].shape();
    shape.back() = inputs[2].shape(-1);
    return {shape};
  }
  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override {
    const auto &q = inputs[0], &k = inputs[1], &v = inputs[2];
    out.set_data(mx::allocator::malloc(out.nbytes()));
    AttentionShape sh{q.shape(0), q.shape(1), k.shape(1), q.shape(2), k.shape(2),
                      q.shape(3), v.shape(3), scale_, causal_};
    float* o = out.data<float>();
    size_t size = static_cast<size_t>(sh.B) * sh.H * sh.L * sh.Dv;
    if (size == 0) return;
    if (sh.S == 0) {
      encode(inputs, out,
             [o, size] { std::fill(o, o + size, std::numeric_limits<float>::quiet_NaN()); });
      return;
    }
    auto qo = operand_of<float>(q);
    if (k.dtype() == mx::float16) {
      // f16 keys and values, rows contiguous (see sdpa()): few queries read
      // them as they are, the fused kernel widens them as it packs them.
      auto ko = operand_of<_Float16>(k), vo = operand_of<_Float16>(v);
      if (fused_attention_for(sh.L, sh.Dv)) {
        encode(inputs, out, [sh, qo, ko, vo, o] { attention_fused(sh, qo, ko, vo, o); });
      } else {
        encode(inputs, out, [sh, qo, ko, vo, o] { attention_rows(sh, qo, ko, vo, o); });
      }
      return;
    }
    auto ko = operand_of<float>(k), vo = operand_of<float>(v);
    encode(inputs, out, [sh, qo, ko, vo, o] { attention(sh, qo, ko, vo, o); });
  }

 private:
  float scale_;
  bool causal_;
};

// A depthwise convolution (groups = channels, one kernel per channel) of an
// NHWC image; inputs x [B, H, W, C] and the weight [C, kh, kw, 1], both
// row-contiguous.
class DepthwiseConv : public CpuOnly {
 public:
  DepthwiseConv(mx::Stream s, DepthwiseShape shape) : CpuOnly(s), shape_(shape) {}
  const char* name() const override { return "MlxAsrDepthwiseConv"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const DepthwiseConv*>(&other);
    auto key = [](const DepthwiseShape& s) {
      return std::array{s.B, s.H, s.W, s.C, s.kh, s.kw, s.sh, s.sw, s.ph, s.pw};
    };
    return o != nullptr && key(o->shape_) == key(shape_);
  }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override {
    auto shape = inputs[0].shape();
    shape[1] = shape_.OH;
    if (shape.size() == 4) shape[2] = shape_.OW;
    return {shape};
  }
  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override {
    require_row_contiguous(inputs[0], name());
    require_row_contiguous(inputs[1], name());
    out.set_data(mx::allocator::malloc(out.nbytes()));
    const float* x = inputs[0].data<float>();
    const float* w = inputs[1].data<float>();
    float* o = out.data<float>();
    encode(inputs, out, [s = shape_, x, w, o] {
      // The kernel as [kh, kw, C]: each tap's channels one vector load.
      size_t taps = static_cast<size_t>(s.kh) * s.kw;
      std::vector<float> packed(taps * s.C);
      for (size_t c = 0; c < static_cast<size_t>(s.C); ++c)
        for (size_t t = 0; t < taps; ++t) packed[t * s.C + c] = w[c * taps + t];
      size_t rows = static_cast<size_t>(s.B) * s.OH;
      double cost = static_cast<double>(rows) * s.OW * s.C * taps * 2;
      parallel_rows(rows, cost, [&](size_t r0, size_t r1) {
        depthwise_rows(s, x, packed.data(), o, r0, r1);
      });
    });
  }

 private:
  DepthwiseShape shape_;
};

// Transformer-XL's relative-position attention (see rel_pos_attention in
// attention.h); inputs q_u, q_v, k, v, p, row-contiguous.
class RelPosAttention : public CpuOnly {
 public:
  RelPosAttention(mx::Stream s, float scale) : CpuOnly(s), scale_(scale) {}
  const char* name() const override { return "MlxAsrRelPosAttention"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const RelPosAttention*>(&other);
    return o != nullptr && o->scale_ == scale_;
  }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override {
    auto shape = inputs[0].shape();
    shape.back() = inputs[3].shape(-1);
    return {shape};
  }
  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override {
    for (const auto& a : inputs) require_row_contiguous(a, name());
    out.set_data(mx::allocator::malloc(out.nbytes()));
    const auto &q = inputs[0], &v = inputs[3];
    AttentionShape sh{q.shape(0), q.shape(1), q.shape(1), q.shape(2), q.shape(2),
                      q.shape(3), v.shape(3), scale_, false};
    std::array<Operand, 5> ops;
    for (size_t i = 0; i < ops.size(); ++i) ops[i] = operand_of<float>(inputs[i]);
    float* o = out.data<float>();
    encode(inputs, out, [sh, ops, o, sgemm = cblas_sgemm_fn()] {
      rel_pos_attention(sh, ops[0], ops[1], ops[2], ops[3], ops[4], o, sgemm);
    });
  }

 private:
  float scale_;
};

// Which epilogue a matmul primitive applies; its bias and residual arrays
// follow the primitive's own operands in its inputs, in that order.
struct EpilogueFlags {
  bool bias = false, gelu = false, residual = false;
  bool operator==(const EpilogueFlags&) const = default;

  // The host pointers, from the inputs after the first `operands`.
  EpilogueRun run(const std::vector<mx::array>& inputs, size_t operands) const {
    size_t i = operands;
    const float* b = bias ? inputs[i++].data<float>() : nullptr;
    const float* r = residual ? inputs[i].data<float>() : nullptr;
    return {b, gelu, r};
  }
};

class SmallMatmul : public CpuOnly {
 public:
  SmallMatmul(mx::Stream s, float alpha, float beta, EpilogueFlags epilogue)
      : CpuOnly(s), alpha_(alpha), beta_(beta), epilogue_(epilogue) {}
  const char* name() const override { return "MlxAsrSmallMatmul"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const SmallMatmul*>(&other);
    return o != nullptr && o->alpha_ == alpha_ && o->beta_ == beta_ && o->epilogue_ == epilogue_;
  }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override {
    auto shape = inputs[0].shape();
    shape.back() = inputs[1].shape(1);
    return {shape};
  }
  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override {
    const auto& a = inputs[0];
    const auto& b = inputs[1];
    require_row_contiguous(a, name());
    for (size_t i = 2; i < inputs.size(); ++i) require_row_contiguous(inputs[i], name());
    // The bias (c) goes in with beta inside the dot products' loop.
    auto e = epilogue_.run(inputs, 2);
    const float* c = e.bias;
    e.bias = nullptr;
    out.set_data(mx::allocator::malloc(out.nbytes()));
    MatmulShape sh{};
    sh.K = static_cast<size_t>(b.shape(0));
    sh.N = static_cast<size_t>(b.shape(1));
    sh.M = sh.K == 0 ? 0 : a.size() / sh.K;
    sh.bk = b.strides()[0];
    sh.bn = b.strides()[1];
    sh.alpha = alpha_;
    sh.beta = beta_;
    const float* x = a.data<float>();
    float* y = out.data<float>();
    if (b.dtype() == mx::float16) {
      const auto* w = reinterpret_cast<const _Float16*>(b.data<mx::float16_t>());
      encode(inputs, out, [sh, x, w, c, e, y] { small_matmul_run(sh, x, w, c, e, y); });
    } else {
      const float* w = b.data<float>();
      encode(inputs, out, [sh, x, w, c, e, y] { small_matmul_run(sh, x, w, c, e, y); });
    }
  }

 private:
  float alpha_, beta_;
  EpilogueFlags epilogue_;
};

// Runs `f(scales, biases)` with the tables as typed pointers (f32 or f16).
template <class F>
void with_tables(const mx::array& scales, const mx::array& biases, F&& f) {
  if (scales.dtype() == mx::float16) {
    f(reinterpret_cast<const _Float16*>(scales.data<mx::float16_t>()),
      reinterpret_cast<const _Float16*>(biases.data<mx::float16_t>()));
  } else {
    f(scales.data<float>(), biases.data<float>());
  }
}

// A primitive over an affine-quantized matrix: its group size and width.
template <class Self>
class QuantizedPrimitive : public CpuOnly {
 public:
  QuantizedPrimitive(mx::Stream s, int group, int bits) : CpuOnly(s), group_(group), bits_(bits) {}
  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const Self*>(&other);
    return o != nullptr && o->group_ == group_ && o->bits_ == bits_;
  }

 protected:
  int group_, bits_;
};

// The f32 matrix of an affine-quantized one (MLX's CPU dequantize is scalar).
class Dequantize : public QuantizedPrimitive<Dequantize> {
 public:
  using QuantizedPrimitive::QuantizedPrimitive;
  const char* name() const override { return "MlxAsrDequantize"; }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override {
    return {{inputs[0].shape(0), inputs[0].shape(1) * 32 / bits_}};
  }
  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override {
    for (auto& a : inputs) require_row_contiguous(a, name());
    const auto &w = inputs[0], &scales = inputs[1], &biases = inputs[2];
    out.set_data(mx::allocator::malloc(out.nbytes()));
    QuantShape sh{1, static_cast<size_t>(out.shape(1)), static_cast<size_t>(out.shape(0)), group_,
                  bits_};
    const auto* wq = w.data<uint32_t>();
    float* y = out.data<float>();
    with_tables(scales, biases, [&](auto s, auto b) {
      encode(inputs, out, [sh, wq, s, b, y] { dequantize_run(sh, wq, s, b, y); });
    });
  }
};

// x times the transpose of an affine-quantized matrix, then the epilogue:
// few rows with f32 activations (quant_matmul_run) or any number with int8
// activations (int8_matmul_run).
class QuantizedProduct : public QuantizedPrimitive<QuantizedProduct> {
 public:
  enum class Kernel { FewRows, Int8 };
  QuantizedProduct(mx::Stream s, int group, int bits, EpilogueFlags epilogue, Kernel kernel)
      : QuantizedPrimitive(s, group, bits), epilogue_(epilogue), kernel_(kernel) {}
  const char* name() const override {
    return kernel_ == Kernel::Int8 ? "MlxAsrQuantizedInt8Matmul" : "MlxAsrQuantizedSmallMatmul";
  }
  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const QuantizedProduct*>(&other);
    return QuantizedPrimitive::is_equivalent(other) && o->epilogue_ == epilogue_ &&
           o->kernel_ == kernel_;
  }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override {
    auto shape = inputs[0].shape();
    shape.back() = inputs[1].shape(0);
    return {shape};
  }
  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override {
    for (auto& a : inputs) require_row_contiguous(a, name());
    const auto &a = inputs[0], &w = inputs[1], &scales = inputs[2], &biases = inputs[3];
    out.set_data(mx::allocator::malloc(out.nbytes()));
    size_t K = static_cast<size_t>(a.shape(-1)), N = static_cast<size_t>(w.shape(0));
    size_t M = a.size() / K;
    const float* x = a.data<float>();
    const auto* wq = w.data<uint32_t>();
    float* y = out.data<float>();
    auto e = epilogue_.run(inputs, 4);
    with_tables(scales, biases, [&](auto s, auto b) {
      if (kernel_ == Kernel::Int8) {
        // Chosen here, where an error reaches the caller: the cap may have
        // been lowered since the product was built.
        Isa path = int8_path();
        if (path == Isa::Baseline) {
          throw std::runtime_error(std::string(name()) + " evaluated at instruction-set level " +
                                   isa_name(isa_active()) + ", below avx2");
        }
        Int8Shape sh{M, K, N, static_cast<size_t>(group_)};
        encode(inputs, out, [path, sh, x, wq, s, b, e, y] {
          int8_matmul_run(path, sh, x, wq, s, b, e, y);
        });
      } else {
        QuantShape sh{M, K, N, group_, bits_};
        encode(inputs, out, [sh, x, wq, s, b, e, y] { quant_matmul_run(sh, x, wq, s, b, e, y); });
      }
    });
  }

 private:
  EpilogueFlags epilogue_;
  Kernel kernel_;
};

// An LSTM layer's recurrence (lstm.cc): projections, W_hh, h0, c0 in; every
// step's h, the last h and c out.
class LstmRecurrence : public mx::Primitive {
 public:
  LstmRecurrence(mx::Stream s, bool reverse) : mx::Primitive(s), reverse_(reverse) {}
  const char* name() const override { return "MlxAsrLstm"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const LstmRecurrence*>(&other);
    return o != nullptr && o->reverse_ == reverse_;
  }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override {
    const auto& x = inputs[0];
    return {{x.shape(0), x.shape(1), x.shape(2) / 4}, inputs[2].shape(), inputs[3].shape()};
  }
  void eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) override {
    throw std::runtime_error(std::string(name()) + " has no GPU kernel");
  }
  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override {
    for (auto& a : inputs) require_row_contiguous(a, name());
    for (auto& out : outputs) out.set_data(mx::allocator::malloc(out.nbytes()));
    const auto& x = inputs[0];
    LstmShape sh{static_cast<size_t>(x.shape(0)), static_cast<size_t>(x.shape(1)),
                 static_cast<size_t>(x.shape(2) / 4), reverse_};
    const float *xp = x.data<float>(), *w = inputs[1].data<float>(),
                *h0 = inputs[2].data<float>(), *c0 = inputs[3].data<float>();
    float *y = outputs[0].data<float>(), *h = outputs[1].data<float>(),
          *c = outputs[2].data<float>();
    auto& enc = mx::cpu::get_command_encoder(stream());
    for (auto& in : inputs) enc.set_input_array(in);
    for (auto& out : outputs) enc.set_output_array(out);
    enc.dispatch([=] { lstm_run(sh, xp, w, h0, c0, y, h, c); });
  }

 private:
  bool reverse_;
};

// Whether the epilogue's arrays fit a kernel writing an f32 output of
// `shape`; if so, appends them to `inputs` (contiguous) and returns its flags.
std::optional<EpilogueFlags> epilogue_inputs(const Epilogue& e, const mx::Shape& shape,
                                             mx::Stream s, std::vector<array>& inputs) {
  int N = shape.back();
  if (e.bias != nullptr) {
    if (e.bias->dtype() != mx::float32 || e.bias->ndim() != 1 || e.bias->shape(0) != N) {
      return std::nullopt;
    }
    inputs.push_back(mx::contiguous(*e.bias, false, s));
  }
  if (e.residual != nullptr) {
    if (e.residual->dtype() != mx::float32 || e.residual->shape() != shape) return std::nullopt;
    inputs.push_back(mx::contiguous(*e.residual, false, s));
  }
  return EpilogueFlags{e.bias != nullptr, e.gelu, e.residual != nullptr};
}

// Checks x [..., K] against a quantized [N, K] matrix; returns the output shape.
std::optional<mx::Shape> quantized_shape(const array& x, const array& w, const array& scales,
                                         const array& biases, int group_size, int bits) {
  if (x.dtype() != mx::float32 || x.ndim() < 1 || w.ndim() != 2 || w.dtype() != mx::uint32 ||
      (bits != 4 && bits != 8) || group_size % 16 != 0) {
    return std::nullopt;
  }
  auto table = scales.dtype();
  if ((table != mx::float32 && table != mx::float16) || biases.dtype() != table) {
    return std::nullopt;
  }
  int N = w.shape(0), K = x.shape(-1);
  if (K == 0 || K % group_size != 0 || w.shape(1) * 32 != K * bits ||
      scales.shape() != mx::Shape{N, K / group_size} || biases.shape() != scales.shape()) {
    return std::nullopt;
  }
  auto shape = x.shape();
  shape.back() = N;
  return shape;
}

// A QuantizedProduct of x, w, scales, biases (checked by quantized_shape)
// with the epilogue `e`, or nothing when the epilogue's arrays do not fit.
std::optional<array> product_with_epilogue(std::vector<array> operands, int group_size, int bits,
                                           const Epilogue& e, const mx::Shape& shape,
                                           mx::Stream s, QuantizedProduct::Kernel kernel) {
  std::vector<array> inputs;
  for (auto& a : operands) inputs.push_back(mx::contiguous(a, false, s));
  auto flags = epilogue_inputs(e, shape, s, inputs);
  if (!flags) return std::nullopt;
  return array(shape, mx::float32,
               std::make_shared<QuantizedProduct>(s, group_size, bits, *flags, kernel),
               std::move(inputs));
}

}  // namespace

namespace detail {

void require_row_contiguous(const mx::array& a, const char* who) {
  if (!a.flags().row_contiguous) {
    throw std::runtime_error(std::string(who) + ": input is not row-contiguous");
  }
}

std::optional<mx::Stream> cpu_stream() {
  if (!enabled()) return std::nullopt;
  auto s = mx::default_stream(mx::default_device());
  if (s.device != mx::Device::cpu) return std::nullopt;
  return s;
}

}  // namespace detail

bool set_enabled(bool on) { return enabled_flag().exchange(on); }
bool enabled() { return enabled_flag().load(); }
int threads() { return Pool::get().size(); }
void hold_threads() { Pool::get().heat(1); }
void release_threads() { Pool::get().heat(-1); }
bool active() { return cpu_stream().has_value(); }
bool int8_available() { return active() && int8_path() != Isa::Baseline; }
Isa int8_isa() { return active() ? int8_path() : Isa::Baseline; }
bool fused_attention_available() { return active() && fused_attention_for(kRowsUpTo + 1, 64); }

std::optional<array> softmax_last(const array& a) {
  auto s = cpu_stream();
  if (!s || a.dtype() != mx::float32 || a.ndim() == 0) return std::nullopt;
  auto x = mx::contiguous(a, false, *s);
  return array(x.shape(), mx::float32, std::make_shared<SoftmaxLast>(*s), {x});
}

namespace {

std::optional<array> element_map(const array& a, const char* name, ElementMap::Span span,
                                 double cost) {
  auto s = cpu_stream();
  if (!s || a.dtype() != mx::float32) return std::nullopt;
  auto x = mx::contiguous(a, false, *s);
  return array(x.shape(), mx::float32, std::make_shared<ElementMap>(*s, name, span, cost), {x});
}

}  // namespace

std::optional<array> gelu(const array& a) { return element_map(a, "MlxAsrGelu", gelu_span, 30); }

std::optional<array> silu(const array& a) { return element_map(a, "MlxAsrSilu", silu_span, 12); }

std::optional<array> glu_last(const array& a) {
  auto s = cpu_stream();
  if (!s || a.dtype() != mx::float32 || a.ndim() == 0 || a.shape(-1) % 2 != 0) {
    return std::nullopt;
  }
  auto x = mx::contiguous(a, false, *s);
  auto shape = x.shape();
  shape.back() /= 2;
  return array(shape, mx::float32, std::make_shared<GluLast>(*s), {x});
}

std::optional<array> layer_norm(const array& x, const array* weight, const array* bias,
                                float eps) {
  auto s = cpu_stream();
  if (!s || x.dtype() != mx::float32 || x.ndim() == 0) return std::nullopt;
  int n = x.shape(-1);
  auto fits = [&](const array* p) {
    return p == nullptr || (p->dtype() == mx::float32 && p->ndim() == 1 && p->shape(0) == n);
  };
  if (!fits(weight) || !fits(bias)) return std::nullopt;
  std::vector<array> inputs{mx::contiguous(x, false, *s)};
  if (weight) inputs.push_back(mx::contiguous(*weight, false, *s));
  if (bias) inputs.push_back(mx::contiguous(*bias, false, *s));
  auto shape = x.shape();
  return array(shape, mx::float32,
               std::make_shared<LayerNormLast>(*s, eps, weight != nullptr, bias != nullptr),
               std::move(inputs));
}

std::optional<array> sdpa(const array& q, const array& k, const array& v, float scale,
                          bool causal) {
  auto s = cpu_stream();
  if (!s) return std::nullopt;
  for (auto* a : {&q, &k, &v}) {
    if (a->ndim() != 4) return std::nullopt;
  }
  // f32 throughout, or f32 queries against f16 keys and values.
  bool half_kv = k.dtype() == mx::float16 && v.dtype() == mx::float16;
  if (q.dtype() != mx::float32 || !(half_kv || (k.dtype() == mx::float32 &&
                                                v.dtype() == mx::float32))) {
    return std::nullopt;
  }
  int B = q.shape(0), H = q.shape(1), L = q.shape(2), D = q.shape(3);
  int Hk = k.shape(1), S = k.shape(2);
  bool fits = k.shape(0) == B && v.shape(0) == B && v.shape(1) == Hk && v.shape(2) == S &&
              k.shape(3) == D && Hk > 0 && H % Hk == 0;
  // A causal mask with fewer keys than queries leaves rows without keys:
  // MLX's own op decides what those mean.
  if (!fits || (causal && S < L)) return std::nullopt;
  std::vector<array> inputs{q, k, v};
  if (half_kv) {
    // Few queries, and many for the fused kernel, read the f16 rows directly
    // (contiguous rows); the BLAS route takes widened copies.
    bool direct = L <= kRowsUpTo || fused_attention_for(L, v.shape(3));
    for (int i : {1, 2}) {
      inputs[i] = direct ? mx::contiguous(inputs[i], false, *s)
                         : mx::astype(inputs[i], mx::float32, *s);
    }
  }
  auto shape = q.shape();
  shape.back() = v.shape(3);
  return array(shape, mx::float32, std::make_shared<Attention>(*s, scale, causal),
               std::move(inputs));
}

std::optional<array> depthwise_conv(const array& x, const array& w, std::array<int, 2> stride,
                                    std::array<int, 2> padding) {
  auto s = cpu_stream();
  int nd = x.ndim() - 2;
  if (!s || (nd != 1 && nd != 2) || w.ndim() != x.ndim() || x.dtype() != mx::float32 ||
      w.dtype() != mx::float32) {
    return std::nullopt;
  }
  int C = x.shape(-1);
  if (w.shape(0) != C || w.shape(-1) != 1 || C == 0) return std::nullopt;
  DepthwiseShape sh{x.shape(0), x.shape(1), nd == 2 ? x.shape(2) : 1, C,
                    w.shape(1), nd == 2 ? w.shape(2) : 1,
                    stride[0], nd == 2 ? stride[1] : 1, padding[0], nd == 2 ? padding[1] : 0,
                    0, 0};
  if (sh.sh < 1 || sh.sw < 1 || sh.ph < 0 || sh.pw < 0) return std::nullopt;
  sh.OH = (sh.H + 2 * sh.ph - sh.kh) / sh.sh + 1;
  sh.OW = (sh.W + 2 * sh.pw - sh.kw) / sh.sw + 1;
  if (sh.H + 2 * sh.ph < sh.kh || sh.W + 2 * sh.pw < sh.kw || sh.B == 0) return std::nullopt;
  auto shape = x.shape();
  shape[1] = sh.OH;
  if (nd == 2) shape[2] = sh.OW;
  return array(shape, mx::float32, std::make_shared<DepthwiseConv>(*s, sh),
               {mx::contiguous(x, false, *s), mx::contiguous(w, false, *s)});
}

std::optional<array> rel_pos_attention(const array& q_u, const array& q_v, const array& k,
                                       const array& v, const array& p, float scale) {
  auto s = cpu_stream();
  if (!s || cblas_sgemm_fn() == nullptr) return std::nullopt;
  for (const auto* a : {&q_u, &q_v, &k, &v, &p}) {
    if (a->ndim() != 4 || a->dtype() != mx::float32) return std::nullopt;
  }
  int B = q_u.shape(0), H = q_u.shape(1), T = q_u.shape(2), D = q_u.shape(3);
  mx::Shape qs{B, H, T, D};
  if (T == 0 || D == 0 || q_v.shape() != qs || k.shape() != qs || v.shape(0) != B ||
      v.shape(1) != H || v.shape(2) != T || v.shape(3) == 0 ||
      p.shape() != mx::Shape{1, H, 2 * T - 1, D}) {
    return std::nullopt;
  }
  std::vector<array> inputs;
  for (const auto* a : {&q_u, &q_v, &k, &v, &p}) inputs.push_back(mx::contiguous(*a, false, *s));
  auto shape = qs;
  shape.back() = v.shape(3);
  return array(shape, mx::float32, std::make_shared<RelPosAttention>(*s, scale),
               std::move(inputs));
}

std::optional<array> small_matmul(const array& a, const array& b, float alpha,
                                  const Epilogue& e) {
  auto s = cpu_stream();
  // f32 inputs, or f32 rows against f16 weights (MLX would promote to f32).
  bool weights_ok = b.dtype() == mx::float32 || b.dtype() == mx::float16;
  if (!s || a.dtype() != mx::float32 || !weights_ok || a.ndim() < 2 || b.ndim() != 2) {
    return std::nullopt;
  }
  int K = b.shape(0), N = b.shape(1);
  if (a.shape(-1) != K || K == 0) return std::nullopt;
  size_t rows = a.size() / static_cast<size_t>(K);
  if (rows == 0 || rows > kSmallMatmulRows) return std::nullopt;
  auto shape = a.shape();
  shape.back() = N;
  std::vector<array> inputs{mx::contiguous(a, false, *s), b};
  auto flags = epilogue_inputs(e, shape, *s, inputs);
  if (!flags) return std::nullopt;
  return array(shape, mx::float32, std::make_shared<SmallMatmul>(*s, alpha, e.beta, *flags),
               std::move(inputs));
}

std::optional<array> quantized_small_matmul(const array& x, const array& w, const array& scales,
                                            const array& biases, int group_size, int bits,
                                            const Epilogue& e) {
  auto s = cpu_stream();
  auto shape = quantized_shape(x, w, scales, biases, group_size, bits);
  if (!s || !shape || e.beta != 1.0f) return std::nullopt;
  size_t rows = x.size() / static_cast<size_t>(x.shape(-1));
  if (rows > kSmallMatmulRows) return std::nullopt;
  return product_with_epilogue({x, w, scales, biases}, group_size, bits, e, *shape, *s,
                               QuantizedProduct::Kernel::FewRows);
}

std::optional<array> quantized_int8_matmul(const array& x, const array& w, const array& scales,
                                           const array& biases, int group_size, int bits,
                                           const Epilogue& e) {
  auto s = cpu_stream();
  auto shape = quantized_shape(x, w, scales, biases, group_size, bits);
  if (!s || !shape || bits != 8 || e.beta != 1.0f || int8_path() == Isa::Baseline) {
    return std::nullopt;
  }
  return product_with_epilogue({x, w, scales, biases}, group_size, bits, e, *shape, *s,
                               QuantizedProduct::Kernel::Int8);
}

std::optional<array> quantized_matmul_t(const array& x, const array& w, const array& scales,
                                        const array& biases, int group_size, int bits) {
  if (auto out = quantized_small_matmul(x, w, scales, biases, group_size, bits, {})) return out;
  auto s = cpu_stream();
  if (!s || !quantized_shape(x, w, scales, biases, group_size, bits)) return std::nullopt;
  // Many rows (the encoder, a prompt): dequantize once and let the GEMM run;
  // MLX's CPU quantized matmul is scalar.
  std::vector<array> tables{mx::contiguous(w, false, *s), mx::contiguous(scales, false, *s),
                            mx::contiguous(biases, false, *s)};
  array dense({w.shape(0), x.shape(-1)}, mx::float32,
              std::make_shared<Dequantize>(*s, group_size, bits), std::move(tables));
  return mx::matmul(x, mx::transpose(dense, *s), *s);
}

std::optional<std::vector<array>> lstm(const array& projected, const array& w_hh, const array& h0,
                                       const array& c0, bool reverse) {
  auto s = cpu_stream();
  if (!s || projected.ndim() != 3 || w_hh.ndim() != 2 || h0.ndim() != 2 || c0.ndim() != 2) {
    return std::nullopt;
  }
  for (const auto* a : {&projected, &w_hh, &h0, &c0}) {
    if (a->dtype() != mx::float32) return std::nullopt;
  }
  int B = projected.shape(0), H = w_hh.shape(1);
  mx::Shape state{B, H};
  if (projected.shape(2) != 4 * H || w_hh.shape(0) != 4 * H || h0.shape() != state ||
      c0.shape() != state) {
    return std::nullopt;
  }
  std::vector<array> inputs;
  for (const auto* a : {&projected, &w_hh, &h0, &c0}) inputs.push_back(mx::contiguous(*a, false, *s));
  return array::make_arrays({{B, projected.shape(1), H}, state, state},
                            {mx::float32, mx::float32, mx::float32},
                            std::make_shared<LstmRecurrence>(*s, reverse), std::move(inputs));
}

float log_sum_exp(const float* x, size_t n) {
  float m = max_of(x, n);
  if (n == 0 || m == kNegInf || std::isnan(m)) return n == 0 ? kNegInf : m;
  return m + static_cast<float>(std::log(exp_shifted_sum(x, n, m)));
}

std::optional<array> row_major(const array& a, mx::Dtype dtype) {
  auto s = cpu_stream();
  if (!s || a.dtype() != mx::float32 || a.ndim() > 4 || a.size() == 0 ||
      (dtype != mx::float32 && dtype != mx::float16)) {
    return std::nullopt;
  }
  return array(a.shape(), dtype, std::make_shared<RowMajorCopy>(*s, dtype), {a});
}

std::optional<array> select_rows(const array& a, const std::vector<int32_t>& rows, int filled) {
  auto s = cpu_stream();
  if (!s || a.ndim() != 4 || rows.empty() || filled < 0 || filled > a.shape(2)) {
    return std::nullopt;
  }
  auto shape = a.shape();
  shape[0] = static_cast<int>(rows.size());
  return array(shape, a.dtype(), std::make_shared<SelectRows>(*s, rows, filled),
               {mx::contiguous(a, false, *s)});
}

std::optional<array> f16_if_exact(const array& a) {
  if (a.dtype() != mx::float32) return std::nullopt;
  auto x = mx::contiguous(a, false);
  x.eval();
  const float* p = x.data<float>();
  size_t n = x.size();
  auto buffer = mx::allocator::malloc(n * sizeof(_Float16));
  auto* y = static_cast<_Float16*>(buffer.raw_ptr());
  constexpr size_t kBlock = 1 << 16;
  size_t blocks = (n + kBlock - 1) / kBlock;
  std::atomic<bool> exact{true};
  parallel_rows(blocks, static_cast<double>(n), [&](size_t b0, size_t b1) {
    size_t i0 = b0 * kBlock, i1 = std::min(n, b1 * kBlock);
    if (i1 > i0 && exact.load(std::memory_order_relaxed) && !narrow_exact(p + i0, y + i0, i1 - i0)) {
      exact.store(false, std::memory_order_relaxed);
    }
  });
  if (!exact.load()) {
    mx::allocator::free(buffer);
    return std::nullopt;
  }
  return array(buffer, x.shape(), mx::float16);
}


}  // namespace mlx_shim::kernels
