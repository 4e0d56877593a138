// softmax(scale q kᵀ [+ causal mask]) v on the CPU, by three routes: few
// queries per head (attention_rows), many with 64-wide values on AVX2 or
// AVX-512 (attention_fused), and the rest through BLAS.
#pragma once

#include <algorithm>
#include <cstdint>

#include "matmul.h"
#include "simd.h"

namespace mlx_shim::kernels::detail {

// A [B, H, N, D] operand: its data and element strides (any layout).
template <class T>
struct OperandOf {
  const T* data;
  int64_t s0, s1, s2, s3;
  int dims[4];
  const T* row(int b, int h, int64_t i) const { return data + b * s0 + h * s1 + i * s2; }
};
using Operand = OperandOf<float>;

struct AttentionShape {
  int B, H, Hk, L, S, D, Dv;
  float scale;
  bool causal;
  // Keys that query i may see.
  int valid(int i) const { return causal ? std::clamp(i + S - L + 1, 0, S) : S; }
};

// Query lengths up to this use attention_rows.
constexpr int kRowsUpTo = 16;

// Few queries per head; keys and values f32 or f16.
template <class KV>
void attention_rows(const AttentionShape& sh, const Operand& q, const OperandOf<KV>& k,
                    const OperandOf<KV>& v, float* out);
// Many queries with 64-wide values (see fused_attention_for); keys and values f32 or f16.
template <class KV>
void attention_fused(const AttentionShape& sh, const Operand& q, const OperandOf<KV>& k,
                     const OperandOf<KV>& v, float* out);
// Whether attention_fused serves L queries with Dv-wide values here.
bool fused_attention_for(int L, int Dv);
// f32 operands of any strides, by whichever route fits.
void attention(const AttentionShape& sh, Operand q, Operand k, Operand v, float* out);
// Transformer-XL's relative-position attention over L = S frames, row-major
// f32 operands: softmax(scale (q_u kᵀ + R)) v with R[i, j] = q_v[i] ·
// p[L - 1 - i + j], p [1, H, 2L - 1, D] the projected embeddings of the
// offsets L - 1 … 1 - L; q_u, q_v, k [B, H, L, D], v [B, H, L, Dv]; through
// `sgemm`, the scores' sum and softmax on the pool.
void rel_pos_attention(const AttentionShape& sh, const Operand& qu, const Operand& qv,
                       const Operand& k, const Operand& v, const Operand& p, float* out,
                       CblasSgemm sgemm);

}  // namespace mlx_shim::kernels::detail
