// Reward-model training: the scalar model with the Bradley-Terry loss (optional per-pair margin
// and centering), averaged over the pairs of the global batch (ALGORITHMS.md section 1).
#pragma once

#include <memory>

#include "algorithms/algorithm.h"
#include "algorithms/preference.h"
#include "rewards/scalar_reward_model.h"

namespace rudder::algorithms {

/// Trains a ScalarRewardNet on preference pairs.
class RewardModeling : public DatasetAlgorithm {
 public:
  RewardModeling(std::shared_ptr<rewards::ScalarRewardNet> net, int64_t pad_id, PreferenceData data,
                 const RewardModelConfig& config);

  std::string name() const override { return "reward_model"; }
  uint64_t num_train() const override { return data_.train.size(); }
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
  std::shared_ptr<rewards::ScalarRewardNet> net_;
  int64_t pad_id_;
  PreferenceData data_;
  RewardModelConfig config_;
  std::vector<double> eval_rewards_;
};

}  // namespace rudder::algorithms
