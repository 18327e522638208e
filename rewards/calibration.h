// CTRL reward calibration (ALGORITHMS.md section 5, step 1; InfAlign, arXiv 2412.19792):
// the reward's position in the empirical distribution of the rewards of reference-policy
// samples for the same prompt. Rewards are taken as data: the reference samples are drawn and
// scored once, offline, by whoever calls this.
#pragma once

#include <ATen/core/Tensor.h>

namespace rudder::rewards {

/// InfAlign calibrated reward (sec. 5, the estimator C-hat): for each row b,
/// (1/K) sum_k (1{ref_rewards[b, k] < reward[b]} + 0.5 * 1{ref_rewards[b, k] == reward[b]}),
/// ties counted as one half, compared exactly in the inputs' dtype. reward [B] and ref_rewards
/// [B, K] (K >= 1, same floating dtype, finite) in; calibrated [B] in [0, 1] out (detached).
/// Reduction: mean over the K reference samples of each row; none over B.
at::Tensor ctrl_calibrate(const at::Tensor& reward, const at::Tensor& ref_rewards);

}  // namespace rudder::rewards
