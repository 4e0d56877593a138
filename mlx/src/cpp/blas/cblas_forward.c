/* libmlx_asr_cblas: the cblas_* entry points libmlx calls, forwarded to the
 * OpenBLAS of the scipy-openblas32 wheel. That build prefixes every symbol
 * with scipy_ (so that it can live beside another BLAS in one process), so it
 * cannot stand in for cblas_sgemm by itself. Linked as a direct dependency of
 * every binary, this library comes before the reference BLAS that the MLX
 * wheel bundles (a dependency of libmlx) in symbol lookup, and MLX's matrix
 * products run on OpenBLAS without a system package. LAPACK calls stay with
 * the wheel's reference LAPACK: none is on a hot path. */
#include <stdint.h>

typedef int32_t blasint; /* scipy-openblas32: 32-bit indices */

void scipy_cblas_sgemm(int order, int trans_a, int trans_b, blasint m, blasint n, blasint k,
                       float alpha, const float* a, blasint lda, const float* b, blasint ldb,
                       float beta, float* c, blasint ldc);
void scipy_cblas_dgemm(int order, int trans_a, int trans_b, blasint m, blasint n, blasint k,
                       double alpha, const double* a, blasint lda, const double* b, blasint ldb,
                       double beta, double* c, blasint ldc);
void scipy_cblas_cgemm(int order, int trans_a, int trans_b, blasint m, blasint n, blasint k,
                       const void* alpha, const void* a, blasint lda, const void* b, blasint ldb,
                       const void* beta, void* c, blasint ldc);
char* scipy_openblas_get_config(void);

void cblas_sgemm(int order, int trans_a, int trans_b, blasint m, blasint n, blasint k,
                 float alpha, const float* a, blasint lda, const float* b, blasint ldb,
                 float beta, float* c, blasint ldc) {
  scipy_cblas_sgemm(order, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void cblas_dgemm(int order, int trans_a, int trans_b, blasint m, blasint n, blasint k,
                 double alpha, const double* a, blasint lda, const double* b, blasint ldb,
                 double beta, double* c, blasint ldc) {
  scipy_cblas_dgemm(order, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void cblas_cgemm(int order, int trans_a, int trans_b, blasint m, blasint n, blasint k,
                 const void* alpha, const void* a, blasint lda, const void* b, blasint ldb,
                 const void* beta, void* c, blasint ldc) {
  scipy_cblas_cgemm(order, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* OpenBLAS's description of itself (version, core it picked, threads). */
const char* mlx_asr_openblas_config(void) { return scipy_openblas_get_config(); }
