// The built-in recipes, one file each (recipe_<method>.cpp); register_builtins() lists them.
#pragma once

#include "trainer/recipe.h"

namespace rudder::trainer::detail {

Recipe sft_recipe();
Recipe reward_model_recipe();
Recipe dpo_recipe();

}  // namespace rudder::trainer::detail
