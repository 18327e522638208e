#include "rewards/task_reward.h"

#include "core/error.h"

namespace rudder::rewards {

TaskReward::TaskReward(const std::vector<data::TaskExample>& tasks) {
  for (const auto& t : tasks) by_prompt_.emplace(t.prompt, t);
}

std::vector<double> TaskReward::score(const std::vector<std::string>& prompts,
                                      const std::vector<std::string>& responses) {
  RUDDER_CHECK(prompts.size() == responses.size(), "score: ", prompts.size(), " prompts but ",
               responses.size(), " responses");
  std::vector<double> out;
  out.reserve(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto it = by_prompt_.find(prompts[i]);
    RUDDER_CHECK(it != by_prompt_.end(), "the ground-truth reward knows no task with prompt '",
                 prompts[i].substr(0, 80), "'");
    out.push_back(data::SyntheticTasks::score(it->second, responses[i]));
  }
  return out;
}

}  // namespace rudder::rewards
