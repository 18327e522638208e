#include "algorithms/dpo.h"

#include <torch/torch.h>

#include "core/error.h"
#include "models/chunked_logprobs.h"
#include "rollout/policy_eval.h"

namespace rudder::algorithms {
namespace {

// Summed response log-probs [2B] and response lengths [2B] of a concatenated pair batch.
std::pair<at::Tensor, at::Tensor> pair_logps(models::CausalLM& model, const data::Batch& b) {
  const auto device = model.parameters().front().device();
  const at::Tensor mask = b.loss_mask.to(device);
  const models::ForwardInput input =
      models::batch_input(b.input_ids, b.attention_mask, b.position_ids, device);
  return {models::sequence_logprobs(model, input, mask), mask.sum(1)};
}

}  // namespace

ReferenceLogps compute_reference_logps(models::CausalLM& model, const PreferenceRows& rows,
                                       int64_t pad_id) {
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  std::vector<at::Tensor> chosen, rejected;
  const auto all = all_indices(rows.size());
  for (size_t start = 0; start < all.size(); start += 32) {
    const std::vector<uint64_t> part(all.begin() + start,
                                     all.begin() + std::min(all.size(), start + 32));
    const at::Tensor lp = pair_logps(model, collate_pairs(rows, part, pad_id)).first.cpu();
    const auto n = static_cast<int64_t>(part.size());
    chosen.push_back(lp.narrow(0, 0, n));
    rejected.push_back(lp.narrow(0, n, n));
  }
  model.train(was_training);
  return {torch::cat(chosen), torch::cat(rejected)};
}

Dpo::Dpo(std::shared_ptr<models::CausalLM> policy, std::shared_ptr<models::CausalLM> reference,
         std::shared_ptr<data::Tokenizer> tokenizer, PreferenceData data,
         const ExperimentConfig& config, ReferenceLogps precomputed)
    : policy_(std::move(policy)),
      reference_(std::move(reference)),
      tokenizer_(std::move(tokenizer)),
      data_(std::move(data)),
      precomputed_(std::move(precomputed)),
      eval_config_(config.eval()),
      seed_(config.seed()) {
  const DpoConfig& c = config.dpo();
  options_.loss_type = c.loss_type();
  options_.beta = c.beta();
  options_.label_smoothing = c.label_smoothing();
  options_.reference_free = c.reference_free();
  RUDDER_CHECK(data_.train.size() > 0, "DPO needs preference pairs");
  RUDDER_CHECK(reference_ != nullptr, "DPO needs a reference model");
  RUDDER_CHECK(!precomputed_.chosen.defined() ||
                   precomputed_.chosen.size(0) == static_cast<int64_t>(data_.train.size()),
               "precomputed reference log-probs cover ", precomputed_.chosen.size(0),
               " pairs, the data has ", data_.train.size());
  for (auto& p : reference_->parameters()) p.set_requires_grad(false);
  reference_->eval();
}

DpoLossOutput Dpo::loss_of(const PreferenceRows& rows, const std::vector<uint64_t>& indices,
                           bool training, double* tokens, at::Tensor* policy_chosen,
                           at::Tensor* policy_rejected) {
  const data::Batch b = collate_pairs(rows, indices, tokenizer_->pad_id());
  const auto n = static_cast<int64_t>(indices.size());
  at::Tensor ref_chosen, ref_rejected;
  const bool precomputed = training && precomputed_.chosen.defined();
  if (precomputed) {  // copied before the policy's forward is queued, so the copy waits for none
    const auto device = policy_->parameters().front().device();
    const at::Tensor index =
        torch::tensor(std::vector<int64_t>(indices.begin(), indices.end()), torch::kLong);
    ref_chosen = precomputed_.chosen.index_select(0, index).to(device);
    ref_rejected = precomputed_.rejected.index_select(0, index).to(device);
  }
  auto [logps, lengths] = pair_logps(*policy_, b);  // [2B]
  if (!precomputed) {
    torch::NoGradGuard no_grad;
    const at::Tensor ref = pair_logps(*reference_, b).first;
    ref_chosen = ref.narrow(0, 0, n);
    ref_rejected = ref.narrow(0, n, n);
  }
  *tokens = b.attention_mask.sum().item<double>();
  *policy_chosen = logps.narrow(0, 0, n);
  *policy_rejected = logps.narrow(0, n, n);
  return dpo_loss(*policy_chosen, *policy_rejected, ref_chosen, ref_rejected, options_,
                  lengths.narrow(0, 0, n), lengths.narrow(0, n, n));
}

StepStats Dpo::train_examples(const std::vector<uint64_t>& examples, double total_units) {
  StepStats s;
  at::Tensor pc, pr;
  const DpoLossOutput out = loss_of(data_.train, examples, true, &s.tokens, &pc, &pr);
  backward(out.losses.sum() / total_units);
  // The metrics in one transfer, once the backward is queued: nothing before it waits for the
  // device.
  const at::Tensor& c = out.chosen_rewards;
  const at::Tensor& r = out.rejected_rewards;
  const at::Tensor sums =
      torch::stack({out.losses.sum().to(torch::kDouble), c.sum().to(torch::kDouble),
                    r.sum().to(torch::kDouble), (c > r).to(torch::kDouble).sum(),
                    (c - r).to(torch::kDouble).sum(), pc.detach().sum().to(torch::kDouble),
                    pr.detach().sum().to(torch::kDouble)})
          .cpu();
  const double* v = sums.data_ptr<double>();
  s.loss_sum = v[0];
  s.units = static_cast<double>(examples.size());
  s.sums["rewards/chosen"] = v[1];
  s.sums["rewards/rejected"] = v[2];
  s.sums["rewards/accuracies"] = v[3];
  s.sums["rewards/margins"] = v[4];
  s.sums["logps/chosen"] = v[5];
  s.sums["logps/rejected"] = v[6];
  return s;
}

std::map<std::string, double> Dpo::evaluate() {
  std::map<std::string, double> out;
  const bool was_training = policy_->is_training();
  policy_->eval();
  if (data_.eval.size() > 0) {
    torch::NoGradGuard no_grad;
    double loss = 0, accuracy = 0, margin = 0, tokens = 0;
    const auto all = all_indices(data_.eval.size());
    for (size_t start = 0; start < all.size(); start += 32) {
      const std::vector<uint64_t> part(all.begin() + start,
                                       all.begin() + std::min(all.size(), start + 32));
      at::Tensor pc, pr;
      const auto o = loss_of(data_.eval, part, false, &tokens, &pc, &pr);
      loss += o.losses.sum().item<double>();
      accuracy += o.accuracy() * static_cast<double>(part.size());
      margin += o.margin() * static_cast<double>(part.size());
    }
    const auto n = static_cast<double>(all.size());
    out["eval/loss"] = loss / n;
    out["eval/rewards/accuracies"] = accuracy / n;
    out["eval/rewards/margins"] = margin / n;
  }
  if (!data_.eval_tasks.empty()) {
    const size_t n = std::min<size_t>(eval_config_.num_prompts(), data_.eval_tasks.size());
    const std::vector<data::TaskExample> tasks(data_.eval_tasks.begin(),
                                               data_.eval_tasks.begin() + n);
    const auto c = rollout::compare_policies(*policy_, *reference_, *tokenizer_, tasks,
                                             eval_config_.sampling(), nullptr, seed_ + 1);
    out["eval/win_rate"] = c.win_rate;
    out["eval/policy_score"] = c.policy_score;
    out["eval/reference_score"] = c.reference_score;
    out["eval/kl"] = c.kl;
  }
  policy_->train(was_training);
  return out;
}

double Dpo::flops_per_token() const {
  // A live reference adds one forward (2N per token); precomputed log-probs add nothing.
  const double policy = training_flops_per_token(*policy_);
  return precomputed_.chosen.defined() ? policy : policy * 8.0 / 6.0;
}

}  // namespace rudder::algorithms
