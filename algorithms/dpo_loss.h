// The DPO family of losses (ALGORITHMS.md section 3; Rafailov et al. 2023 eq. 7; cDPO; robust
// DPO, Chowdhury et al. 2024; IPO, Azar et al. 2023, with TRL's per-sequence averages;
// hinge/SLiC-HF, Zhao et al. 2023). Reduction: mean over pairs.
#pragma once

#include <string>

#include <ATen/core/Tensor.h>

namespace rudder::algorithms {

/// Which loss and its constants.
struct DpoLossOptions {
  std::string loss_type = "sigmoid";  // sigmoid, ipo, hinge, robust
  double beta = 0.1;
  double label_smoothing = 0.0;  // cDPO epsilon (sigmoid) or noise rate (robust), < 0.5
  bool reference_free = false;   // reference log-probs taken as 0
};

/// The loss and TRL's metrics (detached).
struct DpoLossOutput {
  at::Tensor loss;              // scalar mean of losses
  at::Tensor losses;            // [B]
  at::Tensor chosen_rewards;    // [B] beta (logp_w - ref_w)
  at::Tensor rejected_rewards;  // [B]
  /// Mean 1{chosen_rewards > rejected_rewards} and mean (chosen_rewards - rejected_rewards),
  /// computed when asked: reading them waits for the device, which a training step does only
  /// after queueing its backward.
  double accuracy() const;
  double margin() const;
};

/// Summed response log-probs [B] in; for `ipo` each is divided by its length (`*_lengths` [B],
/// required then), so h uses per-sequence averages.
DpoLossOutput dpo_loss(const at::Tensor& policy_chosen, const at::Tensor& policy_rejected,
                       const at::Tensor& ref_chosen, const at::Tensor& ref_rejected,
                       const DpoLossOptions& options, const at::Tensor& chosen_lengths = {},
                       const at::Tensor& rejected_lengths = {});

}  // namespace rudder::algorithms
