#include "rewards/reward_model.h"

#include "core/error.h"

namespace rudder::rewards {

void check_score_options(const ScoreOptions& options, const ScoreCapabilities& capabilities,
                         const std::string& model_version) {
  RUDDER_CHECK(!options.token_rewards || capabilities.token_rewards, "reward model '",
               model_version, "' gives no per-token rewards; do not ask for them");
  RUDDER_CHECK(!options.dimension_scores || !capabilities.dimensions.empty(), "reward model '",
               model_version, "' gives no per-dimension scores; do not ask for them");
}

std::vector<ScoreDetail> RewardModel::score_detailed(const std::vector<std::string>& prompts,
                                                     const std::vector<std::string>& responses,
                                                     const ScoreOptions& options) {
  check_score_options(options, capabilities(), version());
  const std::vector<double> rewards = score(prompts, responses);
  std::vector<ScoreDetail> out(rewards.size());
  for (size_t i = 0; i < rewards.size(); ++i) out[i].reward = rewards[i];
  return out;
}

}  // namespace rudder::rewards
