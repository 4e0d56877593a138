// One decoding step (one new position per row) of a pre-LN decoder layer:
//   x += out(self-attention(ln1(x)) over the cache and this position)
//   x += out(cross-attention(ln2(x)) over the encoder's keys and values)
//   x += fc2(gelu(fc1(ln3(x))))
// with dense (f32, f16) or quantized projections. The same kernels as the
// layer's ops (so the same values), as one primitive: the ~30 ops of a layer
// each cost a dispatch to the stream's thread and a wake-up of the pool, as
// long as their work on a decoder the size of Whisper's.
#include "mlx/src/cpp/kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "mlx/allocator.h"
#include "mlx/backend/cpu/encoder.h"
#include "mlx/primitives.h"

#include "attention.h"
#include "elementwise.h"
#include "matmul.h"
#include "pool.h"
#include "primitive.h"
#include "quantized.h"
#include "simd.h"

namespace mlx_shim::kernels {

using namespace detail;

namespace {


// A projection's host pointers: the matrix [N, K] (dense, or quantized
// with its tables), its bias [N], and the kernel its op would run.
struct StepLinear {
  const void* w;
  const void* scales;
  const void* biases;
  const float* bias;
  size_t N, K;
  int group, bits;
  void (*apply)(const StepLinear&, size_t rows, const float* x, bool gelu, const float* residual,
                float* y);
};

template <class S>
void apply_quantized(const StepLinear& l, size_t rows, const float* x, bool gelu,
                     const float* residual, float* y) {
  QuantShape sh{rows, l.K, l.N, l.group, l.bits};
  quant_matmul_run(sh, x, static_cast<const uint32_t*>(l.w), static_cast<const S*>(l.scales),
                   static_cast<const S*>(l.biases), EpilogueRun{l.bias, gelu, residual}, y);
}

// As `linear` runs a dense layer: the transposed weight's product with the
// bias folded in by beta.
template <class W>
void apply_dense(const StepLinear& l, size_t rows, const float* x, bool gelu,
                 const float* residual, float* y) {
  MatmulShape sh{rows, l.K, l.N, 1, static_cast<int64_t>(l.K), 1.0f, 1.0f};
  small_matmul_run(sh, x, static_cast<const W*>(l.w), l.bias, EpilogueRun{nullptr, gelu, residual},
                   y);
}

struct StepShape {
  size_t B, D, F;  // rows, model width, MLP width
  int H, position, cap, S;
  // Cross-attention keys' and values' strides over rows (0: one window's
  // for every row), heads and frames.
  int64_t cross_strides[3];
  float eps;
};

template <class KV>
struct StepArgs {
  const float* x;
  float* out;
  float* k_cache;  // [B, H, cap, D / H]
  float* v_cache;
  const KV* cross_k;  // [B or 1, H, S, D / H]
  const KV* cross_v;
  const float* ln[6];  // weight and bias of each norm
  StepLinear qkv, self_out, cross_q, cross_out, fc1, fc2;
};

template <class KV>
void decoder_layer_step_run(const StepShape& sh, const StepArgs<KV>& a) {
  Pool::Hot hot;
  size_t B = sh.B, D = sh.D, Dh = D / sh.H;
  thread_local AlignedVec<float> scratch;
  scratch.resize(B * (7 * D + sh.F));
  float* h = scratch.data();     // a norm's output [B, D]
  float* qkv = h + B * D;        // [B, 3 D]
  float* att = qkv + 3 * B * D;  // attention output, heads merged [B, D]
  float* x1 = att + B * D;       // after self-attention
  float* x2 = x1 + B * D;        // after cross-attention
  float* f = x2 + B * D;         // [B, F]
  auto norm = [&](const float* in, int i) {
    for (size_t r = 0; r < B; ++r)
      layer_norm_row(in + r * D, h + r * D, D, a.ln[2 * i], a.ln[2 * i + 1], sh.eps);
  };
  auto linear = [&](const StepLinear& l, const float* in, bool gelu, const float* residual,
                    float* y) { l.apply(l, B, in, gelu, residual, y); };
  float scale = std::pow(static_cast<float>(Dh), -0.5f);
  int64_t cap = sh.cap, heads = sh.H;

  norm(a.x, 0);
  linear(a.qkv, h, false, nullptr, qkv);
  for (size_t b = 0; b < B; ++b) {
    for (int64_t hd = 0; hd < heads; ++hd) {
      size_t at = ((b * heads + hd) * cap + sh.position) * Dh;
      const float* row = qkv + b * 3 * D + hd * Dh;
      std::copy(row + D, row + D + Dh, a.k_cache + at);
      std::copy(row + 2 * D, row + 2 * D + Dh, a.v_cache + at);
    }
  }
  int keys = sh.position + 1;
  AttentionShape self{static_cast<int>(B), sh.H, sh.H, 1, keys, static_cast<int>(Dh),
                      static_cast<int>(Dh), scale, false};
  int64_t qs0 = static_cast<int64_t>(3 * D);
  Operand q{qkv, qs0, static_cast<int64_t>(Dh), qs0, 1, {}};
  Operand kc{a.k_cache, heads * cap * static_cast<int64_t>(Dh), cap * static_cast<int64_t>(Dh),
             static_cast<int64_t>(Dh), 1, {}};
  Operand vc{a.v_cache, kc.s0, kc.s1, kc.s2, 1, {}};
  attention_rows(self, q, kc, vc, att);
  linear(a.self_out, att, false, a.x, x1);

  norm(x1, 1);
  linear(a.cross_q, h, false, nullptr, qkv);
  const int64_t* cs = sh.cross_strides;
  OperandOf<KV> ck{a.cross_k, cs[0], cs[1], cs[2], 1, {}};
  OperandOf<KV> cv{a.cross_v, cs[0], cs[1], cs[2], 1, {}};
  // Rows sharing one window's keys and values (beams) attend as one head's
  // B queries, each key and value row read once for all of them (each
  // query's sums are the same as alone); their output comes head by head,
  // [H, B, Dh], into f (free until fc1). Otherwise each row is a batch of
  // one query.
  bool shared = cs[0] == 0 && B > 1;
  int batch = shared ? 1 : static_cast<int>(B), queries = shared ? static_cast<int>(B) : 1;
  AttentionShape cross{batch, sh.H, sh.H, queries, sh.S, static_cast<int>(Dh),
                       static_cast<int>(Dh), scale, false};
  Operand cq{qkv, shared ? 0 : static_cast<int64_t>(D), static_cast<int64_t>(Dh),
             static_cast<int64_t>(D), 1, {}};
  attention_rows(cross, cq, ck, cv, shared ? f : att);
  if (shared) {
    for (int64_t hd = 0; hd < heads; ++hd)
      for (size_t b = 0; b < B; ++b)
        std::copy_n(f + (hd * B + b) * Dh, Dh, att + b * D + hd * Dh);
  }
  linear(a.cross_out, att, false, x1, x2);

  norm(x2, 2);
  linear(a.fc1, h, true, nullptr, f);
  linear(a.fc2, f, false, x2, a.out);
}

class DecoderLayerStep : public mx::Primitive {
 public:
  DecoderLayerStep(mx::Stream s, int heads, int position, int group, int bits, float eps,
                   bool in_place)
      : mx::Primitive(s), heads_(heads), position_(position), group_(group), bits_(bits),
        eps_(eps), in_place_(in_place) {}
  const char* name() const override { return "MlxAsrDecoderLayerStep"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const DecoderLayerStep*>(&other);
    return o != nullptr && o->heads_ == heads_ && o->position_ == position_ &&
           o->group_ == group_ && o->bits_ == bits_ && o->eps_ == eps_ &&
           o->in_place_ == in_place_;
  }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override {
    return {inputs[0].shape(), inputs[1].shape(), inputs[2].shape()};
  }
  void eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) override {
    throw std::runtime_error(std::string(name()) + " has no GPU kernel");
  }
  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override {
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (i != 3 && i != 4) require_row_contiguous(inputs[i], name());
    }
    // The cross-attention keys and values: any strides but the last, the
    // same for both (each row's read from where its strides say).
    const auto &ck = inputs[3], &cv = inputs[4];
    if (ck.strides().back() != 1 || cv.strides() != ck.strides()) {
      throw std::runtime_error(std::string(name()) + ": cross keys/values laid out apart");
    }
    outputs[0].set_data(mx::allocator::malloc(outputs[0].nbytes()));
    // The caches are written in place when nothing else held them as the
    // step was built, else copied first (in the task: the inputs may not be
    // computed yet).
    std::vector<std::pair<const void*, size_t>> copies;
    for (int i : {1, 2}) {
      const auto& in = inputs[i];
      auto& out = outputs[i];
      if (in_place_) {
        out.copy_shared_buffer(in);
        copies.emplace_back(nullptr, 0);
      } else {
        out.set_data(mx::allocator::malloc(out.nbytes()));
        copies.emplace_back(in.data<void>(), in.nbytes());
      }
    }
    const auto& x = inputs[0];
    size_t per = group_ > 0 ? 4 : 2;  // arrays per projection
    const auto& st = ck.strides();
    StepShape sh{static_cast<size_t>(x.shape(0)),
                 static_cast<size_t>(x.shape(2)),
                 static_cast<size_t>(inputs[11 + 4 * per].shape(0)),
                 heads_,
                 position_,
                 inputs[1].shape(2),
                 ck.shape(2),
                 {ck.shape(0) == 1 ? 0 : st[0], st[1], st[2]},
                 eps_};
    StepLinear lin[6];
    for (size_t p = 0; p < 6; ++p) lin[p] = step_linear(inputs, 11 + p * per);
    auto& enc = mx::cpu::get_command_encoder(stream());
    for (auto& in : inputs) enc.set_input_array(in);
    for (auto& out : outputs) enc.set_output_array(out);
    auto run = [&](auto kv) {
      using KV = decltype(kv);
      StepArgs<KV> args{x.data<float>(),
                        outputs[0].data<float>(),
                        outputs[1].data<float>(),
                        outputs[2].data<float>(),
                        reinterpret_cast<const KV*>(inputs[3].data<void>()),
                        reinterpret_cast<const KV*>(inputs[4].data<void>()),
                        {},
                        lin[0],
                        lin[1],
                        lin[2],
                        lin[3],
                        lin[4],
                        lin[5]};
      for (int i = 0; i < 6; ++i) args.ln[i] = inputs[5 + i].data<float>();
      enc.dispatch([sh, args, copies] {
        for (int i = 0; i < 2; ++i) {
          float* cache = i == 0 ? args.k_cache : args.v_cache;
          if (copies[i].first != nullptr) std::memcpy(cache, copies[i].first, copies[i].second);
        }
        decoder_layer_step_run(sh, args);
      });
    };
    if (ck.dtype() == mx::float16) {
      run(_Float16{});
    } else {
      run(float{});
    }
  }

 private:
  // The projection whose arrays start at inputs[first]: the matrix, its
  // scales and biases when quantized, then its bias.
  StepLinear step_linear(const std::vector<mx::array>& inputs, size_t first) const {
    const auto& w = inputs[first];
    StepLinear l{w.data<void>(), nullptr, nullptr, nullptr, static_cast<size_t>(w.shape(0)), 0,
                 group_, bits_, nullptr};
    if (group_ > 0) {
      const auto &scales = inputs[first + 1], &biases = inputs[first + 2];
      l.scales = scales.data<void>();
      l.biases = biases.data<void>();
      l.bias = inputs[first + 3].data<float>();
      l.K = static_cast<size_t>(scales.shape(1) * group_);
      l.apply = scales.dtype() == mx::float16 ? apply_quantized<_Float16> : apply_quantized<float>;
    } else {
      l.bias = inputs[first + 1].data<float>();
      l.K = static_cast<size_t>(w.shape(1));
      l.apply = w.dtype() == mx::float16 ? apply_dense<_Float16> : apply_dense<float>;
    }
    return l;
  }

  int heads_, position_, group_, bits_;
  float eps_;
  bool in_place_;
};

}  // namespace

std::optional<std::vector<array>> decoder_layer_step(const std::vector<array>& inputs,
                                                     int heads, int position, int group_size,
                                                     int bits, float eps) {
  auto s = cpu_stream();
  bool quantized = group_size > 0;
  size_t per = quantized ? 4 : 2;  // arrays per projection
  if (!s || inputs.size() != 11 + 6 * per || heads <= 0) return std::nullopt;
  const auto &x = inputs[0], &kc = inputs[1], &vc = inputs[2], &ck = inputs[3], &cv = inputs[4];
  if (x.dtype() != mx::float32 || x.ndim() != 3 || x.shape(1) != 1) return std::nullopt;
  int B = x.shape(0), D = x.shape(2);
  if (B < 1 || static_cast<size_t>(B) > kSmallMatmulRows || D % heads != 0) return std::nullopt;
  mx::Shape cache{B, heads, kc.ndim() == 4 ? kc.shape(2) : 0, D / heads};
  for (const auto* c : {&kc, &vc}) {
    if (c->dtype() != mx::float32 || c->shape() != cache) return std::nullopt;
  }
  if (position < 0 || position >= cache[2]) return std::nullopt;
  bool half = ck.dtype() == mx::float16;
  if (!(half || ck.dtype() == mx::float32) || cv.dtype() != ck.dtype() || ck.ndim() != 4 ||
      cv.shape() != ck.shape() || (ck.shape(0) != B && ck.shape(0) != 1) ||
      ck.shape(1) != heads || ck.shape(3) != D / heads || ck.shape(2) == 0) {
    return std::nullopt;
  }
  for (int i = 5; i < 11; ++i) {
    if (inputs[i].dtype() != mx::float32 || inputs[i].shape() != mx::Shape{D}) return std::nullopt;
  }
  // The projections in order, with their widths in and out.
  const auto& fc1 = inputs[11 + 4 * per];
  int F = fc1.ndim() == 2 ? fc1.shape(0) : 0;
  std::pair<int, int> widths[] = {{D, 3 * D}, {D, D}, {D, D}, {D, D}, {D, F}, {F, D}};
  for (size_t p = 0; p < 6; ++p) {
    size_t first = 11 + p * per;
    auto [in, out] = widths[p];
    const auto &w = inputs[first], &bias = inputs[first + per - 1];
    bool ok = in > 0 && w.ndim() == 2 && w.shape(0) == out && bias.dtype() == mx::float32 &&
              bias.shape() == mx::Shape{out};
    if (quantized) {
      const auto &sc = inputs[first + 1], &bi = inputs[first + 2];
      bool table = sc.dtype() == mx::float32 || sc.dtype() == mx::float16;
      ok = ok && w.dtype() == mx::uint32 && (bits == 4 || bits == 8) && in % group_size == 0 &&
           w.shape(1) * 32 == in * bits && table && bi.dtype() == sc.dtype() &&
           sc.shape() == mx::Shape{out, in / group_size} && bi.shape() == sc.shape();
    } else {
      ok = ok && (w.dtype() == mx::float32 || w.dtype() == mx::float16) && w.shape(1) == in;
    }
    if (!ok) return std::nullopt;
  }
  // The outputs would each hold the inputs (siblings copy them), so whether
  // the caches may be written in place is decided here: computed arrays that
  // nothing but `inputs` holds (their buffers shared with nothing either).
  // What is not computed yet may come to share a buffer, and is copied.
  auto exclusive = [](const array& a) {
    return a.status() != array::Status::unscheduled && a.is_donatable();
  };
  bool in_place = exclusive(kc) && exclusive(vc);
  auto prim =
      std::make_shared<DecoderLayerStep>(*s, heads, position, group_size, bits, eps, in_place);
  return array::make_arrays({x.shape(), kc.shape(), vc.shape()},
                            {mx::float32, mx::float32, mx::float32}, prim, inputs);
}

}  // namespace mlx_shim::kernels
