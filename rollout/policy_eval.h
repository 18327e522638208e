// Policy against reference on held-out prompts: sample both, score with the task's ground truth
// (and a reward model when given), report the win rate (ties count one half) and the KL of the
// policy to the reference estimated on the policy's own samples.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "data/synthetic.h"
#include "data/tokenizer.h"
#include "models/causal_lm.h"
#include "proto/rudder.pb.h"
#include "rewards/reward_model.h"

namespace rudder::rollout {

/// The comparison's figures.
struct PolicyComparison {
  size_t prompts = 0;
  double policy_score = 0;     // mean ground-truth score of the policy's samples
  double reference_score = 0;  // same for the reference
  double win_rate = 0;         // ground truth, ties one half
  double rm_policy_reward = std::numeric_limits<double>::quiet_NaN();
  double rm_reference_reward = std::numeric_limits<double>::quiet_NaN();
  double rm_win_rate = std::numeric_limits<double>::quiet_NaN();  // NaN without a reward model
  double kl = 0;  // mean over policy samples of log pi(y|x) - log pi_ref(y|x), in nats
};

/// Samples one response per task prompt from each model (same seed), scores and compares them.
PolicyComparison compare_policies(models::CausalLM& policy, models::CausalLM& reference,
                                  const data::Tokenizer& tokenizer,
                                  const std::vector<data::TaskExample>& tasks,
                                  const SamplingParams& sampling,
                                  rewards::RewardModel* reward_model, uint64_t seed);

}  // namespace rudder::rollout
