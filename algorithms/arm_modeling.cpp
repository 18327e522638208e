#include "algorithms/arm_modeling.h"

#include <torch/torch.h>

#include "algorithms/pair_metrics.h"
#include "core/error.h"
#include "models/chunked_logprobs.h"
#include "rewards/arm_loss.h"

namespace rudder::algorithms {
namespace {

// Summed response log-probs [2B] of a concatenated pair batch (chosen rows, then rejected).
at::Tensor pair_logps(models::CausalLM& arm, const data::Batch& b) {
  const auto device = arm.parameters().front().device();
  return models::sequence_logprobs(
      arm, models::batch_input(b.input_ids, b.attention_mask, b.position_ids, device),
      b.loss_mask.to(device));
}

}  // namespace

ArmModeling::ArmModeling(std::shared_ptr<models::CausalLM> arm, int64_t pad_id, PreferenceData data,
                         const GenArmConfig& config)
    : arm_(std::move(arm)), pad_id_(pad_id), data_(std::move(data)), config_(config) {
  RUDDER_CHECK(data_.train.size() > 0, "GenARM training needs preference pairs");
  RUDDER_CHECK(config_.beta_r() > 0, "reward_model.genarm.beta_r must be > 0, got ",
               config_.beta_r());
}

StepStats ArmModeling::train_examples(const std::vector<uint64_t>& examples, double total_units) {
  const data::Batch b = collate_pairs(data_.train, examples, pad_id_);
  const at::Tensor logps = pair_logps(*arm_, b);  // [2B]
  const auto n = static_cast<int64_t>(examples.size());
  rewards::ArmLossOptions o;
  o.beta_r = config_.beta_r();
  o.margin = config_.margin();
  o.label_smoothing = config_.label_smoothing();
  const auto out = rewards::arm_loss(logps.narrow(0, 0, n), logps.narrow(0, n, n), o);
  backward(out.loss * (static_cast<double>(n) / total_units));
  StepStats s;
  s.loss_sum = out.loss.item<double>() * static_cast<double>(n);
  s.units = static_cast<double>(n);
  s.tokens = b.attention_mask.sum().item<double>();
  s.sums["accuracy"] = out.accuracy * static_cast<double>(n);
  s.sums["margin"] = (out.chosen_rewards - out.rejected_rewards).sum().item<double>();
  return s;
}

std::map<std::string, double> ArmModeling::evaluate() {
  if (data_.eval.size() == 0) return {};
  torch::NoGradGuard no_grad;
  const bool was_training = arm_->is_training();
  arm_->eval();
  std::vector<double> chosen, rejected;
  const auto all = all_indices(data_.eval.size());
  for (size_t start = 0; start < all.size(); start += 32) {
    const std::vector<uint64_t> part(all.begin() + start,
                                     all.begin() + std::min(all.size(), start + 32));
    const at::Tensor lp =
        pair_logps(*arm_, collate_pairs(data_.eval, part, pad_id_)).to(torch::kDouble).cpu();
    for (size_t i = 0; i < part.size(); ++i) {
      chosen.push_back(config_.beta_r() * lp[static_cast<int64_t>(i)].item<double>());
      rejected.push_back(config_.beta_r() *
                         lp[static_cast<int64_t>(i + part.size())].item<double>());
    }
  }
  arm_->train(was_training);
  auto out = pairwise_metrics(chosen, rejected, data_.eval.categories);
  rewards::ArmLossOptions o;
  o.beta_r = 1.0;  // the inputs are rewards already
  o.margin = config_.margin();
  o.label_smoothing = config_.label_smoothing();
  out["eval/loss"] = rewards::arm_loss(torch::tensor(chosen, torch::kDouble),
                                       torch::tensor(rejected, torch::kDouble), o)
                         .loss.item<double>();
  return out;
}

double ArmModeling::flops_per_token() const { return training_flops_per_token(*arm_); }

}  // namespace rudder::algorithms
