#include "conv.h"

#include "simd.h"

namespace mlx_shim::kernels::detail {

void depthwise_rows(const DepthwiseShape& s, const float* x, const float* w, float* out,
                    size_t r0, size_t r1) {
  by_isa([=](auto target) MLX_SHIM_ALWAYS_INLINE {
    using V = typename decltype(target)::Vec;
    constexpr int lanes = sizeof(V) / sizeof(float);
    const size_t C = static_cast<size_t>(s.C);
    for (size_t r = r0; r < r1; ++r) {
      int b = static_cast<int>(r / s.OH), oh = static_cast<int>(r % s.OH);
      for (int ow = 0; ow < s.OW; ++ow) {
        float* o = out + (r * s.OW + ow) * C;
        // The taps inside the image, whole vectors of channels first.
        auto tap = [&](auto&& each) MLX_SHIM_ALWAYS_INLINE {
          for (int i = 0; i < s.kh; ++i) {
            int ih = oh * s.sh - s.ph + i;
            if (ih < 0 || ih >= s.H) continue;
            for (int j = 0; j < s.kw; ++j) {
              int iw = ow * s.sw - s.pw + j;
              if (iw < 0 || iw >= s.W) continue;
              each(x + ((static_cast<size_t>(b) * s.H + ih) * s.W + iw) * C,
                   w + static_cast<size_t>(i * s.kw + j) * C);
            }
          }
        };
        size_t c = 0;
        for (; c + lanes <= C; c += lanes) {
          V acc{};
          tap([&](const float* xi, const float* wi) MLX_SHIM_ALWAYS_INLINE {
            acc += load_vec<V>(wi + c) * load_vec<V>(xi + c);
          });
          store_vec(o + c, acc);
        }
        for (; c < C; ++c) {
          float acc = 0.0f;
          tap([&](const float* xi, const float* wi) MLX_SHIM_ALWAYS_INLINE {
            acc += wi[c] * xi[c];
          });
          o[c] = acc;
        }
      }
    }
  });
}

}  // namespace mlx_shim::kernels::detail
