#include "rewards/calibrated_reward_model.h"

#include <fstream>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "rewards/calibration.h"
#include "rewards/detail/text_batch.h"

namespace rudder::rewards {

ReferenceSamples load_reference_samples(const std::string& path) {
  std::ifstream in(path);
  RUDDER_CHECK_T(core::NotFound, in.good(), "reference samples '", path, "': cannot open");
  ReferenceSamples out;
  std::string line;
  for (size_t number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      const auto j = nlohmann::json::parse(line);
      auto responses = j.at("responses").get<std::vector<std::string>>();
      RUDDER_CHECK(!responses.empty(), "no responses");
      auto& slot = out[j.at("prompt").get<std::string>()];
      slot.insert(slot.end(), responses.begin(), responses.end());
    } catch (const std::exception& e) {
      throw core::InvalidArgument(core::str(path, ":", number, ": ", e.what(),
                                            " (expected {\"prompt\": ..., \"responses\": [...]})"));
    }
  }
  return out;
}

CalibratedRewardModel::CalibratedRewardModel(std::shared_ptr<RewardModel> inner,
                                             ReferenceSamples references)
    : inner_(std::move(inner)), references_(std::move(references)) {
  RUDDER_CHECK(inner_ != nullptr, "calibration needs a reward model to calibrate");
  RUDDER_CHECK(!references_.empty(), "calibration needs reference samples for some prompt");
  for (const auto& [prompt, samples] : references_) {
    RUDDER_CHECK(!samples.empty(), "calibration: prompt '", prompt.substr(0, 80),
                 "' has no reference samples");
  }
}

const std::vector<double>& CalibratedRewardModel::reference_rewards(const std::string& prompt) {
  const auto cached = cache_.find(prompt);
  if (cached != cache_.end()) return cached->second;
  const auto it = references_.find(prompt);
  RUDDER_CHECK(it != references_.end(), "calibration has no reference samples for prompt '",
               prompt.substr(0, 80), "'");
  auto rewards = inner_->score(std::vector<std::string>(it->second.size(), prompt), it->second);
  return cache_.emplace(prompt, std::move(rewards)).first->second;
}

std::vector<double> CalibratedRewardModel::score(const std::vector<std::string>& prompts,
                                                 const std::vector<std::string>& responses) {
  detail::check_same_length(prompts, responses);
  const std::vector<double> raw = inner_->score(prompts, responses);
  std::vector<double> out;
  out.reserve(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    const auto& ref = reference_rewards(prompts[i]);
    const at::Tensor c =
        ctrl_calibrate(torch::tensor({raw[i]}, torch::kDouble),
                       torch::tensor(ref, torch::kDouble).reshape({1, -1}));  // [1]
    out.push_back(c[0].item<double>());
  }
  return out;
}

}  // namespace rudder::rewards
