#include "trainer/optimizer.h"

#include <cmath>
#include <map>
#include <tuple>

#include <torch/torch.h>
#include <torch/version.h>

#include "core/error.h"
#include "core/runtime.h"
#include "proto/rudder.pb.h"
#include "trainer/detail/fused_adamw.h"

namespace rudder::trainer {

std::vector<NamedParameter> trainable_parameters(
    const std::vector<std::pair<std::string, at::Tensor>>& named) {
  std::vector<NamedParameter> out;
  for (const auto& [name, t] : named) {
    if (t.requires_grad()) out.push_back({name, t, t.dim() >= 2});
  }
  return out;
}

AdamW::AdamW(std::vector<NamedParameter> params, const OptimizerConfig& c)
    : params_(std::move(params)),
      beta1_(c.beta1()),
      beta2_(c.beta2()),
      eps_(c.eps()),
      weight_decay_(c.weight_decay()) {
  RUDDER_CHECK(!params_.empty(), "the optimizer has no trainable parameters");
  for (auto& p : params_) {
    const bool low = p.tensor.scalar_type() == at::kBFloat16 || p.tensor.scalar_type() == at::kHalf;
    working_.push_back(low ? p.tensor : at::Tensor());
    if (low) p.tensor = p.tensor.detach().to(at::kFloat).requires_grad_(true);
    exp_avg_.push_back(torch::zeros_like(p.tensor, torch::MemoryFormat::Preserve));
    exp_avg_sq_.push_back(torch::zeros_like(p.tensor, torch::MemoryFormat::Preserve));
  }
}

void AdamW::collect_grads() {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!working_[i].defined() || !working_[i].grad().defined()) continue;
    at::Tensor& master_grad = params_[i].tensor.mutable_grad();
    if (master_grad.defined()) {
      master_grad.add_(working_[i].grad().to(at::kFloat));
    } else {
      master_grad = working_[i].grad().to(at::kFloat);
    }
    working_[i].mutable_grad() = at::Tensor();
  }
}

namespace {

// Parameters whose AdamW update runs through libtorch's multi-tensor (_foreach_) operations: on a
// GPU a few launches for a whole group instead of seven per parameter, on the CPU the same
// operations one tensor at a time. Each gets the op-by-op update of torch.optim.AdamW.
struct ForeachGroup {
  std::vector<at::Tensor> p, g, m, v;
  std::vector<at::Scalar> step;     // -lr / (1 - beta1^t)
  std::vector<at::Tensor> decayed;  // the parameters with weight decay, and their 1 - lr wd
  std::vector<at::Scalar> decay;
  int64_t elements = 0;
};

// At most this many elements per group, which bounds the temporary denominators.
constexpr int64_t kForeachGroupElements = int64_t{1} << 26;

void foreach_adamw(ForeachGroup& group, double beta1, double beta2, double eps, double bias2_sqrt) {
  if (group.p.empty()) return;
  if (!group.decayed.empty()) at::_foreach_mul_(group.decayed, group.decay);
  at::_foreach_mul_(group.m, beta1);
  at::_foreach_add_(group.m, group.g, 1.0 - beta1);
  at::_foreach_mul_(group.v, beta2);
  at::_foreach_addcmul_(group.v, group.g, group.g, 1.0 - beta2);
  std::vector<at::Tensor> denom = at::_foreach_sqrt(group.v);
  at::_foreach_div_(denom, bias2_sqrt);
  at::_foreach_add_(denom, eps);
  at::_foreach_addcdiv_(group.p, group.m, denom, group.step);
  group = ForeachGroup();
}

// Float32 parameters on a GPU, updated by libtorch's fused AdamW (from torch 2.0; what
// torch.optim.AdamW(fused=True) runs): one multi-tensor kernel reads and writes each parameter,
// gradient and moment once, where the _foreach_ path makes nine passes. One call per learning
// rate, decay and device; the step count goes in as a device scalar, from which the kernel takes
// the bias corrections. RUDDER_FUSED_ADAMW=0 in the environment turns it off.
struct CudaFusedGroups {
  struct Group {
    std::vector<at::Tensor> p, g, m, v;
  };
  std::map<std::tuple<double, double, c10::DeviceIndex>, Group> groups;  // lr, decay, device

  static bool applies(const at::Tensor& p, const at::Tensor& g, const at::Tensor& m,
                      const at::Tensor& v) {
#if TORCH_VERSION_MAJOR >= 2
    static const bool enabled = !core::turned_off("RUDDER_FUSED_ADAMW");
    return enabled && p.is_cuda() && p.scalar_type() == at::kFloat &&
           g.scalar_type() == at::kFloat && g.device() == p.device() && !g.is_sparse() &&
           p.is_contiguous() && g.is_contiguous() && m.is_contiguous() && v.is_contiguous();
#else
    (void)p, (void)g, (void)m, (void)v;
    return false;
#endif
  }

  void add(double lr, double wd, const at::Tensor& p, const at::Tensor& g, const at::Tensor& m,
           const at::Tensor& v) {
    Group& group = groups[{lr, wd, p.device().index()}];
    group.p.push_back(p);
    group.g.push_back(g);
    group.m.push_back(m);
    group.v.push_back(v);
  }

  void run(int64_t step, double beta1, double beta2, double eps) {
#if TORCH_VERSION_MAJOR >= 2
    std::map<c10::DeviceIndex, at::Tensor> step_on;  // the step count on each device
    for (auto& [key, group] : groups) {
      const auto& [lr, wd, device] = key;
      at::Tensor& count = step_on[device];
      if (!count.defined()) {
        count = at::full({}, static_cast<double>(step),
                         at::dtype(at::kFloat).device(group.p.front().device()));
      }
      const std::vector<at::Tensor> steps(group.p.size(), count);
      at::_fused_adamw_(group.p, group.g, group.m, group.v, /*max_exp_avg_sqs=*/{}, steps, lr,
                        beta1, beta2, wd, eps, /*amsgrad=*/false, /*maximize=*/false);
    }
#else
    (void)step, (void)beta1, (void)beta2, (void)eps;
#endif
    groups.clear();
  }
};

}  // namespace

void AdamW::step(double lr) {
  collect_grads();
  torch::NoGradGuard no_grad;
  ++steps_;
  const double bias1 = 1.0 - std::pow(beta1_, static_cast<double>(steps_));
  const double bias2 = 1.0 - std::pow(beta2_, static_cast<double>(steps_));
  const double bias2_sqrt = std::sqrt(bias2);
  ForeachGroup group;
  CudaFusedGroups on_gpu;
  std::vector<size_t> followers;  // bf16 weights to round from their masters once updated
  for (size_t i = 0; i < params_.size(); ++i) {
    at::Tensor p = params_[i].tensor;
    const at::Tensor& g = p.grad();
    // A parameter frozen after the optimizer was made (a method's later phase) stays put; a
    // bf16 weight's freezing shows on the weight, not on its master.
    const bool frozen = working_[i].defined() ? !working_[i].requires_grad() : !p.requires_grad();
    if (!g.defined() || frozen) continue;
    RUDDER_ASSERT(!g.is_sparse(), "parameter '", params_[i].name, "' has a sparse gradient");
    const double group_lr = lr * params_[i].lr_scale;
    const double wd = params_[i].decay ? weight_decay_ : 0.0;
    if (detail::fused_adamw_applies(p, g, exp_avg_[i], exp_avg_sq_[i])) {
      detail::fused_adamw_step(p, g, exp_avg_[i], exp_avg_sq_[i],
                               {group_lr, wd, beta1_, beta2_, eps_, bias1, bias2_sqrt});
    } else if (CudaFusedGroups::applies(p, g, exp_avg_[i], exp_avg_sq_[i])) {
      on_gpu.add(group_lr, wd, p, g, exp_avg_[i], exp_avg_sq_[i]);
    } else {
      if (group.elements + p.numel() > kForeachGroupElements) {
        foreach_adamw(group, beta1_, beta2_, eps_, bias2_sqrt);
      }
      group.p.push_back(p);
      group.g.push_back(g);
      group.m.push_back(exp_avg_[i]);
      group.v.push_back(exp_avg_sq_[i]);
      group.step.emplace_back(-group_lr / bias1);
      if (wd != 0.0) {
        group.decayed.push_back(p);
        group.decay.emplace_back(1.0 - group_lr * wd);
      }
      group.elements += p.numel();
    }
    if (working_[i].defined()) followers.push_back(i);
  }
  foreach_adamw(group, beta1_, beta2_, eps_, bias2_sqrt);
  on_gpu.run(steps_, beta1_, beta2_, eps_);
  // A bf16 weight follows its float32 master.
  for (const size_t i : followers) working_[i].copy_(params_[i].tensor);
}

void AdamW::zero_grad() {
  for (auto& p : params_) p.tensor.mutable_grad() = at::Tensor();
  for (auto& w : working_) {
    if (w.defined()) w.mutable_grad() = at::Tensor();
  }
}

double AdamW::grad_norm() const {
  // One read of the device for the whole norm, not one per parameter.
  std::vector<at::Tensor> squares;
  for (const auto& p : params_) {
    if (p.tensor.grad().defined())
      squares.push_back(p.tensor.grad().to(torch::kDouble).pow(2).sum());
  }
  if (squares.empty()) return 0.0;
  return std::sqrt(torch::stack(squares).sum().item<double>());
}

void AdamW::scale_grads(double factor) {
  torch::NoGradGuard no_grad;
  for (auto& p : params_) {
    if (p.tensor.grad().defined()) p.tensor.mutable_grad().mul_(factor);
  }
}

models::TensorMap AdamW::state() const {
  models::TensorMap out;
  for (size_t i = 0; i < params_.size(); ++i) {
    out.emplace("exp_avg." + params_[i].name, exp_avg_[i]);
    out.emplace("exp_avg_sq." + params_[i].name, exp_avg_sq_[i]);
  }
  out.emplace("steps", torch::tensor({steps_}, torch::kLong));
  for (size_t i = 0; i < params_.size(); ++i) {
    if (working_[i].defined()) out.emplace("master." + params_[i].name, params_[i].tensor.detach());
  }
  return out;
}

void AdamW::load_state(const models::TensorMap& state, const std::string& source) {
  torch::NoGradGuard no_grad;
  auto fetch = [&](const std::string& key, const at::Tensor& like) {
    const auto it = state.find(key);
    RUDDER_CHECK(it != state.end(), source, ": missing optimizer tensor '", key, "'");
    RUDDER_CHECK(it->second.sizes() == like.sizes(), source, ": optimizer tensor '", key,
                 "' has shape ", it->second.sizes(), ", expected ", like.sizes());
    return it->second;
  };
  for (size_t i = 0; i < params_.size(); ++i) {
    exp_avg_[i].copy_(fetch("exp_avg." + params_[i].name, exp_avg_[i]));
    exp_avg_sq_[i].copy_(fetch("exp_avg_sq." + params_[i].name, exp_avg_sq_[i]));
    if (!working_[i].defined()) continue;
    const std::string master = "master." + params_[i].name;
    params_[i].tensor.copy_(state.count(master) ? fetch(master, params_[i].tensor) : working_[i]);
  }
  steps_ = fetch("steps", torch::zeros({1})).item<int64_t>();
}

}  // namespace rudder::trainer
