// The GenARM reward model (reward_model.kind genarm): the policy itself (a LoRA adapter when
// model.lora.rank > 0) trained with the ARM loss; exports it in Hugging Face layout beside
// reward_config.json with beta_r.
#include "algorithms/arm_modeling.h"
#include "rewards/genarm_reward_model.h"
#include "trainer/detail/recipe_support.h"
#include "trainer/detail/recipes.h"

namespace rudder::trainer::detail {

Experiment build_genarm_reward(const ExperimentConfig& config) {
  refuse_reward_model_fields(config, {"loss", "use_margin", "center_coef", "normalize", "dmoerm"},
                             "reward_model.kind genarm does not read it");
  Experiment e = make_base(config);
  const GenArmConfig& genarm = config.reward_model().genarm();
  auto algorithm = std::make_unique<algorithms::ArmModeling>(
      e.policy, e.tokenizer->pad_id(), load_preference_data(config, *e.tokenizer, *e.policy),
      genarm);
  e.source = std::make_unique<algorithms::DatasetSource>(algorithm->num_train(), config.seed(),
                                                         config.data().shuffle());
  e.algorithm = std::move(algorithm);
  auto arm = e.policy;
  auto tokenizer = e.tokenizer;
  e.export_final = [arm, tokenizer, config](const std::string& dir) {
    rewards::GenArmRewardModel(arm, tokenizer, config.tokenizer(), config.data(),
                               config.reward_model().genarm().beta_r())
        .save(dir);
  };
  return e;
}

}  // namespace rudder::trainer::detail
