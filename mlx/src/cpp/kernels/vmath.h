// Element functions on a float or a vector of them (v4, v8: the same
// arithmetic on each lane), for the kernels' loops: written on vectors, they
// give those loops their vector code directly instead of leaving it to the
// vectorizer, which turns the range checks into chains of blends and keeps
// the constants in memory. MLX_SHIM_INLINE, so that each takes the target of
// the by_isa body that calls it.
#pragma once

#include <bit>
#include <cstdint>
#include <type_traits>

#include "simd.h"

namespace mlx_shim::kernels::detail {

typedef int32_t vi4 __attribute__((vector_size(16)));
typedef int32_t vi8 __attribute__((vector_size(32)));

MLX_SHIM_INLINE int32_t to_int(float x) { return static_cast<int32_t>(x); }
MLX_SHIM_INLINE vi4 to_int(const v4& x) { return __builtin_convertvector(x, vi4); }
MLX_SHIM_INLINE vi8 to_int(const v8& x) { return __builtin_convertvector(x, vi8); }
template <class I>
MLX_SHIM_INLINE auto from_bits(const I& x) {
  if constexpr (std::is_same_v<I, int32_t>) {
    return std::bit_cast<float>(x);
  } else if constexpr (std::is_same_v<I, vi4>) {
    return std::bit_cast<v4>(x);
  } else {
    return std::bit_cast<v8>(x);
  }
}

// c ? a : b, lane by lane for vectors.
template <class C, class T>
MLX_SHIM_INLINE T pick(const C& c, const T& a, const T& b) {
  return c ? a : b;
}

template <class T>
MLX_SHIM_INLINE T splat(float c) {
  return T{} + c;
}

// exp(x) within ~2 ulp on [-87.3, 88]; exactly 0 below -87.3 (so -inf gives 0).
template <class T>
MLX_SHIM_INLINE T exp_of(const T& x) {
  const T lo = splat<T>(-87.3365447504f), hi = splat<T>(88.0f);
  T xc = pick(x > hi, hi, x);
  xc = pick(xc < lo, lo, xc);
  // n = round(x / ln 2) by the 1.5 * 2^23 trick (no rounding instruction needed).
  T t = xc * 1.44269504088896341f + 12582912.0f;
  T n = t - 12582912.0f;
  // r = x - n ln 2, with ln 2 split in two for accuracy.
  T r = xc - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  // exp(r) on |r| <= ln(2)/2: 1 + r + r^2 P(r), minimax coefficients.
  T p = splat<T>(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  T y = p * from_bits((to_int(n) + 127) << 23);
  return pick(x < lo, T{}, y);
}

// 1 / (1 + exp(-x)): within a few ulp (exp_of's error, one division); 0 far
// below zero (under exp's range) and 1 far above.
template <class T>
MLX_SHIM_INLINE T sigmoid_of(const T& x) {
  return 1.0f / (1.0f + exp_of(-x));
}

// tanh(x) within a few ulp: an odd polynomial (Cephes' tanhf coefficients)
// where |x| < 0.625, and 1 - 2 / (exp(2|x|) + 1) with x's sign beyond, whose
// subtraction would lose the leading digits nearer 0.
template <class T>
MLX_SHIM_INLINE T tanh_of(const T& x) {
  const T zero{};
  T a = pick(x < zero, -x, x);
  T z = x * x;
  T p = splat<T>(-5.70498872745e-3f);
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  T near = p * z * x + x;
  T far = 1.0f - 2.0f / (exp_of(a + a) + 1.0f);
  far = pick(x < zero, -far, far);
  return pick(a < splat<T>(0.625f), near, far);
}

}  // namespace mlx_shim::kernels::detail
