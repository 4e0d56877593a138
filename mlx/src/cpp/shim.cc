#include "mlx/src/cpp/shim.h"

#include <dlfcn.h>
#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>

#include "mlx/compile.h"
#include "mlx/compile_impl.h"
#include "mlx/device.h"
#include "mlx/fast.h"
#include "mlx/fft.h"
#include "mlx/io.h"
#include "mlx/memory.h"
#include "mlx/ops.h"
#include "mlx/random.h"
#include "mlx/transforms.h"
#include "mlx/version.h"
#include "mlx/src/cpp/kernels.h"
#include "mlx/src/cpp/kernels/isa.h"
#include "mlx/src/ffi.rs.h"

#ifdef MLX_SHIM_CBLAS_FORWARD
extern "C" const char* mlx_asr_openblas_config(void);
// A reference from a static initializer survives --gc-sections, so with
// --as-needed every binary keeps the forwarder (src/cpp/blas/) as a direct
// dependency, even one that never calls openblas_config(); that is what makes
// cblas_* resolve to OpenBLAS ahead of the wheel's bundled reference BLAS.
[[maybe_unused]] static const char* const kOpenblasConfig = mlx_asr_openblas_config();
#endif

namespace mx = mlx::core;

namespace mlx_shim {
namespace {

ArrayPtr own(array a) { return std::make_unique<array>(std::move(a)); }

mx::Shape to_shape(I32s s) { return mx::Shape(s.begin(), s.end()); }

std::vector<int> to_ints(I32s s) { return std::vector<int>(s.begin(), s.end()); }

// Codes follow mx::Dtype::Val, which is also the order of Rust's `Dtype`.
mx::Dtype to_dtype(uint8_t code) {
  static const mx::Dtype table[] = {
      mx::bool_,   mx::uint8,   mx::uint16,  mx::uint32,  mx::uint64,
      mx::int8,    mx::int16,   mx::int32,   mx::int64,   mx::float16,
      mx::float32, mx::float64, mx::bfloat16, mx::complex64};
  if (code >= sizeof(table) / sizeof(table[0])) {
    throw std::invalid_argument("unknown dtype code " + std::to_string(code));
  }
  return table[code];
}

mx::Device to_device(uint8_t code) {
  return code == 0 ? mx::Device(mx::Device::cpu) : mx::Device(mx::Device::gpu);
}

// a b, by this crate's kernel for few rows, else MLX's op.
array matmul_of(const array& a, const array& b) {
  if (auto out = kernels::small_matmul(a, b, 1.0f, {})) return *out;
  return mx::matmul(a, b);
}

// alpha a b + beta c, likewise (one fused GEMM for many rows).
array addmm_of(const array& c, const array& a, const array& b, float alpha, float beta) {
  if (auto out = kernels::small_matmul(a, b, alpha, {.bias = &c, .beta = beta})) return *out;
  return mx::addmm(c, a, b, alpha, beta);
}

std::optional<array> opt(const array* a) {
  return a ? std::optional<array>(*a) : std::nullopt;
}

}  // namespace

std::unique_ptr<ArrayVec> array_vec_new() { return std::make_unique<ArrayVec>(); }
void array_vec_push(ArrayVec& v, const array& a) { v.items.push_back(a); }
size_t array_vec_len(const ArrayVec& v) { return v.items.size(); }
ArrayPtr array_vec_get(const ArrayVec& v, size_t i) { return own(v.items.at(i)); }

// The bytes of an array of shape `sh` and type `dt`; negative dimensions
// are refused.
static size_t byte_count(const mx::Shape& sh, mx::Dtype dt) {
  size_t count = mx::size_of(dt);
  for (auto d : sh) {
    if (d < 0) throw std::invalid_argument("negative dimension in shape");
    count *= static_cast<size_t>(d);
  }
  return count;
}

ArrayPtr from_bytes(rust::Slice<const uint8_t> data, I32s shape, uint8_t dtype) {
  auto dt = to_dtype(dtype);
  auto sh = to_shape(shape);
  size_t nbytes = byte_count(sh, dt);
  if (nbytes != data.size()) {
    throw std::invalid_argument("byte length " + std::to_string(data.size()) +
                                " does not match shape and dtype (" + std::to_string(nbytes) +
                                " bytes)");
  }
  auto buffer = mx::allocator::malloc(data.size());
  if (data.size() > 0) std::memcpy(buffer.raw_ptr(), data.data(), data.size());
  return own(array(buffer, std::move(sh), dt));
}

ArrayPtr full(I32s shape, double value, uint8_t dtype) {
  auto dt = to_dtype(dtype);
  return own(mx::full(to_shape(shape), array(value, dt), dt));
}

ArrayPtr arange(double start, double stop, double step, uint8_t dtype) {
  return own(mx::arange(start, stop, step, to_dtype(dtype)));
}

ArrayPtr clone_array(const array& a) { return own(a); }

void copy_to_bytes(const array& a, rust::Slice<uint8_t> out) {
  array c = mx::contiguous(a);
  c.eval();
  if (c.nbytes() != out.size()) {
    throw std::invalid_argument("output buffer has " + std::to_string(out.size()) +
                                " bytes, array has " + std::to_string(c.nbytes()));
  }
  if (c.nbytes() > 0) std::memcpy(out.data(), c.data<uint8_t>(), c.nbytes());
}

// Linux's synchronous collapse into huge pages (6.1+); older headers lack it.
#if defined(__linux__) && !defined(MADV_COLLAPSE)
#define MADV_COLLAPSE 25
#endif

namespace {

// The address ranges of the files mapped by mapped_file() and still in use.
std::mutex mapped_ranges_mutex;
std::vector<std::pair<uintptr_t, size_t>> mapped_ranges;

bool in_mapped_file(const void* p) {
  auto at = reinterpret_cast<uintptr_t>(p);
  std::lock_guard<std::mutex> lock(mapped_ranges_mutex);
  return std::any_of(mapped_ranges.begin(), mapped_ranges.end(),
                     [at](auto r) { return at >= r.first && at - r.first < r.second; });
}

}  // namespace

bool prefer_huge_pages(const array& a) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  array c = a;
  c.eval();
  // GPU backends keep their own buffers: advice is for host memory.
  if (mx::default_device() != mx::Device::cpu) return false;
  // A private, writable file mapping gets no huge pages: an array read in
  // place from one (a whole tensor) moves into a buffer of its own first,
  // for every handle of the array, as it is the same array.
  if (in_mapped_file(c.data<uint8_t>()) && c.flags().row_contiguous &&
      c.data_size() == c.size() && c.data<uint8_t>() == c.buffer().raw_ptr()) {
    auto buffer = mx::allocator::malloc(c.nbytes());
    std::memcpy(buffer.raw_ptr(), c.data<uint8_t>(), c.nbytes());
    c.set_data(buffer);
  }
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  auto start = reinterpret_cast<uintptr_t>(c.data<uint8_t>());
  uintptr_t first = (start + kHuge - 1) & ~(kHuge - 1);
  uintptr_t last = (start + c.data_size() * c.itemsize()) & ~(kHuge - 1);
  if (last <= first) return false;
  void* p = reinterpret_cast<void*>(first);
  size_t n = last - first;
  if (madvise(p, n, MADV_HUGEPAGE) != 0) return false;
  return madvise(p, n, MADV_COLLAPSE) == 0;
#else
  return false;
#endif
}

rust::Vec<int32_t> shape_of(const array& a) {
  rust::Vec<int32_t> out;
  for (auto d : a.shape()) out.push_back(d);
  return out;
}

uint8_t dtype_of(const array& a) { return static_cast<uint8_t>(a.dtype().val()); }

size_t size_of_array(const array& a) { return a.size(); }

rust::String describe(const array& a) {
  std::ostringstream os;
  os << a;
  return rust::String(os.str());
}

ArrayPtr unary(uint8_t op, const array& a) {
  switch (op) {
    case 0: return own(mx::negative(a));
    case 1: return own(mx::abs(a));
    case 2: return own(mx::exp(a));
    case 3: return own(mx::log(a));
    case 4: return own(mx::sqrt(a));
    case 5: return own(mx::rsqrt(a));
    case 6: return own(mx::erf(a));
    case 7: return own(mx::tanh(a));
    case 8: return own(mx::sigmoid(a));
    case 9: return own(mx::sin(a));
    case 10: return own(mx::cos(a));
    case 11: return own(mx::square(a));
    case 12: return own(mx::floor(a));
    case 13: return own(mx::ceil(a));
    case 14: return own(mx::round(a));
    case 15: return own(mx::logical_not(a));
    case 16: return own(mx::real(a));
    case 17: return own(mx::imag(a));
    case 18: return own(mx::log1p(a));
    case 19: return own(mx::sign(a));
    case 20: return own(mx::reciprocal(a));
    case 21: return own(mx::log10(a));
  }
  throw std::invalid_argument("unknown unary op " + std::to_string(op));
}

ArrayPtr binary(uint8_t op, const array& a, const array& b) {
  switch (op) {
    case 0: return own(mx::add(a, b));
    case 1: return own(mx::subtract(a, b));
    case 2: return own(mx::multiply(a, b));
    case 3: return own(mx::divide(a, b));
    case 4: return own(mx::maximum(a, b));
    case 5: return own(mx::minimum(a, b));
    case 6: return own(mx::power(a, b));
    case 7: return own(matmul_of(a, b));
    case 8: return own(mx::equal(a, b));
    case 9: return own(mx::not_equal(a, b));
    case 10: return own(mx::less(a, b));
    case 11: return own(mx::less_equal(a, b));
    case 12: return own(mx::greater(a, b));
    case 13: return own(mx::greater_equal(a, b));
    case 14: return own(mx::logical_and(a, b));
    case 15: return own(mx::logical_or(a, b));
    case 16: return own(mx::floor_divide(a, b));
    case 17: return own(mx::remainder(a, b));
  }
  throw std::invalid_argument("unknown binary op " + std::to_string(op));
}

ArrayPtr binary_scalar(uint8_t op, const array& a, double s, bool scalar_first) {
  // The scalar takes the array's dtype, so f16 * 2.0 stays f16.
  array scalar(s, a.dtype());
  return scalar_first ? binary(op, scalar, a) : binary(op, a, scalar);
}

ArrayPtr astype(const array& a, uint8_t dtype) { return own(mx::astype(a, to_dtype(dtype))); }

ArrayPtr where_(const array& cond, const array& x, const array& y) {
  return own(mx::where(cond, x, y));
}

ArrayPtr addmm(const array& c, const array& a, const array& b, float alpha, float beta) {
  return own(addmm_of(c, a, b, alpha, beta));
}

ArrayPtr reduce(uint8_t op, const array& a, I32s axes_in, bool keepdims) {
  auto axes = to_ints(axes_in);
  if (axes.empty()) {
    for (int i = 0; i < static_cast<int>(a.ndim()); ++i) axes.push_back(i);
  }
  auto single_axis = [&](const char* name) {
    if (axes.size() != 1) {
      throw std::invalid_argument(std::string(name) + " takes exactly one axis");
    }
    return axes[0];
  };
  switch (op) {
    case 0: return own(mx::sum(a, axes, keepdims));
    case 1: return own(mx::mean(a, axes, keepdims));
    case 2: return own(mx::max(a, axes, keepdims));
    case 3: return own(mx::min(a, axes, keepdims));
    case 4: return own(mx::prod(a, axes, keepdims));
    case 5: return own(mx::argmax(a, single_axis("argmax"), keepdims));
    case 6: return own(mx::argmin(a, single_axis("argmin"), keepdims));
    case 7: return own(mx::logsumexp(a, axes, keepdims));
    case 8: return own(mx::all(a, axes, keepdims));
    case 9: return own(mx::any(a, axes, keepdims));
    case 10: return own(mx::var(a, axes, keepdims));
    case 11: return own(mx::cumsum(a, single_axis("cumsum")));
  }
  throw std::invalid_argument("unknown reduction " + std::to_string(op));
}

ArrayPtr softmax(const array& a, I32s axes, bool precise) {
  // f32 is computed in f32 either way, so `precise` changes nothing there.
  bool last_axis = axes.size() == 1 && a.ndim() > 0 &&
                   (axes[0] == -1 || axes[0] == static_cast<int32_t>(a.ndim()) - 1);
  if (last_axis) {
    if (auto out = kernels::softmax_last(a)) return own(std::move(*out));
  }
  return own(mx::softmax(a, to_ints(axes), precise));
}

namespace {

array gelu_of(const array& a, bool tanh_approx) {
  if (!tanh_approx) {
    if (auto out = kernels::gelu(a)) return *out;
  }
  auto half = array(0.5f, a.dtype());
  auto one = array(1.0f, a.dtype());
  if (tanh_approx) {
    // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    auto inner = mx::multiply(
        array(0.7978845608028654f, a.dtype()),
        mx::add(a, mx::multiply(array(0.044715f, a.dtype()), mx::power(a, array(3.0f, a.dtype())))));
    return mx::multiply(mx::multiply(half, a), mx::add(one, mx::tanh(inner)));
  }
  // 0.5 x (1 + erf(x / sqrt 2)), the exact form Whisper uses.
  auto scaled = mx::multiply(a, array(0.7071067811865476f, a.dtype()));
  return mx::multiply(mx::multiply(half, a), mx::add(one, mx::erf(scaled)));
}

// A linear layer's epilogue after its product (and bias) as separate ops:
// many rows, kernels off, other backends.
array finish_linear(array y, bool gelu, const array* residual) {
  if (gelu) y = gelu_of(y, false);
  if (residual != nullptr) y = mx::add(*residual, y);
  return y;
}

array quantized_product(const array& x, const array& w, const array& scales,
                        const array& biases, bool transpose, int32_t group_size, int32_t bits) {
  if (transpose) {
    if (auto out = kernels::quantized_matmul_t(x, w, scales, biases, group_size, bits)) {
      return *out;
    }
  }
  return mx::quantized_matmul(x, w, scales, biases, transpose, group_size, bits, "affine");
}

}  // namespace

ArrayPtr gelu(const array& a, bool tanh_approx) { return own(gelu_of(a, tanh_approx)); }

ArrayPtr silu(const array& a) {
  if (auto out = kernels::silu(a)) return own(std::move(*out));
  return own(mx::multiply(a, mx::sigmoid(a)));
}

ArrayPtr rel_pos_attention(const array& q_u, const array& q_v, const array& k, const array& v,
                           const array& p, float scale) {
  if (auto out = kernels::rel_pos_attention(q_u, q_v, k, v, p, scale)) return own(std::move(*out));
  // MLX's ops: the scores by offset, row i's keys read from column T - 1 - i
  // on (one row down, one column left: the same key), as the attention's
  // additive mask.
  if (q_v.ndim() != 4 || p.ndim() != 4) {
    throw std::invalid_argument("rel_pos_attention: q_v and p need 4 axes");
  }
  int B = q_v.shape(0), H = q_v.shape(1), T = q_v.shape(2);
  int64_t P = p.shape(2);
  if (P != 2 * T - 1) throw std::invalid_argument("rel_pos_attention: p needs 2T - 1 offsets");
  auto by_offset = mx::contiguous(mx::matmul(q_v, mx::swapaxes(p, -2, -1)));
  auto scores = mx::as_strided(by_offset, {B, H, T, T}, {H * T * P, T * P, P - 1, 1},
                               static_cast<size_t>(T - 1));
  auto mask = mx::multiply(scores, array(scale, scores.dtype()));
  return own(mx::fast::scaled_dot_product_attention(q_u, k, v, scale, "", mask));
}

ArrayPtr glu(const array& a) {
  if (auto out = kernels::glu_last(a)) return own(std::move(*out));
  if (a.ndim() == 0 || a.shape(-1) % 2 != 0) {
    throw std::invalid_argument("glu: the last axis must have an even length");
  }
  auto halves = mx::split(a, 2, -1);
  return own(mx::multiply(halves[0], mx::sigmoid(halves[1])));
}

ArrayPtr linear(const array& x, const array& w, const array* bias, bool gelu,
                const array* residual) {
  auto wt = mx::transpose(w);
  kernels::Epilogue e{.bias = bias, .gelu = gelu, .residual = residual};
  if (auto out = kernels::small_matmul(x, wt, 1.0f, e)) return own(std::move(*out));
  auto y = bias != nullptr ? addmm_of(*bias, x, wt, 1.0f, 1.0f) : matmul_of(x, wt);
  return own(finish_linear(y, gelu, residual));
}

ArrayPtr quantized_linear(const array& x, const array& w, const array& scales,
                          const array& biases, int32_t group_size, int32_t bits,
                          const array* bias, bool gelu, const array* residual,
                          bool int8_activations) {
  kernels::Epilogue e{.bias = bias, .gelu = gelu, .residual = residual};
  // Few rows: the small kernel reads the matrix once at memory speed, and
  // rounding x would gain nothing.
  if (auto out = kernels::quantized_small_matmul(x, w, scales, biases, group_size, bits, e)) {
    return own(std::move(*out));
  }
  if (int8_activations) {
    if (auto out = kernels::quantized_int8_matmul(x, w, scales, biases, group_size, bits, e)) {
      return own(std::move(*out));
    }
  }
  auto y = quantized_product(x, w, scales, biases, true, group_size, bits);
  if (bias != nullptr) y = mx::add(y, *bias);
  return own(finish_linear(y, gelu, residual));
}

ArrayPtr reshape(const array& a, I32s shape) { return own(mx::reshape(a, to_shape(shape))); }

ArrayPtr transpose(const array& a, I32s axes) {
  return axes.empty() ? own(mx::transpose(a)) : own(mx::transpose(a, to_ints(axes)));
}

ArrayPtr swapaxes(const array& a, int32_t a1, int32_t a2) { return own(mx::swapaxes(a, a1, a2)); }

ArrayPtr broadcast_to(const array& a, I32s shape) {
  return own(mx::broadcast_to(a, to_shape(shape)));
}

ArrayPtr expand_dims(const array& a, I32s axes) { return own(mx::expand_dims(a, to_ints(axes))); }

ArrayPtr squeeze(const array& a, I32s axes) {
  return axes.empty() ? own(mx::squeeze(a)) : own(mx::squeeze(a, to_ints(axes)));
}

ArrayPtr flatten(const array& a, int32_t start, int32_t end) {
  return own(mx::flatten(a, start, end));
}

ArrayPtr slice(const array& a, I32s start, I32s stop, I32s strides) {
  return own(mx::slice(a, to_shape(start), to_shape(stop), to_shape(strides)));
}

ArrayPtr slice_update(const array& src, const array& update, I32s start, I32s stop,
                      I32s strides) {
  return own(mx::slice_update(src, update, to_shape(start), to_shape(stop), to_shape(strides)));
}

ArrayPtr as_strided(const array& a, I32s shape, rust::Slice<const int64_t> strides,
                    size_t offset) {
  return own(mx::as_strided(a, to_shape(shape), mx::Strides(strides.begin(), strides.end()),
                            offset));
}

ArrayPtr concatenate(const ArrayVec& arrays, int32_t axis) {
  return own(mx::concatenate(arrays.items, axis));
}

ArrayPtr stack(const ArrayVec& arrays, int32_t axis) { return own(mx::stack(arrays.items, axis)); }

ArrayPtr pad(const array& a, I32s axes, I32s low, I32s high, double value) {
  return own(mx::pad(a, to_ints(axes), to_shape(low), to_shape(high), array(value, a.dtype())));
}

ArrayPtr take(const array& a, const array& indices, int32_t axis) {
  return own(mx::take(a, indices, axis));
}

ArrayPtr take_along_axis(const array& a, const array& indices, int32_t axis) {
  return own(mx::take_along_axis(a, indices, axis));
}

ArrayPtr sort(const array& a, int32_t axis) { return own(mx::sort(a, axis)); }
ArrayPtr argsort(const array& a, int32_t axis) { return own(mx::argsort(a, axis)); }
ArrayPtr topk(const array& a, int32_t k, int32_t axis) { return own(mx::topk(a, k, axis)); }
ArrayPtr argpartition(const array& a, int32_t kth, int32_t axis) {
  return own(mx::argpartition(a, kth, axis));
}

ArrayPtr conv1d(const array& x, const array& w, int32_t stride, int32_t padding,
                int32_t dilation, int32_t groups) {
  if (dilation == 1 && x.ndim() == 3 && groups > 1 && groups == x.shape(-1)) {
    if (auto out = kernels::depthwise_conv(x, w, {stride, 1}, {padding, 0})) {
      return own(std::move(*out));
    }
  }
  return own(mx::conv1d(x, w, stride, padding, dilation, groups));
}

ArrayPtr conv2d(const array& x, const array& w, I32s stride, I32s padding, I32s dilation,
                int32_t groups) {
  auto pair = [](I32s s, const char* what) {
    if (s.size() != 2) throw std::invalid_argument(std::string("conv2d ") + what + " needs 2 values");
    return std::pair<int, int>(s[0], s[1]);
  };
  auto [sh, sw] = pair(stride, "stride");
  auto [ph, pw] = pair(padding, "padding");
  auto [dh, dw] = pair(dilation, "dilation");
  if (dh == 1 && dw == 1 && x.ndim() == 4 && groups > 1 && groups == x.shape(-1)) {
    if (auto out = kernels::depthwise_conv(x, w, {sh, sw}, {ph, pw})) return own(std::move(*out));
  }
  return own(mx::conv2d(x, w, {sh, sw}, {ph, pw}, {dh, dw}, groups));
}

ArrayPtr layer_norm(const array& x, const array* weight, const array* bias, float eps) {
  if (auto out = kernels::layer_norm(x, weight, bias, eps)) return own(std::move(*out));
  return own(mx::fast::layer_norm(x, opt(weight), opt(bias), eps));
}

ArrayPtr rms_norm(const array& x, const array* weight, float eps) {
  return own(mx::fast::rms_norm(x, opt(weight), eps));
}

ArrayPtr rope(const array& x, int32_t dims, bool traditional, float base, float scale,
              int32_t offset) {
  return own(mx::fast::rope(x, dims, traditional, base, scale, offset));
}

ArrayPtr sdpa(const array& q, const array& k, const array& v, float scale, rust::Str mask_mode,
              const array* mask) {
  std::string mode(mask_mode);
  if (mask == nullptr && (mode.empty() || mode == "causal")) {
    if (auto out = kernels::sdpa(q, k, v, scale, mode == "causal")) return own(std::move(*out));
  }
  return own(mx::fast::scaled_dot_product_attention(q, k, v, scale, std::string(mask_mode),
                                                    opt(mask)));
}

std::unique_ptr<ArrayVec> lstm(const array& projected, const array& w_hh, const array& h0,
                               const array& c0, bool reverse) {
  auto out = std::make_unique<ArrayVec>();
  if (auto run = kernels::lstm(projected, w_hh, h0, c0, reverse)) out->items = std::move(*run);
  return out;
}

std::unique_ptr<ArrayVec> decoder_layer_step(const ArrayVec& inputs, int32_t heads,
                                             int32_t position, int32_t group_size, int32_t bits,
                                             float eps) {
  auto out = std::make_unique<ArrayVec>();
  if (auto step =
          kernels::decoder_layer_step(inputs.items, heads, position, group_size, bits, eps)) {
    out->items = std::move(*step);
  }
  return out;
}

std::unique_ptr<ArrayVec> quantize(const array& w, int32_t group_size, int32_t bits) {
  auto out = std::make_unique<ArrayVec>();
  out->items = mx::quantize(w, group_size, bits, "affine");
  return out;
}

ArrayPtr dequantize(const array& w, const array& scales, const array& biases, int32_t group_size,
                    int32_t bits) {
  return own(mx::dequantize(w, scales, biases, group_size, bits, "affine"));
}

ArrayPtr quantized_matmul(const array& x, const array& w, const array& scales,
                          const array& biases, bool transpose, int32_t group_size, int32_t bits) {
  return own(quantized_product(x, w, scales, biases, transpose, group_size, bits));
}

ArrayPtr rfft(const array& a, int32_t n, int32_t axis) { return own(mx::fft::rfft(a, n, axis)); }
ArrayPtr irfft(const array& a, int32_t n, int32_t axis) { return own(mx::fft::irfft(a, n, axis)); }

ArrayPtr random_normal(I32s shape, uint8_t dtype, uint64_t seed) {
  return own(mx::random::normal(to_shape(shape), to_dtype(dtype), 0.0f, 1.0f,
                                mx::random::key(seed)));
}

ArrayPtr random_uniform(I32s shape, uint8_t dtype, float low, float high, uint64_t seed) {
  return own(mx::random::uniform(array(low), array(high), to_shape(shape), to_dtype(dtype),
                                 mx::random::key(seed)));
}

void eval(const ArrayVec& arrays) { mx::eval(arrays.items); }
void eval_one(const array& a) { mx::eval(a); }
void async_eval(const ArrayVec& arrays) { mx::async_eval(arrays.items); }

std::unique_ptr<MappedFile> mapped_file(rust::Box<Mapping> mapping) {
  auto out = std::make_unique<MappedFile>();
  auto bytes = mapping_bytes(*mapping);
  out->data = bytes.data();
  out->len = bytes.size();
  auto range = std::make_pair(reinterpret_cast<uintptr_t>(out->data), out->len);
  {
    std::lock_guard<std::mutex> lock(mapped_ranges_mutex);
    mapped_ranges.push_back(range);
  }
  out->owner = std::shared_ptr<rust::Box<Mapping>>(
      new rust::Box<Mapping>(std::move(mapping)), [range](rust::Box<Mapping>* m) {
        {
          std::lock_guard<std::mutex> lock(mapped_ranges_mutex);
          mapped_ranges.erase(std::find(mapped_ranges.begin(), mapped_ranges.end(), range));
        }
        delete m;
      });
  return out;
}

ArrayPtr array_over_mapping(const MappedFile& file, size_t offset, I32s shape, uint8_t dtype) {
  auto dt = to_dtype(dtype);
  auto sh = to_shape(shape);
  size_t nbytes = byte_count(sh, dt);
  // The word before the bytes must lie in the mapping too (see below).
  if (nbytes == 0 || offset < sizeof(size_t) || offset % mx::size_of(dt) != 0 ||
      offset > file.len || nbytes > file.len - offset) {
    throw std::invalid_argument("bytes " + std::to_string(offset) + ".." +
                                std::to_string(offset + nbytes) +
                                " are not an aligned, non-empty range of the mapped file (" +
                                std::to_string(file.len) + " bytes)");
  }
  auto keep = file.owner;
  uint8_t* data = file.data + offset;
#ifdef MLX_SHIM_CPU_ALLOCATOR
  // MLX's CPU allocator (backend/no_gpu/allocator.cpp) keeps a buffer's size
  // in the word before its data and Buffer::raw_ptr() skips that word, so a
  // buffer that starts one word before the tensor reads the tensor in place.
  // (array's void* constructor would copy: this allocator adopts no foreign
  // memory.) MLX reads that "size" word, here the file's preceding bytes,
  // only to decide whether donating or sharing a buffer wastes memory, never
  // as a bound. The deleter takes the place of allocator::free, which must
  // never see this buffer.
  mx::allocator::Buffer buffer(data - sizeof(size_t));
  return own(array(buffer, std::move(sh), dt, [keep](mx::allocator::Buffer) {}));
#else
  // GPU allocators adopt host memory where they can; MLX copies otherwise.
  return own(array(static_cast<void*>(data), std::move(sh), dt, [keep](void*) {}));
#endif
}

// Reads a tensor from an open file at `offset` into a new buffer.
ArrayPtr read_array(int32_t fd, uint64_t offset, I32s shape, uint8_t dtype) {
  auto dt = to_dtype(dtype);
  auto sh = to_shape(shape);
  size_t nbytes = byte_count(sh, dt);
  auto buffer = mx::allocator::malloc(nbytes);
  auto* out = static_cast<char*>(buffer.raw_ptr());
  for (size_t done = 0; done < nbytes;) {
    ssize_t n = pread(fd, out + done, nbytes - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      mx::allocator::free(buffer);
      throw std::runtime_error(n == 0 ? std::string("the file ends inside the tensor")
                                      : std::string(std::strerror(errno)));
    }
    done += static_cast<size_t>(n);
  }
  return own(array(buffer, std::move(sh), dt));
}

size_t data_address(const array& a) {
  array c = a;
  c.eval();
  return reinterpret_cast<size_t>(c.data<uint8_t>());
}

CompiledFn::~CompiledFn() {
  if (id != 0) mx::detail::compile_erase(mx::detail::compile_cache(), id);
}

std::unique_ptr<CompiledFn> compile(rust::Box<RustFn> f, bool shapeless) {
  auto closure = std::make_shared<rust::Box<RustFn>>(std::move(f));
  auto id = reinterpret_cast<std::uintptr_t>(&**closure);
  auto trampoline = [closure](const std::vector<array>& inputs) {
    ArrayVec in{inputs};
    return call_rust_fn(**closure, in)->items;
  };
  auto out = std::make_unique<CompiledFn>();
  out->closure = closure;
  out->id = id;
  out->fn = mx::detail::compile(trampoline, id, shapeless);
  return out;
}

std::unique_ptr<ArrayVec> call_compiled(const CompiledFn& f, const ArrayVec& inputs) {
  auto out = std::make_unique<ArrayVec>();
  out->items = f.fn(inputs.items);
  return out;
}

uint8_t default_device() { return mx::default_device().type == mx::Device::cpu ? 0 : 1; }
void set_default_device(uint8_t device) { mx::set_default_device(to_device(device)); }
bool is_available(uint8_t device) { return mx::is_available(to_device(device)); }

size_t memory_stat(uint8_t which) {
  switch (which) {
    case 0: return mx::get_active_memory();
    case 1: return mx::get_peak_memory();
    case 2: return mx::get_cache_memory();
    case 3: return mx::get_memory_limit();
  }
  throw std::invalid_argument("unknown memory statistic " + std::to_string(which));
}
void reset_peak_memory() { mx::reset_peak_memory(); }
void clear_cache() { mx::clear_cache(); }
size_t set_memory_limit(size_t bytes) { return mx::set_memory_limit(bytes); }
size_t set_cache_limit(size_t bytes) { return mx::set_cache_limit(bytes); }

bool keep_freed_memory() {
#if defined(__GLIBC__)
  // 32 MiB is the largest threshold glibc takes on 64-bit targets.
  return mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 && mallopt(M_TRIM_THRESHOLD, 256 << 20) == 1;
#else
  return false;
#endif
}
rust::String mlx_version() { return rust::String(mx::version()); }

rust::String blas_provider() {
  void* sym = dlsym(RTLD_DEFAULT, "cblas_sgemm");
  Dl_info info;
  if (sym == nullptr || dladdr(sym, &info) == 0 || info.dli_fname == nullptr) {
    return rust::String("");
  }
  return rust::String(info.dli_fname);
}

rust::String openblas_config() {
#ifdef MLX_SHIM_CBLAS_FORWARD
  return rust::String(mlx_asr_openblas_config());
#else
  return rust::String("");
#endif
}

bool set_custom_kernels(bool on) { return kernels::set_enabled(on); }
bool custom_kernels() { return kernels::enabled(); }
int32_t custom_kernel_threads() { return kernels::threads(); }
void hold_kernel_threads() { kernels::hold_threads(); }
void release_kernel_threads() { kernels::release_threads(); }
bool int8_products_available() { return kernels::int8_available(); }
uint8_t int8_products_isa() { return static_cast<uint8_t>(kernels::int8_isa()); }
bool fused_attention_available() { return kernels::fused_attention_available(); }
bool custom_kernels_active() { return kernels::active(); }
uint8_t isa_supported() { return static_cast<uint8_t>(kernels::isa_supported()); }
bool isa_has(uint8_t level) {
  return level <= static_cast<uint8_t>(kernels::Isa::Avx512Vnni) &&
         kernels::isa_supports(static_cast<kernels::Isa>(level));
}
uint8_t isa_active() { return static_cast<uint8_t>(kernels::isa_active()); }
uint8_t isa_cap() { return static_cast<uint8_t>(kernels::isa_cap()); }
uint8_t set_isa_cap(uint8_t level) {
  auto top = static_cast<uint8_t>(kernels::Isa::Avx512Vnni);
  return static_cast<uint8_t>(kernels::set_isa_cap(static_cast<kernels::Isa>(std::min(level, top))));
}
rust::String isa_env_problem() { return rust::String(kernels::isa_env_problem()); }
// A row-major copy of `a` as `dtype`: the kernels' one-pass copy where they
// take it, else MLX's conversion and copy.
ArrayPtr row_major(const array& a, uint8_t dtype) {
  auto dt = to_dtype(dtype);
  if (auto out = kernels::row_major(a, dt)) return own(std::move(*out));
  return own(mx::contiguous(mx::astype(a, dt), false));
}
// Rows `rows` of a cache, their first `filled` positions: the kernels' copy
// where they take it, else MLX's take (every position).
ArrayPtr select_rows(const array& a, rust::Slice<const int32_t> rows, int32_t filled) {
  std::vector<int32_t> picked(rows.begin(), rows.end());
  for (int32_t r : picked) {
    if (a.ndim() == 0 || r < 0 || r >= a.shape(0)) {
      throw std::invalid_argument("select_rows: no row " + std::to_string(r) + " among " +
                                  std::to_string(a.ndim() == 0 ? 0 : a.shape(0)));
    }
  }
  if (auto out = kernels::select_rows(a, picked, filled)) return own(std::move(*out));
  array at(picked.begin(), {static_cast<int>(picked.size())}, mx::int32);
  return own(mx::take(a, at, 0));
}
float log_sum_exp(rust::Slice<const float> x) { return kernels::log_sum_exp(x.data(), x.size()); }
// The array in f16 when that changes no value; else the array itself.
ArrayPtr f16_if_exact(const array& a) {
  if (auto out = kernels::f16_if_exact(a)) return own(std::move(*out));
  return own(array(a));
}

}  // namespace mlx_shim
