// Thin C++ layer between the cxx bridge (src/ffi.rs) and MLX's C++ API.
//
// Every function returns by value or unique_ptr and throws on error; cxx turns
// the exception into a Rust `Err` with the message. Enumerations cross the
// bridge as small integers whose meaning is fixed in src/ffi.rs.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "mlx/array.h"
#include "rust/cxx.h"

namespace mlx_shim {

using mlx::core::array;
using ArrayPtr = std::unique_ptr<array>;
using I32s = rust::Slice<const int32_t>;

// An owned list of arrays: the carrier for multi-array arguments and results.
struct ArrayVec {
  std::vector<array> items;
};

std::unique_ptr<ArrayVec> array_vec_new();
void array_vec_push(ArrayVec& v, const array& a);
size_t array_vec_len(const ArrayVec& v);
ArrayPtr array_vec_get(const ArrayVec& v, size_t i);

// Construction and inspection.
ArrayPtr from_bytes(rust::Slice<const uint8_t> data, I32s shape, uint8_t dtype);
ArrayPtr full(I32s shape, double value, uint8_t dtype);
ArrayPtr arange(double start, double stop, double step, uint8_t dtype);
ArrayPtr clone_array(const array& a);
bool prefer_huge_pages(const array& a);
void copy_to_bytes(const array& a, rust::Slice<uint8_t> out);
rust::Vec<int32_t> shape_of(const array& a);
uint8_t dtype_of(const array& a);
size_t size_of_array(const array& a);
rust::String describe(const array& a);

// Element-wise and linear algebra.
ArrayPtr unary(uint8_t op, const array& a);
ArrayPtr binary(uint8_t op, const array& a, const array& b);
ArrayPtr binary_scalar(uint8_t op, const array& a, double s, bool scalar_first);
ArrayPtr astype(const array& a, uint8_t dtype);
ArrayPtr where_(const array& cond, const array& x, const array& y);
ArrayPtr addmm(const array& c, const array& a, const array& b, float alpha, float beta);
ArrayPtr reduce(uint8_t op, const array& a, I32s axes, bool keepdims);
ArrayPtr softmax(const array& a, I32s axes, bool precise);
ArrayPtr gelu(const array& a, bool tanh_approx);
ArrayPtr silu(const array& a);
ArrayPtr rel_pos_attention(const array& q_u, const array& q_v, const array& k, const array& v,
                           const array& p, float scale);
ArrayPtr glu(const array& a);

// Shapes and indexing.
ArrayPtr reshape(const array& a, I32s shape);
ArrayPtr transpose(const array& a, I32s axes);
ArrayPtr swapaxes(const array& a, int32_t a1, int32_t a2);
ArrayPtr broadcast_to(const array& a, I32s shape);
ArrayPtr expand_dims(const array& a, I32s axes);
ArrayPtr squeeze(const array& a, I32s axes);
ArrayPtr flatten(const array& a, int32_t start, int32_t end);
ArrayPtr slice(const array& a, I32s start, I32s stop, I32s strides);
ArrayPtr slice_update(const array& src, const array& update, I32s start, I32s stop, I32s strides);
ArrayPtr as_strided(const array& a, I32s shape, rust::Slice<const int64_t> strides, size_t offset);
ArrayPtr concatenate(const ArrayVec& arrays, int32_t axis);
ArrayPtr stack(const ArrayVec& arrays, int32_t axis);
ArrayPtr pad(const array& a, I32s axes, I32s low, I32s high, double value);
ArrayPtr take(const array& a, const array& indices, int32_t axis);
ArrayPtr take_along_axis(const array& a, const array& indices, int32_t axis);

// Ordering.
ArrayPtr sort(const array& a, int32_t axis);
ArrayPtr argsort(const array& a, int32_t axis);
ArrayPtr topk(const array& a, int32_t k, int32_t axis);
ArrayPtr argpartition(const array& a, int32_t kth, int32_t axis);

// Convolutions (channels-last, as MLX defines them).
ArrayPtr conv1d(const array& x, const array& w, int32_t stride, int32_t padding, int32_t dilation,
                int32_t groups);
ArrayPtr conv2d(const array& x, const array& w, I32s stride, I32s padding, I32s dilation,
                int32_t groups);

// mlx::core::fast. A null pointer stands for "no such input".
ArrayPtr layer_norm(const array& x, const array* weight, const array* bias, float eps);
ArrayPtr rms_norm(const array& x, const array* weight, float eps);
ArrayPtr rope(const array& x, int32_t dims, bool traditional, float base, float scale,
              int32_t offset);
ArrayPtr sdpa(const array& q, const array& k, const array& v, float scale,
              rust::Str mask_mode, const array* mask);

// Quantization (affine mode).
std::unique_ptr<ArrayVec> quantize(const array& w, int32_t group_size, int32_t bits);
// The kernels' LSTM recurrence (y, h, c), or an empty list where they cannot
// take the inputs (the caller composes MLX ops instead).
std::unique_ptr<ArrayVec> lstm(const array& projected, const array& w_hh, const array& h0,
                               const array& c0, bool reverse);
std::unique_ptr<ArrayVec> decoder_layer_step(const ArrayVec& inputs, int32_t heads,
                                             int32_t position, int32_t group_size, int32_t bits,
                                             float eps);
ArrayPtr dequantize(const array& w, const array& scales, const array& biases, int32_t group_size,
                    int32_t bits);
ArrayPtr quantized_matmul(const array& x, const array& w, const array& scales,
                          const array& biases, bool transpose, int32_t group_size, int32_t bits);

// Linear layers: x wᵀ for a weight [out, in] (dense or quantized), plus the
// bias, then GELU, then residual + the result (each optional).
ArrayPtr linear(const array& x, const array& w, const array* bias, bool gelu,
                const array* residual);
// With `int8_activations`, many rows of x are rounded to int8 where the
// CPU kernels can (kernels::quantized_int8_matmul).
ArrayPtr quantized_linear(const array& x, const array& w, const array& scales,
                          const array& biases, int32_t group_size, int32_t bits,
                          const array* bias, bool gelu, const array* residual,
                          bool int8_activations);

// FFT.
ArrayPtr rfft(const array& a, int32_t n, int32_t axis);
ArrayPtr irfft(const array& a, int32_t n, int32_t axis);

// Random numbers (counter-based; a key per call keeps results reproducible).
ArrayPtr random_normal(I32s shape, uint8_t dtype, uint64_t seed);
ArrayPtr random_uniform(I32s shape, uint8_t dtype, float low, float high, uint64_t seed);

// Evaluation.
void eval(const ArrayVec& arrays);
void eval_one(const array& a);
void async_eval(const ArrayVec& arrays);


// Arrays over the bytes of a file that Rust mapped into memory (src/io.rs).
struct Mapping;
// Shares the Rust mapping among the arrays made over it: the file stays
// mapped until the last of them is freed.
struct MappedFile {
  std::shared_ptr<rust::Box<Mapping>> owner;
  uint8_t* data = nullptr;
  size_t len = 0;
};
std::unique_ptr<MappedFile> mapped_file(rust::Box<Mapping> mapping);
ArrayPtr array_over_mapping(const MappedFile& file, size_t offset, I32s shape, uint8_t dtype);
ArrayPtr read_array(int32_t fd, uint64_t offset, I32s shape, uint8_t dtype);
size_t data_address(const array& a);

// Compilation of a Rust closure into a fused MLX function.
struct RustFn;
// Keeps the Rust closure alive; dropping it removes its entry from MLX's
// compile cache, so cache ids never dangle.
struct CompiledFn {
  std::shared_ptr<rust::Box<RustFn>> closure;
  std::uintptr_t id = 0;
  std::function<std::vector<array>(const std::vector<array>&)> fn;
  ~CompiledFn();
};
std::unique_ptr<CompiledFn> compile(rust::Box<RustFn> f, bool shapeless);
std::unique_ptr<ArrayVec> call_compiled(const CompiledFn& f, const ArrayVec& inputs);

// Devices and memory.
uint8_t default_device();
void set_default_device(uint8_t device);
bool is_available(uint8_t device);
size_t memory_stat(uint8_t which);
void reset_peak_memory();
void clear_cache();
size_t set_memory_limit(size_t bytes);
size_t set_cache_limit(size_t bytes);
bool keep_freed_memory();
rust::String mlx_version();

// Which shared object serves `cblas_sgemm` at run time, and OpenBLAS's
// build string when OpenBLAS is linked (empty otherwise).
rust::String blas_provider();
rust::String openblas_config();

// This project's CPU kernels (kernels.h): switch, state, thread count.
bool set_custom_kernels(bool on);
bool custom_kernels();
int32_t custom_kernel_threads();
void hold_kernel_threads();
void release_kernel_threads();
bool int8_products_available();
uint8_t int8_products_isa();
bool fused_attention_available();
bool custom_kernels_active();
uint8_t isa_supported();
bool isa_has(uint8_t level);
uint8_t isa_active();
uint8_t isa_cap();
uint8_t set_isa_cap(uint8_t level);
rust::String isa_env_problem();
ArrayPtr f16_if_exact(const array& a);
ArrayPtr row_major(const array& a, uint8_t dtype);
ArrayPtr select_rows(const array& a, rust::Slice<const int32_t> rows, int32_t filled);
float log_sum_exp(rust::Slice<const float> x);

}  // namespace mlx_shim
