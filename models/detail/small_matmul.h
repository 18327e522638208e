// Matrix products with few rows, the shape of decoding (one row per running sequence): reading
// the weight once dominates, and BLAS's general kernels leave much of the memory bandwidth
// unused there. CPU, float32 only.
#pragma once

#include <ATen/core/Tensor.h>

namespace rudder::models::detail {

/// Rows up to which small_matmul is used.
inline constexpr int64_t kSmallMatmulRows = 4;

/// Whether small_matmul handles x [M, K] times weight [N, K] transposed: CPU float32, weight
/// contiguous, M <= kSmallMatmulRows.
bool small_matmul_applies(const at::Tensor& x, const at::Tensor& weight);

/// x [M, K] times weight [N, K] transposed (+ residual [M, N] when defined): every output is a
/// dot product of a contiguous weight row with a row of x, so the weight streams through once
/// while x stays in cache; threads split the outputs.
at::Tensor small_matmul(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& residual);

/// The same into `y` [M, N] (float32, contiguous, not overlapping x): y = x weight^T, plus y's
/// own values when `accumulate` (a residual added in place).
void small_matmul_out(const at::Tensor& x, const at::Tensor& weight, at::Tensor& y,
                      bool accumulate);

}  // namespace rudder::models::detail
