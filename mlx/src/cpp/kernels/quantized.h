// Products of f32 rows with affine-quantized matrices (MLX's format): few
// rows with f32 activations, any number with int8 activations, and the
// dequantized matrix for a GEMM.
#pragma once

#include <cstddef>
#include <cstdint>

#include "isa.h"
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

// Columns per panel of the int8 products' repacked matrix.
constexpr size_t kPanel = 32;

struct Int8Shape {
  size_t M, K, N, group;
  size_t groups() const { return K / group; }
  size_t panels() const { return (N + kPanel - 1) / kPanel; }
};

// The best path of int8_matmul_run allowed now (isa.h): Avx512Vnni, AvxVnni
// or Avx2; Baseline when none is.
Isa int8_path();

// x [M, K] times the transposed 8-bit matrix with x rounded to int8, then
// the epilogue, on `path` (one that int8_path returned). Every path gives
// the same values.
template <class S>
void int8_matmul_run(Isa path, const Int8Shape& sh, const float* x, const uint32_t* w,
                     const S* scales, const S* biases, const EpilogueRun& e, float* y);

}  // namespace mlx_shim::kernels::detail
