#include "rewards/arm_loss.h"

#include <torch/torch.h>

#include "core/error.h"

namespace rudder::rewards {

ArmLossOutput arm_loss(const at::Tensor& chosen_logps, const at::Tensor& rejected_logps,
                       const ArmLossOptions& options) {
  RUDDER_CHECK(options.beta_r > 0, "arm_loss beta_r must be > 0, got ", options.beta_r);
  RUDDER_CHECK(options.label_smoothing >= 0 && options.label_smoothing < 0.5,
               "arm_loss label_smoothing must be in [0, 0.5), got ", options.label_smoothing);
  RUDDER_CHECK(chosen_logps.defined() && rejected_logps.defined(),
               "arm_loss needs chosen_logps and rejected_logps");
  RUDDER_CHECK(chosen_logps.dim() == 1 && chosen_logps.sizes() == rejected_logps.sizes() &&
                   chosen_logps.numel() > 0,
               "arm_loss needs chosen_logps and rejected_logps [B] with B > 0, got ",
               chosen_logps.sizes(), " and ", rejected_logps.sizes());
  // GenARM's form beta_r * (delta - gamma / beta_r): the margin is in reward units.
  const at::Tensor logits =
      options.beta_r * (chosen_logps - rejected_logps) - options.margin;  // [B]
  const double eps = options.label_smoothing;
  at::Tensor losses = -torch::log_sigmoid(logits);  // [B]
  if (eps > 0) losses = (1 - eps) * losses - eps * torch::log_sigmoid(-logits);
  ArmLossOutput out;
  out.loss = losses.mean();
  out.losses = losses;
  out.chosen_rewards = (options.beta_r * chosen_logps).detach();
  out.rejected_rewards = (options.beta_r * rejected_logps).detach();
  out.accuracy =
      (out.chosen_rewards > out.rejected_rewards).to(torch::kDouble).mean().item<double>();
  return out;
}

}  // namespace rudder::rewards
