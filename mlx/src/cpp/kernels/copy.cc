#include "copy.h"

#include <cstring>
#include <type_traits>

#include "pool.h"
#include "simd.h"

namespace mlx_shim::kernels::detail {
namespace {

#if defined(__x86_64__) && defined(__GNUC__)
// y = x rounded to f16 (to nearest, ties to even), eight at a time.
MLX_SHIM_F16C void narrow_f16c(const float* x, _Float16* y, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), h);
  }
  for (; i < n; ++i) y[i] = static_cast<_Float16>(x[i]);
}
#endif

// y[i] = x[i * stride] for i < n, as T (f32, or f16 rounded to nearest even).
template <class T>
void copy_span(const float* x, int64_t stride, T* y, size_t n) {
  if (stride == 1) {
    if constexpr (std::is_same_v<T, float>) {
      std::memcpy(y, x, n * sizeof(float));
      return;
    } else {
#if defined(__x86_64__) && defined(__GNUC__)
      if (has_f16c()) return narrow_f16c(x, y, n);
#endif
    }
  }
  for (size_t i = 0; i < n; ++i) y[i] = static_cast<T>(x[static_cast<int64_t>(i) * stride]);
}

#if defined(__x86_64__) && defined(__GNUC__)
// Narrows x[0..n) to f16 into y; false as soon as a value does not survive
// the round trip. Eight at a time.
MLX_SHIM_F16C bool narrow_exact_f16c(const float* x, _Float16* y, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    __m128i h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT);
    if (_mm256_movemask_ps(_mm256_cmp_ps(v, _mm256_cvtph_ps(h), _CMP_NEQ_UQ)) != 0) return false;
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), h);
  }
  for (; i < n; ++i) {
    y[i] = static_cast<_Float16>(x[i]);
    if (static_cast<float>(y[i]) != x[i]) return false;
  }
  return true;
}
#endif

}  // namespace

// The rows of a [d0, d1, d2, d3] view with strides s into y, row-major.
template <class T>
void row_major_run(const float* x, std::array<int64_t, 4> d, std::array<int64_t, 4> s, T* y) {
  size_t rows = static_cast<size_t>(d[0] * d[1] * d[2]), n = static_cast<size_t>(d[3]);
  parallel_rows(rows, static_cast<double>(rows) * n, [&](size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; ++r) {
      int64_t i = static_cast<int64_t>(r);
      const float* row = x + i / (d[1] * d[2]) * s[0] + i / d[2] % d[1] * s[1] + i % d[2] * s[2];
      copy_span(row, s[3], y + r * n, n);
    }
  });
}

template void row_major_run<float>(const float*, std::array<int64_t, 4>, std::array<int64_t, 4>, float*);
template void row_major_run<_Float16>(const float*, std::array<int64_t, 4>, std::array<int64_t, 4>, _Float16*);

bool narrow_exact(const float* x, _Float16* y, size_t n) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (has_f16c()) return narrow_exact_f16c(x, y, n);
#endif
  for (size_t i = 0; i < n; ++i) {
    y[i] = static_cast<_Float16>(x[i]);
    if (static_cast<float>(y[i]) != x[i]) return false;
  }
  return true;
}

}  // namespace mlx_shim::kernels::detail
