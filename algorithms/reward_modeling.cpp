#include "algorithms/reward_modeling.h"

#include <torch/torch.h>

#include "algorithms/pair_metrics.h"
#include "core/error.h"
#include "rewards/bt_loss.h"

namespace rudder::algorithms {

RewardModeling::RewardModeling(std::shared_ptr<rewards::ScalarRewardNet> net, int64_t pad_id,
                               PreferenceData data, const RewardModelConfig& config,
                               RankedRows ranked)
    : net_(std::move(net)),
      pad_id_(pad_id),
      data_(std::move(data)),
      config_(config),
      ranked_(std::move(ranked)) {
  RUDDER_CHECK(config_.kind() == "scalar", "RewardModeling trains the scalar reward model, not '",
               config_.kind(), "'");
  if (config_.loss() == "ranked") {
    RUDDER_CHECK(ranked_.size() > 0, "reward_model.loss ranked needs ranked lists");
    RUDDER_CHECK(!config_.use_margin(),
                 "reward_model.use_margin reads pairs' margins; ranked "
                 "lists have none (use loss bt)");
    RUDDER_CHECK(config_.center_coef() == 0, "reward_model.center_coef ", config_.center_coef(),
                 " is for loss bt; the ranked loss does not read it");
  } else {
    RUDDER_CHECK(ranked_.size() == 0, "ranked lists given but reward_model.loss is '",
                 config_.loss(), "' (use ranked)");
    RUDDER_CHECK(data_.train.size() > 0, "reward-model training needs preference pairs");
  }
}

StepStats RewardModeling::train_ranked(const std::vector<uint64_t>& lists, double total_units) {
  std::vector<data::TokenizedPair> rows;
  for (uint64_t i : lists)
    rows.insert(rows.end(), ranked_.lists[i].begin(), ranked_.lists[i].end());
  const data::Batch b = data::collate(rows, pad_id_);
  const auto device = net_->parameters().front().device();
  const at::Tensor r =
      net_->forward(models::batch_input(b.input_ids, b.attention_mask, b.position_ids, device));
  at::Tensor loss = torch::zeros({}, r.options());
  StepStats s;
  int64_t offset = 0;
  for (uint64_t i : lists) {
    const auto n = static_cast<int64_t>(ranked_.lists[i].size());
    const at::Tensor ranks = torch::tensor(ranked_.ranks[i], torch::kLong).to(device);
    const at::Tensor mine = r.narrow(0, offset, n);  // [n]
    loss = loss + rewards::ranked_bt_loss(mine, ranks.to(r.dtype()));
    // Metrics over the list's pairs of different rank: ordered right, and the mean gap.
    const at::Tensor better = ranks.unsqueeze(1) < ranks.unsqueeze(0);  // [n, n]
    const at::Tensor gap = (mine.unsqueeze(1) - mine.unsqueeze(0)).detach();
    const double pairs = better.sum().item<double>();
    s.sums["accuracy"] += (gap.gt(0) & better).sum().item<double>() / pairs;
    s.sums["margin"] += gap.masked_select(better).sum().item<double>() / pairs;
    offset += n;
  }
  backward(loss / total_units);
  s.loss_sum = loss.item<double>();
  s.units = static_cast<double>(lists.size());
  s.tokens = b.attention_mask.sum().item<double>();
  return s;
}

StepStats RewardModeling::train_examples(const std::vector<uint64_t>& examples,
                                         double total_units) {
  if (ranked_.size() > 0) return train_ranked(examples, total_units);
  const data::Batch b = collate_pairs(data_.train, examples, pad_id_);
  const auto device = net_->parameters().front().device();
  const at::Tensor r =
      net_->forward(models::batch_input(b.input_ids, b.attention_mask, b.position_ids, device));
  const auto n = static_cast<int64_t>(examples.size());
  at::Tensor margin;
  if (config_.use_margin()) {
    std::vector<double> m;
    for (uint64_t i : examples) m.push_back(data_.train.margins[i]);
    margin = torch::tensor(m, torch::kDouble).to(r.dtype()).to(device);
  }
  const auto out =
      rewards::bt_loss(r.narrow(0, 0, n), r.narrow(0, n, n), margin, config_.center_coef());
  backward(out.loss * (static_cast<double>(n) / total_units));
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
    const at::Tensor r =
        net_->forward(models::batch_input(b.input_ids, b.attention_mask, b.position_ids, device))
            .to(torch::kDouble)
            .cpu();
    for (size_t i = 0; i < part.size(); ++i) {
      chosen.push_back(r[static_cast<int64_t>(i)].item<double>());
      rejected.push_back(r[static_cast<int64_t>(i + part.size())].item<double>());
    }
  }
  net_->train(was_training);
  out = pairwise_metrics(chosen, rejected, data_.eval.categories);
  out["eval/loss"] = rewards::bt_loss(torch::tensor(chosen, torch::kDouble),
                                      torch::tensor(rejected, torch::kDouble))
                         .loss.item<double>();
  eval_rewards_ = chosen;
  eval_rewards_.insert(eval_rewards_.end(), rejected.begin(), rejected.end());
  const auto stats = rewards::normalization_of(eval_rewards_, true);
  out["eval/reward_mean"] = stats.mean;
  out["eval/reward_std"] = stats.std;
  return out;
}

double RewardModeling::flops_per_token() const { return training_flops_per_token(*net_); }

}  // namespace rudder::algorithms
