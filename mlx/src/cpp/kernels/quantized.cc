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
// to int8, its largest magnitude to 127, and the products are summed in int32
// by AVX-512 VNNI, 64 multiply-adds per instruction where an f32 FMA does 16.
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


constexpr int kTileRows = 6;

// x as int8 rows plus, per row and group, its scale a and a sum_k xq[k].
struct Int8Rows {
  std::vector<int8_t> q;       // [M, K]
  std::vector<float> scale;    // [M, groups]
  std::vector<float> sums;     // [M, groups]
};

// The matrix repacked for the kernel: per panel of 32 columns, four
// consecutive q bytes of each column side by side ([K / 4][32] words), and
// the scales and biases as f32 [groups][32]. Columns past N are zero.
struct Int8Panels {
  AlignedVec<uint32_t> words;  // [panels][K / 4][32]
  AlignedVec<float> scales;    // [panels][groups][32]
  AlignedVec<float> biases;
};

#if defined(__x86_64__) && defined(__GNUC__)
MLX_SHIM_VNNI void quantize_row_s8(const float* x, size_t K, size_t group, int8_t* q,
                                   float* scale, float* sums) {
  for (size_t g = 0; g < K / group; ++g) {
    const float* xg = x + g * group;
    __m512 amax = _mm512_setzero_ps();
    __mmask16 nan = 0;
    for (size_t k = 0; k < group; k += 16) {
      __m512 v = _mm512_loadu_ps(xg + k);
      amax = _mm512_max_ps(amax, _mm512_abs_ps(v));
      nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);  // max_ps drops NaNs
    }
    float m = _mm512_reduce_max_ps(amax);
    // A group of zeros has scale 0 and contributes nothing; a non-finite
    // value makes the group's terms, and so the row, NaN, as the f32 product
    // would be NaN or infinite.
    float a = m > 0.0f ? m / 127.0f : 0.0f;
    if (nan != 0 || !std::isfinite(m)) a = std::numeric_limits<float>::quiet_NaN();
    __m512 inv = _mm512_set1_ps(m > 0.0f ? 127.0f / m : 0.0f);
    __m512i sum = _mm512_setzero_si512();
    for (size_t k = 0; k < group; k += 16) {
      __m512i i = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xg + k), inv));
      i = _mm512_max_epi32(_mm512_min_epi32(i, _mm512_set1_epi32(127)), _mm512_set1_epi32(-127));
      sum = _mm512_add_epi32(sum, i);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + g * group + k), _mm512_cvtepi32_epi8(i));
    }
    scale[g] = a;
    sums[g] = a * static_cast<float>(_mm512_reduce_add_epi32(sum));
  }
}

// acc += the dot products of four u8 (w) and four s8 (x) per int32 lane.
// In assembly: GCC 12 copies the accumulator around the intrinsic's
// non-destructive form, two extra moves per instruction in the tile loop.
MLX_SHIM_VNNI inline void dpbusd(__m512i& acc, __m512i w, __m512i x) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(w), "v"(x));
}

// y[r, panel columns] for rows r0..r0 + R: per group, R x 32 int32 dot
// products, then widened and folded into f32 with the group's scales (the
// matrix's times x's) and biases.
template <size_t R>
MLX_SHIM_VNNI void int8_tile(const Int8Shape& sh, const Int8Rows& x, const Int8Panels& w,
                             size_t r0, size_t panel, float* y) {
  size_t steps = sh.group / 4, groups = sh.groups();
  const uint32_t* pw = w.words.data() + panel * (sh.K / 4) * kPanel;
  const float* ps = w.scales.data() + panel * groups * kPanel;
  const float* pb = w.biases.data() + panel * groups * kPanel;
  const int8_t* xr[R];
  for (size_t r = 0; r < R; ++r) xr[r] = x.q.data() + (r0 + r) * sh.K;
  __m512 f[R][2];
  for (size_t r = 0; r < R; ++r) f[r][0] = f[r][1] = _mm512_setzero_ps();
  for (size_t g = 0; g < groups; ++g) {
    __m512i acc[R][2];
    for (size_t r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
    const uint32_t* gw = pw + g * steps * kPanel;
    size_t k0 = g * sh.group;
    for (size_t s = 0; s < steps; ++s) {
      __m512i w0 = _mm512_loadu_si512(gw + s * kPanel);
      __m512i w1 = _mm512_loadu_si512(gw + s * kPanel + 16);
      for (size_t r = 0; r < R; ++r) {
        int32_t four;
        std::memcpy(&four, xr[r] + k0 + 4 * s, 4);
        __m512i xb = _mm512_set1_epi32(four);
        dpbusd(acc[r][0], w0, xb);
        dpbusd(acc[r][1], w1, xb);
      }
    }
    __m512 s0 = _mm512_loadu_ps(ps + g * kPanel), s1 = _mm512_loadu_ps(ps + g * kPanel + 16);
    __m512 b0 = _mm512_loadu_ps(pb + g * kPanel), b1 = _mm512_loadu_ps(pb + g * kPanel + 16);
    for (size_t r = 0; r < R; ++r) {
      __m512 xa = _mm512_set1_ps(x.scale[(r0 + r) * groups + g]);
      __m512 xs = _mm512_set1_ps(x.sums[(r0 + r) * groups + g]);
      f[r][0] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(acc[r][0]), xa), s0, f[r][0]);
      f[r][1] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(acc[r][1]), xa), s1, f[r][1]);
      f[r][0] = _mm512_fmadd_ps(b0, xs, f[r][0]);
      f[r][1] = _mm512_fmadd_ps(b1, xs, f[r][1]);
    }
  }
  size_t n0 = panel * kPanel, width = std::min(kPanel, sh.N - n0);
  uint32_t lanes = width >= 32 ? ~0u : (1u << width) - 1;  // the panel's real columns
  auto m0 = static_cast<__mmask16>(lanes), m1 = static_cast<__mmask16>(lanes >> 16);
  for (size_t r = 0; r < R; ++r) {
    float* yr = y + (r0 + r) * sh.N + n0;
    _mm512_mask_storeu_ps(yr, m0, f[r][0]);
    _mm512_mask_storeu_ps(yr + 16, m1, f[r][1]);
  }
}

MLX_SHIM_VNNI void int8_rows(const Int8Shape& sh, const Int8Rows& x, const Int8Panels& w,
                             size_t r0, size_t r1, size_t panel, float* y) {
  in_row_groups<kTileRows>(static_cast<int>(r1 - r0), [&]<int R>(int r) {
    int8_tile<R>(sh, x, w, r0 + static_cast<size_t>(r), panel, y);
  });
}
#endif

template <class S>
void pack_panels(const Int8Shape& sh, const uint32_t* w, const S* scales, const S* biases,
                 Int8Panels& out, size_t p0, size_t p1) {
  size_t words = sh.K / 4, groups = sh.groups();
  for (size_t p = p0; p < p1; ++p) {
    uint32_t* pw = out.words.data() + p * words * kPanel;
    float* ps = out.scales.data() + p * groups * kPanel;
    float* pb = out.biases.data() + p * groups * kPanel;
    for (size_t c = 0; c < kPanel; ++c) {
      size_t n = p * kPanel + c;
      bool real = n < sh.N;
      for (size_t i = 0; i < words; ++i) pw[i * kPanel + c] = real ? w[n * words + i] : 0;
      for (size_t g = 0; g < groups; ++g) {
        ps[g * kPanel + c] = real ? as_f32(scales[n * groups + g]) : 0.0f;
        pb[g * kPanel + c] = real ? as_f32(biases[n * groups + g]) : 0.0f;
      }
    }
  }
}

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

template <class S>
void int8_matmul_run(const Int8Shape& sh, const float* x, const uint32_t* w, const S* scales,
                     const S* biases, const EpilogueRun& e, float* y) {
#if defined(__x86_64__) && defined(__GNUC__)
  size_t groups = sh.groups(), panels = sh.panels();
  Int8Rows xq;
  xq.q.resize(sh.M * sh.K);
  xq.scale.resize(sh.M * groups);
  xq.sums.resize(sh.M * groups);
  parallel_rows(sh.M, static_cast<double>(sh.M) * sh.K * 4, [&](size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; ++r)
      quantize_row_s8(x + r * sh.K, sh.K, sh.group, xq.q.data() + r * sh.K,
                      xq.scale.data() + r * groups, xq.sums.data() + r * groups);
  });
  Int8Panels wp;
  wp.words.resize(panels * (sh.K / 4) * kPanel);
  wp.scales.resize(panels * groups * kPanel);
  wp.biases.resize(panels * groups * kPanel);
  parallel_rows(panels, static_cast<double>(panels) * kPanel * sh.K,
                [&](size_t p0, size_t p1) { pack_panels(sh, w, scales, biases, wp, p0, p1); });
  // Tasks are blocks of rows (each sweeping every panel, whose weights stay
  // in L2) split further by panels when there are few rows.
  constexpr size_t kBlockRows = 96;
  size_t row_blocks = (sh.M + kBlockRows - 1) / kBlockRows;
  size_t panel_chunks = std::clamp<size_t>(16 / row_blocks, 1, panels);
  double cost = static_cast<double>(sh.M) * sh.K * sh.N / 4;
  parallel_rows(row_blocks * panel_chunks, cost, [&](size_t t0, size_t t1) {
    for (size_t t = t0; t < t1; ++t) {
      size_t rb = t / panel_chunks, pc = t % panel_chunks;
      size_t r0 = rb * kBlockRows, r1 = std::min(sh.M, r0 + kBlockRows);
      size_t p0 = panels * pc / panel_chunks, p1 = panels * (pc + 1) / panel_chunks;
      for (size_t p = p0; p < p1; ++p) {
        int8_rows(sh, xq, wp, r0, r1, p, y);
        finish_block(e, y, sh.N, r0, r1, p * kPanel, std::min(sh.N, (p + 1) * kPanel));
      }
    }
  });
#endif
}

template void int8_matmul_run<float>(const Int8Shape&, const float*, const uint32_t*,
                                     const float*, const float*, const EpilogueRun&, float*);
template void int8_matmul_run<_Float16>(const Int8Shape&, const float*, const uint32_t*,
                                        const _Float16*, const _Float16*, const EpilogueRun&,
                                        float*);

}  // namespace mlx_shim::kernels::detail
