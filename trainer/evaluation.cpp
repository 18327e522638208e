#include "trainer/evaluation.h"

#include <cmath>
#include <iomanip>
#include <sstream>

#include <torch/torch.h>

#include "core/error.h"
#include "data/synthetic.h"
#include "data/tokenizer.h"
#include "models/causal_lm.h"
#include "models/hf_io.h"
#include "rewards/scalar_reward_model.h"

namespace rudder::trainer {

rollout::PolicyComparison evaluate_policies(const ExperimentConfig& config,
                                            const std::string& policy_dir,
                                            const std::string& reference_dir,
                                            const std::string& reward_dir) {
  RUDDER_CHECK(
      config.data().train_path().empty(),
      "rudder eval scores with the synthetic tasks' ground truth; the config names a dataset file");
  std::shared_ptr<data::Tokenizer> tokenizer = data::make_tokenizer(config.tokenizer(), policy_dir);
  auto policy = models::load_hf_model(policy_dir);
  auto reference = models::load_hf_model(reference_dir);
  std::unique_ptr<rewards::ScalarRewardModel> rm;
  if (!reward_dir.empty())
    rm =
        rewards::load_scalar_reward_model(reward_dir, tokenizer, config.tokenizer(), config.data());
  const std::vector<std::string> names(config.data().synthetic().tasks().begin(),
                                       config.data().synthetic().tasks().end());
  const data::SyntheticTasks tasks(names, config.seed());
  const auto prompts = tasks.examples(config.eval().num_prompts(), 1);
  return rollout::compare_policies(*policy, *reference, *tokenizer, prompts,
                                   config.eval().sampling(), rm.get(), config.seed() + 1);
}

std::string format_comparison(const rollout::PolicyComparison& c) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(3);
  out << "                          policy   reference\n";
  out << "ground-truth score     " << std::setw(9) << c.policy_score << "   " << std::setw(9)
      << c.reference_score << "\n";
  if (!std::isnan(c.rm_win_rate)) {
    out << "reward-model reward    " << std::setw(9) << c.rm_policy_reward << "   " << std::setw(9)
        << c.rm_reference_reward << "\n";
  }
  out << "win rate (ground truth)" << std::setw(9) << c.win_rate << "\n";
  if (!std::isnan(c.rm_win_rate))
    out << "win rate (reward model)" << std::setw(9) << c.rm_win_rate << "\n";
  out << "KL(policy || reference)" << std::setw(9) << c.kl << " nats\n";
  out << "prompts                " << std::setw(9) << c.prompts << "\n";
  return out.str();
}

}  // namespace rudder::trainer
