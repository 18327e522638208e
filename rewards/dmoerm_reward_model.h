// DMoERM behind the RewardModel interface: route each prompt to its category, then score the
// response with that category's experts and aggregator. Gives a score per capability dimension
// (each expert's head) and the routed category.
//
// On disk (a directory): config.json + model.safetensors (the shared base, Hugging Face layout),
// dmoerm.safetensors (router, heads, expert adapters, aggregators by parameter name) and
// reward_config.json ({"kind": "dmoerm", "categories", "dimensions", "expert_rank",
// "expert_alpha"}).
#pragma once

#include <memory>
#include <string>

#include "data/tokenizer.h"
#include "proto/rudder.pb.h"
#include "rewards/dmoerm.h"
#include "rewards/reward_model.h"

namespace rudder::rewards {

/// Prompt-only rows of `prompts` (the router's input), tokenized as in training.
data::Batch prompt_batch(const data::Tokenizer& tokenizer, const std::vector<std::string>& prompts,
                         const TokenizerConfig& tokenizer_config, const DataConfig& data_config);

/// A trained DMoERM.
class DmoermRewardModel : public RewardModel {
 public:
  DmoermRewardModel(std::shared_ptr<DmoermNet> net, std::shared_ptr<data::Tokenizer> tokenizer,
                    TokenizerConfig tokenizer_config, DataConfig data_config);

  std::vector<double> score(const std::vector<std::string>& prompts,
                            const std::vector<std::string>& responses) override;
  /// Fills `category` always and, when asked, the routed category's dimension scores.
  std::vector<ScoreDetail> score_detailed(const std::vector<std::string>& prompts,
                                          const std::vector<std::string>& responses,
                                          const ScoreOptions& options) override;
  ScoreCapabilities capabilities() const override;
  std::string version() const override { return "dmoerm"; }
  int64_t max_tokens() const override { return data_config_.max_length(); }
  /// Tokens the model reads for the pair before cutting it (as the scalar model counts them).
  int64_t count_tokens(const std::string& prompt, const std::string& response) const override;
  std::vector<std::string> pad_and_eos_texts() const override;

  /// The router's category index of each prompt (top-1).
  std::vector<size_t> route(const std::vector<std::string>& prompts);

  DmoermNet& net() { return *net_; }
  /// Writes the directory layout above.
  void save(const std::string& dir) const;

 private:
  std::shared_ptr<DmoermNet> net_;
  std::shared_ptr<data::Tokenizer> tokenizer_;
  TokenizerConfig tokenizer_config_;
  DataConfig data_config_;
};

/// Loads a directory written by DmoermRewardModel::save (on the CPU).
std::unique_ptr<DmoermRewardModel> load_dmoerm_reward_model(
    const std::string& dir, std::shared_ptr<data::Tokenizer> tokenizer,
    const TokenizerConfig& tokenizer_config, const DataConfig& data_config);

}  // namespace rudder::rewards
