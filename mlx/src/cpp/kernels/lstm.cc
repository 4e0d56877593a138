#include "lstm.h"

#include <algorithm>
#include <cstring>

#include "matmul.h"
#include "pool.h"
#include "simd.h"
#include "vmath.h"

namespace mlx_shim::kernels::detail {
namespace {

// Hidden units per block: one eight-float vector per gate.
constexpr size_t kUnits = 8;
// Sequences per register tile of the fused step: 2 x 4 gate accumulators,
// four weight vectors and a broadcast fit AVX2's sixteen registers (a third
// sequence's accumulators would not).
constexpr size_t kTileRows = 2;

// Steps of one sequence up to which Wₕₕ is read unpacked (see lstm_run).
constexpr size_t kUnpackedSteps = 16;

// One step's rows: sequence b's projections at x + b * xs, its new h at
// y + b * ys; the previous h of all sequences in h [B, H], the new ones
// written to h_next [B, H] too (contiguous: y's rows lie T H floats apart,
// often a multiple of 4 KiB, where they would share the cache's sets); the
// cell state c [B, H] is updated in place.
struct StepRows {
  const float* x;
  size_t xs;
  float* y;
  size_t ys;
  const float* h;
  float* h_next;
  float* c;
  size_t H;
};

// The first n (at most kUnits) floats at p, zeros after; stores likewise.
MLX_SHIM_INLINE v8 load_units(const float* p, size_t n) {
  if (n == kUnits) return load8(p);
  float part[kUnits] = {};
  std::memcpy(part, p, n * sizeof(float));
  return load8(part);
}
MLX_SHIM_INLINE void store_units(float* p, const v8& v, size_t n) {
  if (n == kUnits) return store8(p, v);
  float part[kUnits];
  store8(part, v);
  std::memcpy(p, part, n * sizeof(float));
}

// Sequence b's units [u, u + n) given the h Wₕₕᵀ products of their four
// gates: adds the projections, then c = f c + i g and h = o tanh(c).
MLX_SHIM_INLINE void finish_units(const StepRows& s, size_t b, size_t u, size_t n,
                                  const v8 acc[4]) {
  const float* x = s.x + b * s.xs + u;
  v8 i = sigmoid_of(acc[0] + load_units(x, n));
  v8 f = sigmoid_of(acc[1] + load_units(x + s.H, n));
  v8 g = tanh_of(acc[2] + load_units(x + 2 * s.H, n));
  v8 o = sigmoid_of(acc[3] + load_units(x + 3 * s.H, n));
  float* c = s.c + b * s.H + u;
  v8 cell = f * load_units(c, n) + i * g;
  store_units(c, cell, n);
  v8 h = o * tanh_of(cell);
  store_units(s.y + b * s.ys + u, h, n);
  store_units(s.h_next + b * s.H + u, h, n);
}

// R sequences from b times one block's packed columns (panel[k][gate][unit]),
// then their cells: the products never leave the registers.
template <size_t R>
MLX_SHIM_INLINE void fused_tile(const StepRows& s, const float* panel, size_t b, size_t u,
                                size_t n) {
  v8 acc[R][4] = {};
  const float* h[R];
  for (size_t r = 0; r < R; ++r) h[r] = s.h + (b + r) * s.H;
  for (size_t k = 0; k < s.H; ++k) {
    const float* p = panel + k * 4 * kUnits;
    v8 w0 = load8(p), w1 = load8(p + kUnits), w2 = load8(p + 2 * kUnits),
       w3 = load8(p + 3 * kUnits);
    for (size_t r = 0; r < R; ++r) {
      float hk = h[r][k];
      acc[r][0] += hk * w0;
      acc[r][1] += hk * w1;
      acc[r][2] += hk * w2;
      acc[r][3] += hk * w3;
    }
  }
  for (size_t r = 0; r < R; ++r) finish_units(s, b + r, u, n, acc[r]);
}

// Unit blocks [j0, j1) of one step for all B sequences: each block's panel
// is read from memory once and stays in cache while the sequences pass.
void fused_step(const StepRows& s, const float* panels, size_t B, size_t j0, size_t j1) {
  by_isa([&](auto) MLX_SHIM_ALWAYS_INLINE {
    for (size_t j = j0; j < j1; ++j) {
      size_t u = j * kUnits, n = std::min(kUnits, s.H - u);
      const float* panel = panels + j * s.H * 4 * kUnits;
      size_t b = 0;
      for (; b + kTileRows <= B; b += kTileRows) fused_tile<kTileRows>(s, panel, b, u, n);
      for (; b < B; ++b) fused_tile<1>(s, panel, b, u, n);
    }
  });
}

// One sequence's step from its products g [4H] (h Wₕₕᵀ).
void cells_of(const StepRows& s, const float* g) {
  by_isa([&](auto) MLX_SHIM_ALWAYS_INLINE {
    for (size_t u = 0; u < s.H; u += kUnits) {
      size_t n = std::min(kUnits, s.H - u);
      v8 acc[4];
      for (size_t q = 0; q < 4; ++q) acc[q] = load_units(g + q * s.H + u, n);
      finish_units(s, 0, u, n, acc);
    }
  });
}

// Wₕₕ [4H, H] as one panel per block of kUnits units: for each k the four
// gates' columns of those units, zeros past the last unit.
AlignedVec<float> pack_panels(const float* w, size_t H) {
  size_t blocks = (H + kUnits - 1) / kUnits;
  AlignedVec<float> panels(blocks * H * 4 * kUnits, 0.0f);
  for (size_t j = 0; j < blocks; ++j)
    for (size_t k = 0; k < H; ++k)
      for (size_t q = 0; q < 4; ++q)
        for (size_t l = 0; l < kUnits && j * kUnits + l < H; ++l)
          panels[((j * H + k) * 4 + q) * kUnits + l] = w[(q * H + j * kUnits + l) * H + k];
  return panels;
}

// Rough element operations of one sequence's gates per unit (four
// exponentials, divisions, the rest).
constexpr double kCellCost = 60.0;

}  // namespace

void lstm_run(const LstmShape& sh, const float* x, const float* w, const float* h0,
              const float* c0, float* y, float* h_out, float* c_out) {
  size_t B = sh.B, T = sh.T, H = sh.H;
  std::copy(c0, c0 + B * H, c_out);
  if (T == 0) {
    std::copy(h0, h0 + B * H, h_out);
    return;
  }
  if (B * H == 0) return;
  // One sequence for a few steps (a stream's frames, call by call) reads
  // Wₕₕ as it is, a dot product per row: packing it costs as much as some
  // 25 such steps, and the packed tiles save a third of a step's time.
  bool single = B == 1 && T <= kUnpackedSteps;
  AlignedVec<float> panels, g;
  if (single) {
    g.resize(4 * H);
  } else {
    panels = pack_panels(w, H);
  }
  // The previous and the new h, swapping roles each step.
  AlignedVec<float> hs(2 * B * H);
  std::copy(h0, h0 + B * H, hs.data());
  size_t blocks = (H + kUnits - 1) / kUnits;
  double cost = static_cast<double>(B) * H * (4 * H + kCellCost);
  for (size_t step = 0; step < T; ++step) {
    size_t t = sh.reverse ? T - 1 - step : step;
    float* h = hs.data() + (step % 2) * B * H;
    float* h_next = hs.data() + ((step + 1) % 2) * B * H;
    StepRows s{x + t * 4 * H, T * 4 * H, y + t * H, T * H, h, h_next, c_out, H};
    if (single) {
      dots(h, w, static_cast<int64_t>(H), 4 * H, H, 1.0f, g.data(), 1);
      cells_of(s, g.data());
    } else {
      parallel_rows(blocks, cost, [&](size_t j0, size_t j1) {
        fused_step(s, panels.data(), B, j0, j1);
      });
    }
  }
  const float* h_last = hs.data() + (T % 2) * B * H;
  std::copy(h_last, h_last + B * H, h_out);
}

}  // namespace mlx_shim::kernels::detail
