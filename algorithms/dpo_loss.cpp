#include "algorithms/dpo_loss.h"

#include <torch/torch.h>

#include "core/error.h"

namespace rudder::algorithms {

DpoLossOutput dpo_loss(const at::Tensor& policy_chosen, const at::Tensor& policy_rejected,
                       const at::Tensor& ref_chosen, const at::Tensor& ref_rejected,
                       const DpoLossOptions& o, const at::Tensor& chosen_lengths,
                       const at::Tensor& rejected_lengths) {
  RUDDER_CHECK(o.beta > 0, "dpo beta must be > 0, got ", o.beta);
  RUDDER_CHECK(o.label_smoothing >= 0 && o.label_smoothing < 0.5,
               "dpo label_smoothing must be in [0, 0.5), got ", o.label_smoothing);
  at::Tensor pc = policy_chosen, pr = policy_rejected;
  at::Tensor rc = o.reference_free ? torch::zeros_like(pc) : ref_chosen.to(pc.dtype());
  at::Tensor rr = o.reference_free ? torch::zeros_like(pr) : ref_rejected.to(pr.dtype());
  if (o.loss_type == "ipo") {
    RUDDER_CHECK(chosen_lengths.defined() && rejected_lengths.defined(),
                 "ipo needs the response lengths");
    const at::Tensor lc = chosen_lengths.to(pc.dtype()).clamp_min(1),
                     lr = rejected_lengths.to(pr.dtype()).clamp_min(1);
    pc = pc / lc;
    pr = pr / lr;
    rc = rc / lc;
    rr = rr / lr;
  }
  const at::Tensor h = (pc - pr) - (rc - rr);  // [B]
  const double beta = o.beta, eps = o.label_smoothing;
  DpoLossOutput out;
  if (o.loss_type == "sigmoid") {
    out.losses = -(1 - eps) * torch::log_sigmoid(beta * h) - eps * torch::log_sigmoid(-beta * h);
  } else if (o.loss_type == "robust") {
    out.losses = (-(1 - eps) * torch::log_sigmoid(beta * h) + eps * torch::log_sigmoid(-beta * h)) /
                 (1 - 2 * eps);
  } else if (o.loss_type == "ipo") {
    out.losses = (h - 1.0 / (2.0 * beta)).pow(2);
  } else if (o.loss_type == "hinge") {
    out.losses = torch::relu(1 - beta * h);
  } else {
    throw core::InvalidArgument(
        core::str("unknown dpo loss_type '", o.loss_type, "' (sigmoid, ipo, hinge, robust)"));
  }
  out.loss = out.losses.mean();
  out.chosen_rewards = (beta * (pc - rc)).detach();
  out.rejected_rewards = (beta * (pr - rr)).detach();
  return out;
}

double DpoLossOutput::accuracy() const {
  return (chosen_rewards > rejected_rewards).to(torch::kDouble).mean().item<double>();
}

double DpoLossOutput::margin() const {
  return (chosen_rewards - rejected_rewards).to(torch::kDouble).mean().item<double>();
}

}  // namespace rudder::algorithms
