// The RewardModel interface: score prompt/response pairs, one reward each. Implementations:
// the scalar Bradley-Terry model (scalar_reward_model.h) and the HTTP client over reward
// servers (remote_reward_model.h); DMoERM and GenARM come with their issues. The trainer and
// evaluators never know which one they hold.
//
// Beyond one reward per pair, a model may give a reward per response token (GenARM) or a score
// per named dimension (DMoERM experts). Both are optional: `capabilities()` says which a model
// gives, and `score_detailed()` returns them when asked.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace rudder::rewards {

/// What a caller wants besides the reward of each pair.
struct ScoreOptions {
  bool token_rewards = false;     // a reward per response token
  bool dimension_scores = false;  // a score per named dimension
};

/// What a model can give besides the reward of each pair.
struct ScoreCapabilities {
  bool token_rewards = false;
  std::vector<std::string> dimensions;  // names of the dimension scores; empty: none
};

/// The scores of one pair: the reward, plus what ScoreOptions asked for.
struct ScoreDetail {
  double reward = 0.0;
  std::vector<double> token_rewards;               // one per response token, when asked
  std::map<std::string, double> dimension_scores;  // by dimension name, when asked
  std::string category;  // the category a routing model (DMoERM) chose; "" for the others
};

/// Scores responses. Thread-safety: one caller at a time unless an implementation says more;
/// `count_tokens`, `max_tokens`, `pad_and_eos_texts`, `capabilities` and `version` may be called
/// from any thread.
class RewardModel {
 public:
  virtual ~RewardModel() = default;

  /// One reward per (prompt, response); throws InvalidArgument when the lists differ in length.
  virtual std::vector<double> score(const std::vector<std::string>& prompts,
                                    const std::vector<std::string>& responses) = 0;

  /// The reward of each pair plus what `options` asks for. The default gives rewards only and
  /// throws InvalidArgument when `options` asks for more than `capabilities()` allows.
  virtual std::vector<ScoreDetail> score_detailed(const std::vector<std::string>& prompts,
                                                  const std::vector<std::string>& responses,
                                                  const ScoreOptions& options);

  /// What score_detailed can give besides rewards (default: nothing).
  virtual ScoreCapabilities capabilities() const { return {}; }

  /// Tokens the model reads for this pair before any truncation of its own; 0 when the model
  /// does not tokenize (a remote model). Throws InvalidArgument for text it cannot tokenize.
  virtual int64_t count_tokens(const std::string& prompt, const std::string& response) const {
    return 0;
  }

  /// Most tokens of one pair the model reads without cutting it; 0: no limit of its own.
  virtual int64_t max_tokens() const { return 0; }

  /// The texts of its tokenizer's padding and end-of-sequence tokens: what a client that decodes
  /// padded sequences with their special tokens leaves at a text's ends (OpenRLHF's /get_reward
  /// clients). Empty when the model does not tokenize.
  virtual std::vector<std::string> pad_and_eos_texts() const { return {}; }

  /// A label of the weights that score (for logs and API responses).
  virtual std::string version() const = 0;
};

/// Throws InvalidArgument naming what `options` asks for that `capabilities` lacks.
void check_score_options(const ScoreOptions& options, const ScoreCapabilities& capabilities,
                         const std::string& model_version);

}  // namespace rudder::rewards
