// `rudder eval`: a trained policy against its reference on the held-out synthetic prompts,
// scored by the ground truth and, when given, a reward model.
#pragma once

#include <string>

#include "proto/rudder.pb.h"
#include "rollout/policy_eval.h"

namespace rudder::trainer {

/// Loads the policy and reference model directories (and the reward model directory when not
/// empty) and compares them on config.eval.num_prompts held-out prompts of the config's tasks.
rollout::PolicyComparison evaluate_policies(const ExperimentConfig& config,
                                            const std::string& policy_dir,
                                            const std::string& reference_dir,
                                            const std::string& reward_dir);

/// The comparison as a table for a terminal.
std::string format_comparison(const rollout::PolicyComparison& comparison);

}  // namespace rudder::trainer
