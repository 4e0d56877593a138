// What the MLX primitives of the kernels share.
#pragma once

#include <optional>

#include "mlx/array.h"
#include "mlx/stream.h"

namespace mlx_shim::kernels {

namespace mx = mlx::core;

namespace detail {

// Throws unless `a` is row-contiguous; `who` names the primitive.
void require_row_contiguous(const mx::array& a, const char* who);

// The CPU stream when the default device is the CPU and the kernels are on.
std::optional<mx::Stream> cpu_stream();

}  // namespace detail
}  // namespace mlx_shim::kernels
