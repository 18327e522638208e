// The SFT recipe: the policy on SFT rows of a dataset; exports the policy.
#include <torch/torch.h>

#include "trainer/detail/recipe_support.h"
#include "trainer/detail/recipes.h"

namespace rudder::trainer::detail {

Recipe sft_recipe() {
  Recipe r;
  r.build = [](const ExperimentConfig& config) {
    Experiment e = make_base(config);
    auto algorithm = std::make_unique<algorithms::Sft>(e.policy, e.tokenizer,
                                                       load_sft_data(config, *e.tokenizer), config);
    e.source = std::make_unique<algorithms::DatasetSource>(algorithm->num_train(), config.seed(),
                                                           config.data().shuffle());
    e.algorithm = std::move(algorithm);
    auto policy = e.policy;
    e.export_final = [policy](const std::string& dir) { models::save_hf_model(*policy, dir); };
    return e;
  };
  return r;
}

}  // namespace rudder::trainer::detail
