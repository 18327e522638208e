// The training loss of GenARM's autoregressive reward model (ALGORITHMS.md section 7; GenARM,
// Xu et al. 2024, code `training_trl/arm_trainer.py::arm_loss`): DPO-shaped, with no reference
// model. Reduction: mean over pairs.
#pragma once

#include <ATen/core/Tensor.h>

namespace rudder::rewards {

/// The constants of the ARM loss.
struct ArmLossOptions {
  double beta_r = 0.05;          // reward scale: r(x, y) = beta_r * log pi_r(y|x); > 0
  double margin = 0.0;           // target reward margin gamma, in reward units
  double label_smoothing = 0.0;  // epsilon in [0, 0.5): weight of the flipped label
};

/// The loss and the rewards it implies (rewards detached).
struct ArmLossOutput {
  at::Tensor loss;              // scalar: mean of losses
  at::Tensor losses;            // [B]
  at::Tensor chosen_rewards;    // [B] beta_r * logp_chosen
  at::Tensor rejected_rewards;  // [B] beta_r * logp_rejected
  double accuracy = 0;          // mean 1{chosen_rewards > rejected_rewards}
};

/// GenARM ARM loss (sec. 7): with z = beta_r * (logp_w - logp_l) - margin,
/// losses = -(1 - eps) log sigmoid(z) - eps log sigmoid(-z). Takes the ARM's summed response
/// log-probs [B] of the chosen and rejected responses; mean over the B pairs.
ArmLossOutput arm_loss(const at::Tensor& chosen_logps, const at::Tensor& rejected_logps,
                       const ArmLossOptions& options = {});

}  // namespace rudder::rewards
