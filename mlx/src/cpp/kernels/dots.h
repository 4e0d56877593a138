// Products of one f32 vector with many rows (f32 or f16): dot products,
// weighted sums of rows, and y += a x.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mlx_shim::kernels::detail {

// out[j * out_stride] = scale * <x, w_j> for rows w_j = w + j * row, j < count.
void dots(const float* x, const float* w, int64_t row, size_t count, size_t n, float scale,
          float* out, size_t out_stride);
void dots(const float* x, const _Float16* w, int64_t row, size_t count, size_t n, float scale,
          float* out, size_t out_stride);
// o += sum_j p[j] v_j for rows v_j = v + j * row, j < count; o has n entries.
void weighted_rows(float* o, const float* p, const float* v, int64_t row, size_t count,
                   size_t n);
void weighted_rows(float* o, const float* p, const _Float16* v, int64_t row, size_t count,
                   size_t n);
// y += a x
void axpy(float* y, const float* x, float a, size_t n);

}  // namespace mlx_shim::kernels::detail
