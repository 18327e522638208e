// The built-in recipes, one file each (recipe_<method>.cpp); register_builtins() lists them.
#pragma once

#include <string>
#include <vector>

#include "trainer/recipe.h"

namespace rudder::trainer::detail {

Recipe sft_recipe();
Recipe reward_model_recipe();
Recipe dpo_recipe();
Recipe gedi_recipe();

/// Throws InvalidArgument naming the first field of reward_model in `fields` ("loss",
/// "genarm") that differs from its default: a setting the configured kind does not read.
void refuse_reward_model_fields(const ExperimentConfig& config,
                                const std::vector<std::string>& fields, const std::string& why);

/// The reward_model kinds other than scalar (recipe_<kind>.cpp), listed in the reward-model
/// recipe's table.
Experiment build_genarm_reward(const ExperimentConfig& config);
Experiment build_dmoerm_reward(const ExperimentConfig& config);

}  // namespace rudder::trainer::detail
