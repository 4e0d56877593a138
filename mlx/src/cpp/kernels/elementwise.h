// Row kernels on f32: GELU, SiLU, GLU, softmax, layer norm and the sums they need;
// row-major copies of strided views, in f32 or f16, and f16 narrowing.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace mlx_shim::kernels::detail {

// y[i] = 0.5 x (1 + erf(x / sqrt 2)) for i < n.
void gelu_span(const float* x, float* y, size_t n);
// y[i] = x[i] sigmoid(x[i]) (SiLU, Swish) for i < n.
void silu_span(const float* x, float* y, size_t n);
// y[i] = a[i] sigmoid(b[i]) (the gated linear unit) for i < n.
void glu_span(const float* a, const float* b, float* y, size_t n);
// The largest of x[0, n) (-inf when n is 0).
float max_of(const float* x, size_t n);
// sum of exp(x[i] - m) for i < n, in f64.
double exp_shifted_sum(const float* x, size_t n, float m);
// softmax of x[0, valid) into y[0, valid), zeros in y[valid, n).
void softmax_row(const float* x, float* y, size_t valid, size_t n);
// softmax_row without the normalization: y[i] = exp(x[i] - max) and the
// factor that would normalize them, for callers that scale a smaller result
// instead (x may be y).
float softmax_row_unscaled(const float* x, float* y, size_t valid, size_t n);
// Layer norm of one row of n values, with optional weight and bias.
void layer_norm_row(const float* x, float* y, size_t n, const float* w, const float* b,
                    float eps);

// The rows of a [d0, d1, d2, d3] view with strides s into y, row-major.
template <class T>
void row_major_run(const float* x, std::array<int64_t, 4> d, std::array<int64_t, 4> s, T* y);
// Narrows x[0..n) to f16 into y; false as soon as a value does not survive
// the round trip.
bool narrow_exact(const float* x, _Float16* y, size_t n);

}  // namespace mlx_shim::kernels::detail
