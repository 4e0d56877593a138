// Products of f32 rows with dense matrices (f32 or f16) for few rows: dot
// products with many rows, weighted sums of rows, and a few rows times a
// matrix with a linear layer's epilogue applied in the same pass.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mlx_shim::kernels::detail {

// out[j * out_stride] = scale * <x, w_j> for rows w_j = w + j * row, j < count.
void dots(const float* x, const float* w, int64_t row, size_t count, size_t n, float scale,
          float* out, size_t out_stride);
void dots(const float* x, const _Float16* w, int64_t row, size_t count, size_t n, float scale,
          float* out, size_t out_stride);
// o += sum_j p[j] v_j for rows v_j = v + j * row, j < count; o has n entries.
void weighted_rows(float* o, const float* p, const float* v, int64_t row, size_t count,
                   size_t n);
void weighted_rows(float* o, const float* p, const _Float16* v, int64_t row, size_t count,
                   size_t n);

using CblasSgemm = void (*)(int, int, int, int, int, int, float, const float*, int, const float*,
                            int, float, float*, int);
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;

// The process's cblas_sgemm (OpenBLAS when the build linked it, else the BLAS
// libmlx brings), looked up at run time so that builds without one still
// link; null where there is none.
CblasSgemm cblas_sgemm_fn();

// Rows of a (all leading axes together) up to this use SmallMatmul and the
// few-row quantized product.
constexpr size_t kSmallMatmulRows = 8;

// The epilogue's operands on the host: bias (quantized matmuls; the dense
// kernel folds its bias in with beta), GELU, residual [M, N].
struct EpilogueRun {
  const float* bias;
  bool gelu;
  const float* residual;
};

// Applies the epilogue to rows [r0, r1) and columns [n0, n1) of y [M, N].
void finish_block(const EpilogueRun& e, float* y, size_t N, size_t r0, size_t r1, size_t n0,
                  size_t n1);

struct MatmulShape {
  size_t M, K, N;
  int64_t bk, bn;  // strides of b [K, N]
  float alpha, beta;
};

// x times b, with b's element (k, n) at w[k * bk + n * bn], f32 or f16.
template <class W>
void small_matmul_run(const MatmulShape& sh, const float* x, const W* w, const float* c,
                      const EpilogueRun& e, float* y);

}  // namespace mlx_shim::kernels::detail
