// Depthwise convolution over NHWC images on the CPU: each channel convolved
// with its own kernel, vectorized across channels.
#pragma once

#include <cstddef>

namespace mlx_shim::kernels::detail {

struct DepthwiseShape {
  int B, H, W, C;        // input [B, H, W, C]
  int kh, kw;            // kernel
  int sh, sw, ph, pw;    // strides and (symmetric) zero padding
  int OH, OW;            // output [B, OH, OW, C]
};

// out rows [r0, r1) of the B * OH output rows: out[b, oh, ow, c] =
// sum over (i, j) inside the image of w[(i kw + j) C + c] x[b, oh sh - ph + i,
// ow sw - pw + j, c]; w is the kernel packed as [kh, kw, C].
void depthwise_rows(const DepthwiseShape& s, const float* x, const float* w, float* out,
                    size_t r0, size_t r1);

}  // namespace mlx_shim::kernels::detail
