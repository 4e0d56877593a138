// A few rows times an affine-quantized matrix (MLX's format): w[n, k] is
// scale[n, g] * q[n, k] + bias[n, g] for k in group g, the q packed `bits`
// wide into u32 words, lowest bits first.
#pragma once

#include <cstddef>
#include <cstdint>

#include "matmul.h"

namespace mlx_shim::kernels::detail {

struct QuantShape {
  size_t M, K, N;
  int group, bits;
};

// Scales and biases as f32 (f16 tables widened).
template <class S>
inline float as_f32(S v) {
  return static_cast<float>(v);
}

// The f32 matrix [N, K] of a quantized one.
template <class S>
void dequantize_run(const QuantShape& sh, const uint32_t* w, const S* scales, const S* biases,
                    float* y);
// x [M, K] (M up to kSmallMatmulRows) times the transposed matrix, then the epilogue.
template <class S>
void quant_matmul_run(const QuantShape& sh, const float* x, const uint32_t* w, const S* scales,
                      const S* biases, const EpilogueRun& e, float* y);

}  // namespace mlx_shim::kernels::detail
