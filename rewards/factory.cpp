#include "rewards/factory.h"

#include <filesystem>

#include <torch/torch.h>

#include "core/error.h"
#include "data/tokenizer.h"
#include "proto/rudder.pb.h"
#include "rewards/remote_reward_model.h"
#include "rewards/scalar_reward_model.h"

namespace rudder::rewards {
namespace {

torch::Device device_of(const std::string& name) {
  RUDDER_CHECK(name == "auto" || name == "cpu" || name.rfind("cuda", 0) == 0, "device '", name,
               "': expected auto, cpu, cuda or cuda:N");
  if (name == "cpu" || (name == "auto" && !torch::cuda::is_available())) return torch::kCPU;
  RUDDER_CHECK(torch::cuda::is_available(), "device '", name, "' but CUDA is not available");
  return torch::Device(name == "auto" ? "cuda" : name);
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
  const RewardConfig& reward = config.reward();
  if (reward.endpoints_size() > 0) {
    RUDDER_CHECK(reward.model_path().empty(),
                 "reward.endpoints and reward.model_path are both set; keep one");
    return std::make_shared<RemoteRewardModel>(remote_options_from_config(reward));
  }
  const std::string& dir = reward.model_path();
  require_reward_model_dir(dir);
  std::shared_ptr<data::Tokenizer> tokenizer = data::make_tokenizer(config.tokenizer(), dir);
  try {
    auto model = load_scalar_reward_model(dir, tokenizer, config.tokenizer(), config.data());
    model->net().to(device_of(config.device()));
    return model;
  } catch (const core::NotFound& e) {
    throw core::NotFound(core::str("loading reward model '", dir, "': ", e.what()));
  } catch (const core::Error& e) {
    throw core::InvalidArgument(core::str("loading reward model '", dir, "': ", e.what()));
  }
}

}  // namespace rudder::rewards
