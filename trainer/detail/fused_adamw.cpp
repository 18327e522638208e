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

namespace {

// The float32 coefficients of one update.
struct Coefficients {
  float decay, b1, a1, b2, a2, eps, bias2_sqrt, step;
  bool decays;
};

// Elements [0, n) of one parameter. A function of its own with restrict pointers, so that the
// loop vectorizes: written inside at::parallel_for's lambda, GCC compiled it scalar once the
// file was built with OpenMP (the lambda's pointers may alias there).
void update(float* __restrict p, const float* __restrict g, float* __restrict m,
            float* __restrict v, int64_t n, const Coefficients& c) {
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i];
    const float pi = c.decays ? p[i] * c.decay : p[i];
    const float mi = m[i] * c.b1 + c.a1 * gi;
    const float vi = v[i] * c.b2 + c.a2 * (gi * gi);
    m[i] = mi;
    v[i] = vi;
    p[i] = pi + c.step * (mi / (std::sqrt(vi) / c.bias2_sqrt + c.eps));
  }
}

}  // namespace

void fused_adamw_step(at::Tensor& param, const at::Tensor& grad, at::Tensor& exp_avg,
                      at::Tensor& exp_avg_sq, const AdamWScalars& s) {
  // The same float32 roundings as the op-by-op update (each scalar is a float there too).
  const Coefficients c{static_cast<float>(1.0 - s.lr * s.weight_decay),
                       static_cast<float>(s.beta1),
                       static_cast<float>(1.0 - s.beta1),
                       static_cast<float>(s.beta2),
                       static_cast<float>(1.0 - s.beta2),
                       static_cast<float>(s.eps),
                       static_cast<float>(s.bias2_sqrt),
                       static_cast<float>(-s.lr / s.bias1),
                       s.weight_decay != 0.0};
  float* p = param.data_ptr<float>();
  const float* g = grad.data_ptr<float>();
  float* m = exp_avg.data_ptr<float>();
  float* v = exp_avg_sq.data_ptr<float>();
  at::parallel_for(0, param.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
    update(p + begin, g + begin, m + begin, v + begin, end - begin, c);
  });
}

}  // namespace rudder::trainer::detail
