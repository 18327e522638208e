// The reward model a config asks for: reward servers (`reward.endpoints`) or a reward model
// directory scored in process (`reward.model_path`).
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

/// A RemoteRewardModel when `reward.endpoints` is set, else the model in `reward.model_path`
/// (on `device`), tokenized as `tokenizer` and `data` say. Throws NotFound naming the path when
/// the directory does not exist, InvalidArgument when neither key is set.
std::shared_ptr<RewardModel> make_reward_model(const ExperimentConfig& config);

}  // namespace rudder::rewards
