#include "algorithms/reward_modeling.h"

#include <torch/torch.h>

#include "core/error.h"
#include "rewards/bt_loss.h"

namespace rudder::algorithms {

RewardModeling::RewardModeling(std::shared_ptr<rewards::ScalarRewardNet> net, int64_t pad_id,
                               PreferenceData data, const RewardModelConfig& config)
    : net_(std::move(net)), pad_id_(pad_id), data_(std::move(data)), config_(config) {
  RUDDER_CHECK(config_.kind() == "scalar", "reward_model.kind '", config_.kind(),
               "' is not implemented yet (use scalar)");
  RUDDER_CHECK(config_.loss() == "bt", "reward_model.loss '", config_.loss(),
               "' needs ranked-list data, which the loaders do not read yet (use bt)");
  RUDDER_CHECK(data_.train.size() > 0, "reward-model training needs preference pairs");
}

StepStats RewardModeling::train_examples(const std::vector<uint64_t>& examples,
                                           double total_units) {
  const data::Batch b = collate_pairs(data_.train, examples, pad_id_);
  const auto device = net_->parameters().front().device();
  const at::Tensor r =
      net_->forward(b.input_ids.to(device), b.attention_mask.to(device), b.position_ids.to(device));
  const auto n = static_cast<int64_t>(examples.size());
  at::Tensor margin;
  if (config_.use_margin()) {
    std::vector<double> m;
    for (uint64_t i : examples) m.push_back(data_.train.margins[i]);
    margin = torch::tensor(m, torch::kDouble).to(r.dtype()).to(device);
  }
  const auto out =
      rewards::bt_loss(r.narrow(0, 0, n), r.narrow(0, n, n), margin, config_.center_coef());
  (out.loss * (static_cast<double>(n) / total_units)).backward();
  StepStats s;
  s.loss_sum = out.loss.item<double>() * static_cast<double>(n);
  s.units = static_cast<double>(n);
  s.tokens = b.attention_mask.sum().item<double>();
  s.sums["accuracy"] = out.accuracy * static_cast<double>(n);
  s.sums["margin"] = out.margin * static_cast<double>(n);
  return s;
}

std::map<std::string, double> RewardModeling::evaluate() {
  std::map<std::string, double> out;
  if (data_.eval.size() == 0) return out;
  torch::NoGradGuard no_grad;
  const bool was_training = net_->is_training();
  net_->eval();
  const auto device = net_->parameters().front().device();
  std::vector<double> chosen, rejected;
  const auto all = all_indices(data_.eval.size());
  for (size_t start = 0; start < all.size(); start += 32) {
    const std::vector<uint64_t> part(all.begin() + start,
                                     all.begin() + std::min(all.size(), start + 32));
    const data::Batch b = collate_pairs(data_.eval, part, pad_id_);
    const at::Tensor r = net_->forward(b.input_ids.to(device), b.attention_mask.to(device),
                                       b.position_ids.to(device))
                             .to(torch::kDouble)
                             .cpu();
    for (size_t i = 0; i < part.size(); ++i) {
      chosen.push_back(r[static_cast<int64_t>(i)].item<double>());
      rejected.push_back(r[static_cast<int64_t>(i + part.size())].item<double>());
    }
  }
  net_->train(was_training);
  const auto bt = rewards::bt_loss(torch::tensor(chosen, torch::kDouble),
                                   torch::tensor(rejected, torch::kDouble));
  out["eval/accuracy"] = bt.accuracy;
  out["eval/margin"] = bt.margin;
  out["eval/loss"] = bt.loss.item<double>();
  std::map<std::string, std::pair<double, double>> by_category;  // correct, total
  for (size_t i = 0; i < chosen.size(); ++i) {
    const std::string& category =
        data_.eval.categories.size() > i ? data_.eval.categories[i] : std::string();
    if (category.empty()) continue;
    by_category[category].first += chosen[i] > rejected[i] ? 1.0 : 0.0;
    by_category[category].second += 1.0;
  }
  for (const auto& [category, counts] : by_category)
    out["eval/accuracy/" + category] = counts.first / counts.second;
  eval_rewards_ = chosen;
  eval_rewards_.insert(eval_rewards_.end(), rejected.begin(), rejected.end());
  const auto stats = rewards::normalization_of(eval_rewards_, true);
  out["eval/reward_mean"] = stats.mean;
  out["eval/reward_std"] = stats.std;
  return out;
}

double RewardModeling::flops_per_token() const { return training_flops_per_token(*net_); }

}  // namespace rudder::algorithms
