// The reward model a config asks for: a weighted sum of reward sources (`reward.sources`), reward
// servers (`reward.endpoints`) or a reward model directory scored in process
// (`reward.model_path`: scalar, genarm or dmoerm, by its reward_config.json), optionally
// calibrated against reference samples (`reward.calibration`).
#pragma once

#include <memory>
#include <string>

#include "rewards/reward_model.h"

namespace rudder {
class ExperimentConfig;
}

namespace rudder::rewards {

/// Throws NotFound naming `dir` (and how to make one) when it is not a directory, and
/// InvalidArgument when it is empty.
void require_reward_model_dir(const std::string& dir);

/// A WeightedSumReward of `reward.sources` when set, else a RemoteRewardModel when
/// `reward.endpoints` is set, else the model in `reward.model_path` (on `device`), tokenized as
/// `tokenizer` and `data` say; wrapped in a CalibratedRewardModel when
/// `reward.calibration.reference_path` is set. Throws NotFound naming the path when a directory
/// or file does not exist, InvalidArgument when nothing is set.
std::shared_ptr<RewardModel> make_reward_model(const ExperimentConfig& config);

}  // namespace rudder::rewards
