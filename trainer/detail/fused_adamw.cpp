#include "trainer/detail/fused_adamw.h"

#include <cmath>

#include <ATen/Parallel.h>

namespace rudder::trainer::detail {

bool fused_adamw_applies(const at::Tensor& param, const at::Tensor& grad, const at::Tensor& exp_avg,
                         const at::Tensor& exp_avg_sq) {
  for (const at::Tensor* t : {&param, &grad, &exp_avg, &exp_avg_sq}) {
    if (t->scalar_type() != at::kFloat || !t->is_cpu() || !t->is_contiguous() ||
        t->sizes() != param.sizes())
      return false;
  }
  return true;
}

void fused_adamw_step(at::Tensor& param, const at::Tensor& grad, at::Tensor& exp_avg,
                      at::Tensor& exp_avg_sq, const AdamWScalars& s) {
  // The same float32 roundings as the op-by-op update (each scalar is a float there too).
  const auto decay = static_cast<float>(1.0 - s.lr * s.weight_decay);
  const bool decays = s.weight_decay != 0.0;
  const auto b1 = static_cast<float>(s.beta1), a1 = static_cast<float>(1.0 - s.beta1);
  const auto b2 = static_cast<float>(s.beta2), a2 = static_cast<float>(1.0 - s.beta2);
  const auto eps = static_cast<float>(s.eps);
  const auto bias2_sqrt = static_cast<float>(s.bias2_sqrt);
  const auto step = static_cast<float>(-s.lr / s.bias1);
  float* p = param.data_ptr<float>();
  const float* g = grad.data_ptr<float>();
  float* m = exp_avg.data_ptr<float>();
  float* v = exp_avg_sq.data_ptr<float>();
  at::parallel_for(0, param.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float gi = g[i];
      const float pi = decays ? p[i] * decay : p[i];
      const float mi = m[i] * b1 + a1 * gi;
      const float vi = v[i] * b2 + a2 * (gi * gi);
      m[i] = mi;
      v[i] = vi;
      p[i] = pi + step * (mi / (std::sqrt(vi) / bias2_sqrt + eps));
    }
  });
}

}  // namespace rudder::trainer::detail
