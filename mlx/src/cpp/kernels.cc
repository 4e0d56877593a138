// CPU kernels for softmax, GELU, layer norm and attention as MLX primitives.
//
// Each primitive's eval_cpu allocates its output and hands the work to the
// stream's command encoder, as MLX's own CPU primitives do, so the kernels run
// in order with the rest of the lazy graph. The work itself is split over a
// small persistent thread pool; the inner loops are written so that the
// compiler vectorizes them, and on x86-64 every hot function is built twice
// (AVX2+FMA and the baseline) with the right one picked at load time.
#include "mlx/src/cpp/kernels.h"

#include <dlfcn.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "mlx/allocator.h"
#include "mlx/backend/cpu/encoder.h"
#include "mlx/ops.h"
#include "mlx/primitives.h"
#include "mlx/stream.h"

#if defined(__GNUC__) && !defined(__clang__)
// v8 below is passed in registers only inside this file; the note about the
// AVX calling convention does not concern it.
#pragma GCC diagnostic ignored "-Wpsabi"
// GCC 12's AVX-512 headers initialize their "undefined" vectors from
// themselves, which its own -Wuninitialized reports at every use.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MLX_SHIM_MULTIVERSION __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define MLX_SHIM_MULTIVERSION
#endif

// For helpers of MLX_SHIM_MULTIVERSION functions: compiled out of line, a
// helper gets the baseline target (no FMA: other rounding, and slower).
#if defined(__GNUC__)
#define MLX_SHIM_INLINE inline __attribute__((always_inline))
#else
#define MLX_SHIM_INLINE inline
#endif

namespace mx = mlx::core;

namespace mlx_shim::kernels {
namespace {

// ---------------------------------------------------------------------------
// Buffers the kernels own start on a cache line: a 64-byte vector load from
// an address that is not a multiple of 64 touches two lines (std::vector's
// 16-byte alignment made the attention and int8 tiles 1.5x slower).

template <class T>
struct CacheLineAllocator {
  using value_type = T;
  static constexpr std::align_val_t kAlign{64};
  CacheLineAllocator() = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlign)); }
  void deallocate(T* p, size_t) { ::operator delete(p, kAlign); }
  template <class U>
  bool operator==(const CacheLineAllocator<U>&) const {
    return true;
  }
};

template <class T>
using AlignedVec = std::vector<T, CacheLineAllocator<T>>;

// ---------------------------------------------------------------------------
// Settings and the thread pool.

std::atomic<bool>& enabled_flag() {
  static std::atomic<bool> flag = [] {
    const char* v = std::getenv("MLX_ASR_CUSTOM_KERNELS");
    return !(v != nullptr && (std::strcmp(v, "0") == 0 || std::strcmp(v, "off") == 0 ||
                              std::strcmp(v, "false") == 0));
  }();
  return flag;
}

// Runs `task(i)` for i in [0, n) on the pool's workers and the calling thread.
// One job at a time: a second caller meanwhile runs its tasks alone.
class Pool {
 public:
  static Pool& get() {
    // Never destroyed: workers block on the condition variable until exit.
    static Pool* pool = new Pool();
    return *pool;
  }

  // While one is alive, idle workers and a caller waiting for them spin
  // instead of sleeping: a decoder step is some fifty parallel jobs of tens
  // of microseconds, and each futex wake-up on a virtual machine costs about
  // as much as the job.
  class Hot {
   public:
    Hot() { Pool::get().heat(1); }
    ~Hot() { Pool::get().heat(-1); }
    Hot(const Hot&) = delete;
    Hot& operator=(const Hot&) = delete;
  };

  // Opens (+1) or closes (-1) a hold that keeps the pool hot.
  void heat(int delta) { hot_.fetch_add(delta, std::memory_order_acq_rel); }

  int size() const { return static_cast<int>(workers_.size()) + 1; }
  bool hot() const { return hot_.load(std::memory_order_acquire) > 0; }

  void run(size_t n, const std::function<void(size_t)>& task) {
    if (n == 0) return;
    std::unique_lock<std::mutex> busy(run_mutex_, std::defer_lock);
    if (n == 1 || workers_.empty() || !busy.try_lock()) {
      for (size_t i = 0; i < n; ++i) task(i);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      task_ = &task;
      count_ = n;
      next_.store(0, std::memory_order_relaxed);
      open_ = true;
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    work(task, n);
    // Workers that have not joined by now never will (a busy machine may not
    // schedule them soon): close the job and wait only for those inside.
    std::unique_lock<std::mutex> lock(mutex_);
    open_ = false;
    if (hot()) {
      lock.unlock();
      while (active_.load(std::memory_order_acquire) != 0) pause();
      lock.lock();
    } else {
      done_.wait(lock, [&] { return active_.load() == 0; });
    }
    task_ = nullptr;
  }

 private:
  Pool() {
    int n = static_cast<int>(std::thread::hardware_concurrency());
    if (const char* v = std::getenv("MLX_ASR_THREADS")) n = std::atoi(v);
    n = std::clamp(n, 1, 64);
    for (int i = 1; i < n; ++i) workers_.emplace_back([this] { loop(); });
  }

  static void pause() {
#if defined(__x86_64__)
    _mm_pause();
#else
    std::this_thread::yield();
#endif
  }

  void work(const std::function<void(size_t)>& task, size_t n) {
    for (size_t i = next_.fetch_add(1); i < n; i = next_.fetch_add(1)) task(i);
  }

  void loop() {
    uint64_t seen = 0;
    for (;;) {
      while (hot() && generation_.load(std::memory_order_acquire) == seen) pause();
      const std::function<void(size_t)>* task;
      size_t n;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        bool fresh = generation_.load() != seen && open_;
        if (!fresh && hot()) {
          // A job that closed before this worker came: skip it, keep spinning.
          seen = generation_.load();
          continue;
        }
        wake_.wait(lock, [&] { return generation_.load() != seen && open_; });
        seen = generation_.load();
        task = task_;
        n = count_;
        active_.fetch_add(1, std::memory_order_acq_rel);
      }
      work(*task, n);
      std::lock_guard<std::mutex> lock(mutex_);
      if (active_.fetch_sub(1, std::memory_order_acq_rel) == 1) done_.notify_one();
    }
  }

  std::vector<std::thread> workers_;
  std::mutex run_mutex_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  const std::function<void(size_t)>* task_ = nullptr;
  size_t count_ = 0;
  std::atomic<size_t> next_{0};
  std::atomic<size_t> active_{0};
  bool open_ = false;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> hot_{0};
};

// Splits [0, rows) into chunks over the pool when the work is worth it
// (`cost` is a rough count of element operations for all rows).
template <class F>
void parallel_rows(size_t rows, double cost, F&& f) {
  // Waking a worker costs some microseconds (much more on a busy machine);
  // a hot pool's workers are spinning already, so smaller jobs pay (the
  // decoder step's 384x384 projections: blocks 3.3 -> 3.1 ms per token).
  auto& pool = Pool::get();
  double serial_below = pool.hot() ? 2.0e4 : 2.0e5;
  size_t chunks = std::min<size_t>(rows, static_cast<size_t>(pool.size()) * 4);
  if (cost < serial_below || chunks <= 1) {
    f(size_t{0}, rows);
    return;
  }
  pool.run(chunks, [&](size_t c) { f(rows * c / chunks, rows * (c + 1) / chunks); });
}

// ---------------------------------------------------------------------------
// Element kernels. Fixed-width lane arrays let the compiler keep the
// reductions in vector registers without reassociating on its own.

constexpr int kLanes = 16;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// exp(x) within ~2 ulp on [-87.3, 88]; exactly 0 below -87.3 (so -inf gives 0).
inline float exp_f32(float x) {
  constexpr float kLo = -87.3365447504f;
  constexpr float kHi = 88.0f;
  float xc = x > kHi ? kHi : x;
  xc = xc < kLo ? kLo : xc;
  // n = round(x / ln 2) by the 1.5 * 2^23 trick (no rounding instruction needed).
  float t = xc * 1.44269504088896341f + 12582912.0f;
  float n = t - 12582912.0f;
  // r = x - n ln 2, with ln 2 split in two for accuracy.
  float r = xc - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  // exp(r) on |r| <= ln(2)/2: 1 + r + r^2 P(r), minimax coefficients.
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  int32_t e = (static_cast<int32_t>(n) + 127) << 23;
  float y = p * std::bit_cast<float>(e);
  return x < kLo ? 0.0f : y;
}

// 0.5 x (1 + erf(x / sqrt 2)) through erfc(|x| / sqrt 2), computed as
// t exp(-z^2 + poly(t)) with t = 1 / (1 + z / 2) (relative error < 1.2e-7),
// which keeps the negative tail accurate.
inline float gelu_f32(float x) {
  float z = (x < 0.0f ? -x : x) * 0.70710678118654752f;
  float t = 1.0f / (1.0f + 0.5f * z);
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  float erfc = t * exp_f32(p - z * z);
  return x >= 0.0f ? x * (1.0f - 0.5f * erfc) : 0.5f * x * erfc;
}

MLX_SHIM_MULTIVERSION
void gelu_span(const float* x, float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] = gelu_f32(x[i]);
}

MLX_SHIM_MULTIVERSION
float max_of(const float* x, size_t n) {
  float lanes[kLanes];
  for (int j = 0; j < kLanes; ++j) lanes[j] = kNegInf;
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) lanes[j] = x[i + j] > lanes[j] ? x[i + j] : lanes[j];
  }
  float m = kNegInf;
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  for (int j = 0; j < kLanes; ++j) m = lanes[j] > m ? lanes[j] : m;
  return m;
}

// y[i] = exp(x[i] - m); returns the sum.
MLX_SHIM_MULTIVERSION
float exp_shifted(const float* x, float* y, size_t n, float m) {
  float lanes[kLanes] = {};
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      float e = exp_f32(x[i + j] - m);
      y[i + j] = e;
      lanes[j] += e;
    }
  }
  float s = 0.0f;
  for (; i < n; ++i) {
    float e = exp_f32(x[i] - m);
    y[i] = e;
    s += e;
  }
  for (int j = 0; j < kLanes; ++j) s += lanes[j];
  return s;
}

// sum of exp(x[i] - m), accumulated in f64 lanes: a vocabulary row has tens
// of thousands of terms far below the largest, which an f32 sum of about 1
// would round away (1e-5 of the log-sum, measured).
MLX_SHIM_MULTIVERSION
double exp_shifted_sum(const float* x, size_t n, float m) {
  double lanes[kLanes] = {};
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) lanes[j] += exp_f32(x[i + j] - m);
  }
  double s = 0.0;
  for (; i < n; ++i) s += exp_f32(x[i] - m);
  for (int j = 0; j < kLanes; ++j) s += lanes[j];
  return s;
}

MLX_SHIM_MULTIVERSION
void scale_span(float* y, size_t n, float s) {
  for (size_t i = 0; i < n; ++i) y[i] *= s;
}

// softmax of x[0, valid) into y[0, valid), zeros in y[valid, n). A row whose
// entries are all -inf (or that has a NaN maximum) becomes NaN, as in MLX.
void softmax_row(const float* x, float* y, size_t valid, size_t n) {
  float m = max_of(x, valid);
  if (valid == 0 || m == kNegInf || std::isnan(m)) {
    std::fill(y, y + valid, std::numeric_limits<float>::quiet_NaN());
  } else {
    float s = exp_shifted(x, y, valid, m);
    scale_span(y, valid, 1.0f / s);
  }
  std::fill(y + valid, y + n, 0.0f);
}

MLX_SHIM_MULTIVERSION
void layer_norm_row(const float* x, float* y, size_t n, const float* w, const float* b,
                    float eps) {
  // The mean of x - x[0], which keeps an offset common to the row out of the
  // f32 sums.
  const float shift = x[0];
  float lanes[kLanes] = {};
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) lanes[j] += x[i + j] - shift;
  }
  float s = 0.0f;
  for (; i < n; ++i) s += x[i] - shift;
  for (int j = 0; j < kLanes; ++j) s += lanes[j];
  float mean = shift + s / static_cast<float>(n);
  float sq[kLanes] = {};
  i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      float d = x[i + j] - mean;
      sq[j] += d * d;
    }
  }
  float v = 0.0f;
  for (; i < n; ++i) v += (x[i] - mean) * (x[i] - mean);
  for (int j = 0; j < kLanes; ++j) v += sq[j];
  float rstd = 1.0f / std::sqrt(v / static_cast<float>(n) + eps);
  if (w != nullptr && b != nullptr) {
    for (i = 0; i < n; ++i) y[i] = (x[i] - mean) * rstd * w[i] + b[i];
  } else if (w != nullptr) {
    for (i = 0; i < n; ++i) y[i] = (x[i] - mean) * rstd * w[i];
  } else if (b != nullptr) {
    for (i = 0; i < n; ++i) y[i] = (x[i] - mean) * rstd + b[i];
  } else {
    for (i = 0; i < n; ++i) y[i] = (x[i] - mean) * rstd;
  }
}

// Eight floats in a vector register (two SSE registers on the baseline
// target); GCC's and Clang's vector extension.
typedef float v8 __attribute__((vector_size(32)));

inline v8 load8(const float* p) {
  v8 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// Eight halves widened to floats, portably (CPUs without F16C; those with
// it take dots_f16c).
inline v8 load8(const _Float16* p) {
  v8 v;
  for (int i = 0; i < 8; ++i) v[i] = static_cast<float>(p[i]);
  return v;
}

inline void store8(float* p, const v8& v) { std::memcpy(p, &v, sizeof(v)); }

inline float lane_sum(const v8& v) {
  float a0 = v[0] + v[4], a1 = v[1] + v[5], a2 = v[2] + v[6], a3 = v[3] + v[7];
  return (a0 + a2) + (a1 + a3);
}

// Asks for `bytes` from `p` on before they are read. One core streams
// from memory at about half the speed it computes on what it reads, and
// the hardware prefetcher alone does not close that gap (it stops at every
// 4 KiB page). Written as an instruction: GCC deletes a loop whose only
// statements are _mm_prefetch calls (they have no side effects it must
// keep), which it did to an earlier prefetch of ours without a word.
inline void prefetch_bytes(const void* p, size_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (size_t at = 0; at < bytes; at += 64) {
#if defined(__x86_64__) && defined(__GNUC__)
    asm volatile("prefetcht0 %0" : : "m"(c[at]));
#else
    __builtin_prefetch(c + at);
#endif
  }
}

// How many rows ahead the attention kernels ask for keys and values: at one
// query per head they stream 2 KiB of f16 rows per 16, and the memory's
// latency is that many rows' work (standalone, one query over 1500 keys and
// 64 dims, 6 heads: 16 to 64 rows ahead alike, 8 slower).
constexpr size_t kRowsAhead = 16;

// Dot products of x with four rows at once, sharing the loads of x and
// the final lane sums (inlined into multiversioned callers).
template <class W>
inline void dot4(const float* x, const W* w0, const W* w1, const W* w2, const W* w3, size_t n,
                 float* out) {
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
inline float dot1(const float* x, const W* w, size_t n) {
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
inline void prefetch_ahead(const W* wj, int64_t row, size_t j, size_t count, size_t n) {
  if (j + kRowsAhead + 4 > count) return;
  for (int64_t t = 0; t < 4; ++t)
    prefetch_bytes(wj + (static_cast<int64_t>(kRowsAhead) + t) * row, n * sizeof(W));
}

// out[j * out_stride] = scale * <x, w_j> for rows w_j = w + j * row, j < count
// (f32 rows, or f16 rows widened exactly: same sums in the same order).
template <class W>
inline void dots_of(const float* x, const W* w, int64_t row, size_t count, size_t n,
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

MLX_SHIM_MULTIVERSION
void dots(const float* x, const float* w, int64_t row, size_t count, size_t n, float scale,
          float* out, size_t out_stride) {
  dots_of(x, w, row, count, n, scale, out, out_stride);
}

#if defined(__x86_64__) && defined(__GNUC__)
#define MLX_SHIM_F16C __attribute__((target("avx2,fma,f16c")))

// Whether this CPU runs the MLX_SHIM_F16C functions (checked once).
bool has_f16c() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                          __builtin_cpu_supports("f16c");
  return yes;
}
MLX_SHIM_F16C inline __m256 widen8(const _Float16* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

MLX_SHIM_F16C inline float sum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

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

void dots(const float* x, const _Float16* w, int64_t row, size_t count, size_t n, float scale,
          float* out, size_t out_stride) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (has_f16c()) return dots_f16c(x, w, row, count, n, scale, out, out_stride);
#endif
  dots_of(x, w, row, count, n, scale, out, out_stride);
}

// Every Whisper model's attention heads are 64 wide.
constexpr size_t kHeadWidth = 64;

// weighted_rows for a 64-wide head: all 64 sums stay in registers while the
// rows stream by once, in order, each asked for kRowsAhead early. Each sum
// adds the same products in the same order as the general loop, which
// walks the rows once per eight outputs (one query over 1500 f16 rows and
// 6 heads, with the keys' prefetch, standalone: 365 -> 238 us per layer).
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

MLX_SHIM_MULTIVERSION
void weighted_rows(float* o, const float* p, const float* v, int64_t row, size_t count,
                   size_t n) {
  weighted_rows_of(o, p, v, row, count, n);
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

// f16 values (cross-attention keys and values of a quantized model).
void weighted_rows(float* o, const float* p, const _Float16* v, int64_t row, size_t count,
                   size_t n) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (has_f16c()) return weighted_rows_f16c(o, p, v, row, count, n);
#endif
  weighted_rows_of(o, p, v, row, count, n);
}

// y += a x
MLX_SHIM_MULTIVERSION
void axpy(float* y, const float* x, float a, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] += a * x[i];
}

// ---------------------------------------------------------------------------
// Attention.

using CblasSgemm = void (*)(int, int, int, int, int, int, float, const float*, int, const float*,
                            int, float, float*, int);

// The process's cblas_sgemm (OpenBLAS when the build linked it, else the BLAS
// libmlx brings), looked up at run time so that builds without one still link.
CblasSgemm sgemm_fn() {
  static CblasSgemm fn = [] {
    if (const char* v = std::getenv("MLX_ASR_SDPA_BLAS"); v != nullptr && v[0] == '0') {
      return static_cast<CblasSgemm>(nullptr);
    }
    return reinterpret_cast<CblasSgemm>(dlsym(RTLD_DEFAULT, "cblas_sgemm"));
  }();
  return fn;
}
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;

// A [B, H, N, D] operand: its data and element strides (any layout).
template <class T>
struct OperandOf {
  const T* data;
  int64_t s0, s1, s2, s3;
  int dims[4];
  const T* row(int b, int h, int64_t i) const { return data + b * s0 + h * s1 + i * s2; }
};
using Operand = OperandOf<float>;

template <class T>
OperandOf<T> operand_of(const mx::array& a) {
  const auto& st = a.strides();
  OperandOf<T> o{reinterpret_cast<const T*>(a.data<void>()), st[0], st[1], st[2], st[3], {}};
  for (int i = 0; i < 4; ++i) o.dims[i] = a.shape(i);
  return o;
}

// A packed row-major copy of an operand whose last axis is strided.
Operand packed(const Operand& a, std::vector<float>& store) {
  if (a.s3 == 1 || a.dims[3] <= 1) return a;
  int64_t d = a.dims[3], n = a.dims[2], h = a.dims[1], b = a.dims[0];
  store.resize(static_cast<size_t>(b * h * n * d));
  float* out = store.data();
  for (int64_t i0 = 0; i0 < b; ++i0)
    for (int64_t i1 = 0; i1 < h; ++i1)
      for (int64_t i2 = 0; i2 < n; ++i2)
        for (int64_t i3 = 0; i3 < d; ++i3)
          *out++ = a.data[i0 * a.s0 + i1 * a.s1 + i2 * a.s2 + i3 * a.s3];
  return Operand{store.data(), h * n * d, n * d, d, 1, {a.dims[0], a.dims[1], a.dims[2], a.dims[3]}};
}

struct AttentionShape {
  int B, H, Hk, L, S, D, Dv;
  float scale;
  bool causal;
  // Keys that query i may see.
  int valid(int i) const { return causal ? std::clamp(i + S - L + 1, 0, S) : S; }
};

// Few queries per head (decoding): scores, softmax and the weighted sum of
// values without GEMM calls, which would cost more than the work. Each
// key and value row is read once per head, for all of the head's queries.
template <class KV>
void attention_rows(const AttentionShape& sh, const Operand& q, const OperandOf<KV>& k,
                    const OperandOf<KV>& v, float* out) {
  size_t heads = static_cast<size_t>(sh.B) * sh.H;
  double cost = static_cast<double>(heads) * sh.L * sh.S * (sh.D + sh.Dv + 8);
  int rep = sh.H / sh.Hk;
  parallel_rows(heads, cost, [&](size_t h0, size_t h1) {
    std::vector<float> scores(static_cast<size_t>(sh.L) * sh.S);
    for (size_t bh = h0; bh < h1; ++bh) {
      int h = static_cast<int>(bh % sh.H);
      int b = static_cast<int>(bh / sh.H);
      int hk = h / rep;
      float* o = out + bh * sh.L * sh.Dv;
      std::fill(o, o + static_cast<size_t>(sh.L) * sh.Dv, 0.0f);
      // Key blocks small enough to stay in cache across the head's queries.
      constexpr int kKeyBlock = 256;
      int longest = sh.valid(sh.L - 1);
      for (int j0 = 0; j0 < longest; j0 += kKeyBlock) {
        int j1 = std::min(longest, j0 + kKeyBlock);
        for (int i = 0; i < sh.L; ++i) {
          int count = std::min(j1, sh.valid(i)) - j0;
          if (count <= 0) continue;
          dots(q.row(b, h, i), k.row(b, hk, j0), k.s2, static_cast<size_t>(count),
               static_cast<size_t>(sh.D), sh.scale, scores.data() + static_cast<size_t>(i) * sh.S + j0,
               1);
        }
      }
      for (int i = 0; i < sh.L; ++i) {
        float* row = scores.data() + static_cast<size_t>(i) * sh.S;
        softmax_row(row, row, sh.valid(i), longest);
      }
      for (int j0 = 0; j0 < longest; j0 += kKeyBlock) {
        int j1 = std::min(longest, j0 + kKeyBlock);
        for (int i = 0; i < sh.L; ++i) {
          int count = std::min(j1, sh.valid(i)) - j0;
          if (count <= 0) continue;
          weighted_rows(o + static_cast<size_t>(i) * sh.Dv,
                        scores.data() + static_cast<size_t>(i) * sh.S + j0, v.row(b, hk, j0), v.s2,
                        static_cast<size_t>(count), static_cast<size_t>(sh.Dv));
        }
      }
    }
  });
}

// Per head and block of queries: S = scale q kᵀ and O = P v through BLAS,
// the softmax of S's rows on the pool in between. The scores buffer is kept
// across calls (no fresh pages to fault in each time).
void attention_blas(const AttentionShape& sh, const Operand& q, const Operand& k,
                    const Operand& v, float* out, CblasSgemm sgemm) {
  // Measured on Whisper's encoder (1500 queries): one block per head beats
  // blocks of 64-256 queries (24.5 vs 27-36 ms for 6 heads), the GEMM calls'
  // own overhead outweighing the cache misses; blocks only bound the memory.
  constexpr int kQueryBlock = 2048;
  thread_local std::vector<float> scores;
  size_t need = static_cast<size_t>(std::min(sh.L, kQueryBlock)) * sh.S;
  if (scores.size() < need) scores.resize(need);
  int rep = sh.H / sh.Hk;
  for (int b = 0; b < sh.B; ++b) {
    for (int h = 0; h < sh.H; ++h) {
      int hk = h / rep;
      float* o = out + (static_cast<size_t>(b) * sh.H + h) * sh.L * sh.Dv;
      for (int l0 = 0; l0 < sh.L; l0 += kQueryBlock) {
        int m = std::min(kQueryBlock, sh.L - l0);
        // Keys any query of the block may see.
        int keys = sh.valid(l0 + m - 1);
        float* p = scores.data();
        if (keys == 0) {
          std::fill(o + static_cast<size_t>(l0) * sh.Dv, o + static_cast<size_t>(l0 + m) * sh.Dv,
                    std::numeric_limits<float>::quiet_NaN());
          continue;
        }
        sgemm(kRowMajor, kNoTrans, kTrans, m, keys, sh.D, sh.scale, q.row(b, h, l0),
              static_cast<int>(q.s2), k.row(b, hk, 0), static_cast<int>(k.s2), 0.0f, p, keys);
        parallel_rows(static_cast<size_t>(m), static_cast<double>(m) * keys * 8,
                      [&](size_t r0, size_t r1) {
                        for (size_t i = r0; i < r1; ++i) {
                          float* row = p + i * keys;
                          softmax_row(row, row, sh.valid(l0 + static_cast<int>(i)), keys);
                        }
                      });
        sgemm(kRowMajor, kNoTrans, kNoTrans, m, sh.Dv, keys, 1.0f, p, keys, v.row(b, hk, 0),
              static_cast<int>(v.s2), 0.0f, o + static_cast<size_t>(l0) * sh.Dv, sh.Dv);
      }
    }
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
#define MLX_SHIM_AVX512 __attribute__((target("avx512f,fma,f16c")))

bool has_avx512() {
  static const bool yes = __builtin_cpu_supports("avx512f");
  return yes;
}

// Many queries with 64-wide values on AVX-512: per task, a block of queries
// takes its scores against every key it may see (the keys transposed once
// per head in tiles of 64 keys, [D][64] each, so that 64 consecutive keys
// are four vectors per dimension in one contiguous block), the
// softmax of those rows and their weighted sum of values, all while the
// block's scores stay in L2. Where the BLAS route writes each head's
// [L, S] scores to memory and reads them back three times, this one streams
// only the keys and values, which stay cached for the head's blocks.
constexpr int kFusedValues = 64;
constexpr int kFusedQueries = 16;
constexpr int kFusedKeys = 64;  // keys per score tile and per value chunk

// s[r][j0, j0 + 64) = scale q_r · k_j for R query rows; kt is the tile of
// keys j0.. as [D][64].
template <int R>
MLX_SHIM_AVX512 void score_tile(const float* const* q, const float* kt, int D, int j0,
                                float scale, float* const* s) {
  __m512 acc[R][4];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < 4; ++c) acc[r][c] = _mm512_setzero_ps();
  for (int d = 0; d < D; ++d) {
    const float* kd = kt + static_cast<size_t>(d) * kFusedKeys;
    __m512 k[4] = {_mm512_loadu_ps(kd), _mm512_loadu_ps(kd + 16), _mm512_loadu_ps(kd + 32),
                   _mm512_loadu_ps(kd + 48)};
    for (int r = 0; r < R; ++r) {
      __m512 qd = _mm512_set1_ps(q[r][d]);
      for (int c = 0; c < 4; ++c) acc[r][c] = _mm512_fmadd_ps(qd, k[c], acc[r][c]);
    }
  }
  __m512 sc = _mm512_set1_ps(scale);
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < 4; ++c) _mm512_storeu_ps(s[r] + j0 + 16 * c, _mm512_mul_ps(acc[r][c], sc));
}

// o_r += sum over j in [j0, j1) of p_r[j] v_j for R rows of 64 values.
template <int R>
MLX_SHIM_AVX512 void value_tile(const float* const* p, const float* v, int64_t stride, int j0,
                                int j1, float* const* o) {
  __m512 acc[R][4];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < 4; ++c) acc[r][c] = _mm512_loadu_ps(o[r] + 16 * c);
  for (int j = j0; j < j1; ++j) {
    const float* vj = v + j * stride;
    __m512 w[4] = {_mm512_loadu_ps(vj), _mm512_loadu_ps(vj + 16), _mm512_loadu_ps(vj + 32),
                   _mm512_loadu_ps(vj + 48)};
    for (int r = 0; r < R; ++r) {
      __m512 pj = _mm512_set1_ps(p[r][j]);
      for (int c = 0; c < 4; ++c) acc[r][c] = _mm512_fmadd_ps(pj, w[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < 4; ++c) _mm512_storeu_ps(o[r] + 16 * c, acc[r][c]);
}

// exp_f32 on 16 lanes (the same reduction and polynomial; 2^n applied by
// scalef). Below the range it gives 0; a NaN stays NaN.
MLX_SHIM_AVX512 inline __m512 exp16(__m512 x) {
  const __m512 lo = _mm512_set1_ps(-87.3365447504f);
  __m512 xc = _mm512_min_ps(_mm512_max_ps(x, lo), _mm512_set1_ps(88.0f));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc);
  r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  __m512 y = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, lo, _CMP_NLT_UQ), _mm512_scalef_ps(p, n));
  return _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
}

// softmax_row on 16 lanes, for the fused kernel's score rows, except that
// the row is left unnormalized and the normalizing factor returned: the
// caller scales the 64-wide output instead of the row.
MLX_SHIM_AVX512 float softmax_row_unscaled16(float* y, size_t valid, size_t n) {
  __m512 mv = _mm512_set1_ps(kNegInf);
  size_t i = 0;
  for (; i + 16 <= valid; i += 16) mv = _mm512_max_ps(mv, _mm512_loadu_ps(y + i));
  __mmask16 tail = static_cast<__mmask16>((1u << (valid - i)) - 1);
  mv = _mm512_max_ps(mv, _mm512_mask_loadu_ps(_mm512_set1_ps(kNegInf), tail, y + i));
  float m = _mm512_reduce_max_ps(mv);
  float factor = 1.0f;
  if (valid == 0 || m == kNegInf || std::isnan(m)) {
    std::fill(y, y + valid, std::numeric_limits<float>::quiet_NaN());
  } else {
    __m512 mm = _mm512_set1_ps(m), sum = _mm512_setzero_ps();
    for (i = 0; i + 16 <= valid; i += 16) {
      __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(y + i), mm));
      _mm512_storeu_ps(y + i, e);
      sum = _mm512_add_ps(sum, e);
    }
    __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, y + i), mm));
    _mm512_mask_storeu_ps(y + i, tail, e);
    sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(tail, e));
    factor = 1.0f / _mm512_reduce_add_ps(sum);
  }
  std::fill(y + valid, y + n, 0.0f);
  return factor;
}

// f.template operator()<left>(r) when 0 < left <= R.
template <int R, class F>
void row_group_rest(int left, int r, F& f) {
  if constexpr (R > 0) {
    if (left == R) {
      f.template operator()<R>(r);
    } else {
      row_group_rest<R - 1>(left, r, f);
    }
  }
}

// Calls f.template operator()<R>(first row) for groups of Tile rows, then
// once for the rest (R < Tile): register tiles with a compile-time height.
template <int Tile, class F>
void in_row_groups(int rows, F&& f) {
  int r = 0;
  for (; r + Tile <= rows; r += Tile) f.template operator()<Tile>(r);
  row_group_rest<Tile - 1>(rows - r, r, f);
}

// One head's keys into tiles [S / 64][D][64] and values into rows [S][64],
// as f32. A function of its own for the target attribute: the lambdas that
// call it do not inherit it, and without F16C each f16 key would be widened
// by a library call.
template <class KV>
MLX_SHIM_AVX512 void pack_head(const OperandOf<KV>& k, const OperandOf<KV>& v, int b, int hk,
                               int S, int D, float* kt, float* packed_values) {
  for (int j = 0; j < S; ++j) {
    const KV* kj = k.row(b, hk, j);
    float* tile = kt + static_cast<size_t>(j / kFusedKeys) * D * kFusedKeys + j % kFusedKeys;
    for (int d = 0; d < D; ++d) tile[static_cast<size_t>(d) * kFusedKeys] = static_cast<float>(kj[d]);
    const KV* vj = v.row(b, hk, j);
    float* vrow = packed_values + static_cast<size_t>(j) * kFusedValues;
    for (int c = 0; c < kFusedValues; ++c) vrow[c] = static_cast<float>(vj[c]);
  }
}

template <class KV>
MLX_SHIM_AVX512 void attention_fused(const AttentionShape& sh, const Operand& q,
                                     const OperandOf<KV>& k, const OperandOf<KV>& v, float* out) {
  // Keys transposed per (batch, key head): tiles [stride / 64][D][64], zero
  // past S. Values packed per head, [S][64]: a view's rows (a slice of the
  // stacked q/k/v projection) lie a page or more apart, one TLB entry each.
  size_t stride = static_cast<size_t>((sh.S + kFusedKeys - 1) / kFusedKeys) * kFusedKeys;
  size_t per_head = static_cast<size_t>(sh.D) * stride;
  size_t values_per_head = static_cast<size_t>(sh.S) * kFusedValues;
  size_t kv_heads = static_cast<size_t>(sh.B) * sh.Hk;
  thread_local AlignedVec<float> transposed, values;
  transposed.assign(kv_heads * per_head, 0.0f);
  values.resize(kv_heads * values_per_head);
  float* kt_all = transposed.data();
  float* v_all = values.data();
  parallel_rows(kv_heads, static_cast<double>(kv_heads) * per_head, [&](size_t h0, size_t h1) {
    for (size_t bh = h0; bh < h1; ++bh) {
      int b = static_cast<int>(bh / sh.Hk), hk = static_cast<int>(bh % sh.Hk);
      pack_head(k, v, b, hk, sh.S, sh.D, kt_all + bh * per_head, v_all + bh * values_per_head);
    }
  });
  int blocks = (sh.L + kFusedQueries - 1) / kFusedQueries;
  size_t tasks = static_cast<size_t>(sh.B) * sh.H * blocks;
  double cost = static_cast<double>(sh.B) * sh.H * sh.L * sh.S * (sh.D + sh.Dv + 8);
  int rep = sh.H / sh.Hk;
  parallel_rows(tasks, cost, [&](size_t t0, size_t t1) {
    thread_local AlignedVec<float> scores, acc;
    scores.resize(kFusedQueries * stride);
    acc.resize(kFusedQueries * kFusedValues);
    for (size_t t = t0; t < t1; ++t) {
      int blk = static_cast<int>(t % blocks);
      int h = static_cast<int>(t / blocks % sh.H), b = static_cast<int>(t / blocks / sh.H);
      int hk = h / rep;
      int i0 = blk * kFusedQueries, rows = std::min(kFusedQueries, sh.L - i0);
      int keys = sh.valid(i0 + rows - 1);  // the most any row of the block sees
      const float* kt = kt_all + (static_cast<size_t>(b) * sh.Hk + hk) * per_head;
      const float* qr[kFusedQueries];
      float* sr[kFusedQueries];
      float* orow[kFusedQueries];
      float factor[kFusedQueries];
      for (int r = 0; r < rows; ++r) {
        qr[r] = q.row(b, h, i0 + r);
        sr[r] = scores.data() + static_cast<size_t>(r) * stride;
        orow[r] = acc.data() + static_cast<size_t>(r) * kFusedValues;
      }
      for (int j0 = 0; j0 < keys; j0 += kFusedKeys) {
        in_row_groups<4>(rows, [&]<int R>(int r) {
          score_tile<R>(qr + r, kt + static_cast<size_t>(j0) * sh.D, sh.D, j0, sh.scale, sr + r);
        });
      }
      for (int r = 0; r < rows; ++r) {
        int valid = sh.valid(i0 + r);
        factor[r] = softmax_row_unscaled16(sr[r], static_cast<size_t>(valid),
                                           static_cast<size_t>(keys));
      }
      std::fill(acc.begin(), acc.end(), 0.0f);
      const float* vh = v_all + (static_cast<size_t>(b) * sh.Hk + hk) * values_per_head;
      for (int j0 = 0; j0 < keys; j0 += kFusedKeys) {
        int j1 = std::min(keys, j0 + kFusedKeys);
        in_row_groups<4>(rows, [&]<int R>(int r) {
          value_tile<R>(sr + r, vh, kFusedValues, j0, j1, orow + r);
        });
      }
      for (int r = 0; r < rows; ++r) {
        float* o = out + ((static_cast<size_t>(b) * sh.H + h) * sh.L + i0 + r) * sh.Dv;
        for (int c = 0; c < kFusedValues; ++c) o[c] = orow[r][c] * factor[r];
      }
    }
  });
}
#else
bool has_avx512() { return false; }
template <class KV>
void attention_fused(const AttentionShape&, const Operand&, const OperandOf<KV>&,
                     const OperandOf<KV>&, float*) {}
#endif

// Query lengths up to this use attention_rows.
constexpr int kRowsUpTo = 16;

// Whether attention_fused serves L queries with Dv-wide values here.
bool fused_attention_for(int L, int Dv) {
  return L > kRowsUpTo && Dv == kFusedValues && has_avx512();
}

void attention(const AttentionShape& sh, Operand q, Operand k, Operand v, float* out) {
  std::vector<float> qs, ks, vs;
  q = packed(q, qs);
  k = packed(k, ks);
  v = packed(v, vs);
  auto sgemm = sgemm_fn();
  // BLAS wants its leading dimensions at least the row length.
  bool blas_ok = sgemm != nullptr && q.s2 >= sh.D && k.s2 >= sh.D && v.s2 >= sh.Dv &&
                 q.s2 <= INT32_MAX && k.s2 <= INT32_MAX && v.s2 <= INT32_MAX;
  if (sh.L <= kRowsUpTo || !blas_ok) {
    attention_rows(sh, q, k, v, out);
  } else if (fused_attention_for(sh.L, sh.Dv)) {
    attention_fused(sh, q, k, v, out);
  } else {
    attention_blas(sh, q, k, v, out, sgemm);
  }
}

// ---------------------------------------------------------------------------
// Matrix times a few vectors.

// The epilogue's operands on the host: bias (quantized matmuls; the dense
// kernel folds its bias in with beta), GELU, residual [M, N].
struct EpilogueRun {
  const float* bias;
  bool gelu;
  const float* residual;
};

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

struct MatmulShape {
  size_t M, K, N;
  int64_t bk, bn;  // strides of b [K, N]
  float alpha, beta;
};

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

// ---------------------------------------------------------------------------
// A few rows times an affine-quantized matrix (MLX's format): w[n, k] is
// scale[n, g] * q[n, k] + bias[n, g] for k in group g, the q packed `bits`
// wide into u32 words, lowest bits first.

// Rows of a (all leading axes together) up to this use SmallMatmul and the
// few-row quantized product.
constexpr size_t kSmallMatmulRows = 8;

struct QuantShape {
  size_t M, K, N;
  int group, bits;
};

// Scales and biases as f32 (f16 tables widened).
template <class S>
inline float as_f32(S v) {
  return static_cast<float>(v);
}

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
// b is about the group's largest |w|: in Whisper tiny.en's encoder, 3x the
// error.) One scale per group rather than per row (CTranslate2's int8)
// costs a multiply per group and output, and keeps a few large channels
// from coarsening the rounding of the whole row.

// Columns per packed panel: two 16-lane vectors.
constexpr size_t kPanel = 32;
// Rows per micro-tile.
constexpr int kTileRows = 6;

struct Int8Shape {
  size_t M, K, N, group;
  size_t groups() const { return K / group; }
  size_t panels() const { return (N + kPanel - 1) / kPanel; }
};

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
#define MLX_SHIM_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,fma")))

bool has_vnni() {
  static const bool yes = has_avx512() && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl") &&
                          __builtin_cpu_supports("avx512vnni");
  return yes;
}

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
#else
bool has_vnni() { return false; }
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

// ---------------------------------------------------------------------------
// Primitives.

void alloc_or_donate(const mx::array& in, mx::array& out) {
  if (in.is_donatable() && in.flags().row_contiguous && in.dtype() == out.dtype() &&
      in.size() == out.size()) {
    out.copy_shared_buffer(in);
  } else {
    out.set_data(mx::allocator::malloc(out.nbytes()));
  }
}

void require_row_contiguous(const mx::array& a, const char* who) {
  if (!a.flags().row_contiguous) {
    throw std::runtime_error(std::string(who) + ": input is not row-contiguous");
  }
}

class CpuOnly : public mx::UnaryPrimitive {
 public:
  using mx::UnaryPrimitive::UnaryPrimitive;
  void eval_gpu(const std::vector<mx::array>&, mx::array&) override {
    throw std::runtime_error(std::string(name()) + " has no GPU kernel");
  }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override {
    return {inputs[0].shape()};
  }

 protected:
  // Runs `task` on this primitive's stream, in order with the rest of the
  // lazy graph, as MLX's own CPU primitives do.
  template <class F>
  void encode(const std::vector<mx::array>& inputs, mx::array& out, F&& task) {
    auto& enc = mx::cpu::get_command_encoder(stream());
    for (auto& a : inputs) enc.set_input_array(a);
    enc.set_output_array(out);
    enc.dispatch(std::forward<F>(task));
  }
};

class SoftmaxLast : public CpuOnly {
 public:
  using CpuOnly::CpuOnly;
  const char* name() const override { return "MlxAsrSoftmaxLast"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    return dynamic_cast<const SoftmaxLast*>(&other) != nullptr;
  }
  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override {
    const auto& in = inputs[0];
    require_row_contiguous(in, name());
    alloc_or_donate(in, out);
    size_t n = in.ndim() == 0 ? 1 : static_cast<size_t>(in.shape(-1));
    size_t rows = n == 0 ? 0 : in.size() / n;
    const float* x = in.data<float>();
    float* y = out.data<float>();
    encode(inputs, out, [x, y, rows, n] {
      parallel_rows(rows, static_cast<double>(rows) * n * 8, [&](size_t r0, size_t r1) {
        for (size_t r = r0; r < r1; ++r) softmax_row(x + r * n, y + r * n, n, n);
      });
    });
  }
};

class Gelu : public CpuOnly {
 public:
  using CpuOnly::CpuOnly;
  const char* name() const override { return "MlxAsrGelu"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    return dynamic_cast<const Gelu*>(&other) != nullptr;
  }
  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override {
    const auto& in = inputs[0];
    require_row_contiguous(in, name());
    alloc_or_donate(in, out);
    size_t n = in.size();
    const float* x = in.data<float>();
    float* y = out.data<float>();
    encode(inputs, out, [x, y, n] {
      // Blocks of 4096 elements, split over the pool.
      constexpr size_t kBlock = 4096;
      size_t blocks = (n + kBlock - 1) / kBlock;
      parallel_rows(blocks, static_cast<double>(n) * 30, [&](size_t b0, size_t b1) {
        size_t i0 = b0 * kBlock, i1 = std::min(n, b1 * kBlock);
        if (i1 > i0) gelu_span(x + i0, y + i0, i1 - i0);
      });
    });
  }
};

class LayerNormLast : public CpuOnly {
 public:
  LayerNormLast(mx::Stream s, float eps, bool has_w, bool has_b)
      : CpuOnly(s), eps_(eps), has_w_(has_w), has_b_(has_b) {}
  const char* name() const override { return "MlxAsrLayerNorm"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const LayerNormLast*>(&other);
    return o != nullptr && o->eps_ == eps_ && o->has_w_ == has_w_ && o->has_b_ == has_b_;
  }
  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override {
    const auto& in = inputs[0];
    require_row_contiguous(in, name());
    size_t idx = 1;
    const float* w = nullptr;
    const float* b = nullptr;
    if (has_w_) {
      require_row_contiguous(inputs[idx], name());
      w = inputs[idx++].data<float>();
    }
    if (has_b_) {
      require_row_contiguous(inputs[idx], name());
      b = inputs[idx++].data<float>();
    }
    alloc_or_donate(in, out);
    size_t n = static_cast<size_t>(in.shape(-1));
    size_t rows = n == 0 ? 0 : in.size() / n;
    const float* x = in.data<float>();
    float* y = out.data<float>();
    float eps = eps_;
    encode(inputs, out, [x, y, w, b, rows, n, eps] {
      parallel_rows(rows, static_cast<double>(rows) * n * 6, [&](size_t r0, size_t r1) {
        for (size_t r = r0; r < r1; ++r) layer_norm_row(x + r * n, y + r * n, n, w, b, eps);
      });
    });
  }

 private:
  float eps_;
  bool has_w_, has_b_;
};

#if defined(__x86_64__) && defined(__GNUC__)
// y = x rounded to f16 (to nearest, ties to even), eight at a time.
MLX_SHIM_F16C void narrow_f16c(const float* x, _Float16* y, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), h);
  }
  for (; i < n; ++i) y[i] = static_cast<_Float16>(x[i]);
}
#endif

// y[i] = x[i * stride] for i < n, as T (f32, or f16 rounded to nearest even).
template <class T>
void copy_span(const float* x, int64_t stride, T* y, size_t n) {
  if (stride == 1) {
    if constexpr (std::is_same_v<T, float>) {
      std::memcpy(y, x, n * sizeof(float));
      return;
    } else {
#if defined(__x86_64__) && defined(__GNUC__)
      if (has_f16c()) return narrow_f16c(x, y, n);
#endif
    }
  }
  for (size_t i = 0; i < n; ++i) y[i] = static_cast<T>(x[static_cast<int64_t>(i) * stride]);
}

// The rows of a [d0, d1, d2, d3] view with strides s into y, row-major.
template <class T>
void row_major_run(const float* x, std::array<int64_t, 4> d, std::array<int64_t, 4> s, T* y) {
  size_t rows = static_cast<size_t>(d[0] * d[1] * d[2]), n = static_cast<size_t>(d[3]);
  parallel_rows(rows, static_cast<double>(rows) * n, [&](size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; ++r) {
      int64_t i = static_cast<int64_t>(r);
      const float* row = x + i / (d[1] * d[2]) * s[0] + i / d[2] % d[1] * s[1] + i % d[2] * s[2];
      copy_span(row, s[3], y + r * n, n);
    }
  });
}

// A row-major copy of an f32 view of up to four axes, in f32 or f16. MLX's
// own copy walks a transposed view value by value, and its f32 -> f16
// conversion is a software routine in builds for baseline x86-64 (about
// 5 ns a value); the decoder's cross-attention keys and values take both,
// per window.
class RowMajorCopy : public CpuOnly {
 public:
  RowMajorCopy(mx::Stream s, mx::Dtype dtype) : CpuOnly(s), dtype_(dtype) {}
  const char* name() const override { return "MlxAsrRowMajorCopy"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const RowMajorCopy*>(&other);
    return o != nullptr && o->dtype_ == dtype_;
  }
  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override {
    const auto& in = inputs[0];
    out.set_data(mx::allocator::malloc(out.nbytes()));
    std::array<int64_t, 4> dims{1, 1, 1, 1}, strides{0, 0, 0, 0};
    int lead = 4 - static_cast<int>(in.ndim());
    for (int i = 0; i < static_cast<int>(in.ndim()); ++i) {
      dims[lead + i] = in.shape(i);
      strides[lead + i] = in.strides()[i];
    }
    const float* x = in.data<float>();
    if (dtype_ == mx::float16) {
      auto* y = out.data<_Float16>();
      encode(inputs, out, [=] { row_major_run(x, dims, strides, y); });
    } else {
      float* y = out.data<float>();
      encode(inputs, out, [=] { row_major_run(x, dims, strides, y); });
    }
  }

 private:
  mx::Dtype dtype_;
};

// Rows `rows` of a [B, H, C, D] cache as a new [N, H, C, D], of which
// only the first `filled` positions of each (row, head) are copied: beam
// search reorders its self-attention caches most steps, and MLX's take
// copied all C positions (C up to twice the filled ones), on one thread.
// The other positions are left as the allocator gives them; the caches
// write each before anything reads it.
class SelectRows : public CpuOnly {
 public:
  SelectRows(mx::Stream s, std::vector<int32_t> rows, int filled)
      : CpuOnly(s), rows_(std::move(rows)), filled_(filled) {}
  const char* name() const override { return "MlxAsrSelectRows"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const SelectRows*>(&other);
    return o != nullptr && o->rows_ == rows_ && o->filled_ == filled_;
  }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override {
    auto shape = inputs[0].shape();
    shape[0] = static_cast<int>(rows_.size());
    return {shape};
  }
  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override {
    const auto& in = inputs[0];
    require_row_contiguous(in, name());
    out.set_data(mx::allocator::malloc(out.nbytes()));
    size_t heads = static_cast<size_t>(in.shape(1));
    size_t block = static_cast<size_t>(in.shape(2)) * in.shape(3) * in.itemsize();
    size_t bytes = static_cast<size_t>(filled_) * in.shape(3) * in.itemsize();
    const auto* x = in.data<uint8_t>();
    auto* y = out.data<uint8_t>();
    encode(inputs, out, [x, y, heads, block, bytes, rows = rows_] {
      size_t n = rows.size() * heads;
      parallel_rows(n, static_cast<double>(n * bytes), [&](size_t i0, size_t i1) {
        for (size_t i = i0; i < i1; ++i) {
          size_t r = i / heads, h = i % heads;
          const uint8_t* from = x + (static_cast<size_t>(rows[r]) * heads + h) * block;
          std::memcpy(y + i * block, from, bytes);
        }
      });
    });
  }

 private:
  std::vector<int32_t> rows_;
  int filled_;
};

class Attention : public CpuOnly {
 public:
  Attention(mx::Stream s, float scale, bool causal) : CpuOnly(s), scale_(scale), causal_(causal) {}
  const char* name() const override { return "MlxAsrAttention"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const Attention*>(&other);
    return o != nullptr && o->scale_ == scale_ && o->causal_ == causal_;
  }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override {
    auto shape = inputs[0].shape();
    shape.back() = inputs[2].shape(-1);
    return {shape};
  }
  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override {
    const auto &q = inputs[0], &k = inputs[1], &v = inputs[2];
    out.set_data(mx::allocator::malloc(out.nbytes()));
    AttentionShape sh{q.shape(0), q.shape(1), k.shape(1), q.shape(2), k.shape(2),
                      q.shape(3), v.shape(3), scale_, causal_};
    float* o = out.data<float>();
    size_t size = static_cast<size_t>(sh.B) * sh.H * sh.L * sh.Dv;
    if (size == 0) return;
    if (sh.S == 0) {
      encode(inputs, out,
             [o, size] { std::fill(o, o + size, std::numeric_limits<float>::quiet_NaN()); });
      return;
    }
    auto qo = operand_of<float>(q);
    if (k.dtype() == mx::float16) {
      // f16 keys and values, rows contiguous (see sdpa()): few queries read
      // them as they are, the fused kernel widens them as it packs them.
      auto ko = operand_of<_Float16>(k), vo = operand_of<_Float16>(v);
      if (fused_attention_for(sh.L, sh.Dv)) {
        encode(inputs, out, [sh, qo, ko, vo, o] { attention_fused(sh, qo, ko, vo, o); });
      } else {
        encode(inputs, out, [sh, qo, ko, vo, o] { attention_rows(sh, qo, ko, vo, o); });
      }
      return;
    }
    auto ko = operand_of<float>(k), vo = operand_of<float>(v);
    encode(inputs, out, [sh, qo, ko, vo, o] { attention(sh, qo, ko, vo, o); });
  }

 private:
  float scale_;
  bool causal_;
};

// Which epilogue a matmul primitive applies; its bias and residual arrays
// follow the primitive's own operands in its inputs, in that order.
struct EpilogueFlags {
  bool bias = false, gelu = false, residual = false;
  bool operator==(const EpilogueFlags&) const = default;

  // The host pointers, from the inputs after the first `operands`.
  EpilogueRun run(const std::vector<mx::array>& inputs, size_t operands) const {
    size_t i = operands;
    const float* b = bias ? inputs[i++].data<float>() : nullptr;
    const float* r = residual ? inputs[i].data<float>() : nullptr;
    return {b, gelu, r};
  }
};

class SmallMatmul : public CpuOnly {
 public:
  SmallMatmul(mx::Stream s, float alpha, float beta, EpilogueFlags epilogue)
      : CpuOnly(s), alpha_(alpha), beta_(beta), epilogue_(epilogue) {}
  const char* name() const override { return "MlxAsrSmallMatmul"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const SmallMatmul*>(&other);
    return o != nullptr && o->alpha_ == alpha_ && o->beta_ == beta_ && o->epilogue_ == epilogue_;
  }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override {
    auto shape = inputs[0].shape();
    shape.back() = inputs[1].shape(1);
    return {shape};
  }
  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override {
    const auto& a = inputs[0];
    const auto& b = inputs[1];
    require_row_contiguous(a, name());
    for (size_t i = 2; i < inputs.size(); ++i) require_row_contiguous(inputs[i], name());
    // The bias (c) goes in with beta inside the dot products' loop.
    auto e = epilogue_.run(inputs, 2);
    const float* c = e.bias;
    e.bias = nullptr;
    out.set_data(mx::allocator::malloc(out.nbytes()));
    MatmulShape sh{};
    sh.K = static_cast<size_t>(b.shape(0));
    sh.N = static_cast<size_t>(b.shape(1));
    sh.M = sh.K == 0 ? 0 : a.size() / sh.K;
    sh.bk = b.strides()[0];
    sh.bn = b.strides()[1];
    sh.alpha = alpha_;
    sh.beta = beta_;
    const float* x = a.data<float>();
    float* y = out.data<float>();
    if (b.dtype() == mx::float16) {
      const auto* w = reinterpret_cast<const _Float16*>(b.data<mx::float16_t>());
      encode(inputs, out, [sh, x, w, c, e, y] { small_matmul_run(sh, x, w, c, e, y); });
    } else {
      const float* w = b.data<float>();
      encode(inputs, out, [sh, x, w, c, e, y] { small_matmul_run(sh, x, w, c, e, y); });
    }
  }

 private:
  float alpha_, beta_;
  EpilogueFlags epilogue_;
};

// Runs `f(scales, biases)` with the tables as typed pointers (f32 or f16).
template <class F>
void with_tables(const mx::array& scales, const mx::array& biases, F&& f) {
  if (scales.dtype() == mx::float16) {
    f(reinterpret_cast<const _Float16*>(scales.data<mx::float16_t>()),
      reinterpret_cast<const _Float16*>(biases.data<mx::float16_t>()));
  } else {
    f(scales.data<float>(), biases.data<float>());
  }
}

// A primitive over an affine-quantized matrix: its group size and width.
template <class Self>
class QuantizedPrimitive : public CpuOnly {
 public:
  QuantizedPrimitive(mx::Stream s, int group, int bits) : CpuOnly(s), group_(group), bits_(bits) {}
  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const Self*>(&other);
    return o != nullptr && o->group_ == group_ && o->bits_ == bits_;
  }

 protected:
  int group_, bits_;
};

// The f32 matrix of an affine-quantized one (MLX's CPU dequantize is scalar).
class Dequantize : public QuantizedPrimitive<Dequantize> {
 public:
  using QuantizedPrimitive::QuantizedPrimitive;
  const char* name() const override { return "MlxAsrDequantize"; }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override {
    return {{inputs[0].shape(0), inputs[0].shape(1) * 32 / bits_}};
  }
  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override {
    for (auto& a : inputs) require_row_contiguous(a, name());
    const auto &w = inputs[0], &scales = inputs[1], &biases = inputs[2];
    out.set_data(mx::allocator::malloc(out.nbytes()));
    QuantShape sh{1, static_cast<size_t>(out.shape(1)), static_cast<size_t>(out.shape(0)), group_,
                  bits_};
    const auto* wq = w.data<uint32_t>();
    float* y = out.data<float>();
    with_tables(scales, biases, [&](auto s, auto b) {
      encode(inputs, out, [sh, wq, s, b, y] { dequantize_run(sh, wq, s, b, y); });
    });
  }
};

// x times the transpose of an affine-quantized matrix, then the epilogue:
// few rows with f32 activations (quant_matmul_run) or any number with int8
// activations (int8_matmul_run).
class QuantizedProduct : public QuantizedPrimitive<QuantizedProduct> {
 public:
  enum class Kernel { FewRows, Int8 };
  QuantizedProduct(mx::Stream s, int group, int bits, EpilogueFlags epilogue, Kernel kernel)
      : QuantizedPrimitive(s, group, bits), epilogue_(epilogue), kernel_(kernel) {}
  const char* name() const override {
    return kernel_ == Kernel::Int8 ? "MlxAsrQuantizedInt8Matmul" : "MlxAsrQuantizedSmallMatmul";
  }
  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const QuantizedProduct*>(&other);
    return QuantizedPrimitive::is_equivalent(other) && o->epilogue_ == epilogue_ &&
           o->kernel_ == kernel_;
  }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override {
    auto shape = inputs[0].shape();
    shape.back() = inputs[1].shape(0);
    return {shape};
  }
  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override {
    for (auto& a : inputs) require_row_contiguous(a, name());
    const auto &a = inputs[0], &w = inputs[1], &scales = inputs[2], &biases = inputs[3];
    out.set_data(mx::allocator::malloc(out.nbytes()));
    size_t K = static_cast<size_t>(a.shape(-1)), N = static_cast<size_t>(w.shape(0));
    size_t M = a.size() / K;
    const float* x = a.data<float>();
    const auto* wq = w.data<uint32_t>();
    float* y = out.data<float>();
    auto e = epilogue_.run(inputs, 4);
    with_tables(scales, biases, [&](auto s, auto b) {
      if (kernel_ == Kernel::Int8) {
        Int8Shape sh{M, K, N, static_cast<size_t>(group_)};
        encode(inputs, out, [sh, x, wq, s, b, e, y] { int8_matmul_run(sh, x, wq, s, b, e, y); });
      } else {
        QuantShape sh{M, K, N, group_, bits_};
        encode(inputs, out, [sh, x, wq, s, b, e, y] { quant_matmul_run(sh, x, wq, s, b, e, y); });
      }
    });
  }

 private:
  EpilogueFlags epilogue_;
  Kernel kernel_;
};

// ---------------------------------------------------------------------------
// One decoding step (one new position per row) of a pre-LN decoder layer:
//   x += out(self-attention(ln1(x)) over the cache and this position)
//   x += out(cross-attention(ln2(x)) over the encoder's keys and values)
//   x += fc2(gelu(fc1(ln3(x))))
// with dense (f32, f16) or quantized projections. The same kernels as the
// layer's ops (so the same values), as one primitive: the ~30 ops of a layer
// each cost a dispatch to the stream's thread and a wake-up of the pool, as
// long as their work on a decoder the size of Whisper's.

// A projection's host pointers: the matrix [N, K] (dense, or quantized
// with its tables), its bias [N], and the kernel its op would run.
struct StepLinear {
  const void* w;
  const void* scales;
  const void* biases;
  const float* bias;
  size_t N, K;
  int group, bits;
  void (*apply)(const StepLinear&, size_t rows, const float* x, bool gelu, const float* residual,
                float* y);
};

template <class S>
void apply_quantized(const StepLinear& l, size_t rows, const float* x, bool gelu,
                     const float* residual, float* y) {
  QuantShape sh{rows, l.K, l.N, l.group, l.bits};
  quant_matmul_run(sh, x, static_cast<const uint32_t*>(l.w), static_cast<const S*>(l.scales),
                   static_cast<const S*>(l.biases), EpilogueRun{l.bias, gelu, residual}, y);
}

// As `linear` runs a dense layer: the transposed weight's product with the
// bias folded in by beta.
template <class W>
void apply_dense(const StepLinear& l, size_t rows, const float* x, bool gelu,
                 const float* residual, float* y) {
  MatmulShape sh{rows, l.K, l.N, 1, static_cast<int64_t>(l.K), 1.0f, 1.0f};
  small_matmul_run(sh, x, static_cast<const W*>(l.w), l.bias, EpilogueRun{nullptr, gelu, residual},
                   y);
}

struct StepShape {
  size_t B, D, F;  // rows, model width, MLP width
  int H, position, cap, S;
  // Cross-attention keys' and values' strides over rows (0: one window's
  // for every row), heads and frames.
  int64_t cross_strides[3];
  float eps;
};

template <class KV>
struct StepArgs {
  const float* x;
  float* out;
  float* k_cache;  // [B, H, cap, D / H]
  float* v_cache;
  const KV* cross_k;  // [B or 1, H, S, D / H]
  const KV* cross_v;
  const float* ln[6];  // weight and bias of each norm
  StepLinear qkv, self_out, cross_q, cross_out, fc1, fc2;
};

template <class KV>
void decoder_layer_step_run(const StepShape& sh, const StepArgs<KV>& a) {
  Pool::Hot hot;
  size_t B = sh.B, D = sh.D, Dh = D / sh.H;
  thread_local AlignedVec<float> scratch;
  scratch.resize(B * (7 * D + sh.F));
  float* h = scratch.data();     // a norm's output [B, D]
  float* qkv = h + B * D;        // [B, 3 D]
  float* att = qkv + 3 * B * D;  // attention output, heads merged [B, D]
  float* x1 = att + B * D;       // after self-attention
  float* x2 = x1 + B * D;        // after cross-attention
  float* f = x2 + B * D;         // [B, F]
  auto norm = [&](const float* in, int i) {
    for (size_t r = 0; r < B; ++r)
      layer_norm_row(in + r * D, h + r * D, D, a.ln[2 * i], a.ln[2 * i + 1], sh.eps);
  };
  auto linear = [&](const StepLinear& l, const float* in, bool gelu, const float* residual,
                    float* y) { l.apply(l, B, in, gelu, residual, y); };
  float scale = std::pow(static_cast<float>(Dh), -0.5f);
  int64_t cap = sh.cap, heads = sh.H;

  norm(a.x, 0);
  linear(a.qkv, h, false, nullptr, qkv);
  for (size_t b = 0; b < B; ++b) {
    for (int64_t hd = 0; hd < heads; ++hd) {
      size_t at = ((b * heads + hd) * cap + sh.position) * Dh;
      const float* row = qkv + b * 3 * D + hd * Dh;
      std::copy(row + D, row + D + Dh, a.k_cache + at);
      std::copy(row + 2 * D, row + 2 * D + Dh, a.v_cache + at);
    }
  }
  int keys = sh.position + 1;
  AttentionShape self{static_cast<int>(B), sh.H, sh.H, 1, keys, static_cast<int>(Dh),
                      static_cast<int>(Dh), scale, false};
  int64_t qs0 = static_cast<int64_t>(3 * D);
  Operand q{qkv, qs0, static_cast<int64_t>(Dh), qs0, 1, {}};
  Operand kc{a.k_cache, heads * cap * static_cast<int64_t>(Dh), cap * static_cast<int64_t>(Dh),
             static_cast<int64_t>(Dh), 1, {}};
  Operand vc{a.v_cache, kc.s0, kc.s1, kc.s2, 1, {}};
  attention_rows(self, q, kc, vc, att);
  linear(a.self_out, att, false, a.x, x1);

  norm(x1, 1);
  linear(a.cross_q, h, false, nullptr, qkv);
  const int64_t* cs = sh.cross_strides;
  OperandOf<KV> ck{a.cross_k, cs[0], cs[1], cs[2], 1, {}};
  OperandOf<KV> cv{a.cross_v, cs[0], cs[1], cs[2], 1, {}};
  // Rows sharing one window's keys and values (beams) attend as one head's
  // B queries, each key and value row read once for all of them (each
  // query's sums are the same as alone); their output comes head by head,
  // [H, B, Dh], into f (free until fc1). Otherwise each row is a batch of
  // one query.
  bool shared = cs[0] == 0 && B > 1;
  int batch = shared ? 1 : static_cast<int>(B), queries = shared ? static_cast<int>(B) : 1;
  AttentionShape cross{batch, sh.H, sh.H, queries, sh.S, static_cast<int>(Dh),
                       static_cast<int>(Dh), scale, false};
  Operand cq{qkv, shared ? 0 : static_cast<int64_t>(D), static_cast<int64_t>(Dh),
             static_cast<int64_t>(D), 1, {}};
  attention_rows(cross, cq, ck, cv, shared ? f : att);
  if (shared) {
    for (int64_t hd = 0; hd < heads; ++hd)
      for (size_t b = 0; b < B; ++b)
        std::copy_n(f + (hd * B + b) * Dh, Dh, att + b * D + hd * Dh);
  }
  linear(a.cross_out, att, false, x1, x2);

  norm(x2, 2);
  linear(a.fc1, h, true, nullptr, f);
  linear(a.fc2, f, false, x2, a.out);
}

class DecoderLayerStep : public mx::Primitive {
 public:
  DecoderLayerStep(mx::Stream s, int heads, int position, int group, int bits, float eps,
                   bool in_place)
      : mx::Primitive(s), heads_(heads), position_(position), group_(group), bits_(bits),
        eps_(eps), in_place_(in_place) {}
  const char* name() const override { return "MlxAsrDecoderLayerStep"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const DecoderLayerStep*>(&other);
    return o != nullptr && o->heads_ == heads_ && o->position_ == position_ &&
           o->group_ == group_ && o->bits_ == bits_ && o->eps_ == eps_ &&
           o->in_place_ == in_place_;
  }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override {
    return {inputs[0].shape(), inputs[1].shape(), inputs[2].shape()};
  }
  void eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) override {
    throw std::runtime_error(std::string(name()) + " has no GPU kernel");
  }
  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override {
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (i != 3 && i != 4) require_row_contiguous(inputs[i], name());
    }
    // The cross-attention keys and values: any strides but the last, the
    // same for both (each row's read from where its strides say).
    const auto &ck = inputs[3], &cv = inputs[4];
    if (ck.strides().back() != 1 || cv.strides() != ck.strides()) {
      throw std::runtime_error(std::string(name()) + ": cross keys/values laid out apart");
    }
    outputs[0].set_data(mx::allocator::malloc(outputs[0].nbytes()));
    // The caches are written in place when nothing else held them as the
    // step was built, else copied first (in the task: the inputs may not be
    // computed yet).
    std::vector<std::pair<const void*, size_t>> copies;
    for (int i : {1, 2}) {
      const auto& in = inputs[i];
      auto& out = outputs[i];
      if (in_place_) {
        out.copy_shared_buffer(in);
        copies.emplace_back(nullptr, 0);
      } else {
        out.set_data(mx::allocator::malloc(out.nbytes()));
        copies.emplace_back(in.data<void>(), in.nbytes());
      }
    }
    const auto& x = inputs[0];
    size_t per = group_ > 0 ? 4 : 2;  // arrays per projection
    const auto& st = ck.strides();
    StepShape sh{static_cast<size_t>(x.shape(0)),
                 static_cast<size_t>(x.shape(2)),
                 static_cast<size_t>(inputs[11 + 4 * per].shape(0)),
                 heads_,
                 position_,
                 inputs[1].shape(2),
                 ck.shape(2),
                 {ck.shape(0) == 1 ? 0 : st[0], st[1], st[2]},
                 eps_};
    StepLinear lin[6];
    for (size_t p = 0; p < 6; ++p) lin[p] = step_linear(inputs, 11 + p * per);
    auto& enc = mx::cpu::get_command_encoder(stream());
    for (auto& in : inputs) enc.set_input_array(in);
    for (auto& out : outputs) enc.set_output_array(out);
    auto run = [&](auto kv) {
      using KV = decltype(kv);
      StepArgs<KV> args{x.data<float>(),
                        outputs[0].data<float>(),
                        outputs[1].data<float>(),
                        outputs[2].data<float>(),
                        reinterpret_cast<const KV*>(inputs[3].data<void>()),
                        reinterpret_cast<const KV*>(inputs[4].data<void>()),
                        {},
                        lin[0],
                        lin[1],
                        lin[2],
                        lin[3],
                        lin[4],
                        lin[5]};
      for (int i = 0; i < 6; ++i) args.ln[i] = inputs[5 + i].data<float>();
      enc.dispatch([sh, args, copies] {
        for (int i = 0; i < 2; ++i) {
          float* cache = i == 0 ? args.k_cache : args.v_cache;
          if (copies[i].first != nullptr) std::memcpy(cache, copies[i].first, copies[i].second);
        }
        decoder_layer_step_run(sh, args);
      });
    };
    if (ck.dtype() == mx::float16) {
      run(_Float16{});
    } else {
      run(float{});
    }
  }

 private:
  // The projection whose arrays start at inputs[first]: the matrix, its
  // scales and biases when quantized, then its bias.
  StepLinear step_linear(const std::vector<mx::array>& inputs, size_t first) const {
    const auto& w = inputs[first];
    StepLinear l{w.data<void>(), nullptr, nullptr, nullptr, static_cast<size_t>(w.shape(0)), 0,
                 group_, bits_, nullptr};
    if (group_ > 0) {
      const auto &scales = inputs[first + 1], &biases = inputs[first + 2];
      l.scales = scales.data<void>();
      l.biases = biases.data<void>();
      l.bias = inputs[first + 3].data<float>();
      l.K = static_cast<size_t>(scales.shape(1) * group_);
      l.apply = scales.dtype() == mx::float16 ? apply_quantized<_Float16> : apply_quantized<float>;
    } else {
      l.bias = inputs[first + 1].data<float>();
      l.K = static_cast<size_t>(w.shape(1));
      l.apply = w.dtype() == mx::float16 ? apply_dense<_Float16> : apply_dense<float>;
    }
    return l;
  }

  int heads_, position_, group_, bits_;
  float eps_;
  bool in_place_;
};

// The CPU stream when the default device is the CPU and the kernels are on.
std::optional<mx::Stream> cpu_stream() {
  if (!enabled()) return std::nullopt;
  auto s = mx::default_stream(mx::default_device());
  if (s.device != mx::Device::cpu) return std::nullopt;
  return s;
}

}  // namespace

bool set_enabled(bool on) { return enabled_flag().exchange(on); }
bool enabled() { return enabled_flag().load(); }
int threads() { return Pool::get().size(); }
void hold_threads() { Pool::get().heat(1); }
void release_threads() { Pool::get().heat(-1); }
bool active() { return cpu_stream().has_value(); }
bool int8_available() { return active() && has_vnni(); }

std::optional<array> softmax_last(const array& a) {
  auto s = cpu_stream();
  if (!s || a.dtype() != mx::float32 || a.ndim() == 0) return std::nullopt;
  auto x = mx::contiguous(a, false, *s);
  return array(x.shape(), mx::float32, std::make_shared<SoftmaxLast>(*s), {x});
}

std::optional<array> gelu(const array& a) {
  auto s = cpu_stream();
  if (!s || a.dtype() != mx::float32) return std::nullopt;
  auto x = mx::contiguous(a, false, *s);
  return array(x.shape(), mx::float32, std::make_shared<Gelu>(*s), {x});
}

std::optional<array> layer_norm(const array& x, const array* weight, const array* bias,
                                float eps) {
  auto s = cpu_stream();
  if (!s || x.dtype() != mx::float32 || x.ndim() == 0) return std::nullopt;
  int n = x.shape(-1);
  auto fits = [&](const array* p) {
    return p == nullptr || (p->dtype() == mx::float32 && p->ndim() == 1 && p->shape(0) == n);
  };
  if (!fits(weight) || !fits(bias)) return std::nullopt;
  std::vector<array> inputs{mx::contiguous(x, false, *s)};
  if (weight) inputs.push_back(mx::contiguous(*weight, false, *s));
  if (bias) inputs.push_back(mx::contiguous(*bias, false, *s));
  auto shape = x.shape();
  return array(shape, mx::float32,
               std::make_shared<LayerNormLast>(*s, eps, weight != nullptr, bias != nullptr),
               std::move(inputs));
}

std::optional<array> sdpa(const array& q, const array& k, const array& v, float scale,
                          bool causal) {
  auto s = cpu_stream();
  if (!s) return std::nullopt;
  for (auto* a : {&q, &k, &v}) {
    if (a->ndim() != 4) return std::nullopt;
  }
  // f32 throughout, or f32 queries against f16 keys and values.
  bool half_kv = k.dtype() == mx::float16 && v.dtype() == mx::float16;
  if (q.dtype() != mx::float32 || !(half_kv || (k.dtype() == mx::float32 &&
                                                v.dtype() == mx::float32))) {
    return std::nullopt;
  }
  int B = q.shape(0), H = q.shape(1), L = q.shape(2), D = q.shape(3);
  int Hk = k.shape(1), S = k.shape(2);
  bool fits = k.shape(0) == B && v.shape(0) == B && v.shape(1) == Hk && v.shape(2) == S &&
              k.shape(3) == D && Hk > 0 && H % Hk == 0;
  // A causal mask with fewer keys than queries leaves rows without keys:
  // MLX's own op decides what those mean.
  if (!fits || (causal && S < L)) return std::nullopt;
  std::vector<array> inputs{q, k, v};
  if (half_kv) {
    // Few queries, and many for the fused kernel, read the f16 rows directly
    // (contiguous rows); the BLAS route takes widened copies.
    bool direct = L <= kRowsUpTo || fused_attention_for(L, v.shape(3));
    for (int i : {1, 2}) {
      inputs[i] = direct ? mx::contiguous(inputs[i], false, *s)
                         : mx::astype(inputs[i], mx::float32, *s);
    }
  }
  auto shape = q.shape();
  shape.back() = v.shape(3);
  return array(shape, mx::float32, std::make_shared<Attention>(*s, scale, causal),
               std::move(inputs));
}


namespace {

// Whether the epilogue's arrays fit a kernel writing an f32 output of
// `shape`; if so, appends them to `inputs` (contiguous) and returns its flags.
std::optional<EpilogueFlags> epilogue_inputs(const Epilogue& e, const mx::Shape& shape,
                                             mx::Stream s, std::vector<array>& inputs) {
  int N = shape.back();
  if (e.bias != nullptr) {
    if (e.bias->dtype() != mx::float32 || e.bias->ndim() != 1 || e.bias->shape(0) != N) {
      return std::nullopt;
    }
    inputs.push_back(mx::contiguous(*e.bias, false, s));
  }
  if (e.residual != nullptr) {
    if (e.residual->dtype() != mx::float32 || e.residual->shape() != shape) return std::nullopt;
    inputs.push_back(mx::contiguous(*e.residual, false, s));
  }
  return EpilogueFlags{e.bias != nullptr, e.gelu, e.residual != nullptr};
}

// Checks x [..., K] against a quantized [N, K] matrix; returns the output shape.
std::optional<mx::Shape> quantized_shape(const array& x, const array& w, const array& scales,
                                         const array& biases, int group_size, int bits) {
  if (x.dtype() != mx::float32 || x.ndim() < 1 || w.ndim() != 2 || w.dtype() != mx::uint32 ||
      (bits != 4 && bits != 8) || group_size % 16 != 0) {
    return std::nullopt;
  }
  auto table = scales.dtype();
  if ((table != mx::float32 && table != mx::float16) || biases.dtype() != table) {
    return std::nullopt;
  }
  int N = w.shape(0), K = x.shape(-1);
  if (K == 0 || K % group_size != 0 || w.shape(1) * 32 != K * bits ||
      scales.shape() != mx::Shape{N, K / group_size} || biases.shape() != scales.shape()) {
    return std::nullopt;
  }
  auto shape = x.shape();
  shape.back() = N;
  return shape;
}

// A QuantizedProduct of x, w, scales, biases (checked by quantized_shape)
// with the epilogue `e`, or nothing when the epilogue's arrays do not fit.
std::optional<array> product_with_epilogue(std::vector<array> operands, int group_size, int bits,
                                           const Epilogue& e, const mx::Shape& shape,
                                           mx::Stream s, QuantizedProduct::Kernel kernel) {
  std::vector<array> inputs;
  for (auto& a : operands) inputs.push_back(mx::contiguous(a, false, s));
  auto flags = epilogue_inputs(e, shape, s, inputs);
  if (!flags) return std::nullopt;
  return array(shape, mx::float32,
               std::make_shared<QuantizedProduct>(s, group_size, bits, *flags, kernel),
               std::move(inputs));
}

}  // namespace

std::optional<array> small_matmul(const array& a, const array& b, float alpha,
                                  const Epilogue& e) {
  auto s = cpu_stream();
  // f32 inputs, or f32 rows against f16 weights (MLX would promote to f32).
  bool weights_ok = b.dtype() == mx::float32 || b.dtype() == mx::float16;
  if (!s || a.dtype() != mx::float32 || !weights_ok || a.ndim() < 2 || b.ndim() != 2) {
    return std::nullopt;
  }
  int K = b.shape(0), N = b.shape(1);
  if (a.shape(-1) != K || K == 0) return std::nullopt;
  size_t rows = a.size() / static_cast<size_t>(K);
  if (rows == 0 || rows > kSmallMatmulRows) return std::nullopt;
  auto shape = a.shape();
  shape.back() = N;
  std::vector<array> inputs{mx::contiguous(a, false, *s), b};
  auto flags = epilogue_inputs(e, shape, *s, inputs);
  if (!flags) return std::nullopt;
  return array(shape, mx::float32, std::make_shared<SmallMatmul>(*s, alpha, e.beta, *flags),
               std::move(inputs));
}

std::optional<array> quantized_small_matmul(const array& x, const array& w, const array& scales,
                                            const array& biases, int group_size, int bits,
                                            const Epilogue& e) {
  auto s = cpu_stream();
  auto shape = quantized_shape(x, w, scales, biases, group_size, bits);
  if (!s || !shape || e.beta != 1.0f) return std::nullopt;
  size_t rows = x.size() / static_cast<size_t>(x.shape(-1));
  if (rows > kSmallMatmulRows) return std::nullopt;
  return product_with_epilogue({x, w, scales, biases}, group_size, bits, e, *shape, *s,
                               QuantizedProduct::Kernel::FewRows);
}

std::optional<array> quantized_int8_matmul(const array& x, const array& w, const array& scales,
                                           const array& biases, int group_size, int bits,
                                           const Epilogue& e) {
  auto s = cpu_stream();
  auto shape = quantized_shape(x, w, scales, biases, group_size, bits);
  if (!s || !shape || bits != 8 || e.beta != 1.0f || !has_vnni()) return std::nullopt;
  return product_with_epilogue({x, w, scales, biases}, group_size, bits, e, *shape, *s,
                               QuantizedProduct::Kernel::Int8);
}

std::optional<array> quantized_matmul_t(const array& x, const array& w, const array& scales,
                                        const array& biases, int group_size, int bits) {
  if (auto out = quantized_small_matmul(x, w, scales, biases, group_size, bits, {})) return out;
  auto s = cpu_stream();
  if (!s || !quantized_shape(x, w, scales, biases, group_size, bits)) return std::nullopt;
  // Many rows (the encoder, a prompt): dequantize once and let the GEMM run;
  // MLX's CPU quantized matmul is scalar.
  std::vector<array> tables{mx::contiguous(w, false, *s), mx::contiguous(scales, false, *s),
                            mx::contiguous(biases, false, *s)};
  array dense({w.shape(0), x.shape(-1)}, mx::float32,
              std::make_shared<Dequantize>(*s, group_size, bits), std::move(tables));
  return mx::matmul(x, mx::transpose(dense, *s), *s);
}

namespace {

#if defined(__x86_64__) && defined(__GNUC__)
// Narrows x[0..n) to f16 into y; false as soon as a value does not survive
// the round trip. Eight at a time.
MLX_SHIM_F16C bool narrow_exact_f16c(const float* x, _Float16* y, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    __m128i h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT);
    if (_mm256_movemask_ps(_mm256_cmp_ps(v, _mm256_cvtph_ps(h), _CMP_NEQ_UQ)) != 0) return false;
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), h);
  }
  for (; i < n; ++i) {
    y[i] = static_cast<_Float16>(x[i]);
    if (static_cast<float>(y[i]) != x[i]) return false;
  }
  return true;
}
#endif

bool narrow_exact(const float* x, _Float16* y, size_t n) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (has_f16c()) return narrow_exact_f16c(x, y, n);
#endif
  for (size_t i = 0; i < n; ++i) {
    y[i] = static_cast<_Float16>(x[i]);
    if (static_cast<float>(y[i]) != x[i]) return false;
  }
  return true;
}

}  // namespace

std::optional<std::vector<array>> decoder_layer_step(const std::vector<array>& inputs,
                                                     int heads, int position, int group_size,
                                                     int bits, float eps) {
  auto s = cpu_stream();
  bool quantized = group_size > 0;
  size_t per = quantized ? 4 : 2;  // arrays per projection
  if (!s || inputs.size() != 11 + 6 * per || heads <= 0) return std::nullopt;
  const auto &x = inputs[0], &kc = inputs[1], &vc = inputs[2], &ck = inputs[3], &cv = inputs[4];
  if (x.dtype() != mx::float32 || x.ndim() != 3 || x.shape(1) != 1) return std::nullopt;
  int B = x.shape(0), D = x.shape(2);
  if (B < 1 || static_cast<size_t>(B) > kSmallMatmulRows || D % heads != 0) return std::nullopt;
  mx::Shape cache{B, heads, kc.ndim() == 4 ? kc.shape(2) : 0, D / heads};
  for (const auto* c : {&kc, &vc}) {
    if (c->dtype() != mx::float32 || c->shape() != cache) return std::nullopt;
  }
  if (position < 0 || position >= cache[2]) return std::nullopt;
  bool half = ck.dtype() == mx::float16;
  if (!(half || ck.dtype() == mx::float32) || cv.dtype() != ck.dtype() || ck.ndim() != 4 ||
      cv.shape() != ck.shape() || (ck.shape(0) != B && ck.shape(0) != 1) ||
      ck.shape(1) != heads || ck.shape(3) != D / heads || ck.shape(2) == 0) {
    return std::nullopt;
  }
  for (int i = 5; i < 11; ++i) {
    if (inputs[i].dtype() != mx::float32 || inputs[i].shape() != mx::Shape{D}) return std::nullopt;
  }
  // The projections in order, with their widths in and out.
  const auto& fc1 = inputs[11 + 4 * per];
  int F = fc1.ndim() == 2 ? fc1.shape(0) : 0;
  std::pair<int, int> widths[] = {{D, 3 * D}, {D, D}, {D, D}, {D, D}, {D, F}, {F, D}};
  for (size_t p = 0; p < 6; ++p) {
    size_t first = 11 + p * per;
    auto [in, out] = widths[p];
    const auto &w = inputs[first], &bias = inputs[first + per - 1];
    bool ok = in > 0 && w.ndim() == 2 && w.shape(0) == out && bias.dtype() == mx::float32 &&
              bias.shape() == mx::Shape{out};
    if (quantized) {
      const auto &sc = inputs[first + 1], &bi = inputs[first + 2];
      bool table = sc.dtype() == mx::float32 || sc.dtype() == mx::float16;
      ok = ok && w.dtype() == mx::uint32 && (bits == 4 || bits == 8) && in % group_size == 0 &&
           w.shape(1) * 32 == in * bits && table && bi.dtype() == sc.dtype() &&
           sc.shape() == mx::Shape{out, in / group_size} && bi.shape() == sc.shape();
    } else {
      ok = ok && (w.dtype() == mx::float32 || w.dtype() == mx::float16) && w.shape(1) == in;
    }
    if (!ok) return std::nullopt;
  }
  // The outputs would each hold the inputs (siblings copy them), so whether
  // the caches may be written in place is decided here: computed arrays that
  // nothing but `inputs` holds (their buffers shared with nothing either).
  // What is not computed yet may come to share a buffer, and is copied.
  auto exclusive = [](const array& a) {
    return a.status() != array::Status::unscheduled && a.is_donatable();
  };
  bool in_place = exclusive(kc) && exclusive(vc);
  auto prim =
      std::make_shared<DecoderLayerStep>(*s, heads, position, group_size, bits, eps, in_place);
  return array::make_arrays({x.shape(), kc.shape(), vc.shape()},
                            {mx::float32, mx::float32, mx::float32}, prim, inputs);
}

float log_sum_exp(const float* x, size_t n) {
  float m = max_of(x, n);
  if (n == 0 || m == kNegInf || std::isnan(m)) return n == 0 ? kNegInf : m;
  return m + static_cast<float>(std::log(exp_shifted_sum(x, n, m)));
}

std::optional<array> row_major(const array& a, mx::Dtype dtype) {
  auto s = cpu_stream();
  if (!s || a.dtype() != mx::float32 || a.ndim() > 4 || a.size() == 0 ||
      (dtype != mx::float32 && dtype != mx::float16)) {
    return std::nullopt;
  }
  return array(a.shape(), dtype, std::make_shared<RowMajorCopy>(*s, dtype), {a});
}

std::optional<array> select_rows(const array& a, const std::vector<int32_t>& rows, int filled) {
  auto s = cpu_stream();
  if (!s || a.ndim() != 4 || rows.empty() || filled < 0 || filled > a.shape(2)) {
    return std::nullopt;
  }
  auto shape = a.shape();
  shape[0] = static_cast<int>(rows.size());
  return array(shape, a.dtype(), std::make_shared<SelectRows>(*s, rows, filled),
               {mx::contiguous(a, false, *s)});
}

std::optional<array> f16_if_exact(const array& a) {
  if (a.dtype() != mx::float32) return std::nullopt;
  auto x = mx::contiguous(a, false);
  x.eval();
  const float* p = x.data<float>();
  size_t n = x.size();
  auto buffer = mx::allocator::malloc(n * sizeof(_Float16));
  auto* y = static_cast<_Float16*>(buffer.raw_ptr());
  constexpr size_t kBlock = 1 << 16;
  size_t blocks = (n + kBlock - 1) / kBlock;
  std::atomic<bool> exact{true};
  parallel_rows(blocks, static_cast<double>(n), [&](size_t b0, size_t b1) {
    size_t i0 = b0 * kBlock, i1 = std::min(n, b1 * kBlock);
    if (i1 > i0 && exact.load(std::memory_order_relaxed) && !narrow_exact(p + i0, y + i0, i1 - i0)) {
      exact.store(false, std::memory_order_relaxed);
    }
  });
  if (!exact.load()) {
    mx::allocator::free(buffer);
    return std::nullopt;
  }
  return array(buffer, x.shape(), mx::float16);
}

}  // namespace mlx_shim::kernels
