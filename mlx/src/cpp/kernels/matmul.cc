#include "matmul.h"

#include <dlfcn.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "elementwise.h"
#include "pool.h"
#include "simd.h"

namespace mlx_shim::kernels::detail {
namespace {

// How many rows ahead the attention kernels ask for keys and values: at one
// query per head they stream 2 KiB of f16 rows per 16, and the memory's
// latency is about that many rows' work (fewer rows ahead arrive late; more
// gain nothing).
constexpr size_t kRowsAhead = 16;

// Dot products of x with four rows at once, sharing the loads of x and
// the final lane sums.
template <class W>
MLX_SHIM_INLINE void dot4(const float* x, const W* w0, const W* w1, const W* w2, const W* w3,
                          size_t n, float* out) {
  v8 a0 = {}, a1 = {}, a2 = {}, a3 = {};
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    v8 xv = load8(x + i);
    a0 += xv * load8(w0 + i);
    a1 += xv * load8(w1 + i);
    a2 += xv * load8(w2 + i);
    a3 += xv * load8(w3 + i);
  }
  float s0 = lane_sum(a0), s1 = lane_sum(a1), s2 = lane_sum(a2), s3 = lane_sum(a3);
  for (; i < n; ++i) {
    s0 += x[i] * static_cast<float>(w0[i]);
    s1 += x[i] * static_cast<float>(w1[i]);
    s2 += x[i] * static_cast<float>(w2[i]);
    s3 += x[i] * static_cast<float>(w3[i]);
  }
  out[0] = s0;
  out[1] = s1;
  out[2] = s2;
  out[3] = s3;
}

template <class W>
MLX_SHIM_INLINE float dot1(const float* x, const W* w, size_t n) {
  v8 a = {};
  size_t i = 0;
  for (; i + 8 <= n; i += 8) a += load8(x + i) * load8(w + i);
  float s = lane_sum(a);
  for (; i < n; ++i) s += x[i] * static_cast<float>(w[i]);
  return s;
}

// The four rows kRowsAhead past row j (of rows w_j = w + j * row of n
// entries), unless past the last, `count`.
template <class W>
MLX_SHIM_INLINE void prefetch_ahead(const W* wj, int64_t row, size_t j, size_t count, size_t n) {
  if (j + kRowsAhead + 4 > count) return;
  for (int64_t t = 0; t < 4; ++t)
    prefetch_bytes(wj + (static_cast<int64_t>(kRowsAhead) + t) * row, n * sizeof(W));
}

// out[j * out_stride] = scale * <x, w_j> for rows w_j = w + j * row, j < count
// (f32 rows, or f16 rows widened exactly: same sums in the same order).
template <class W>
MLX_SHIM_INLINE void dots_of(const float* x, const W* w, int64_t row, size_t count, size_t n,
                             float scale, float* out, size_t out_stride) {
  size_t j = 0;
  float r[4];
  for (; j + 4 <= count; j += 4) {
    const W* wj = w + static_cast<int64_t>(j) * row;
    prefetch_ahead(wj, row, j, count, n);
    dot4(x, wj, wj + row, wj + 2 * row, wj + 3 * row, n, r);
    for (int t = 0; t < 4; ++t) out[(j + t) * out_stride] = scale * r[t];
  }
  for (; j < count; ++j) out[j * out_stride] = scale * dot1(x, w + static_cast<int64_t>(j) * row, n);
}

#if defined(__x86_64__) && defined(__GNUC__)
// f16 rows with AVX2 + F16C: eight halves widened by one instruction, four
// rows per pass as in dot4 (GCC's generic vectors insert halves one by one).
MLX_SHIM_F16C void dots_f16c(const float* x, const _Float16* w, int64_t row, size_t count,
                             size_t n, float scale, float* out, size_t out_stride) {
  size_t j = 0;
  for (; j + 4 <= count; j += 4) {
    const _Float16* w0 = w + static_cast<int64_t>(j) * row;
    const _Float16 *w1 = w0 + row, *w2 = w1 + row, *w3 = w2 + row;
    prefetch_ahead(w0, row, j, count, n);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      __m256 xv = _mm256_loadu_ps(x + i);
      a0 = _mm256_fmadd_ps(xv, widen8(w0 + i), a0);
      a1 = _mm256_fmadd_ps(xv, widen8(w1 + i), a1);
      a2 = _mm256_fmadd_ps(xv, widen8(w2 + i), a2);
      a3 = _mm256_fmadd_ps(xv, widen8(w3 + i), a3);
    }
    float s[4] = {sum8(a0), sum8(a1), sum8(a2), sum8(a3)};
    const _Float16* ws[4] = {w0, w1, w2, w3};
    for (int t = 0; t < 4; ++t) {
      for (size_t k = i; k < n; ++k) s[t] += x[k] * static_cast<float>(ws[t][k]);
      out[(j + t) * out_stride] = scale * s[t];
    }
  }
  for (; j < count; ++j) {
    const _Float16* wj = w + static_cast<int64_t>(j) * row;
    __m256 a = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), widen8(wj + i), a);
    float s = sum8(a);
    for (; i < n; ++i) s += x[i] * static_cast<float>(wj[i]);
    out[j * out_stride] = scale * s;
  }
}
#endif

// Every Whisper model's attention heads are 64 wide.
constexpr size_t kHeadWidth = 64;

// weighted_rows for a 64-wide head: all 64 sums stay in registers while the
// rows stream by once, in order, each asked for kRowsAhead early. Each sum
// adds the same products in the same order as the general loop, which
// walks the rows once per eight outputs and so reads each row eight times.
// `Load` widens eight values of a row.
template <class V, v8 (*Load)(const V*)>
MLX_SHIM_INLINE void weighted_head_rows(float* o, const float* p, const V* v, int64_t row,
                                        size_t count) {
  constexpr size_t chunks = kHeadWidth / 8;
  v8 acc[chunks];
  for (size_t c = 0; c < chunks; ++c) acc[c] = load8(o + 8 * c);
  for (size_t j = 0; j < count; ++j) {
    const V* r = v + static_cast<int64_t>(j) * row;
    if (j + kRowsAhead < count)
      prefetch_bytes(r + static_cast<int64_t>(kRowsAhead) * row, kHeadWidth * sizeof(V));
    for (size_t c = 0; c < chunks; ++c) acc[c] += p[j] * Load(r + 8 * c);
  }
  for (size_t c = 0; c < chunks; ++c) store8(o + 8 * c, acc[c]);
}

// o += sum_j p[j] v_j for rows v_j = v + j * row, j < count; o has n entries.
template <class V>
MLX_SHIM_INLINE void weighted_rows_of(float* o, const float* p, const V* v, int64_t row,
                                      size_t count, size_t n) {
  if (n == kHeadWidth) return weighted_head_rows<V, load8>(o, p, v, row, count);
  size_t i = 0;
  // Eight outputs at a time stay in a register across all rows.
  for (; i + 8 <= n; i += 8) {
    v8 acc = load8(o + i);
    for (size_t j = 0; j < count; ++j) {
      acc += p[j] * load8(v + static_cast<int64_t>(j) * row + static_cast<int64_t>(i));
    }
    store8(o + i, acc);
  }
  for (; i < n; ++i) {
    float acc = o[i];
    for (size_t j = 0; j < count; ++j)
      acc += p[j] * static_cast<float>(v[static_cast<int64_t>(j) * row + i]);
    o[i] = acc;
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
MLX_SHIM_F16C void weighted_rows_f16c(float* o, const float* p, const _Float16* v, int64_t row,
                                      size_t count, size_t n) {
  // Eight halves widened per instruction.
  if (n == kHeadWidth) return weighted_head_rows<_Float16, widen8>(o, p, v, row, count);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 acc = _mm256_loadu_ps(o + i);
    for (size_t j = 0; j < count; ++j) {
      acc = _mm256_fmadd_ps(_mm256_set1_ps(p[j]), widen8(v + static_cast<int64_t>(j) * row + i),
                            acc);
    }
    _mm256_storeu_ps(o + i, acc);
  }
  if (i < n) weighted_rows_of(o + i, p, v + i, row, count, n - i);
}
#endif

// y += a x
void axpy(float* y, const float* x, float a, size_t n) {
  by_isa([=](auto) MLX_SHIM_ALWAYS_INLINE {
    for (size_t i = 0; i < n; ++i) y[i] += a * x[i];
  });
}

// y[r, n] = alpha sum_k x[r, k] w[n, k] + beta c[n] for rows r < M, columns
// [n0, n1), where w's rows (b's columns) are contiguous (stride `row`).
template <class W>
void matmul_dot_form(const MatmulShape& sh, const float* x, const W* w, int64_t row,
                     const float* c, float* y, size_t n0, size_t n1) {
  const W* wn = w + static_cast<int64_t>(n0) * row;
  for (size_t r = 0; r < sh.M; ++r) {
    float* yr = y + r * sh.N;
    dots(x + r * sh.K, wn, row, n1 - n0, sh.K, sh.alpha, yr + n0, 1);
    if (c != nullptr) {
      for (size_t n = n0; n < n1; ++n) yr[n] += sh.beta * c[n];
    }
  }
}

// The same where b's rows are contiguous (stride `row`): y[r, n0:n1] is a
// sum of scaled slices of b's rows.
void matmul_axpy_form(const MatmulShape& sh, const float* x, const float* w, int64_t row,
                      const float* c, float* y, size_t n0, size_t n1) {
  size_t width = n1 - n0;
  for (size_t r = 0; r < sh.M; ++r) {
    float* yr = y + r * sh.N + n0;
    std::fill(yr, yr + width, 0.0f);
    for (size_t k = 0; k < sh.K; ++k) {
      axpy(yr, w + static_cast<int64_t>(k) * row + static_cast<int64_t>(n0), x[r * sh.K + k],
           width);
    }
    for (size_t n = 0; n < width; ++n) {
      yr[n] = sh.alpha * yr[n] + (c != nullptr ? sh.beta * c[n0 + n] : 0.0f);
    }
  }
}

}  // namespace

CblasSgemm cblas_sgemm_fn() {
  static CblasSgemm fn = reinterpret_cast<CblasSgemm>(dlsym(RTLD_DEFAULT, "cblas_sgemm"));
  return fn;
}

void dots(const float* x, const float* w, int64_t row, size_t count, size_t n, float scale,
          float* out, size_t out_stride) {
  by_isa([=](auto) MLX_SHIM_ALWAYS_INLINE {
    dots_of(x, w, row, count, n, scale, out, out_stride);
  });
}

void dots(const float* x, const _Float16* w, int64_t row, size_t count, size_t n, float scale,
          float* out, size_t out_stride) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (has_f16c()) return dots_f16c(x, w, row, count, n, scale, out, out_stride);
#endif
  dots_of(x, w, row, count, n, scale, out, out_stride);
}

void weighted_rows(float* o, const float* p, const float* v, int64_t row, size_t count,
                   size_t n) {
  by_isa([=](auto) MLX_SHIM_ALWAYS_INLINE { weighted_rows_of(o, p, v, row, count, n); });
}

// f16 values (cross-attention keys and values of a quantized model).
void weighted_rows(float* o, const float* p, const _Float16* v, int64_t row, size_t count,
                   size_t n) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (has_f16c()) return weighted_rows_f16c(o, p, v, row, count, n);
#endif
  weighted_rows_of(o, p, v, row, count, n);
}

void finish_block(const EpilogueRun& e, float* y, size_t N, size_t r0, size_t r1, size_t n0,
                  size_t n1) {
  for (size_t r = r0; r < r1; ++r) {
    float* yr = y + r * N;
    if (e.bias != nullptr) {
      for (size_t n = n0; n < n1; ++n) yr[n] += e.bias[n];
    }
    if (e.gelu) gelu_span(yr + n0, yr + n0, n1 - n0);
    if (e.residual != nullptr) {
      const float* rr = e.residual + r * N;
      for (size_t n = n0; n < n1; ++n) yr[n] = rr[n] + yr[n];
    }
  }
}

// x times b, with b's element (k, n) at w[k * bk + n * bn], f32 or f16. f16
// weights are read as they are in the dot form (b = a transposed row-major
// matrix, the linear layers' case) and widened into an f32 copy otherwise.
template <class W>
void small_matmul_run(const MatmulShape& sh, const float* x, const W* w, const float* c,
                      const EpilogueRun& e, float* y) {
  if (sh.M * sh.N == 0) return;
  if (sh.K == 0) {
    for (size_t r = 0; r < sh.M; ++r)
      for (size_t n = 0; n < sh.N; ++n) y[r * sh.N + n] = c != nullptr ? sh.beta * c[n] : 0.0f;
    finish_block(e, y, sh.N, 0, sh.M, 0, sh.N);
    return;
  }
  int64_t bk = sh.bk, bn = sh.bn;
  std::vector<float> packed_w;
  const float* wf = nullptr;  // the f32 matrix, when not reading `w` in the dot form
  if constexpr (std::is_same_v<W, float>) {
    if (bk != 1) wf = w;
  }
  if (bk != 1 && (bn != 1 || wf == nullptr)) {
    // Neither axis contiguous (or f16 outside the dot form): pack as f32 [N, K].
    packed_w.resize(sh.K * sh.N);
    for (size_t n = 0; n < sh.N; ++n)
      for (size_t k = 0; k < sh.K; ++k)
        packed_w[n * sh.K + k] =
            static_cast<float>(w[static_cast<int64_t>(k) * bk + static_cast<int64_t>(n) * bn]);
    wf = packed_w.data();
    bk = 1;
    bn = static_cast<int64_t>(sh.K);
  }
  double cost = static_cast<double>(sh.M) * sh.K * sh.N;
  // Column blocks of at least 64 so that axpy slices stay long.
  size_t blocks = (sh.N + 63) / 64;
  parallel_rows(blocks, cost, [&](size_t b0, size_t b1) {
    size_t n0 = b0 * 64, n1 = std::min(sh.N, b1 * 64);
    if (n1 <= n0) return;
    if (wf == nullptr) {
      matmul_dot_form(sh, x, w, bn, c, y, n0, n1);
    } else if (bk == 1) {
      matmul_dot_form(sh, x, wf, bn, c, y, n0, n1);
    } else {
      matmul_axpy_form(sh, x, wf, bk, c, y, n0, n1);
    }
    finish_block(e, y, sh.N, 0, sh.M, n0, n1);
  });
}

template void small_matmul_run<float>(const MatmulShape&, const float*, const float*,
                                      const float*, const EpilogueRun&, float*);
template void small_matmul_run<_Float16>(const MatmulShape&, const float*, const _Float16*,
                                         const float*, const EpilogueRun&, float*);

}  // namespace mlx_shim::kernels::detail
