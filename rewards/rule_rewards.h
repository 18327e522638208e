// Rule and verifiable rewards (exact match, regular expression, length penalty) and a weighted
// sum of reward sources, as RewardModel implementations. The synthetic tasks' ground-truth
// scorer is rewards/task_reward.h. None of these tokenizes; all are thread-safe.
#pragma once

#include <memory>
#include <regex>
#include <string>
#include <unordered_map>
#include <vector>

#include "rewards/reward_model.h"

namespace rudder::rewards {

/// 1 when the response, trimmed of spaces at both ends, equals its prompt's known answer, else 0.
class ExactMatchReward : public RewardModel {
 public:
  /// `answers` by prompt.
  explicit ExactMatchReward(std::unordered_map<std::string, std::string> answers);
  /// Throws InvalidArgument for a prompt with no known answer.
  std::vector<double> score(const std::vector<std::string>& prompts,
                            const std::vector<std::string>& responses) override;
  std::string version() const override { return "exact_match"; }

 private:
  std::unordered_map<std::string, std::string> answers_;
};

/// 1 when `pattern` (ECMAScript) matches somewhere in the response, else 0.
class RegexReward : public RewardModel {
 public:
  /// Throws InvalidArgument naming `pattern` when it does not compile.
  explicit RegexReward(const std::string& pattern);
  std::vector<double> score(const std::vector<std::string>& prompts,
                            const std::vector<std::string>& responses) override;
  std::string version() const override { return "regex:" + pattern_; }

 private:
  std::string pattern_;
  std::regex regex_;
};

/// -per_char x the response's characters (bytes) beyond `max_chars`; 0 within it.
class LengthPenaltyReward : public RewardModel {
 public:
  /// Throws InvalidArgument for a negative per_char.
  LengthPenaltyReward(size_t max_chars, double per_char);
  std::vector<double> score(const std::vector<std::string>& prompts,
                            const std::vector<std::string>& responses) override;
  std::string version() const override { return "length_penalty"; }

 private:
  size_t max_chars_;
  double per_char_;
};

/// One term of a WeightedSumReward.
struct RewardTerm {
  std::string name;  // the term's dimension name
  double weight = 1.0;
  std::shared_ptr<RewardModel> model;
};

/// sum_i weight_i x reward_i; each term's unweighted reward is a dimension score named after it.
class WeightedSumReward : public RewardModel {
 public:
  /// Throws InvalidArgument for no terms, a term without a model, or two terms of one name.
  explicit WeightedSumReward(std::vector<RewardTerm> terms);
  std::vector<double> score(const std::vector<std::string>& prompts,
                            const std::vector<std::string>& responses) override;
  std::vector<ScoreDetail> score_detailed(const std::vector<std::string>& prompts,
                                          const std::vector<std::string>& responses,
                                          const ScoreOptions& options) override;
  ScoreCapabilities capabilities() const override;
  std::string version() const override;

 private:
  std::vector<RewardTerm> terms_;
};

}  // namespace rudder::rewards
