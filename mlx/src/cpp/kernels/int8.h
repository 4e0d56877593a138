// Many rows times an 8-bit affine-quantized matrix with 8-bit activations
// (the encoder and prompt passes of a quantized model): each group of a row
// of x (the matrix's quantization groups, 64 values in Whisper's) is scaled
// to int8, its largest magnitude to 127, and the products are summed in int32
// by AVX-512 VNNI, 64 multiply-adds per instruction where an f32 FMA does 16.
//
// For a row r, a group g with scale a (x ≈ a xq there) and the matrix's
// w = s q + b (q in 0..255) in that group:
//   sum_k x[k] w[k] ≈ s a sum_k xq[k] q[k] + b a sum_k xq[k]
// which is the exact product of the rounded x with w. (With the bias against
// the unrounded sum of x instead, the rounding meets s q = w - b, whose offset
// b is about the group's largest |w|: in Whisper tiny.en's encoder, 3x the
// error.) One scale per group rather than per row (CTranslate2's int8)
// costs a multiply per group and output, and keeps a few large channels
// from coarsening the rounding of the whole row.

#pragma once

#include <cstddef>
#include <cstdint>

#include "matmul.h"

namespace mlx_shim::kernels::detail {

constexpr size_t kPanel = 32;
// Rows per micro-tile.

struct Int8Shape {
  size_t M, K, N, group;
  size_t groups() const { return K / group; }
  size_t panels() const { return (N + kPanel - 1) / kPanel; }
};

// x [M, K] times the transposed 8-bit matrix, then the epilogue (nothing
// without AVX-512 VNNI: see has_vnni).
template <class S>
void int8_matmul_run(const Int8Shape& sh, const float* x, const uint32_t* w, const S* scales,
                     const S* biases, const EpilogueRun& e, float* y);

}  // namespace mlx_shim::kernels::detail
