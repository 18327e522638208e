// The AdamW update of one float32 parameter in one pass over its memory: parameter, gradient
// and both moments are read and written once per element, instead of once per tensor op.
#pragma once

#include <ATen/core/Tensor.h>

namespace rudder::trainer::detail {

/// The scalars of one AdamW update (torch.optim.AdamW's conventions: decoupled decay
/// p (1 - lr wd), step size lr / (1 - beta1^t), denominator sqrt(v) / sqrt(1 - beta2^t) + eps).
struct AdamWScalars {
  double lr = 0;            // this parameter's learning rate
  double weight_decay = 0;  // 0 for parameters without decay
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double bias1 = 1, bias2_sqrt = 1;  // 1 - beta1^t and sqrt(1 - beta2^t)
};

/// Whether fused_adamw_step can update `param` with `grad` and moments like it: float32, on the
/// CPU, contiguous, of one shape.
bool fused_adamw_applies(const at::Tensor& param, const at::Tensor& grad, const at::Tensor& exp_avg,
                         const at::Tensor& exp_avg_sq);

/// p, m, v <- AdamW(p, g, m, v) element by element, in place, in parallel over chunks. The four
/// tensors must not share memory.
void fused_adamw_step(at::Tensor& param, const at::Tensor& grad, at::Tensor& exp_avg,
                      at::Tensor& exp_avg_sq, const AdamWScalars& s);

}  // namespace rudder::trainer::detail
