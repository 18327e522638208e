// The scalar reward model: a causal LM backbone with a linear head read at the last real token
// (ALGORITHMS.md section 1), trained with the Bradley-Terry loss; optional normalization by the
// mean and std measured on an eval set, stored with the model.
//
// On disk (a directory): config.json + model.safetensors (the backbone, Hugging Face layout),
// reward_head.safetensors (score.weight, score.bias), reward_config.json (normalization).
#pragma once

#include <memory>
#include <string>

#include <torch/nn/module.h>

#include "data/collate.h"
#include "data/tokenizer.h"
#include "models/causal_lm.h"
#include "models/heads.h"
#include "proto/rudder.pb.h"
#include "rewards/reward_model.h"

namespace rudder::rewards {

/// Backbone + head as one module; parameters "lm.*" and "head.score.*".
class ScalarRewardNet : public torch::nn::Module {
 public:
  explicit ScalarRewardNet(std::shared_ptr<models::CausalLM> lm);
  /// Rewards [batch] of the input's token ids [batch, seq] (read at each row's last real token).
  at::Tensor forward(const models::ForwardInput& input);
  models::CausalLM& lm() { return *lm_; }
  models::ScalarHead& head() { return head_; }

 private:
  std::shared_ptr<models::CausalLM> lm_;
  models::ScalarHead head_{nullptr};
};

/// Reward normalization statistics (OpenRLHF's post-hoc variant).
struct RewardNormalization {
  bool enabled = false;
  double mean = 0.0;
  double std = 1.0;  // unbiased, clamped >= 1e-8
};

/// Mean and unbiased std of `rewards` (std clamped to >= 1e-8).
RewardNormalization normalization_of(const std::vector<double>& rewards, bool enabled);

/// A trained scalar reward model behind the RewardModel interface.
class ScalarRewardModel : public RewardModel {
 public:
  ScalarRewardModel(std::shared_ptr<ScalarRewardNet> net,
                    std::shared_ptr<data::Tokenizer> tokenizer, TokenizerConfig tokenizer_config,
                    DataConfig data_config, RewardNormalization normalization);

  std::vector<double> score(const std::vector<std::string>& prompts,
                            const std::vector<std::string>& responses) override;
  std::string version() const override { return version_; }

  /// BOS (when configured), the prompt's last `data.max_prompt_length` tokens (prompts are cut
  /// as in training), the response and EOS (when configured). Thread-safe.
  int64_t count_tokens(const std::string& prompt, const std::string& response) const override;

  /// `data.max_length`: longer pairs would have their response cut.
  int64_t max_tokens() const override { return data_config_.max_length(); }
  std::vector<std::string> pad_and_eos_texts() const override;

  const RewardNormalization& normalization() const { return normalization_; }
  ScalarRewardNet& net() { return *net_; }

  /// Writes the directory layout above (atomically per file).
  void save(const std::string& dir) const;

 private:
  std::shared_ptr<ScalarRewardNet> net_;
  std::shared_ptr<data::Tokenizer> tokenizer_;
  TokenizerConfig tokenizer_config_;
  DataConfig data_config_;
  RewardNormalization normalization_;
  std::string version_ = "scalar";
};

/// Loads a directory written by ScalarRewardModel::save.
std::unique_ptr<ScalarRewardModel> load_scalar_reward_model(
    const std::string& dir, std::shared_ptr<data::Tokenizer> tokenizer,
    const TokenizerConfig& tokenizer_config, const DataConfig& data_config);

}  // namespace rudder::rewards
