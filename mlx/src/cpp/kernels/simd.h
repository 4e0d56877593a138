// What the CPU kernels' inner loops are built from: the targets each hot
// function is compiled for, eight-float vectors, prefetching, the CPU's
// features and register tiles of a compile-time height. The inner loops are
// written on vector types or so that the compiler vectorizes them; on x86-64
// each hot function is built twice (AVX2+FMA and the baseline) and by_isa
// picks one per call from the instruction-set level allowed now (isa.h).
#pragma once

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <new>
#include <vector>

#include "isa.h"

#if defined(__GNUC__) && !defined(__clang__)
// v8 below is passed in registers only inside the kernels; the note about the
// AVX calling convention does not concern it.
#pragma GCC diagnostic ignored "-Wpsabi"
// GCC 12's AVX-512 headers initialize their "undefined" vectors from
// themselves, which its own -Wuninitialized reports at every use.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// Bodies that by_isa compiles for several targets, and the helpers they
// call: compiled out of line, a helper would get the baseline target (no FMA:
// other rounding, and slower).
#if defined(__GNUC__)
#define MLX_SHIM_ALWAYS_INLINE __attribute__((always_inline))
#else
#define MLX_SHIM_ALWAYS_INLINE
#endif
#define MLX_SHIM_INLINE inline MLX_SHIM_ALWAYS_INLINE

namespace mlx_shim::kernels::detail {

// ---------------------------------------------------------------------------
// Buffers the kernels own start on a cache line: a 64-byte vector load from
// an address that is not a multiple of 64 touches two lines, which with
// std::vector's 16-byte alignment would slow the attention and int8 tiles.

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

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Eight floats in a vector register (two SSE registers on the baseline
// target); GCC's and Clang's vector extension.
typedef float v8 __attribute__((vector_size(32)));
// Four: the baseline's (SSE2, NEON) registers.
typedef float v4 __attribute__((vector_size(16)));

// A float vector V (v4 or v8) loaded from p, or stored to it.
template <class V>
MLX_SHIM_INLINE V load_vec(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
template <class V>
MLX_SHIM_INLINE void store_vec(float* p, const V& v) {
  std::memcpy(p, &v, sizeof(v));
}

// What by_isa hands the body it runs: the target's float vector, for bodies
// whose vector code is written out rather than left to the vectorizer (a
// 256-bit vector's comparisons come apart lane by lane on the baseline).
struct Avx2Target {
  using Vec = v8;
};
struct BaselineTarget {
  using Vec = v4;
};

MLX_SHIM_INLINE v8 load8(const float* p) {
  v8 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// Eight halves widened to floats, portably (CPUs without F16C; those with
// it take dots_f16c).
MLX_SHIM_INLINE v8 load8(const _Float16* p) {
  v8 v;
  for (int i = 0; i < 8; ++i) v[i] = static_cast<float>(p[i]);
  return v;
}

MLX_SHIM_INLINE void store8(float* p, const v8& v) { std::memcpy(p, &v, sizeof(v)); }

MLX_SHIM_INLINE float lane_sum(const v8& v) {
  float a0 = v[0] + v[4], a1 = v[1] + v[5], a2 = v[2] + v[6], a3 = v[3] + v[7];
  return (a0 + a2) + (a1 + a3);
}

// Asks for `bytes` from `p` on before they are read. One core streams
// from memory at about half the speed it computes on what it reads, and
// the hardware prefetcher alone does not close that gap (it stops at every
// 4 KiB page). Written as an instruction: GCC deletes a loop whose only
// statements are _mm_prefetch calls (they have no side effects it must
// keep), and does so without a warning.
MLX_SHIM_INLINE void prefetch_bytes(const void* p, size_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (size_t at = 0; at < bytes; at += 64) {
#if defined(__x86_64__) && defined(__GNUC__)
    asm volatile("prefetcht0 %0" : : "m"(c[at]));
#else
    __builtin_prefetch(c + at);
#endif
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
#define MLX_SHIM_F16C __attribute__((target("avx2,fma,f16c")))

// Whether the MLX_SHIM_F16C functions may run now (isa.h: the CPU's
// features within the cap).
inline bool has_f16c() { return isa_allows(Isa::Avx2); }
MLX_SHIM_F16C inline __m256 widen8(const _Float16* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

MLX_SHIM_F16C inline float sum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

#define MLX_SHIM_AVX512 __attribute__((target("avx512f,fma,f16c")))

inline bool has_avx512() { return isa_allows(Isa::Avx512); }

#define MLX_SHIM_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,fma")))


// f(Avx2Target) compiled for AVX2+FMA+F16C. Not inlined into its caller,
// whose target is the baseline.
template <class F>
MLX_SHIM_F16C __attribute__((noinline)) auto run_avx2(F f) {
  return f(Avx2Target{});
}
#else
// Elsewhere only the portable paths exist (see by_isa).
inline bool has_f16c() { return false; }
inline bool has_avx512() { return false; }
#endif

// Runs f, a lambda marked MLX_SHIM_ALWAYS_INLINE whose callees are
// MLX_SHIM_INLINE, with all of it compiled for the best target allowed now:
// AVX2+FMA+F16C where has_f16c(), the baseline otherwise; f's argument
// (Avx2Target, BaselineTarget) names the target's vector. One body, one
// copy per target; a further target (NEON, say) is one more run_* twin,
// target type and test here.
template <class F>
MLX_SHIM_INLINE auto by_isa(F f) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (has_f16c()) return run_avx2(f);
#endif
  return f(BaselineTarget{});
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

}  // namespace mlx_shim::kernels::detail
