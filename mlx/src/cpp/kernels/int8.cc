#include "int8.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "pool.h"
#include "quantized.h"
#include "simd.h"

namespace mlx_shim::kernels::detail {
namespace {

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

template void int8_matmul_run<float>(const Int8Shape&, const float*, const uint32_t*, const float*, const float*, const EpilogueRun&, float*);
template void int8_matmul_run<_Float16>(const Int8Shape&, const float*, const uint32_t*, const _Float16*, const _Float16*, const EpilogueRun&, float*);

}  // namespace mlx_shim::kernels::detail
