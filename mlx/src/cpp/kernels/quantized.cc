#include "quantized.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <numeric>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "pool.h"
#include "simd.h"

namespace mlx_shim::kernels::detail {
namespace {

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
// past row n1; see prefetch_bytes). Until the prefetch was written as an
// instruction GCC had deleted it here, found by timing a standalone copy of
// this kernel against one whose prefetch survived (22 MB, 2 threads:
// 2.2-2.7 vs 1.4-1.6 ms). With it, the vocabulary projection in a
// transcription: 2.44 -> 2.02 ms.
inline void prefetch_rows(const uint32_t* w, size_t words, size_t n, size_t count, size_t n1) {
  if (n + count <= n1) prefetch_bytes(w + n * words, count * words * sizeof(uint32_t));
}

// Several rows (beams): each weight is dequantized once for all of them.
// M is a template argument so that the M sums stay in registers: with a
// runtime count GCC kept them in memory, and 5 beams' vocabulary projection
// took 4x one row's time where the weights are read once for all.
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

template void dequantize_run<float>(const QuantShape&, const uint32_t*, const float*, const float*, float*);
template void dequantize_run<_Float16>(const QuantShape&, const uint32_t*, const _Float16*, const _Float16*, float*);
template void quant_matmul_run<float>(const QuantShape&, const float*, const uint32_t*, const float*, const float*, const EpilogueRun&, float*);
template void quant_matmul_run<_Float16>(const QuantShape&, const float*, const uint32_t*, const _Float16*, const _Float16*, const EpilogueRun&, float*);

}  // namespace mlx_shim::kernels::detail
