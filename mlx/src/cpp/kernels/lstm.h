// The recurrence of an LSTM layer (one direction) on the CPU: every step's
// h Wₕₕᵀ product and gates, the input projection done beforehand.
#pragma once

#include <cstddef>

namespace mlx_shim::kernels::detail {

struct LstmShape {
  size_t B, T, H;  // sequences, steps, hidden units
  bool reverse;    // last step first
};

// Runs over x [B, T, 4H] (the inputs' projections with both biases, gates in
// PyTorch's order: input, forget, cell, output) with w [4H, H] (Wₕₕ) from
// h0, c0 [B, H]: y [B, T, H] gets every step's h in input order, h_out and
// c_out [B, H] the state after the last step taken (h0, c0 when T is 0).
void lstm_run(const LstmShape& sh, const float* x, const float* w, const float* h0,
              const float* c0, float* y, float* h_out, float* c_out);

}  // namespace mlx_shim::kernels::detail
