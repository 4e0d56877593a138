#include "matmul.h"

#include <algorithm>
#include <type_traits>
#include <vector>

#include "dots.h"
#include "elementwise.h"
#include "pool.h"

namespace mlx_shim::kernels::detail {
namespace {

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

// Applies the epilogue to rows [r0, r1) and columns [n0, n1) of y [M, N].
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

template void small_matmul_run<float>(const MatmulShape&, const float*, const float*, const float*, const EpilogueRun&, float*);
template void small_matmul_run<_Float16>(const MatmulShape&, const float*, const _Float16*, const float*, const EpilogueRun&, float*);

}  // namespace mlx_shim::kernels::detail
