// Vectorized, multi-threaded CPU kernels wrapped as MLX primitives.
//
// MLX's CPU backend runs softmax, erf and the attention fallback scalar and on
// one thread. The builders below return an array computed by one of this
// project's primitives when the default stream is the CPU, the dtype is f32
// and the kernels are enabled; otherwise they return nothing and the caller
// uses MLX's own op (GPU backends always take that path).
#pragma once

#include <array>
#include <optional>
#include <vector>

#include "mlx/array.h"
#include "mlx/src/cpp/kernels/isa.h"

namespace mlx_shim::kernels {

using mlx::core::array;

// On by default; `MLX_ASR_CUSTOM_KERNELS=0` in the environment turns them off
// at start-up. Returns the previous setting.
bool set_enabled(bool on);
bool enabled();

// Worker threads used by the kernels (the calling thread included).
int threads();

// While at least one hold is open, idle workers spin instead of sleeping, so
// a job finds them awake. For a stretch of many short jobs with host work in
// between (a window's decoding); each hold must be released once.
void hold_threads();
void release_threads();

// Whether the kernels are on and the default stream is the CPU's: the
// builders below then take every input they document.
bool active();

// Whether quantized_int8_matmul can return an array now (kernels on, CPU
// stream by default, an instruction-set level of AVX2 or more).
bool int8_available();
// The instruction set its products sum with now (Avx512Vnni, AvxVnni or
// Avx2); Baseline where int8_available() is false.
Isa int8_isa();
// Whether attention with many queries and 64-wide heads (Whisper's encoder,
// prompts) runs as the fused kernel now, rather than BLAS + softmax.
bool fused_attention_available();

// softmax over the last axis.
std::optional<array> softmax_last(const array& a);
// 0.5 x (1 + erf(x / sqrt 2)).
std::optional<array> gelu(const array& a);
// x sigmoid(x).
std::optional<array> silu(const array& a);
// The first half of the last axis times the sigmoid of the second.
std::optional<array> glu_last(const array& a);
// A depthwise convolution (groups = channels, dilation 1) of f32 [B, T, C]
// or [B, H, W, C] with weight [C, k, 1] or [C, kh, kw, 1]: stride and
// padding per spatial axis (the second unused for 1-D).
std::optional<array> depthwise_conv(const array& x, const array& w, std::array<int, 2> stride,
                                    std::array<int, 2> padding);
// softmax(scale q kᵀ [+ causal mask]) v for [B, H, L, D] q and [B, Hkv, S, D] k, v.
std::optional<array> sdpa(const array& q, const array& k, const array& v, float scale,
                          bool causal);
// Transformer-XL's relative-position attention over T frames (see
// mlx::kernels::rel_pos_attention): q_u, q_v, k [B, H, T, D], v [B, H, T, Dv],
// p [1, H, 2T - 1, D].
std::optional<array> rel_pos_attention(const array& q_u, const array& q_v, const array& k,
                                       const array& v, const array& p, float scale);
// A row-major copy of f32 `a` (up to four axes, any strides) in f32 or f16
// (rounded to nearest, ties to even, as MLX's astype), in one pass.
std::optional<array> row_major(const array& a, mlx::core::Dtype dtype);
// Rows `rows` of a [B, H, C, D] array as [N, H, C, D], only the first
// `filled` positions of axis 2 copied (the rest unwritten).
std::optional<array> select_rows(const array& a, const std::vector<int32_t>& rows, int filled);
// The f32 array in f16 when every value is an f16 value (evaluates it).
std::optional<array> f16_if_exact(const array& a);
// Layer norm over the last axis with optional weight and bias.
std::optional<array> layer_norm(const array& x, const array* weight, const array* bias,
                                float eps);

// What a linear layer does to y = alpha x w (+ beta bias) inside the matmul
// kernel, in this order: GELU, then residual + y. Each step saves the
// decoder an op (and a pass over the output) per layer and token.
struct Epilogue {
  const array* bias = nullptr;  // [N]
  float beta = 1.0f;
  bool gelu = false;
  const array* residual = nullptr;  // the output's shape
};

// alpha a b + the epilogue for a [..., M, K] with few rows in all (decoding:
// one token per hypothesis) and a 2-D b [K, N], typically a transposed
// weight. Reads b once for all rows, split over the pool, instead of a GEMM
// call that packs b first.
std::optional<array> small_matmul(const array& a, const array& b, float alpha,
                                  const Epilogue& e);

// x times the transpose of an affine-quantized [N, K] matrix (MLX's packing,
// 4 or 8 bits, f32 or f16 scales and biases), then the epilogue, for few
// rows: reads the packed matrix once, dequantizing on the fly.
std::optional<array> quantized_small_matmul(const array& x, const array& w, const array& scales,
                                            const array& biases, int group_size, int bits,
                                            const Epilogue& e);

// x times the transpose of an 8-bit affine-quantized matrix, then the
// epilogue, with x rounded to int8 (one scale per row and group of the
// matrix) and the products summed in int32 (AVX-512 VNNI, AVX-VNNI or AVX2,
// the same values with each): two to four times the multiply-adds per
// instruction of f32, at the cost of x's rounding (relative 1/254 of each
// group's largest magnitude). Nothing below AVX2; evaluating one built
// before the level was capped below AVX2 is an error.
std::optional<array> quantized_int8_matmul(const array& x, const array& w, const array& scales,
                                           const array& biases, int group_size, int bits,
                                           const Epilogue& e);

// x times the transpose of an affine-quantized matrix for any number of rows:
// few as above, more by dequantizing the matrix once for one GEMM.
std::optional<array> quantized_matmul_t(const array& x, const array& w, const array& scales,
                                        const array& biases, int group_size, int bits);

// log(sum(exp(x))) over a host buffer with the kernels' vectorized exp (the
// decoder's log-softmax normalizer, once per vocabulary row and token); -inf
// when x is empty or all -inf.
float log_sum_exp(const float* x, size_t n);

// One decoding step of a pre-LN decoder layer (self-attention over a cache,
// cross-attention, GELU MLP; see kernels/decoder_step.cc) as one primitive, for x
// [B <= 8, 1, D]. `inputs`, in order: x; the self-attention key and value
// caches [B, heads, capacity, D / heads] (f32, written at `position`, in
// place when nothing else holds them); the cross-attention keys and values
// [B or 1, heads, S, D / heads] (f16 or f32); the weight and bias of the
// three norms; then for the stacked query/key/value, self-attention output,
// cross-attention query, cross-attention output, first and second MLP
// projections: the matrix [out, in] (f32 or f16; or, when group_size > 0,
// the packed matrix, its scales and its biases) and the f32 bias vector.
// Returns x after the layer and the two caches, or nothing when the kernels
// cannot take these inputs.
std::optional<std::vector<array>> decoder_layer_step(const std::vector<array>& inputs,
                                                     int heads, int position, int group_size,
                                                     int bits, float eps);

// The recurrence of an LSTM layer (one direction; PyTorch's gate order
// input, forget, cell, output) over projected inputs [B, T, 4H] (x W_ihᵀ +
// both biases) with W_hh [4H, H] from h0, c0 [B, H], the last step first
// when `reverse`: every step's h [B, T, H] in input order, then h and c
// after the last step taken. Nothing when the kernels cannot take these
// inputs (f32, those shapes).
std::optional<std::vector<array>> lstm(const array& projected, const array& w_hh, const array& h0,
                                       const array& c0, bool reverse);

}  // namespace mlx_shim::kernels
