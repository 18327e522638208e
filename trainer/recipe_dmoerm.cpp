// DMoERM (reward_model.kind dmoerm): a router, per-category LoRA experts per capability
// dimension on the policy as shared base, and aggregators, trained in one run from the
// synthetic tasks' category, per-dimension and overall labels; exports the base in Hugging Face
// layout beside the rest (rewards/dmoerm_reward_model.h).
#include "algorithms/dmoerm_modeling.h"
#include "data/synthetic.h"
#include "rewards/dmoerm_reward_model.h"
#include "trainer/detail/recipe_support.h"
#include "trainer/detail/recipes.h"

namespace rudder::trainer::detail {
namespace {

void refuse_dmoerm_unused(const ExperimentConfig& config) {
  refuse_reward_model_fields(config, {"loss", "use_margin", "center_coef", "normalize", "genarm"},
                             "reward_model.kind dmoerm does not read it");
  refuse_if_set(config, "data.synthetic.pair_source", "reward_model.kind dmoerm does not read it");
  refuse_if_set(config, "model.lora",
                "DMoERM adds its own expert adapters (reward_model.dmoerm.expert_rank)");
  refuse_if_set(config, "data.train_path",
                "DMoERM learns its category and dimension labels from the synthetic tasks; "
                "label columns of JSONL files are not read yet");
  refuse_if_set(config, "data.eval_path", "DMoERM evaluates on the synthetic tasks");
  refuse_if_set(config, "data.fields", "DMoERM trains on the synthetic tasks");
}

}  // namespace

Experiment build_dmoerm_reward(const ExperimentConfig& config) {
  refuse_dmoerm_unused(config);
  Experiment e = make_base(config);
  const std::vector<std::string> tasks(config.data().synthetic().tasks().begin(),
                                       config.data().synthetic().tasks().end());
  const rewards::DmoermLayout layout{data::SyntheticTasks(tasks, config.seed()).categories(),
                                     data::SyntheticTasks::dimensions()};
  auto net = std::make_shared<rewards::DmoermNet>(e.policy, layout, config.reward_model().dmoerm());
  data::SplitMix64 rng(config.seed() + 101);
  algorithms::DmoermData data;
  const auto rows = [&](uint64_t count, uint64_t split) {
    return algorithms::make_dmoerm_rows(synthetic_examples(config, count, split), layout,
                                        *e.tokenizer, config.tokenizer(), config.data(), rng);
  };
  data.train = rows(config.data().synthetic().num_train(), 0);
  data.eval = rows(config.data().synthetic().num_eval(), 1);
  auto algorithm =
      std::make_unique<algorithms::DmoermModeling>(net, e.tokenizer->pad_id(), std::move(data));
  e.source = std::make_unique<algorithms::DatasetSource>(algorithm->num_train(), config.seed(),
                                                         config.data().shuffle());
  e.algorithm = std::move(algorithm);
  auto tokenizer = e.tokenizer;
  e.export_final = [net, tokenizer, config](const std::string& dir) {
    rewards::DmoermRewardModel(net, tokenizer, config.tokenizer(), config.data()).save(dir);
  };
  return e;
}

}  // namespace rudder::trainer::detail
