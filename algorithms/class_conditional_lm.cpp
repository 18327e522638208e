#include "algorithms/class_conditional_lm.h"

#include <torch/torch.h>

#include "algorithms/preference.h"
#include "core/error.h"
#include "models/logprobs.h"

namespace rudder::algorithms {

LabelledRows tokenize_labelled(const std::vector<data::LabelledText>& texts,
                               const data::Tokenizer& tokenizer,
                               const TokenizerConfig& tokenizer_config,
                               const DataConfig& data_config) {
  RUDDER_CHECK(data_config.max_length() >= 2,
               "data.max_length must leave room for the control code and a token, got ",
               data_config.max_length());
  DataConfig room = data_config;
  room.set_max_length(data_config.max_length() - 1);  // the code comes first
  LabelledRows rows;
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto& t = texts[i];
    const data::TokenizedPair p =
        data::tokenize_pair(tokenizer, t.prompt, t.text, tokenizer_config, room);
    std::vector<int64_t> ids = p.prompt;
    ids.insert(ids.end(), p.response.begin(), p.response.end());
    RUDDER_CHECK(!ids.empty(), "labelled text ", i, " has no token");
    rows.ids.push_back(std::move(ids));
    rows.desired.push_back(t.desired ? 1 : 0);
    rows.categories.push_back(t.category);
  }
  return rows;
}

ClassConditionalLm::ClassConditionalLm(std::shared_ptr<models::CausalLM> lm) : lm_(std::move(lm)) {
  register_module("lm", lm_);
  const auto options = lm_->parameters().front().options().dtype(torch::kFloat);
  logit_scale_ = register_parameter("logit_scale", torch::ones({1}, options));
}

ClassConditionalLmTraining::ClassConditionalLmTraining(std::shared_ptr<models::CausalLM> lm,
                                                       int64_t pad_id, int64_t desired_code,
                                                       int64_t anti_code, LabelledData data,
                                                       const GediConfig& config)
    : model_(std::make_shared<ClassConditionalLm>(std::move(lm))),
      pad_id_(pad_id),
      desired_code_(desired_code),
      anti_code_(anti_code),
      data_(std::move(data)),
      config_(config) {
  RUDDER_CHECK(data_.train.size() > 0, "class-conditional LM training needs labelled texts");
  const int64_t vocab = model_->lm().spec().vocab_size;
  for (const int64_t code : {desired_code_, anti_code_}) {
    RUDDER_CHECK(code >= 0 && code < vocab, "control code token ", code,
                 " is outside the model's vocabulary of ", vocab);
  }
  RUDDER_CHECK(desired_code_ != anti_code_, "gedi.desired_code and gedi.anti_code are one token");
  RUDDER_CHECK(config_.gen_weight() >= 0 && config_.gen_weight() <= 1,
               "gedi.gen_weight must be in [0, 1], got ", config_.gen_weight());
  if (!config_.learn_logit_scale()) model_->logit_scale().set_requires_grad(false);
}

ClassConditionalLmTraining::Losses ClassConditionalLmTraining::losses(
    const LabelledRows& rows, const std::vector<uint64_t>& indices) {
  // Every text twice in one batch: after the desired code, then after the anti code.
  std::vector<data::TokenizedPair> pairs;
  for (const int64_t code : {desired_code_, anti_code_}) {
    for (const uint64_t i : indices) pairs.push_back({{code}, rows.ids[i], {}});
  }
  const data::Batch b = data::collate(pairs, pad_id_);
  models::CausalLM& lm = model_->lm();
  const auto device = lm.parameters().front().device();
  const models::ForwardInput input =
      models::batch_input(b.input_ids, b.attention_mask, b.position_ids, device);
  const at::Tensor& ids = input.input_ids;
  const at::Tensor logits = lm.forward(input);
  // Per-token NLL of each text under each code: [2B].
  const at::Tensor nll =
      -models::masked_row_mean(models::token_logprobs(logits, ids), b.loss_mask.to(device));
  const auto n = static_cast<int64_t>(indices.size());
  const at::Tensor nll_desired = nll.narrow(0, 0, n);
  const at::Tensor nll_anti = nll.narrow(0, n, n);
  std::vector<int64_t> target;  // class 0: desired, 1: anti
  for (const uint64_t i : indices) target.push_back(rows.desired[i] ? 0 : 1);
  const at::Tensor labels = torch::tensor(target, torch::kLong).to(device);
  const at::Tensor is_desired = labels.eq(0);
  const at::Tensor class_logits =
      torch::stack({-nll_desired, -nll_anti}, 1) * model_->logit_scale().to(nll.dtype());
  Losses out;
  out.gen_nll = torch::where(is_desired, nll_desired, nll_anti);
  const at::Tensor disc = torch::nn::functional::cross_entropy(
      class_logits, labels,
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
  const double w = config_.gen_weight();
  out.loss = w * out.gen_nll + (1.0 - w) * disc;
  out.correct = class_logits.argmax(1).eq(labels).to(torch::kDouble);
  out.tokens = b.attention_mask.sum().item<double>();
  return out;
}

StepStats ClassConditionalLmTraining::train_examples(const std::vector<uint64_t>& examples,
                                                     double total_units) {
  const Losses l = losses(data_.train, examples);
  backward(l.loss.sum() / total_units);
  StepStats s;
  s.units = static_cast<double>(examples.size());
  s.loss_sum = l.loss.sum().item<double>();
  s.tokens = l.tokens;
  s.sums["gen_nll"] = l.gen_nll.sum().item<double>();
  s.sums["accuracy"] = l.correct.sum().item<double>();
  return s;
}

std::map<std::string, double> ClassConditionalLmTraining::evaluate() {
  std::map<std::string, double> out;
  out["eval/logit_scale"] = model_->logit_scale().item<double>();
  if (data_.eval.size() == 0) return out;
  torch::NoGradGuard no_grad;
  const bool was_training = model_->is_training();
  model_->eval();
  double loss = 0, gen_nll = 0, correct = 0;
  const auto all = all_indices(data_.eval.size());
  for (size_t start = 0; start < all.size(); start += 32) {
    const std::vector<uint64_t> part(all.begin() + start,
                                     all.begin() + std::min(all.size(), start + 32));
    const Losses l = losses(data_.eval, part);
    loss += l.loss.sum().item<double>();
    gen_nll += l.gen_nll.sum().item<double>();
    correct += l.correct.sum().item<double>();
  }
  model_->train(was_training);
  const auto n = static_cast<double>(data_.eval.size());
  out["eval/loss"] = loss / n;
  out["eval/gen_nll"] = gen_nll / n;
  out["eval/accuracy"] = correct / n;
  return out;
}

double ClassConditionalLmTraining::flops_per_token() const {
  return training_flops_per_token(*model_);
}

}  // namespace rudder::algorithms
