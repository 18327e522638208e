// A rule reward: the ground-truth scorer of the synthetic tasks (data/synthetic.h), looked up by
// prompt text. Verifiable rewards of real tasks (exact match, regex, length penalty) join it with
// the rewards issue.
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "data/synthetic.h"
#include "rewards/reward_model.h"

namespace rudder::rewards {

/// Scores a response by the ground truth of the task whose prompt it answers.
class TaskReward : public RewardModel {
 public:
  /// The tasks it can score (a prompt appearing twice keeps its first task).
  explicit TaskReward(const std::vector<data::TaskExample>& tasks);

  /// Throws InvalidArgument for a prompt of no known task, or lists of different lengths.
  std::vector<double> score(const std::vector<std::string>& prompts,
                            const std::vector<std::string>& responses) override;
  std::string version() const override { return "ground_truth"; }

 private:
  std::unordered_map<std::string, data::TaskExample> by_prompt_;
};

}  // namespace rudder::rewards
