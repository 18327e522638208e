#include "rewards/calibrated_reward_model.h"

#include <iterator>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/dataset.h"
#include "rewards/calibration.h"
#include "rewards/detail/text_batch.h"

namespace rudder::rewards {

ReferenceSamples load_reference_samples(const std::string& path,
                                        const ChatTemplate& chat_template) {
  std::vector<data::PromptSamples> samples;
  try {
    samples = data::load_prompt_samples_jsonl(path, chat_template, false);
  } catch (const core::NotFound& e) {
    throw core::NotFound(core::str("reference samples: ", e.what()));
  } catch (const core::InvalidArgument& e) {
    throw core::InvalidArgument(core::str("reference samples: ", e.what()));
  }
  ReferenceSamples out;
  for (auto& s : samples) {
    auto& slot = out[s.prompt];
    slot.insert(slot.end(), std::make_move_iterator(s.responses.begin()),
                std::make_move_iterator(s.responses.end()));
  }
  RUDDER_CHECK(!out.empty(), "reference samples '", path, "': no prompts");
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
