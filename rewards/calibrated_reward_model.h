// CTRL reward calibration as a RewardModel decorator (ALGORITHMS.md section 5, step 1; InfAlign,
// arXiv 2412.19792): the calibrated reward of (x, y) is the position of r(x, y) among the rewards
// of reference-policy samples z_1..z_K for x, (1/K) sum_k (1{r(x,z_k) < r(x,y)} + 1/2 1{=}).
// The reference samples come as data (drawn once, offline, by whoever has a policy); their
// rewards are computed by the wrapped model on first use of each prompt and cached.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "rewards/reward_model.h"

namespace rudder {
class ChatTemplate;
}

namespace rudder::rewards {

/// Reference-policy samples by prompt.
using ReferenceSamples = std::unordered_map<std::string, std::vector<std::string>>;

/// Reads records {"prompt": ..., "responses": [...]} or `rudder generate`'s output (its samples'
/// texts are the responses), JSONL or one JSON array (data::load_prompt_samples_jsonl; prompts
/// given as messages are formatted with `chat_template`); a prompt seen again adds its
/// responses. Throws NotFound for a missing file and InvalidArgument naming the line for a
/// malformed one, or for a file with no records.
ReferenceSamples load_reference_samples(const std::string& path, const ChatTemplate& chat_template);

/// Calibrates `inner`'s rewards against reference samples; rewards in [0, 1].
/// Thread-safety: one caller at a time (the cache is not guarded).
class CalibratedRewardModel : public RewardModel {
 public:
  /// Throws InvalidArgument for a null model, no prompts, or a prompt with no samples.
  CalibratedRewardModel(std::shared_ptr<RewardModel> inner, ReferenceSamples references);

  /// Throws InvalidArgument for a prompt with no reference samples.
  std::vector<double> score(const std::vector<std::string>& prompts,
                            const std::vector<std::string>& responses) override;
  std::string version() const override { return "calibrated(" + inner_->version() + ")"; }
  int64_t count_tokens(const std::string& prompt, const std::string& response) const override {
    return inner_->count_tokens(prompt, response);
  }
  int64_t max_tokens() const override { return inner_->max_tokens(); }
  std::vector<std::string> pad_and_eos_texts() const override {
    return inner_->pad_and_eos_texts();
  }

  /// Prompts whose reference rewards are cached.
  size_t cached_prompts() const { return cache_.size(); }

 private:
  const std::vector<double>& reference_rewards(const std::string& prompt);

  std::shared_ptr<RewardModel> inner_;
  ReferenceSamples references_;
  std::unordered_map<std::string, std::vector<double>> cache_;
};

}  // namespace rudder::rewards
