#include "rewards/factory.h"

#include <filesystem>
#include <functional>
#include <map>
#include <unordered_map>

#include <torch/torch.h>

#include "core/error.h"
#include "data/synthetic.h"
#include "data/tokenizer.h"
#include "proto/rudder.pb.h"
#include "rewards/calibrated_reward_model.h"
#include "rewards/detail/reward_dir.h"
#include "rewards/dmoerm_reward_model.h"
#include "rewards/genarm_reward_model.h"
#include "rewards/remote_reward_model.h"
#include "rewards/rule_rewards.h"
#include "rewards/scalar_reward_model.h"
#include "rewards/task_reward.h"

namespace rudder::rewards {
namespace {

torch::Device device_of(const std::string& name) {
  RUDDER_CHECK(name == "auto" || name == "cpu" || name.rfind("cuda", 0) == 0, "device '", name,
               "': expected auto, cpu, cuda or cuda:N");
  if (name == "cpu" || (name == "auto" && !torch::cuda::is_available())) return torch::kCPU;
  RUDDER_CHECK(torch::cuda::is_available(), "device '", name, "' but CUDA is not available");
  return torch::Device(name == "auto" ? "cuda" : name);
}

using Loader = std::function<std::shared_ptr<RewardModel>(
    const std::string& dir, std::shared_ptr<data::Tokenizer>, const ExperimentConfig&)>;

// The kinds of reward model directory, by the "kind" of their reward_config.json.
const std::map<std::string, Loader>& loaders() {
  static const std::map<std::string, Loader> table = {
      {"scalar",
       [](const std::string& dir, std::shared_ptr<data::Tokenizer> tokenizer,
          const ExperimentConfig& config) -> std::shared_ptr<RewardModel> {
         auto model =
             load_scalar_reward_model(dir, std::move(tokenizer), config.tokenizer(), config.data());
         model->net().to(device_of(config.device()));
         return model;
       }},
      {"genarm",
       [](const std::string& dir, std::shared_ptr<data::Tokenizer> tokenizer,
          const ExperimentConfig& config) -> std::shared_ptr<RewardModel> {
         auto model =
             load_genarm_reward_model(dir, std::move(tokenizer), config.tokenizer(), config.data());
         model->arm().to(device_of(config.device()));
         return model;
       }},
      {"dmoerm",
       [](const std::string& dir, std::shared_ptr<data::Tokenizer> tokenizer,
          const ExperimentConfig& config) -> std::shared_ptr<RewardModel> {
         auto model =
             load_dmoerm_reward_model(dir, std::move(tokenizer), config.tokenizer(), config.data());
         model->net().to(device_of(config.device()));
         return model;
       }},
  };
  return table;
}

std::shared_ptr<RewardModel> load_reward_dir(const std::string& dir,
                                             std::shared_ptr<data::Tokenizer> tokenizer,
                                             const ExperimentConfig& config) {
  const std::string kind = detail::read_reward_config(dir, "").at("kind");
  const auto it = loaders().find(kind);
  if (it == loaders().end()) {
    std::string known;
    for (const auto& [name, loader] : loaders()) known += (known.empty() ? "" : ", ") + name;
    throw core::InvalidArgument(
        core::str("reward_config.json: kind '", kind, "' is not one of ", known));
  }
  return it->second(dir, std::move(tokenizer), config);
}

// The synthetic tasks of the config (both splits), for the task and exact-match sources.
std::vector<data::TaskExample> config_tasks(const ExperimentConfig& config) {
  const auto& synthetic = config.data().synthetic();
  const std::vector<std::string> names(synthetic.tasks().begin(), synthetic.tasks().end());
  const data::SyntheticTasks tasks(names, config.seed());
  auto out = tasks.examples(synthetic.num_train(), 0);
  const auto eval = tasks.examples(synthetic.num_eval(), 1);
  out.insert(out.end(), eval.begin(), eval.end());
  return out;
}

std::shared_ptr<RewardModel> source_model(const RewardSource& source,
                                          const ExperimentConfig& config) {
  const std::string& kind = source.kind();
  if (kind == "task") return std::make_shared<TaskReward>(config_tasks(config));
  if (kind == "exact_match") {
    std::unordered_map<std::string, std::string> answers;
    for (const auto& t : config_tasks(config)) answers.emplace(t.prompt, t.answer);
    return std::make_shared<ExactMatchReward>(std::move(answers));
  }
  if (kind == "regex") return std::make_shared<RegexReward>(source.pattern());
  if (kind == "length_penalty")
    return std::make_shared<LengthPenaltyReward>(source.max_chars(), source.per_char());
  RUDDER_ASSERT(kind == "model", "unknown reward source kind '", kind, "'");
  require_reward_model_dir(source.model_path());
  return load_reward_dir(source.model_path(),
                         data::make_tokenizer(config.tokenizer(), source.model_path()), config);
}

// reward.sources as one weighted sum; terms are named "<index>_<kind>".
std::shared_ptr<RewardModel> weighted_sources(const ExperimentConfig& config) {
  const RewardConfig& reward = config.reward();
  RUDDER_CHECK(reward.endpoints_size() == 0 && reward.model_path().empty(),
               "reward.sources is set with reward.endpoints or reward.model_path; keep one (a "
               "source of kind model names a reward model directory)");
  std::vector<RewardTerm> terms;
  for (int i = 0; i < reward.sources_size(); ++i) {
    const RewardSource& s = reward.sources(i);
    try {
      terms.push_back({core::str(i, "_", s.kind()), s.weight(), source_model(s, config)});
    } catch (const core::NotFound& e) {
      throw core::NotFound(core::str("reward.sources[", i, "]: ", e.what()));
    } catch (const core::Error& e) {
      throw core::InvalidArgument(core::str("reward.sources[", i, "]: ", e.what()));
    }
  }
  return std::make_shared<WeightedSumReward>(std::move(terms));
}

std::shared_ptr<RewardModel> uncalibrated(const ExperimentConfig& config) {
  const RewardConfig& reward = config.reward();
  if (reward.sources_size() > 0) return weighted_sources(config);
  if (reward.endpoints_size() > 0) {
    RUDDER_CHECK(reward.model_path().empty(),
                 "reward.endpoints and reward.model_path are both set; keep one");
    return std::make_shared<RemoteRewardModel>(remote_options_from_config(reward));
  }
  const std::string& dir = reward.model_path();
  require_reward_model_dir(dir);
  std::shared_ptr<data::Tokenizer> tokenizer = data::make_tokenizer(config.tokenizer(), dir);
  try {
    return load_reward_dir(dir, tokenizer, config);
  } catch (const core::NotFound& e) {
    throw core::NotFound(core::str("loading reward model '", dir, "': ", e.what()));
  } catch (const core::Error& e) {
    throw core::InvalidArgument(core::str("loading reward model '", dir, "': ", e.what()));
  }
}

}  // namespace

void require_reward_model_dir(const std::string& dir) {
  RUDDER_CHECK(!dir.empty(),
               "reward.model_path is empty: name a reward model directory (such as "
               "runs/reward_bt/final, written by `rudder train configs/reward_bt.yaml`) or set "
               "reward.endpoints");
  RUDDER_CHECK_T(core::NotFound, std::filesystem::is_directory(dir), "reward model directory '",
                 dir,
                 "' does not exist: train one first (`rudder train configs/sft.yaml`, then "
                 "`rudder train configs/reward_bt.yaml` write runs/reward_bt/final) or point "
                 "reward.model_path at one");
}

std::shared_ptr<RewardModel> make_reward_model(const ExperimentConfig& config) {
  auto model = uncalibrated(config);
  const std::string& references = config.reward().calibration().reference_path();
  if (references.empty()) return model;
  return std::make_shared<CalibratedRewardModel>(
      std::move(model), load_reference_samples(references, config.tokenizer().chat_template()));
}

}  // namespace rudder::rewards
