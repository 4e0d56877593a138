#include "quantized.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "pool.h"
#include "simd.h"

namespace mlx_shim::kernels::detail {
namespace {

// ---------------------------------------------------------------------------
// A few rows times an affine-quantized matrix (MLX's format): w[n, k] is
// scale[n, g] * q[n, k] + bias[n, g] for k in group g, the q packed `bits`
// wide into u32 words, lowest bits first.

// q values k..k+8 of a row whose packed words start at `words`.
inline void unpack8(const uint32_t* words, size_t k, int bits, float* out) {
  for (int i = 0; i < 8; ++i) {
    size_t bit = (k + i) * bits;
    out[i] = static_cast<float>((words[bit / 32] >> (bit % 32)) & ((1u << bits) - 1));
  }
}

// y[r, n] for n in [n0, n1) and every row r: each weight row is unpacked
// once, dequantized eight values at a time and applied to all M rows.
template <class S>
void quant_rows_portable(const QuantShape& sh, const float* x, const uint32_t* w, const S* scales,
                         const S* biases, float* y, size_t n0, size_t n1) {
  size_t words = sh.K * sh.bits / 32, groups = sh.K / sh.group;
  float acc[8][8], q[8];
  for (size_t n = n0; n < n1; ++n) {
    const uint32_t* wn = w + n * words;
    std::memset(acc, 0, sizeof(acc));
    for (size_t k = 0; k < sh.K; k += 8) {
      size_t g = n * groups + k / sh.group;
      float s = as_f32(scales[g]), b = as_f32(biases[g]);
      unpack8(wn, k, sh.bits, q);
      for (size_t r = 0; r < sh.M; ++r)
        for (int i = 0; i < 8; ++i) acc[r][i] += x[r * sh.K + k + i] * (s * q[i] + b);
    }
    for (size_t r = 0; r < sh.M; ++r) {
      float t = 0.0f;
      for (int i = 0; i < 8; ++i) t += acc[r][i];
      y[r * sh.N + n] = t;
    }
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
// Eight q values widened to floats: 8-bit values from 8 bytes, 4-bit values
// from one word (lane i shifted right by 4 i).
MLX_SHIM_F16C inline __m256 unpack8_avx2(const uint32_t* words, size_t k,
                                                              int bits) {
  if (bits == 8) {
    __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(
        reinterpret_cast<const uint8_t*>(words) + k));
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes));
  }
  __m256i word = _mm256_set1_epi32(static_cast<int>(words[k / 8]));
  __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
  __m256i nibbles = _mm256_and_si256(_mm256_srlv_epi32(word, shifts), _mm256_set1_epi32(15));
  return _mm256_cvtepi32_ps(nibbles);
}

MLX_SHIM_F16C void dequantize8_avx2(const uint32_t* words, size_t k, int bits, float s, float b,
                                    float* out) {
  __m256 v = _mm256_fmadd_ps(_mm256_set1_ps(s), unpack8_avx2(words, k, bits), _mm256_set1_ps(b));
  _mm256_storeu_ps(out, v);
}

// Asks for rows [n, n + count) of a packed matrix before they are used (none
// past row n1). The matrix streams from memory, the vocabulary projection's
// most of all; see prefetch_bytes for why the prefetch is an instruction
// (GCC deleted the intrinsic's loop here).
inline void prefetch_rows(const uint32_t* w, size_t words, size_t n, size_t count, size_t n1) {
  if (n + count <= n1) prefetch_bytes(w + n * words, count * words * sizeof(uint32_t));
}

// Several rows (beams): each weight is dequantized once for all of them.
// M is a template argument so that the M sums stay in registers: with a
// runtime count GCC keeps them in memory, and several rows then cost
// several times one row's time although the weights are read once for all.
template <size_t M, class S>
MLX_SHIM_F16C void quant_rows_several(const QuantShape& sh, const float* x, const uint32_t* w,
                                      const S* scales, const S* biases, float* y, size_t n0,
                                      size_t n1) {
  size_t words = sh.K * sh.bits / 32, groups = sh.K / sh.group;
  for (size_t n = n0; n < n1; ++n) {
    prefetch_rows(w, words, n + 8, 1, n1);
    const uint32_t* wn = w + n * words;
    __m256 acc[M];
    for (size_t r = 0; r < M; ++r) acc[r] = _mm256_setzero_ps();
    for (size_t g = 0; g < groups; ++g) {
      __m256 s = _mm256_set1_ps(as_f32(scales[n * groups + g]));
      __m256 b = _mm256_set1_ps(as_f32(biases[n * groups + g]));
      for (size_t k = g * sh.group; k < (g + 1) * sh.group; k += 8) {
        __m256 wv = _mm256_fmadd_ps(s, unpack8_avx2(wn, k, sh.bits), b);
        for (size_t r = 0; r < M; ++r)
          acc[r] = _mm256_fmadd_ps(_mm256_loadu_ps(x + r * sh.K + k), wv, acc[r]);
      }
    }
    for (size_t r = 0; r < M; ++r) y[r * sh.N + n] = sum8(acc[r]);
  }
}

// quant_rows_several<M> for M = 1 .. sizeof...(I).
template <class S, size_t... I>
constexpr auto several_rows_kernels(std::index_sequence<I...>) {
  return std::array{&quant_rows_several<I + 1, S>...};
}

// For one row of x, sum_k x[k] (s q[k] + b) over a group is computed as
// s <x, q> + b sum(x): the packed values are only widened, and the bias
// meets the group sums of x (`xsum`, one per group) once per group.
template <class S>
MLX_SHIM_F16C void quant_rows_avx2(const QuantShape& sh, const float* x, const float* xsum,
                                   const uint32_t* w, const S* scales, const S* biases, float* y,
                                   size_t n0, size_t n1) {
  size_t words = sh.K * sh.bits / 32, groups = sh.K / sh.group;
  auto bias_terms = [&](size_t n) {
    float t = 0.0f;
    for (size_t g = 0; g < groups; ++g) t += as_f32(biases[n * groups + g]) * xsum[g];
    return t;
  };
  size_t n = n0;
  if (sh.M == 1) {
    // One row of x: four weight rows at a time share its loads.
    for (; n + 4 <= n1; n += 4) {
      prefetch_rows(w, words, n + 8, 4, n1);
      const uint32_t* wn[4] = {w + n * words, w + (n + 1) * words, w + (n + 2) * words,
                               w + (n + 3) * words};
      __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                       _mm256_setzero_ps()};
      for (size_t g = 0; g < groups; ++g) {
        __m256 part[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                          _mm256_setzero_ps()};
        for (size_t k = g * sh.group; k < (g + 1) * sh.group; k += 8) {
          __m256 xv = _mm256_loadu_ps(x + k);
          for (int t = 0; t < 4; ++t)
            part[t] = _mm256_fmadd_ps(xv, unpack8_avx2(wn[t], k, sh.bits), part[t]);
        }
        for (int t = 0; t < 4; ++t)
          acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(as_f32(scales[(n + t) * groups + g])), part[t],
                                   acc[t]);
      }
      for (int t = 0; t < 4; ++t) y[n + t] = sum8(acc[t]) + bias_terms(n + t);
    }
  }
  if (n < n1) several_rows_kernels<S>(std::make_index_sequence<kSmallMatmulRows>())[sh.M - 1](
      sh, x, w, scales, biases, y, n, n1);
}
#endif

// Rows [n0, n1) of the f32 matrix, y[n, k] = s q[n, k] + b.
template <class S>
void dequantize_rows(const QuantShape& sh, const uint32_t* w, const S* scales, const S* biases,
                     float* y, size_t n0, size_t n1) {
  size_t words = sh.K * sh.bits / 32, groups = sh.K / sh.group;
  for (size_t n = n0; n < n1; ++n) {
    const uint32_t* wn = w + n * words;
    float* yn = y + n * sh.K;
    for (size_t k = 0; k < sh.K; k += 8) {
      size_t g = n * groups + k / sh.group;
      float s = as_f32(scales[g]), b = as_f32(biases[g]);
#if defined(__x86_64__) && defined(__GNUC__)
      if (has_f16c()) {
        dequantize8_avx2(wn, k, sh.bits, s, b, yn + k);
        continue;
      }
#endif
      float q[8];
      unpack8(wn, k, sh.bits, q);
      for (int i = 0; i < 8; ++i) yn[k + i] = s * q[i] + b;
    }
  }
}

// ---------------------------------------------------------------------------
// Many rows times an 8-bit affine-quantized matrix with 8-bit activations
// (the encoder and prompt passes of a quantized model): each group of a row
// of x (the matrix's quantization groups, 64 values in Whisper's) is scaled
// to int8, its largest magnitude to 127, and the products are summed in
// int32: 64 multiply-adds per instruction with AVX-512 VNNI, 32 with
// AVX-VNNI and 16 with AVX2's vpmaddwd, where an f32 FMA does 16 or 8.
//
// For a row r, a group g with scale a (x ≈ a xq there) and the matrix's
// w = s q + b (q in 0..255) in that group:
//   sum_k x[k] w[k] ≈ s a sum_k xq[k] q[k] + b a sum_k xq[k]
// which is the exact product of the rounded x with w. (With the bias against
// the unrounded sum of x instead, the rounding meets s q = w - b, whose offset
// b is about the group's largest |w|: a larger error than the rounding of x
// alone.) One scale per group rather than per row (CTranslate2's int8)
// costs a multiply per group and output, and keeps a few large channels
// from coarsening the rounding of the whole row.
//
// Every path rounds x with the same AVX2 code, sums exactly in int32 and
// folds the sums with the same operations, so the output is the same value
// for value whichever path runs: the paths differ only in how many products
// one instruction sums.

// x rounded: the values [M, K] (int8 for the dot-product instructions, int16
// for vpmaddwd) and, per row and group, its scale a and a sum_k xq[k].
template <class X>
struct Int8Rows {
  std::vector<X> q;
  std::vector<float> scale;  // [M, groups]
  std::vector<float> sums;   // [M, groups]
};

// The matrix repacked for a path that sums `per_lane` consecutive products
// per int32 lane: per panel of 32 columns, the q values k..k + per_lane of
// each column side by side in one word ([K / per_lane][32] words; bytes for
// four per lane, 16-bit halves for two), and the scales and biases as f32
// [groups][32]. Columns past N are zero.
struct Int8Panels {
  AlignedVec<uint32_t> words;  // [panels][K / per_lane][32]
  AlignedVec<float> scales;    // [panels][groups][32]
  AlignedVec<float> biases;
};

template <size_t PerLane, class S>
void pack_panels(const Int8Shape& sh, const uint32_t* w, const S* scales, const S* biases,
                 Int8Panels& out, size_t p0, size_t p1) {
  size_t lanes = sh.K / PerLane, groups = sh.groups();
  const auto* q = reinterpret_cast<const uint8_t*>(w);  // 8-bit: one byte per value, in order
  for (size_t p = p0; p < p1; ++p) {
    uint32_t* pw = out.words.data() + p * lanes * kPanel;
    float* ps = out.scales.data() + p * groups * kPanel;
    float* pb = out.biases.data() + p * groups * kPanel;
    for (size_t c = 0; c < kPanel; ++c) {
      size_t n = p * kPanel + c;
      bool real = n < sh.N;
      const uint8_t* qn = q + n * sh.K;
      for (size_t i = 0; i < lanes; ++i) {
        uint32_t lane = 0;
        for (size_t j = 0; real && j < PerLane; ++j)
          lane |= static_cast<uint32_t>(qn[i * PerLane + j]) << (32 / PerLane * j);
        pw[i * kPanel + c] = lane;
      }
      for (size_t g = 0; g < groups; ++g) {
        ps[g * kPanel + c] = real ? as_f32(scales[n * groups + g]) : 0.0f;
        pb[g * kPanel + c] = real ? as_f32(biases[n * groups + g]) : 0.0f;
      }
    }
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
#define MLX_SHIM_AVX_VNNI __attribute__((target("avx2,fma,f16c,avxvnni")))

// Rounds a row of x group by group (AVX2, for every path: the same values
// whichever sums them).
template <class X>
MLX_SHIM_F16C void quantize_row(const float* x, size_t K, size_t group, X* q, float* scale,
                                float* sums) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (size_t g = 0; g < K / group; ++g) {
    const float* xg = x + g * group;
    __m256 amax = _mm256_setzero_ps(), nan = _mm256_setzero_ps();
    for (size_t k = 0; k < group; k += 8) {
      __m256 v = _mm256_loadu_ps(xg + k);
      amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, v));
      nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));  // max_ps drops NaNs
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    float m = _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
    // A group of zeros has scale 0 and contributes nothing; a non-finite
    // value makes the group's terms, and so the row, NaN, as the f32 product
    // would be NaN or infinite.
    float a = m > 0.0f ? m / 127.0f : 0.0f;
    if (_mm256_movemask_ps(nan) != 0 || !std::isfinite(m)) {
      a = std::numeric_limits<float>::quiet_NaN();
    }
    __m256 inv = _mm256_set1_ps(m > 0.0f ? 127.0f / m : 0.0f);
    __m256i sum = _mm256_setzero_si256();
    for (size_t k = 0; k < group; k += 8) {
      __m256i i = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xg + k), inv));
      i = _mm256_max_epi32(_mm256_min_epi32(i, _mm256_set1_epi32(127)), _mm256_set1_epi32(-127));
      sum = _mm256_add_epi32(sum, i);
      __m128i i16 = _mm_packs_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
      X* at = q + g * group + k;
      if constexpr (sizeof(X) == 2) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(at), i16);
      } else {
        _mm_storel_epi64(reinterpret_cast<__m128i*>(at), _mm_packs_epi16(i16, i16));
      }
    }
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
    scale[g] = a;
    sums[g] = a * static_cast<float>(_mm_cvtsi128_si32(s4));
  }
}

template <class P, class X>
void int8_rows(const Int8Shape& sh, const Int8Rows<X>& x, const Int8Panels& w, size_t r0,
               size_t r1, size_t panel, float* y);

// The paths. Each sums P::kPerLane products of P::X x values and q values
// into each int32 lane of a vector of kLanes lanes (dot), and its register
// tile is kRows rows by kCols vectors of columns. `rows` is the path's entry:
// its target allows the path's instructions, and flatten puts the shared
// tile code (int8_rows, which has no target of its own) and the path's
// operations inside it, where they get that target. (The operations are not
// always_inline: GCC would inline them into int8_rows first, where their
// targets do not fit.)

// Eight int32 or f32 lanes (AVX2).
struct Ymm {
  using I = __m256i;
  using F = __m256;
  static constexpr size_t kLanes = 8;
  MLX_SHIM_F16C static I zero() { return _mm256_setzero_si256(); }
  MLX_SHIM_F16C static I load(const uint32_t* p) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  }
  // The per_lane x values at p (four bytes) in every lane.
  template <class X>
  MLX_SHIM_F16C static I broadcast(const X* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
  }
  MLX_SHIM_F16C static F splat(float v) { return _mm256_set1_ps(v); }
  MLX_SHIM_F16C static F zero_f() { return _mm256_setzero_ps(); }
  MLX_SHIM_F16C static F load_f(const float* p) { return _mm256_loadu_ps(p); }
  MLX_SHIM_F16C static void store_f(float* p, F v) { _mm256_storeu_ps(p, v); }
  MLX_SHIM_F16C static F widen(I v) { return _mm256_cvtepi32_ps(v); }
  MLX_SHIM_F16C static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  MLX_SHIM_F16C static F fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
};

// AVX2: q widened to int16 at packing, x rounded to int16, pairs multiplied
// and summed by vpmaddwd. (vpmaddubsw would take the bytes as they are, but
// its int16 pair sums saturate: 255 * 127 * 2 > 32767.)
struct Avx2Path : Ymm {
  using X = int16_t;
  static constexpr size_t kPerLane = 2, kRows = 5, kCols = 2;
  // In assembly: GCC 12 adds a copy of every accumulator per step.
  MLX_SHIM_F16C static I dot(I acc, I w, I x) {
    I t;
    asm("vpmaddwd %2, %3, %1\n\tvpaddd %1, %0, %0" : "+x"(acc), "=&x"(t) : "x"(w), "x"(x));
    return acc;
  }
  MLX_SHIM_F16C __attribute__((flatten)) static void rows(const Int8Shape& sh,
                                                          const Int8Rows<X>& x,
                                                          const Int8Panels& w, size_t r0,
                                                          size_t r1, size_t panel, float* y) {
    int8_rows<Avx2Path>(sh, x, w, r0, r1, panel, y);
  }
};

// AVX-VNNI: AVX-512 VNNI's layout and instruction on eight lanes.
struct AvxVnniPath : Ymm {
  using X = int8_t;
  static constexpr size_t kPerLane = 4, kRows = 6, kCols = 2;
  MLX_SHIM_AVX_VNNI static I dot(I acc, I w, I x) { return _mm256_dpbusd_avx_epi32(acc, w, x); }
  MLX_SHIM_AVX_VNNI __attribute__((flatten)) static void rows(const Int8Shape& sh,
                                                              const Int8Rows<X>& x,
                                                              const Int8Panels& w, size_t r0,
                                                              size_t r1, size_t panel, float* y) {
    int8_rows<AvxVnniPath>(sh, x, w, r0, r1, panel, y);
  }
};

struct Avx512VnniPath {
  using X = int8_t;
  using I = __m512i;
  using F = __m512;
  static constexpr size_t kLanes = 16, kPerLane = 4, kRows = 6, kCols = 2;
  MLX_SHIM_VNNI static I zero() { return _mm512_setzero_si512(); }
  MLX_SHIM_VNNI static I load(const uint32_t* p) { return _mm512_loadu_si512(p); }
  MLX_SHIM_VNNI static I broadcast(const X* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
  }
  // In assembly: GCC 12 copies the accumulator around the intrinsic's
  // non-destructive form, two extra moves per instruction in the tile loop.
  MLX_SHIM_VNNI static I dot(I acc, I w, I x) {
    asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(w), "v"(x));
    return acc;
  }
  MLX_SHIM_VNNI static F splat(float v) { return _mm512_set1_ps(v); }
  MLX_SHIM_VNNI static F zero_f() { return _mm512_setzero_ps(); }
  MLX_SHIM_VNNI static F load_f(const float* p) { return _mm512_loadu_ps(p); }
  MLX_SHIM_VNNI static void store_f(float* p, F v) { _mm512_storeu_ps(p, v); }
  MLX_SHIM_VNNI static F widen(I v) { return _mm512_cvtepi32_ps(v); }
  MLX_SHIM_VNNI static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  MLX_SHIM_VNNI static F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  MLX_SHIM_VNNI __attribute__((flatten)) static void rows(const Int8Shape& sh,
                                                          const Int8Rows<X>& x,
                                                          const Int8Panels& w, size_t r0,
                                                          size_t r1, size_t panel, float* y) {
    int8_rows<Avx512VnniPath>(sh, x, w, r0, r1, panel, y);
  }
};

// y[r, block columns] for rows r0..r0 + R, the block being kCols vectors of
// the panel's columns: per group, R x kCols vectors of int32 dot products,
// then widened and folded into f32 with the group's scales (the matrix's
// times x's) and biases.
template <class P, size_t R, class X>
void int8_tile(const Int8Shape& sh, const Int8Rows<X>& x, const Int8Panels& w, size_t r0,
               size_t panel, size_t block, float* y) {
  constexpr size_t C = P::kCols, L = P::kLanes, width = C * L;
  size_t steps = sh.group / P::kPerLane, groups = sh.groups(), c0 = block * width;
  const uint32_t* pw = w.words.data() + panel * (sh.K / P::kPerLane) * kPanel + c0;
  const float* ps = w.scales.data() + panel * groups * kPanel + c0;
  const float* pb = w.biases.data() + panel * groups * kPanel + c0;
  const X* xr[R];
  for (size_t r = 0; r < R; ++r) xr[r] = x.q.data() + (r0 + r) * sh.K;
  typename P::F f[R][C];
  for (size_t r = 0; r < R; ++r)
    for (size_t c = 0; c < C; ++c) f[r][c] = P::zero_f();
  for (size_t g = 0; g < groups; ++g) {
    typename P::I acc[R][C];
    for (size_t r = 0; r < R; ++r)
      for (size_t c = 0; c < C; ++c) acc[r][c] = P::zero();
    const uint32_t* gw = pw + g * steps * kPanel;
    size_t k0 = g * sh.group;
    for (size_t s = 0; s < steps; ++s) {
      typename P::I wv[C];
      for (size_t c = 0; c < C; ++c) wv[c] = P::load(gw + s * kPanel + c * L);
      for (size_t r = 0; r < R; ++r) {
        auto xb = P::broadcast(xr[r] + k0 + P::kPerLane * s);
        for (size_t c = 0; c < C; ++c) acc[r][c] = P::dot(acc[r][c], wv[c], xb);
      }
    }
    for (size_t r = 0; r < R; ++r) {
      auto xa = P::splat(x.scale[(r0 + r) * groups + g]);
      auto xs = P::splat(x.sums[(r0 + r) * groups + g]);
      for (size_t c = 0; c < C; ++c) {
        auto s = P::load_f(ps + g * kPanel + c * L), b = P::load_f(pb + g * kPanel + c * L);
        f[r][c] = P::fmadd(P::mul(P::widen(acc[r][c]), xa), s, f[r][c]);
        f[r][c] = P::fmadd(b, xs, f[r][c]);
      }
    }
  }
  size_t n0 = panel * kPanel + c0, real = std::min(width, sh.N - n0);
  for (size_t r = 0; r < R; ++r) {
    float* yr = y + (r0 + r) * sh.N + n0;
    if (real == width) {
      for (size_t c = 0; c < C; ++c) P::store_f(yr + c * L, f[r][c]);
    } else {
      float part[width];
      for (size_t c = 0; c < C; ++c) P::store_f(part + c * L, f[r][c]);
      std::memcpy(yr, part, real * sizeof(float));
    }
  }
}

// Rows r0..r1 of one panel's columns: block by block (the block's packed
// columns stay in L1 for all the rows), kRows rows at a time.
template <class P, class X>
void int8_rows(const Int8Shape& sh, const Int8Rows<X>& x, const Int8Panels& w, size_t r0,
               size_t r1, size_t panel, float* y) {
  constexpr size_t width = P::kCols * P::kLanes;
  static_assert(kPanel % width == 0);
  for (size_t block = 0; block < kPanel / width && panel * kPanel + block * width < sh.N;
       ++block) {
    in_row_groups<P::kRows>(static_cast<int>(r1 - r0), [&]<int R>(int r) {
      int8_tile<P, R>(sh, x, w, r0 + static_cast<size_t>(r), panel, block, y);
    });
  }
}

// x rounded, the matrix packed, then tasks of blocks of rows (each sweeping
// every panel, whose weights stay in L2) split further by panels when there
// are few rows. A block holds the same bytes of x on every path (96 rows of
// int8, 48 of int16): its rows are read again for each block of columns.
template <class P, class S>
void int8_product(const Int8Shape& sh, const float* x, const uint32_t* w, const S* scales,
                  const S* biases, const EpilogueRun& e, float* y) {
  size_t groups = sh.groups(), panels = sh.panels();
  Int8Rows<typename P::X> xq;
  xq.q.resize(sh.M * sh.K);
  xq.scale.resize(sh.M * groups);
  xq.sums.resize(sh.M * groups);
  parallel_rows(sh.M, static_cast<double>(sh.M) * sh.K * 4, [&](size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; ++r)
      quantize_row(x + r * sh.K, sh.K, sh.group, xq.q.data() + r * sh.K,
                   xq.scale.data() + r * groups, xq.sums.data() + r * groups);
  });
  Int8Panels wp;
  wp.words.resize(panels * (sh.K / P::kPerLane) * kPanel);
  wp.scales.resize(panels * groups * kPanel);
  wp.biases.resize(panels * groups * kPanel);
  parallel_rows(panels, static_cast<double>(panels) * kPanel * sh.K, [&](size_t p0, size_t p1) {
    pack_panels<P::kPerLane>(sh, w, scales, biases, wp, p0, p1);
  });
  constexpr size_t kBlockRows = 96 / sizeof(typename P::X);
  size_t row_blocks = (sh.M + kBlockRows - 1) / kBlockRows;
  size_t panel_chunks = std::clamp<size_t>(16 / row_blocks, 1, panels);
  double cost = static_cast<double>(sh.M) * sh.K * sh.N / 4;
  parallel_rows(row_blocks * panel_chunks, cost, [&](size_t t0, size_t t1) {
    for (size_t t = t0; t < t1; ++t) {
      size_t rb = t / panel_chunks, pc = t % panel_chunks;
      size_t r0 = rb * kBlockRows, r1 = std::min(sh.M, r0 + kBlockRows);
      size_t p0 = panels * pc / panel_chunks, p1 = panels * (pc + 1) / panel_chunks;
      for (size_t p = p0; p < p1; ++p) {
        P::rows(sh, xq, wp, r0, r1, p, y);
        finish_block(e, y, sh.N, r0, r1, p * kPanel, std::min(sh.N, (p + 1) * kPanel));
      }
    }
  });
}
#endif

}  // namespace

template <class S>
void dequantize_run(const QuantShape& sh, const uint32_t* w, const S* scales, const S* biases,
                    float* y) {
  parallel_rows(sh.N, static_cast<double>(sh.N) * sh.K * 4,
                [&](size_t n0, size_t n1) { dequantize_rows(sh, w, scales, biases, y, n0, n1); });
}

template <class S>
void quant_matmul_run(const QuantShape& sh, const float* x, const uint32_t* w, const S* scales,
                      const S* biases, const EpilogueRun& e, float* y) {
  // The several-row kernels exist for 1 .. kSmallMatmulRows rows (the
  // primitive is only built for those).
  if (sh.M == 0 || sh.M > kSmallMatmulRows) {
    throw std::invalid_argument("few-row quantized product of " + std::to_string(sh.M) + " rows");
  }
  // Group sums of x: only the one-row AVX2 path folds the biases in with them.
  size_t groups = sh.K / sh.group;
  std::vector<float> xsum(sh.M == 1 ? groups : 0);
  for (size_t g = 0; g < xsum.size(); ++g)
    xsum[g] = std::accumulate(x + g * sh.group, x + (g + 1) * sh.group, 0.0f);
  double cost = static_cast<double>(sh.M) * sh.K * sh.N;
  size_t blocks = (sh.N + 15) / 16;
  parallel_rows(blocks, cost, [&](size_t b0, size_t b1) {
    size_t n0 = b0 * 16, n1 = std::min(sh.N, b1 * 16);
    if (n1 <= n0) return;
#if defined(__x86_64__) && defined(__GNUC__)
    if (has_f16c()) {
      quant_rows_avx2(sh, x, xsum.data(), w, scales, biases, y, n0, n1);
    } else {
      quant_rows_portable(sh, x, w, scales, biases, y, n0, n1);
    }
#else
    quant_rows_portable(sh, x, w, scales, biases, y, n0, n1);
#endif
    finish_block(e, y, sh.N, 0, sh.M, n0, n1);
  });
}

template void dequantize_run<float>(const QuantShape&, const uint32_t*, const float*,
                                    const float*, float*);
template void dequantize_run<_Float16>(const QuantShape&, const uint32_t*, const _Float16*,
                                       const _Float16*, float*);
template void quant_matmul_run<float>(const QuantShape&, const float*, const uint32_t*,
                                      const float*, const float*, const EpilogueRun&, float*);
template void quant_matmul_run<_Float16>(const QuantShape&, const float*, const uint32_t*,
                                         const _Float16*, const _Float16*, const EpilogueRun&,
                                         float*);

Isa int8_path() {
  for (Isa level : {Isa::Avx512Vnni, Isa::AvxVnni, Isa::Avx2})
    if (isa_allows(level)) return level;
  return Isa::Baseline;
}

template <class S>
void int8_matmul_run(Isa path, const Int8Shape& sh, const float* x, const uint32_t* w,
                     const S* scales, const S* biases, const EpilogueRun& e, float* y) {
  switch (path) {
#if defined(__x86_64__) && defined(__GNUC__)
    case Isa::Avx512Vnni:
      return int8_product<Avx512VnniPath>(sh, x, w, scales, biases, e, y);
    case Isa::AvxVnni:
      return int8_product<AvxVnniPath>(sh, x, w, scales, biases, e, y);
    case Isa::Avx2:
      return int8_product<Avx2Path>(sh, x, w, scales, biases, e, y);
#endif
    default:
      throw std::invalid_argument(std::string("no int8 product at level ") + isa_name(path));
  }
}

template void int8_matmul_run<float>(Isa, const Int8Shape&, const float*, const uint32_t*,
                                     const float*, const float*, const EpilogueRun&, float*);
template void int8_matmul_run<_Float16>(Isa, const Int8Shape&, const float*, const uint32_t*,
                                        const _Float16*, const _Float16*, const EpilogueRun&,
                                        float*);

}  // namespace mlx_shim::kernels::detail
