// The RewardModel interface: score prompt/response pairs, one reward each. Implementations:
// the scalar Bradley-Terry model (scalar_reward_model.h); DMoERM, GenARM and the HTTP client
// come with their issues. The trainer and evaluators never know which one they hold.
#pragma once

#include <string>
#include <vector>

namespace rudder::rewards {

/// Scores responses. Thread-safety: one caller at a time unless an implementation says more.
class RewardModel {
 public:
  virtual ~RewardModel() = default;
  /// One reward per (prompt, response); throws InvalidArgument when the lists differ in length.
  virtual std::vector<double> score(const std::vector<std::string>& prompts,
                                    const std::vector<std::string>& responses) = 0;
  /// A label of the weights that score (for logs and API responses).
  virtual std::string version() const = 0;
};

}  // namespace rudder::rewards
