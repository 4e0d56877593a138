#include "elementwise.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "pool.h"
#include "simd.h"

namespace mlx_shim::kernels::detail {
namespace {

// Element kernels. Fixed-width lane arrays let the compiler keep the
// reductions in vector registers without reassociating on its own. Each
// public kernel runs its body through by_isa (simd.h).

constexpr int kLanes = 16;

// exp(x) within ~2 ulp on [-87.3, 88]; exactly 0 below -87.3 (so -inf gives 0).
MLX_SHIM_INLINE float exp_f32(float x) {
  constexpr float kLo = -87.3365447504f;
  constexpr float kHi = 88.0f;
  float xc = x > kHi ? kHi : x;
  xc = xc < kLo ? kLo : xc;
  // n = round(x / ln 2) by the 1.5 * 2^23 trick (no rounding instruction needed).
  float t = xc * 1.44269504088896341f + 12582912.0f;
  float n = t - 12582912.0f;
  // r = x - n ln 2, with ln 2 split in two for accuracy.
  float r = xc - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  // exp(r) on |r| <= ln(2)/2: 1 + r + r^2 P(r), minimax coefficients.
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  int32_t e = (static_cast<int32_t>(n) + 127) << 23;
  float y = p * std::bit_cast<float>(e);
  return x < kLo ? 0.0f : y;
}

// 0.5 x (1 + erf(x / sqrt 2)) through erfc(|x| / sqrt 2), computed as
// t exp(-z^2 + poly(t)) with t = 1 / (1 + z / 2) (relative error < 1.2e-7),
// which keeps the negative tail accurate.
MLX_SHIM_INLINE float gelu_f32(float x) {
  float z = (x < 0.0f ? -x : x) * 0.70710678118654752f;
  float t = 1.0f / (1.0f + 0.5f * z);
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  float erfc = t * exp_f32(p - z * z);
  return x >= 0.0f ? x * (1.0f - 0.5f * erfc) : 0.5f * x * erfc;
}

// y[i] = exp(x[i] - m); returns the sum.
float exp_shifted(const float* x, float* y, size_t n, float m) {
  return by_isa([=]() MLX_SHIM_ALWAYS_INLINE {
    float lanes[kLanes] = {};
    size_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
      for (int j = 0; j < kLanes; ++j) {
        float e = exp_f32(x[i + j] - m);
        y[i + j] = e;
        lanes[j] += e;
      }
    }
    float s = 0.0f;
    for (; i < n; ++i) {
      float e = exp_f32(x[i] - m);
      y[i] = e;
      s += e;
    }
    for (int j = 0; j < kLanes; ++j) s += lanes[j];
    return s;
  });
}

void scale_span(float* y, size_t n, float s) {
  by_isa([=]() MLX_SHIM_ALWAYS_INLINE {
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
  by_isa([=]() MLX_SHIM_ALWAYS_INLINE {
    for (size_t i = 0; i < n; ++i) y[i] = gelu_f32(x[i]);
  });
}

float max_of(const float* x, size_t n) {
  return by_isa([=]() MLX_SHIM_ALWAYS_INLINE {
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
  return by_isa([=]() MLX_SHIM_ALWAYS_INLINE {
    double lanes[kLanes] = {};
    size_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
      for (int j = 0; j < kLanes; ++j) lanes[j] += exp_f32(x[i + j] - m);
    }
    double s = 0.0;
    for (; i < n; ++i) s += exp_f32(x[i] - m);
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
  by_isa([=]() MLX_SHIM_ALWAYS_INLINE { layer_norm_row_of(x, y, n, w, b, eps); });
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
