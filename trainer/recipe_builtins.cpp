// The one table of built-in methods.
#include "trainer/detail/recipes.h"

namespace rudder::trainer {

void register_builtins(RecipeRegistry& registry) {
  registry.add("sft", detail::sft_recipe());
  registry.add("reward_model", detail::reward_model_recipe());
  registry.add("dpo", detail::dpo_recipe());
  registry.add("gedi", detail::gedi_recipe());
}

}  // namespace rudder::trainer
