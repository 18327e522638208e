// The reward-model recipe: one builder per reward_model.kind, in one table. Each kind refuses
// the reward_model settings it does not read.
#include <functional>
#include <map>

#include <torch/torch.h>

#include "algorithms/reward_modeling.h"
#include "core/config.h"
#include "core/error.h"
#include "rewards/scalar_reward_model.h"
#include "trainer/detail/recipe_support.h"
#include "trainer/detail/recipes.h"

namespace rudder::trainer::detail {
namespace {

// reward_model with every field at its default (the method is a oneof: the defaults of an
// empty config do not fill it).
const RewardModelConfig& default_reward_model() {
  static const RewardModelConfig defaults = [] {
    ExperimentConfig c;
    core::parse_config_text("reward_model: {}\n", "defaults", {}, &c);
    return c.reward_model();
  }();
  return defaults;
}

// The serialized value of field `name` of `message` alone.
std::string field_value(const RewardModelConfig& message, const std::string& name) {
  const auto* field = RewardModelConfig::descriptor()->FindFieldByName(name);
  RUDDER_ASSERT(field != nullptr, "no field reward_model.", name);
  RewardModelConfig only(message);
  for (int i = 0; i < RewardModelConfig::descriptor()->field_count(); ++i) {
    const auto* other = RewardModelConfig::descriptor()->field(i);
    if (other != field) only.GetReflection()->ClearField(&only, other);
  }
  return only.SerializeAsString();
}

// A scalar Bradley-Terry head on the policy's backbone, trained on preference rows; exports the
// reward model with the normalization measured on held-out pairs.
Experiment build_scalar_reward(const ExperimentConfig& config) {
  refuse_reward_model_fields(config, {"genarm", "dmoerm"}, "reward_model.kind is scalar");
  Experiment e = make_base(config);
  auto net = std::make_shared<rewards::ScalarRewardNet>(e.policy);
  std::unique_ptr<algorithms::RewardModeling> algorithm;
  if (config.reward_model().loss() == "ranked") {
    refuse_if_set(config, "data.synthetic.samples_per_prompt",
                  "reward_model.loss ranked does not sample the policy");
    RankedData ranked = load_ranked_data(config, *e.tokenizer);
    algorithm = std::make_unique<algorithms::RewardModeling>(
        net, e.tokenizer->pad_id(), std::move(ranked.pairs), config.reward_model(),
        std::move(ranked.train));
  } else {
    algorithm = std::make_unique<algorithms::RewardModeling>(
        net, e.tokenizer->pad_id(), load_preference_data(config, *e.tokenizer, *e.policy),
        config.reward_model());
  }
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
}

// The builders by reward_model.kind.
const std::map<std::string, std::function<Experiment(const ExperimentConfig&)>>& kinds() {
  static const std::map<std::string, std::function<Experiment(const ExperimentConfig&)>> table = {
      {"scalar", build_scalar_reward},
      {"genarm", build_genarm_reward},
      {"dmoerm", build_dmoerm_reward},
  };
  return table;
}

}  // namespace

void refuse_reward_model_fields(const ExperimentConfig& config,
                                const std::vector<std::string>& fields, const std::string& why) {
  for (const auto& name : fields) {
    if (field_value(config.reward_model(), name) == field_value(default_reward_model(), name))
      continue;
    throw core::InvalidArgument(core::str("config error: reward_model.", name,
                                          " is set, but it is not used: ", why, "; remove it"));
  }
}

Recipe reward_model_recipe() {
  Recipe r;
  r.uses = {"data.synthetic.pair_source", "data.synthetic.samples_per_prompt"};
  r.build = [](const ExperimentConfig& config) {
    const std::string& kind = config.reward_model().kind();
    const auto it = kinds().find(kind);
    RUDDER_CHECK(it != kinds().end(), "reward_model.kind '", kind,
                 "' is not implemented yet (use scalar, genarm or dmoerm)");
    return it->second(config);
  };
  return r;
}

}  // namespace rudder::trainer::detail
