// The SFT recipe: the policy on SFT rows of a dataset; exports the policy.
#include <torch/torch.h>

#include "trainer/detail/recipe_support.h"
#include "trainer/detail/recipes.h"

namespace rudder::trainer::detail {

Recipe sft_recipe() {
  Recipe r;
  r.uses = {"rollout.endpoints"};
  r.build = [](const ExperimentConfig& config) {
    Experiment e = make_base(config);
    train_policy_on_rows(e,
                         std::make_unique<algorithms::Sft>(
                             e.policy, e.tokenizer, load_sft_data(config, *e.tokenizer), config),
                         config);
    return e;
  };
  return r;
}

}  // namespace rudder::trainer::detail
