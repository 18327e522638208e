// The reward-model recipe: a scalar Bradley-Terry head on the policy's backbone, trained on
// preference rows; exports the reward model with the normalization measured on held-out pairs.
#include <torch/torch.h>

#include "algorithms/reward_modeling.h"
#include "rewards/scalar_reward_model.h"
#include "trainer/detail/recipe_support.h"
#include "trainer/detail/recipes.h"

namespace rudder::trainer::detail {

Recipe reward_model_recipe() {
  Recipe r;
  r.uses = {"data.synthetic.pair_source", "data.synthetic.samples_per_prompt"};
  r.build = [](const ExperimentConfig& config) {
    Experiment e = make_base(config);
    auto net = std::make_shared<rewards::ScalarRewardNet>(e.policy);
    auto algorithm = std::make_unique<algorithms::RewardModeling>(
        net, e.tokenizer->pad_id(), load_preference_data(config, *e.tokenizer, *e.policy),
        config.reward_model());
    e.source = std::make_unique<algorithms::DatasetSource>(algorithm->num_train(), config.seed(),
                                                           config.data().shuffle());
    const auto* trained = algorithm.get();
    e.algorithm = std::move(algorithm);
    auto tokenizer = e.tokenizer;
    e.export_final = [net, tokenizer, trained, config](const std::string& dir) {
      const auto normalization =
          rewards::normalization_of(trained->eval_rewards(), config.reward_model().normalize());
      rewards::ScalarRewardModel(net, tokenizer, config.tokenizer(), config.data(), normalization)
          .save(dir);
    };
    return e;
  };
  return r;
}

}  // namespace rudder::trainer::detail
