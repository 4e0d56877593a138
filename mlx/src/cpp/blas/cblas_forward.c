/* libmlx_asr_cblas: the cblas_* entry points libmlx calls, forwarded to the
 * OpenBLAS of the scipy-openblas32 wheel. That build prefixes every symbol
 * with scipy_ (so that it can live beside another BLAS in one process), so it
 * cannot stand in for cblas_sgemm by itself. Linked as a direct dependency of
 * every binary, this library comes before the reference BLAS that the MLX
 * wheel bundles (a dependency of libmlx) in symbol lookup, and MLX's matrix
 * products run on OpenBLAS without a system package. LAPACK calls stay with
 * the wheel's reference LAPACK: none is on a hot path.
 *
 * OpenBLAS is opened here, from the folder this library sits in, rather
 * than linked: it reads its settings from the environment when it loads,
 * and one of them must be set first (see open_openblas). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int32_t blasint; /* scipy-openblas32: 32-bit indices */

typedef void (*sgemm_fn)(int, int, int, blasint, blasint, blasint, float, const float*, blasint,
                         const float*, blasint, float, float*, blasint);
typedef void (*dgemm_fn)(int, int, int, blasint, blasint, blasint, double, const double*,
                         blasint, const double*, blasint, double, double*, blasint);
typedef void (*cgemm_fn)(int, int, int, blasint, blasint, blasint, const void*, const void*,
                         blasint, const void*, blasint, const void*, void*, blasint);
typedef char* (*config_fn)(void);

static sgemm_fn sgemm;
static dgemm_fn dgemm;
static cgemm_fn cgemm;
static config_fn config;

static void* symbol(void* lib, const char* name) {
  void* f = dlsym(lib, name);
  if (f == NULL) {
    fprintf(stderr, "libmlx_asr_cblas: %s missing from the OpenBLAS wheel's library\n", name);
    abort();
  }
  return f;
}

/* OpenBLAS's idle workers spin for 2^28 cycles after each product before
 * they sleep. Between the encoder's products our kernels' thread pool
 * works on the same cores, and the spinning workers take a core from it
 * (measured: 10-25% of an encoder window on 2 cores). A short timeout, 2^4
 * cycles, lets them sleep at once; a product wakes them in microseconds.
 * A value the user set is kept. */
__attribute__((constructor)) static void open_openblas(void) {
  setenv("OPENBLAS_THREAD_TIMEOUT", "4", 0);
  Dl_info self;
  if (dladdr((void*)open_openblas, &self) == 0 || self.dli_fname == NULL) {
    fprintf(stderr, "libmlx_asr_cblas: cannot find its own folder\n");
    abort();
  }
  const char* slash = strrchr(self.dli_fname, '/');
  size_t dir = slash == NULL ? 0 : (size_t)(slash - self.dli_fname + 1);
  static const char kName[] = "libscipy_openblas.so";
  char* path = malloc(dir + sizeof(kName));
  if (path == NULL) abort();
  memcpy(path, self.dli_fname, dir);
  memcpy(path + dir, kName, sizeof(kName));
  void* lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (lib == NULL) {
    fprintf(stderr, "libmlx_asr_cblas: %s\n", dlerror());
    abort();
  }
  free(path);
  sgemm = (sgemm_fn)symbol(lib, "scipy_cblas_sgemm");
  dgemm = (dgemm_fn)symbol(lib, "scipy_cblas_dgemm");
  cgemm = (cgemm_fn)symbol(lib, "scipy_cblas_cgemm");
  config = (config_fn)symbol(lib, "scipy_openblas_get_config");
}

void cblas_sgemm(int order, int trans_a, int trans_b, blasint m, blasint n, blasint k,
                 float alpha, const float* a, blasint lda, const float* b, blasint ldb,
                 float beta, float* c, blasint ldc) {
  sgemm(order, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void cblas_dgemm(int order, int trans_a, int trans_b, blasint m, blasint n, blasint k,
                 double alpha, const double* a, blasint lda, const double* b, blasint ldb,
                 double beta, double* c, blasint ldc) {
  dgemm(order, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void cblas_cgemm(int order, int trans_a, int trans_b, blasint m, blasint n, blasint k,
                 const void* alpha, const void* a, blasint lda, const void* b, blasint ldb,
                 const void* beta, void* c, blasint ldc) {
  cgemm(order, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* OpenBLAS's description of itself (version, core it picked, threads). */
const char* mlx_asr_openblas_config(void) { return config(); }
