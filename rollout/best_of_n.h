// Best-of-N (and worst-of-N) decoding: draw n samples of a prompt, score each with a reward
// model, keep the best (ALGORITHMS.md section 10's selection rule: ties go to the first).
#pragma once

#include <vector>

#include "rollout/engine.h"

namespace rudder::data {
class Tokenizer;
}
namespace rudder::rewards {
class RewardModel;
}

namespace rudder::rollout {

/// The n samples of one prompt, their rewards, and the one chosen.
struct BestOfN {
  std::vector<Sample> samples;
  std::vector<double> scores;  // the reward of each sample, in sample order
  size_t chosen = 0;           // index into samples
  std::string policy_version;
};

/// Generates `request.n` samples of every request with `engine`, scores (prompt text, sample
/// text) with `reward` and picks the best one, or the worst with `worst`. A request's prompt
/// text is its prompt_text, else its ids decoded with `tokenizer`; samples without text are
/// decoded the same way. Throws InvalidArgument when a request asks for n < 1.
std::vector<BestOfN> best_of_n_decode(RolloutEngine& engine, rewards::RewardModel& reward,
                                      const std::vector<GenerateInput>& requests,
                                      const data::Tokenizer& tokenizer, bool worst = false);

}  // namespace rudder::rollout
