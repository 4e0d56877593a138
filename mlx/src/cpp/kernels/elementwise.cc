#include "elementwise.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "simd.h"

namespace mlx_shim::kernels::detail {
namespace {

// Element kernels. Fixed-width lane arrays let the compiler keep the
// reductions in vector registers without reassociating on its own.

constexpr int kLanes = 16;

// exp(x) within ~2 ulp on [-87.3, 88]; exactly 0 below -87.3 (so -inf gives 0).
inline float exp_f32(float x) {
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
inline float gelu_f32(float x) {
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
MLX_SHIM_MULTIVERSION
float exp_shifted(const float* x, float* y, size_t n, float m) {
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
}

MLX_SHIM_MULTIVERSION
void scale_span(float* y, size_t n, float s) {
  for (size_t i = 0; i < n; ++i) y[i] *= s;
}

}  // namespace

MLX_SHIM_MULTIVERSION
void gelu_span(const float* x, float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] = gelu_f32(x[i]);
}

MLX_SHIM_MULTIVERSION
float max_of(const float* x, size_t n) {
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
}

// sum of exp(x[i] - m), accumulated in f64 lanes: a vocabulary row has tens
// of thousands of terms far below the largest, which an f32 sum of about 1
// would round away (1e-5 of the log-sum, measured).
MLX_SHIM_MULTIVERSION
double exp_shifted_sum(const float* x, size_t n, float m) {
  double lanes[kLanes] = {};
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) lanes[j] += exp_f32(x[i + j] - m);
  }
  double s = 0.0;
  for (; i < n; ++i) s += exp_f32(x[i] - m);
  for (int j = 0; j < kLanes; ++j) s += lanes[j];
  return s;
}

// softmax of x[0, valid) into y[0, valid), zeros in y[valid, n). A row whose
// entries are all -inf (or that has a NaN maximum) becomes NaN, as in MLX.
void softmax_row(const float* x, float* y, size_t valid, size_t n) {
  float m = max_of(x, valid);
  if (valid == 0 || m == kNegInf || std::isnan(m)) {
    std::fill(y, y + valid, std::numeric_limits<float>::quiet_NaN());
  } else {
    float s = exp_shifted(x, y, valid, m);
    scale_span(y, valid, 1.0f / s);
  }
  std::fill(y + valid, y + n, 0.0f);
}

MLX_SHIM_MULTIVERSION
void layer_norm_row(const float* x, float* y, size_t n, const float* w, const float* b,
                    float eps) {
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

}  // namespace mlx_shim::kernels::detail
