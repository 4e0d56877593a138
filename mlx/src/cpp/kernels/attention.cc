#include "attention.h"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <vector>

#include "elementwise.h"
#include "matmul.h"
#include "pool.h"

namespace mlx_shim::kernels::detail {
namespace {

// cblas_sgemm_fn(), unless MLX_ASR_SDPA_BLAS=0 turns the BLAS route off.
CblasSgemm sgemm_fn() {
  static CblasSgemm fn = [] {
    if (const char* v = std::getenv("MLX_ASR_SDPA_BLAS"); v != nullptr && v[0] == '0') {
      return static_cast<CblasSgemm>(nullptr);
    }
    return cblas_sgemm_fn();
  }();
  return fn;
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

// Per head and block of queries: S = scale q kᵀ and O = P v through BLAS,
// the softmax of S's rows on the pool in between. The scores buffer is kept
// across calls (no fresh pages to fault in each time).
void attention_blas(const AttentionShape& sh, const Operand& q, const Operand& k,
                    const Operand& v, float* out, CblasSgemm sgemm) {
  // One block per head at Whisper's encoder length (1500 queries): smaller
  // blocks save cache misses but cost more in the GEMM calls' own overhead;
  // blocks only bound the memory.
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

// Many queries with 64-wide values: per task, a block of queries takes its
// scores against every key it may see (the keys transposed once per head in
// tiles of 64 keys, [D][64] each, so that 64 consecutive keys are a few
// vectors per dimension in one contiguous block), the softmax of those rows
// and their weighted sum of values, all while the block's scores stay in
// L2. Where the BLAS route writes each head's [L, S] scores to memory and
// reads them back three times, this one streams only the keys and values,
// which stay cached for the head's blocks. The blocks are the same on every
// target; the register tiles (`Tiles`) are the target's.
constexpr int kFusedValues = 64;
constexpr int kFusedKeys = 64;  // keys per score tile and per value chunk

#if defined(__x86_64__) && defined(__GNUC__)
// AVX-512: a tile of 4 rows by the 64 keys (or values) is 16 accumulators
// and 4 vectors of keys (values), 20 of the 32 registers.
struct Avx512Tiles {
  static constexpr int kRows = 4;
  static constexpr int kQueries = 16;  // per block: whole tiles

  // s[r][j0, j0 + 64) = scale q_r · k_j for R query rows; kt is the tile of
  // keys j0.. as [D][64].
  template <int R>
  MLX_SHIM_AVX512 static void scores(const float* const* q, const float* kt, int D, int j0,
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
      for (int c = 0; c < 4; ++c)
        _mm512_storeu_ps(s[r] + j0 + 16 * c, _mm512_mul_ps(acc[r][c], sc));
  }

  // o_r += sum over j in [j0, j1) of p_r[j] v_j for R rows of 64 values.
  template <int R>
  MLX_SHIM_AVX512 static void values(const float* const* p, const float* v, int64_t stride,
                                     int j0, int j1, float* const* o) {
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
  MLX_SHIM_AVX512 static __m512 exp16(__m512 x) {
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
    __m512 y =
        _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, lo, _CMP_NLT_UQ), _mm512_scalef_ps(p, n));
    return _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
  }

  // softmax_row_unscaled on 16 lanes, the tail masked.
  MLX_SHIM_AVX512 static float softmax(float* y, size_t valid, size_t n) {
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
};

// AVX2+FMA: with 16 registers of 8 floats, a tile is 6 rows by 16 keys (or
// values): 12 accumulators, 2 vectors of keys (values) and a broadcast.
// The 64 keys of a tile (values of a row) are four such column chunks.
struct Avx2Tiles {
  static constexpr int kRows = 6;
  static constexpr int kQueries = 18;  // per block: whole tiles
  static constexpr int kChunk = 16;

  template <int R>
  MLX_SHIM_F16C static void scores(const float* const* q, const float* kt, int D, int j0,
                                   float scale, float* const* s) {
    const __m256 sc = _mm256_set1_ps(scale);
    for (int c0 = 0; c0 < kFusedKeys; c0 += kChunk) {
      __m256 acc[R][2];
      for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
      for (int d = 0; d < D; ++d) {
        const float* kd = kt + static_cast<size_t>(d) * kFusedKeys + c0;
        __m256 k0 = _mm256_loadu_ps(kd), k1 = _mm256_loadu_ps(kd + 8);
        for (int r = 0; r < R; ++r) {
          __m256 qd = _mm256_broadcast_ss(q[r] + d);
          acc[r][0] = _mm256_fmadd_ps(qd, k0, acc[r][0]);
          acc[r][1] = _mm256_fmadd_ps(qd, k1, acc[r][1]);
        }
      }
      for (int r = 0; r < R; ++r) {
        _mm256_storeu_ps(s[r] + j0 + c0, _mm256_mul_ps(acc[r][0], sc));
        _mm256_storeu_ps(s[r] + j0 + c0 + 8, _mm256_mul_ps(acc[r][1], sc));
      }
    }
  }

  template <int R>
  MLX_SHIM_F16C static void values(const float* const* p, const float* v, int64_t stride, int j0,
                                   int j1, float* const* o) {
    for (int c0 = 0; c0 < kFusedValues; c0 += kChunk) {
      __m256 acc[R][2];
      for (int r = 0; r < R; ++r) {
        acc[r][0] = _mm256_loadu_ps(o[r] + c0);
        acc[r][1] = _mm256_loadu_ps(o[r] + c0 + 8);
      }
      for (int j = j0; j < j1; ++j) {
        const float* vj = v + j * stride + c0;
        __m256 w0 = _mm256_loadu_ps(vj), w1 = _mm256_loadu_ps(vj + 8);
        for (int r = 0; r < R; ++r) {
          __m256 pj = _mm256_broadcast_ss(p[r] + j);
          acc[r][0] = _mm256_fmadd_ps(pj, w0, acc[r][0]);
          acc[r][1] = _mm256_fmadd_ps(pj, w1, acc[r][1]);
        }
      }
      for (int r = 0; r < R; ++r) {
        _mm256_storeu_ps(o[r] + c0, acc[r][0]);
        _mm256_storeu_ps(o[r] + c0 + 8, acc[r][1]);
      }
    }
  }

  // The row kernels' softmax, which runs at this level too.
  static float softmax(float* y, size_t valid, size_t n) {
    return softmax_row_unscaled(y, y, valid, n);
  }
};
#endif

// One head's keys into tiles [S / 64][D][64] and values into rows [S][64],
// as f32. F16C where allowed: without it each f16 value would be widened by
// a library call.
template <class KV>
void pack_head(const OperandOf<KV>& k, const OperandOf<KV>& v, int b, int hk, int S, int D,
               float* kt, float* packed_values) {
  by_isa([=](auto) MLX_SHIM_ALWAYS_INLINE {
    for (int j = 0; j < S; ++j) {
      const KV* kj = k.row(b, hk, j);
      float* tile = kt + static_cast<size_t>(j / kFusedKeys) * D * kFusedKeys + j % kFusedKeys;
      for (int d = 0; d < D; ++d)
        tile[static_cast<size_t>(d) * kFusedKeys] = static_cast<float>(kj[d]);
      const KV* vj = v.row(b, hk, j);
      float* vrow = packed_values + static_cast<size_t>(j) * kFusedValues;
      for (int c = 0; c < kFusedValues; ++c) vrow[c] = static_cast<float>(vj[c]);
    }
  });
}

// The fused attention with one target's register tiles.
template <class Tiles, class KV>
void fused_blocks(const AttentionShape& sh, const Operand& q, const OperandOf<KV>& k,
                  const OperandOf<KV>& v, float* out) {
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
  int blocks = (sh.L + Tiles::kQueries - 1) / Tiles::kQueries;
  size_t tasks = static_cast<size_t>(sh.B) * sh.H * blocks;
  double cost = static_cast<double>(sh.B) * sh.H * sh.L * sh.S * (sh.D + sh.Dv + 8);
  int rep = sh.H / sh.Hk;
  parallel_rows(tasks, cost, [&](size_t t0, size_t t1) {
    thread_local AlignedVec<float> scores, acc;
    scores.resize(Tiles::kQueries * stride);
    acc.resize(Tiles::kQueries * kFusedValues);
    for (size_t t = t0; t < t1; ++t) {
      int blk = static_cast<int>(t % blocks);
      int h = static_cast<int>(t / blocks % sh.H), b = static_cast<int>(t / blocks / sh.H);
      int hk = h / rep;
      int i0 = blk * Tiles::kQueries, rows = std::min(Tiles::kQueries, sh.L - i0);
      int keys = sh.valid(i0 + rows - 1);  // the most any row of the block sees
      const float* kt = kt_all + (static_cast<size_t>(b) * sh.Hk + hk) * per_head;
      const float* qr[Tiles::kQueries];
      float* sr[Tiles::kQueries];
      float* orow[Tiles::kQueries];
      float factor[Tiles::kQueries];
      for (int r = 0; r < rows; ++r) {
        qr[r] = q.row(b, h, i0 + r);
        sr[r] = scores.data() + static_cast<size_t>(r) * stride;
        orow[r] = acc.data() + static_cast<size_t>(r) * kFusedValues;
      }
      for (int j0 = 0; j0 < keys; j0 += kFusedKeys) {
        in_row_groups<Tiles::kRows>(rows, [&]<int R>(int r) {
          Tiles::template scores<R>(qr + r, kt + static_cast<size_t>(j0) * sh.D, sh.D, j0,
                                    sh.scale, sr + r);
        });
      }
      for (int r = 0; r < rows; ++r) {
        int valid = sh.valid(i0 + r);
        factor[r] = Tiles::softmax(sr[r], static_cast<size_t>(valid), static_cast<size_t>(keys));
      }
      std::fill(acc.begin(), acc.end(), 0.0f);
      const float* vh = v_all + (static_cast<size_t>(b) * sh.Hk + hk) * values_per_head;
      for (int j0 = 0; j0 < keys; j0 += kFusedKeys) {
        int j1 = std::min(keys, j0 + kFusedKeys);
        in_row_groups<Tiles::kRows>(rows, [&]<int R>(int r) {
          Tiles::template values<R>(sr + r, vh, kFusedValues, j0, j1, orow + r);
        });
      }
      for (int r = 0; r < rows; ++r) {
        float* o = out + ((static_cast<size_t>(b) * sh.H + h) * sh.L + i0 + r) * sh.Dv;
        for (int c = 0; c < kFusedValues; ++c) o[c] = orow[r][c] * factor[r];
      }
    }
  });
}

}  // namespace

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

template void attention_rows<float>(const AttentionShape&, const Operand&,
                                    const OperandOf<float>&, const OperandOf<float>&, float*);
template void attention_rows<_Float16>(const AttentionShape&, const Operand&,
                                       const OperandOf<_Float16>&, const OperandOf<_Float16>&,
                                       float*);

template <class KV>
void attention_fused(const AttentionShape& sh, const Operand& q, const OperandOf<KV>& k,
                     const OperandOf<KV>& v, float* out) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (has_avx512()) return fused_blocks<Avx512Tiles>(sh, q, k, v, out);
  if (has_f16c()) return fused_blocks<Avx2Tiles>(sh, q, k, v, out);
#endif
  // The level was lowered after fused_attention_for said yes.
  attention_rows(sh, q, k, v, out);
}

template void attention_fused<float>(const AttentionShape&, const Operand&,
                                     const OperandOf<float>&, const OperandOf<float>&, float*);
template void attention_fused<_Float16>(const AttentionShape&, const Operand&,
                                        const OperandOf<_Float16>&, const OperandOf<_Float16>&,
                                        float*);

void rel_pos_attention(const AttentionShape& sh, const Operand& qu, const Operand& qv,
                       const Operand& k, const Operand& v, const Operand& p, float* out,
                       CblasSgemm sgemm) {
  const int T = sh.L, P = 2 * T - 1;
  thread_local std::vector<float> scores, by_offset;
  scores.resize(static_cast<size_t>(T) * T);
  by_offset.resize(static_cast<size_t>(T) * P);
  float* s = scores.data();
  float* r = by_offset.data();
  for (int b = 0; b < sh.B; ++b) {
    for (int h = 0; h < sh.H; ++h) {
      sgemm(kRowMajor, kNoTrans, kTrans, T, T, sh.D, sh.scale, qu.row(b, h, 0),
            static_cast<int>(qu.s2), k.row(b, h, 0), static_cast<int>(k.s2), 0.0f, s, T);
      sgemm(kRowMajor, kNoTrans, kTrans, T, P, sh.D, sh.scale, qv.row(b, h, 0),
            static_cast<int>(qv.s2), p.row(0, h, 0), static_cast<int>(p.s2), 0.0f, r, P);
      parallel_rows(static_cast<size_t>(T), static_cast<double>(T) * T * 10,
                    [&](size_t i0, size_t i1) {
                      for (size_t i = i0; i < i1; ++i) {
                        float* row = s + i * T;
                        // Key j of row i is offset i - j: column T - 1 - i + j.
                        const float* shifted = r + i * P + (T - 1 - i);
                        for (int j = 0; j < T; ++j) row[j] += shifted[j];
                        softmax_row(row, row, T, T);
                      }
                    });
      float* o = out + (static_cast<size_t>(b) * sh.H + h) * T * sh.Dv;
      sgemm(kRowMajor, kNoTrans, kNoTrans, T, sh.Dv, T, 1.0f, s, T, v.row(b, h, 0),
            static_cast<int>(v.s2), 0.0f, o, sh.Dv);
    }
  }
}

bool fused_attention_for(int L, int Dv) {
  return L > kRowsUpTo && Dv == kFusedValues && (has_avx512() || has_f16c());
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
  if (sh.L <= kRowsUpTo) {
    attention_rows(sh, q, k, v, out);
  } else if (fused_attention_for(sh.L, sh.Dv)) {
    attention_fused(sh, q, k, v, out);
  } else if (blas_ok) {
    attention_blas(sh, q, k, v, out, sgemm);
  } else {
    attention_rows(sh, q, k, v, out);
  }
}

}  // namespace mlx_shim::kernels::detail
