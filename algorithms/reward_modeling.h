// Reward-model training: the scalar model with the Bradley-Terry loss (optional per-pair margin
// and centering), averaged over the pairs of the global batch (ALGORITHMS.md section 1); or,
// with `loss: ranked`, the ranked-list loss (the mean over a list's pairs of different rank,
// sections 1 and 6) averaged over the lists of the global batch. Held-out pairs judge both.
#pragma once

#include <memory>

#include "algorithms/algorithm.h"
#include "algorithms/preference.h"
#include "rewards/scalar_reward_model.h"

namespace rudder::algorithms {

/// Trains a ScalarRewardNet on preference pairs.
class RewardModeling : public DatasetAlgorithm {
 public:
  /// `ranked` holds the training lists of `loss: ranked` (then `data.train` may be empty);
  /// throws InvalidArgument when the loss's training rows are missing, or for use_margin or
  /// center_coef with ranked lists.
  RewardModeling(std::shared_ptr<rewards::ScalarRewardNet> net, int64_t pad_id, PreferenceData data,
                 const RewardModelConfig& config, RankedRows ranked = {});

  std::string name() const override { return "reward_model"; }
  uint64_t num_train() const override {
    return ranked_.size() > 0 ? ranked_.size() : data_.train.size();
  }
  double example_units(const std::vector<uint64_t>& examples) const override {
    return static_cast<double>(examples.size());
  }
  /// eval/accuracy (pairwise, held-out), eval/margin, eval/loss, eval/reward_mean, eval/reward_std.
  std::map<std::string, double> evaluate() override;
  torch::nn::Module& trainable() override { return *net_; }
  std::vector<std::string> metric_names() const override { return {"accuracy", "margin"}; }
  double flops_per_token() const override;

  /// Every reward of the held-out pairs (chosen and rejected) from the last evaluate().
  const std::vector<double>& eval_rewards() const { return eval_rewards_; }

 protected:
  StepStats train_examples(const std::vector<uint64_t>& examples, double total_units) override;

 private:
  StepStats train_ranked(const std::vector<uint64_t>& lists, double total_units);

  std::shared_ptr<rewards::ScalarRewardNet> net_;
  int64_t pad_id_;
  PreferenceData data_;
  RewardModelConfig config_;
  RankedRows ranked_;
  std::vector<double> eval_rewards_;
};

}  // namespace rudder::algorithms
