// GenARM's autoregressive reward model (ALGORITHMS.md section 7; Xu et al. 2024, code
// Yuancheng-Xu/GenARM@824e846): a causal LM pi_r whose reward is
// r(x, y) = beta_r * sum_t log pi_r(y_t | x, y_<t) over response tokens (prompt masked), so each
// response token carries a reward of its own, beta_r * log pi_r(y_t | x, y_<t).
//
// On disk (a directory): config.json + model.safetensors (the LM, Hugging Face layout, LoRA
// folded in), reward_config.json ({"kind": "genarm", "beta_r": ...}).
#pragma once

#include <memory>
#include <string>

#include "data/collate.h"
#include "data/tokenizer.h"
#include "models/causal_lm.h"
#include "proto/rudder.pb.h"
#include "rewards/reward_model.h"

namespace rudder::rewards {

/// Per-token ARM rewards of a padded batch: beta_r * log pi_r(token | prefix) where
/// `loss_mask` is 1, 0 elsewhere ([batch, seq], float32, on the model's device). Gradients flow.
at::Tensor arm_token_rewards(models::CausalLM& arm, const data::Batch& batch, double beta_r);

/// A trained ARM behind the RewardModel interface; gives per-token rewards.
class GenArmRewardModel : public RewardModel {
 public:
  /// Throws InvalidArgument unless beta_r > 0.
  GenArmRewardModel(std::shared_ptr<models::CausalLM> arm,
                    std::shared_ptr<data::Tokenizer> tokenizer, TokenizerConfig tokenizer_config,
                    DataConfig data_config, double beta_r);

  std::vector<double> score(const std::vector<std::string>& prompts,
                            const std::vector<std::string>& responses) override;
  /// With `token_rewards`, one reward per response token (EOS included when configured); they
  /// sum to the pair's reward.
  std::vector<ScoreDetail> score_detailed(const std::vector<std::string>& prompts,
                                          const std::vector<std::string>& responses,
                                          const ScoreOptions& options) override;
  ScoreCapabilities capabilities() const override;
  std::string version() const override { return "genarm"; }
  /// `data.max_length`: longer pairs would have their response cut.
  int64_t max_tokens() const override { return data_config_.max_length(); }
  /// Tokens the model reads for the pair before cutting it (as the scalar model counts them).
  int64_t count_tokens(const std::string& prompt, const std::string& response) const override;
  std::vector<std::string> pad_and_eos_texts() const override;

  double beta_r() const { return beta_r_; }
  models::CausalLM& arm() { return *arm_; }

  /// Writes the directory layout above.
  void save(const std::string& dir) const;

 private:
  std::shared_ptr<models::CausalLM> arm_;
  std::shared_ptr<data::Tokenizer> tokenizer_;
  TokenizerConfig tokenizer_config_;
  DataConfig data_config_;
  double beta_r_;
};

/// Loads a directory written by GenArmRewardModel::save (the LM on the CPU).
std::unique_ptr<GenArmRewardModel> load_genarm_reward_model(
    const std::string& dir, std::shared_ptr<data::Tokenizer> tokenizer,
    const TokenizerConfig& tokenizer_config, const DataConfig& data_config);

}  // namespace rudder::rewards
