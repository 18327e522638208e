// Preference pairs from the policy's own samples, ranked by a reward model: per prompt, the best
// against the worst of k samples. Shared by the methods that learn from on-policy pairs (DPO on
// policy samples; SPIN, iterative DPO and MCTS preference collection build on it).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>
#include <c10/util/Optional.h>

#include "data/dataset.h"
#include "proto/rudder.pb.h"

namespace rudder::data {
class Tokenizer;
}
namespace rudder::models {
class CausalLM;
}
namespace rudder::rewards {
class RewardModel;
}

namespace rudder::rollout {

/// How pairs are collected.
struct PairCollectionOptions {
  uint32_t samples_per_prompt = 4;  // k samples per prompt (>= 2)
  SamplingParams sampling;          // how they are drawn
  size_t prompts_per_batch = 16;    // prompts generated together (k rows each)
};

/// One pair per prompt whose samples do not all score the same and whose best and worst are
/// non-empty: (best, worst, margin = their reward difference). `categories` labels the pairs
/// (empty, or one per prompt). Puts `model` in eval mode while sampling and restores it.
/// `generator` seeds the sampling (nullopt: the default generator of the model's device).
std::vector<data::PreferencePair> collect_pairs(models::CausalLM& model,
                                                const data::Tokenizer& tokenizer,
                                                const std::vector<std::string>& prompts,
                                                const std::vector<std::string>& categories,
                                                rewards::RewardModel& reward,
                                                const PairCollectionOptions& options,
                                                c10::optional<at::Generator> generator);

}  // namespace rudder::rollout
