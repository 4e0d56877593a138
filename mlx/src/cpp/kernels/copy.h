// Row-major copies of strided f32 views, in f32 or f16, and f16 narrowing.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace mlx_shim::kernels::detail {

// The rows of a [d0, d1, d2, d3] view with strides s into y, row-major.
template <class T>
void row_major_run(const float* x, std::array<int64_t, 4> d, std::array<int64_t, 4> s, T* y);
// Narrows x[0..n) to f16 into y; false as soon as a value does not survive
// the round trip.
bool narrow_exact(const float* x, _Float16* y, size_t n);

}  // namespace mlx_shim::kernels::detail
