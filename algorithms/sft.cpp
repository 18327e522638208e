#include "algorithms/sft.h"

#include <algorithm>

#include <torch/torch.h>

#include "core/error.h"
#include "models/chunked_logprobs.h"
#include "models/logprobs.h"
#include "proto/rudder.pb.h"
#include "rollout/generate.h"

namespace rudder::algorithms {
Sft::Sft(std::shared_ptr<models::CausalLM> model, std::shared_ptr<data::Tokenizer> tokenizer,
         SftData data, const ExperimentConfig& config)
    : model_(std::move(model)),
      tokenizer_(std::move(tokenizer)),
      data_(std::move(data)),
      mask_prompt_(config.sft().mask_prompt()),
      eval_prompts_(config.eval().num_prompts()),
      max_new_tokens_(config.eval().sampling().max_new_tokens()),
      packing_(config.sft().packing()),
      max_length_(config.data().max_length()) {
  RUDDER_CHECK(!data_.train.empty(), "SFT needs training examples");
}

double Sft::example_units(const std::vector<uint64_t>& examples) const {
  double n = 0;
  for (uint64_t i : examples) {
    const auto& r = data_.train[i];
    for (size_t t = 0; t < r.prompt.size() + r.response.size(); ++t)
      n += data::is_label(r, t, mask_prompt_) ? 1 : 0;
  }
  return n;
}

StepStats Sft::train_examples(const std::vector<uint64_t>& examples, double total_units) {
  std::vector<data::TokenizedPair> rows;
  for (uint64_t i : examples) rows.push_back(data_.train[i]);
  const data::Batch b =
      packing_ ? data::pack(rows, tokenizer_->pad_id(), max_length_, mask_prompt_)
               : data::collate(rows, tokenizer_->pad_id(), data::PadSide::kRight, mask_prompt_);
  const auto device = model_->parameters().front().device();
  models::ForwardInput input =
      models::batch_input(b.input_ids, b.attention_mask, b.position_ids, device);
  if (packing_) input.segment_ids = b.segment_ids.to(device);  // right_padded is ignored then
  const at::Tensor loss_mask = b.loss_mask.to(device);         // [B, T]; no example's first token
  const at::Tensor logp = models::score_tokens(*model_, input, loss_mask).logprobs;  // [B, T]
  const at::Tensor nll_sum = -models::masked_sum(logp, loss_mask).sum();  // summed over units
  backward(nll_sum / total_units);
  StepStats s;
  s.loss_sum = nll_sum.item<double>();
  s.units = b.loss_mask.sum().item<double>();
  s.tokens = b.attention_mask.sum().item<double>();
  return s;
}

double token_nll(models::CausalLM& model, const std::vector<data::TokenizedPair>& rows,
                 int64_t pad_id, size_t batch) {
  torch::NoGradGuard no_grad;
  const auto device = model.parameters().front().device();
  double nll = 0, tokens = 0;
  for (size_t start = 0; start < rows.size(); start += batch) {
    const std::vector<data::TokenizedPair> chunk(
        rows.begin() + start, rows.begin() + std::min(rows.size(), start + batch));
    const data::Batch b = data::collate(chunk, pad_id);
    const models::ForwardInput input =
        models::batch_input(b.input_ids, b.attention_mask, b.position_ids, device);
    const at::Tensor sums = models::sequence_logprobs(model, input, b.loss_mask.to(device));
    nll -= sums.sum().item<double>();
    tokens += b.loss_mask.sum().item<double>();
  }
  return tokens > 0 ? nll / tokens : 0.0;
}

double greedy_task_score(models::CausalLM& model, const data::Tokenizer& tokenizer,
                         const std::vector<data::TaskExample>& tasks, size_t limit,
                         uint32_t max_new_tokens) {
  const size_t n = std::min(limit, tasks.size());
  if (n == 0) return 0.0;
  SamplingParams greedy;
  greedy.set_temperature(0.0);
  greedy.set_max_new_tokens(max_new_tokens);
  greedy.set_top_p(1.0);
  double total = 0;
  for (size_t start = 0; start < n; start += 32) {
    std::vector<std::vector<int64_t>> prompts;
    for (size_t i = start; i < std::min(n, start + 32); ++i)
      prompts.push_back(tokenizer.encode(tasks[i].prompt));
    const auto completions =
        rollout::generate(model, prompts, greedy, tokenizer.eos_id(), tokenizer.pad_id());
    for (size_t k = 0; k < completions.size(); ++k) {
      std::vector<int64_t> ids = completions[k].tokens;
      if (completions[k].finished_by_eos) ids.pop_back();
      total += data::SyntheticTasks::score(tasks[start + k], tokenizer.decode(ids));
    }
  }
  return total / static_cast<double>(n);
}

std::map<std::string, double> Sft::evaluate() {
  const bool was_training = model_->is_training();
  model_->eval();
  std::map<std::string, double> out;
  if (!data_.eval.empty())
    out["eval/loss"] = token_nll(*model_, data_.eval, tokenizer_->pad_id(), 32);
  if (!data_.eval_tasks.empty()) {
    out["eval/ground_truth_score"] =
        greedy_task_score(*model_, *tokenizer_, data_.eval_tasks, eval_prompts_, max_new_tokens_);
  }
  model_->train(was_training);
  return out;
}

double Sft::flops_per_token() const { return training_flops_per_token(*model_); }

}  // namespace rudder::algorithms
