#include "elementwise.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "pool.h"
#include "simd.h"
#include "vmath.h"

namespace mlx_shim::kernels::detail {
namespace {

// Element kernels. Fixed-width lane arrays let the compiler keep the
// reductions in vector registers without reassociating on its own. Each
// public kernel runs its body through by_isa (simd.h).

constexpr int kLanes = 16;

// 0.5 x (1 + erf(x / sqrt 2)) through erfc(|x| / sqrt 2), computed as
// t exp(-z^2 + poly(t)) with t = 1 / (1 + z / 2) (relative error < 1.2e-7),
// which keeps the negative tail accurate.
template <class T>
MLX_SHIM_INLINE T gelu_of(const T& x) {
  const T zero{};
  T z = pick(x < zero, -x, x) * 0.70710678118654752f;
  T t = 1.0f / (1.0f + 0.5f * z);
  T p = splat<T>(0.17087277f);
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  T erfc = t * exp_of(p - z * z);
  return pick(x >= zero, x * (1.0f - 0.5f * erfc), 0.5f * x * erfc);
}

// y[i] = exp(x[i] - m); returns the sum.
float exp_shifted(const float* x, float* y, size_t n, float m) {
  return by_isa([=](auto target) MLX_SHIM_ALWAYS_INLINE {
    using V = typename decltype(target)::Vec;
    constexpr size_t w = sizeof(V) / sizeof(float);
    V a0 = {}, a1 = {};
    size_t i = 0;
    for (; i + 2 * w <= n; i += 2 * w) {
      V e0 = exp_of(load_vec<V>(x + i) - m), e1 = exp_of(load_vec<V>(x + i + w) - m);
      store_vec(y + i, e0);
      store_vec(y + i + w, e1);
      a0 += e0;
      a1 += e1;
    }
    float s = 0.0f;
    for (; i < n; ++i) {
      float e = exp_of(x[i] - m);
      y[i] = e;
      s += e;
    }
    for (size_t j = 0; j < w; ++j) s += a0[j];
    for (size_t j = 0; j < w; ++j) s += a1[j];
    return s;
  });
}

void scale_span(float* y, size_t n, float s) {
  by_isa([=](auto) MLX_SHIM_ALWAYS_INLINE {
    for (size_t i = 0; i < n; ++i) y[i] *= s;
  });
}

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

MLX_SHIM_INLINE void layer_norm_row_of(const float* x, float* y, size_t n, const float* w,
                                       const float* b, float eps) {
  // The mean of x - x[0], which keeps an offset common to the row out of the
  // f32 sums.
  const float shift = x[0];
  float lanes[kLanes] = {};
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) lanes[j] += x[i + j] - shift;
  }
  float s = 0.0f;
  for (; i < n; ++i) s += x[i] - shift;
  for (int j = 0; j < kLanes; ++j) s += lanes[j];
  float mean = shift + s / static_cast<float>(n);
  float sq[kLanes] = {};
  i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      float d = x[i + j] - mean;
      sq[j] += d * d;
    }
  }
  float v = 0.0f;
  for (; i < n; ++i) v += (x[i] - mean) * (x[i] - mean);
  for (int j = 0; j < kLanes; ++j) v += sq[j];
  float rstd = 1.0f / std::sqrt(v / static_cast<float>(n) + eps);
  if (w != nullptr && b != nullptr) {
    for (i = 0; i < n; ++i) y[i] = (x[i] - mean) * rstd * w[i] + b[i];
  } else if (w != nullptr) {
    for (i = 0; i < n; ++i) y[i] = (x[i] - mean) * rstd * w[i];
  } else if (b != nullptr) {
    for (i = 0; i < n; ++i) y[i] = (x[i] - mean) * rstd + b[i];
  } else {
    for (i = 0; i < n; ++i) y[i] = (x[i] - mean) * rstd;
  }
}

}  // namespace

void gelu_span(const float* x, float* y, size_t n) {
  by_isa([=](auto target) MLX_SHIM_ALWAYS_INLINE {
    using V = typename decltype(target)::Vec;
    constexpr size_t w = sizeof(V) / sizeof(float);
    size_t i = 0;
    for (; i + w <= n; i += w) store_vec(y + i, gelu_of(load_vec<V>(x + i)));
    for (; i < n; ++i) y[i] = gelu_of(x[i]);
  });
}

void silu_span(const float* x, float* y, size_t n) {
  by_isa([=](auto target) MLX_SHIM_ALWAYS_INLINE {
    using V = typename decltype(target)::Vec;
    constexpr size_t w = sizeof(V) / sizeof(float);
    size_t i = 0;
    for (; i + w <= n; i += w) {
      V v = load_vec<V>(x + i);
      store_vec(y + i, v * sigmoid_of(v));
    }
    for (; i < n; ++i) y[i] = x[i] * sigmoid_of(x[i]);
  });
}

void glu_span(const float* a, const float* b, float* y, size_t n) {
  by_isa([=](auto target) MLX_SHIM_ALWAYS_INLINE {
    using V = typename decltype(target)::Vec;
    constexpr size_t w = sizeof(V) / sizeof(float);
    size_t i = 0;
    for (; i + w <= n; i += w) {
      store_vec(y + i, load_vec<V>(a + i) * sigmoid_of(load_vec<V>(b + i)));
    }
    for (; i < n; ++i) y[i] = a[i] * sigmoid_of(b[i]);
  });
}

float max_of(const float* x, size_t n) {
  return by_isa([=](auto) MLX_SHIM_ALWAYS_INLINE {
    float lanes[kLanes];
    for (int j = 0; j < kLanes; ++j) lanes[j] = kNegInf;
    size_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
      for (int j = 0; j < kLanes; ++j) lanes[j] = x[i + j] > lanes[j] ? x[i + j] : lanes[j];
    }
    float m = kNegInf;
    for (; i < n; ++i) m = x[i] > m ? x[i] : m;
    for (int j = 0; j < kLanes; ++j) m = lanes[j] > m ? lanes[j] : m;
    return m;
  });
}

// sum of exp(x[i] - m), accumulated in f64 lanes: a vocabulary row has tens
// of thousands of terms far below the largest, which an f32 sum of about 1
// would round away (of the order of 1e-5 of the log-sum).
double exp_shifted_sum(const float* x, size_t n, float m) {
  return by_isa([=](auto target) MLX_SHIM_ALWAYS_INLINE {
    using V = typename decltype(target)::Vec;
    constexpr size_t w = sizeof(V) / sizeof(float);
    double lanes[kLanes] = {};
    size_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
      for (size_t c = 0; c < kLanes; c += w) {
        V e = exp_of(load_vec<V>(x + i + c) - m);
        for (size_t j = 0; j < w; ++j) lanes[c + j] += e[j];
      }
    }
    double s = 0.0;
    for (; i < n; ++i) s += exp_of(x[i] - m);
    for (int j = 0; j < kLanes; ++j) s += lanes[j];
    return s;
  });
}

// A row whose entries are all -inf (or that has a NaN maximum) becomes NaN,
// as in MLX.
float softmax_row_unscaled(const float* x, float* y, size_t valid, size_t n) {
  float m = max_of(x, valid);
  float factor = 1.0f;
  if (valid == 0 || m == kNegInf || std::isnan(m)) {
    std::fill(y, y + valid, std::numeric_limits<float>::quiet_NaN());
  } else {
    factor = 1.0f / exp_shifted(x, y, valid, m);
  }
  std::fill(y + valid, y + n, 0.0f);
  return factor;
}

void softmax_row(const float* x, float* y, size_t valid, size_t n) {
  scale_span(y, valid, softmax_row_unscaled(x, y, valid, n));
}

void layer_norm_row(const float* x, float* y, size_t n, const float* w, const float* b,
                    float eps) {
  by_isa([=](auto) MLX_SHIM_ALWAYS_INLINE { layer_norm_row_of(x, y, n, w, b, eps); });
}

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

template void row_major_run<float>(const float*, std::array<int64_t, 4>,
                                   std::array<int64_t, 4>, float*);
template void row_major_run<_Float16>(const float*, std::array<int64_t, 4>,
                                      std::array<int64_t, 4>, _Float16*);

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
