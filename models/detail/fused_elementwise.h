// RoPE and SwiGLU as one kernel each way on CUDA (models/detail/cuda/elementwise.h), where
// libtorch runs five and two kernels forward and more backward, each a pass over the layer's
// activations. Autograd functions over Rudder's own kernels; compiled in where libtorch has
// CUDA, and RUDDER_CUDA_KERNELS=0 in the environment turns them off (the layers then run the
// libtorch ops they replace, which give the same values within float32 rounding).
#pragma once

#include <ATen/core/Tensor.h>

namespace rudder::models::detail {

/// Whether the kernels run for `x`: built in, `x` on a CUDA device in float32, bfloat16 or
/// float16, not turned off.
bool cuda_kernels_apply(const at::Tensor& x);

/// The step from one row of `t` to the next, where its rows (every index but the last `inner`
/// dimensions) are evenly spaced and its last dimension is contiguous, as the kernels read
/// them; -1 where not (the kernels then take a copy). Dimensions of size 1 take no step,
/// whatever their strides say: libtorch leaves those arbitrary, even on a tensor it calls
/// contiguous.
int64_t even_row_stride(const at::Tensor& t, int64_t inner);

/// RoPE in Hugging Face's half-split layout of x [B, T, heads, D] (any strides with the last
/// dimension contiguous and rows evenly spaced), by the angles whose cosines and sines are
/// `cos` and `sin` [B, T, D / 2] (float32): [B, T, heads, D] in `dtype`, contiguous. Gradients
/// flow to x (the angles take none). Requires cuda_kernels_apply(x).
at::Tensor rope_cuda(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                     at::ScalarType dtype);

/// silu(gate) * up of two [..., width] tensors of one dtype and shape (rows evenly spaced, the
/// last dimension contiguous), in that dtype; gradients flow to both. Requires
/// cuda_kernels_apply(gate).
at::Tensor swiglu_cuda(const at::Tensor& gate, const at::Tensor& up);

/// The same of gate and up side by side in one [..., 2 width] tensor, gate first (as
/// project_joined gives them): [..., width]. Its backward writes both gradients into one
/// [..., 2 width] tensor, where two would be joined by a copy. Requires
/// cuda_kernels_apply(gate_up).
at::Tensor swiglu_joined_cuda(const at::Tensor& gate_up);

}  // namespace rudder::models::detail
