#include "rollout/policy_eval.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "core/error.h"
#include "data/collate.h"
#include "models/chunked_logprobs.h"
#include "rollout/generate.h"
#include "rollout/win_rate.h"

namespace rudder::rollout {
namespace {

struct Samples {
  std::vector<std::vector<int64_t>> tokens;  // generated ids (EOS kept)
  std::vector<std::string> texts;            // decoded, EOS dropped
};

Samples sample(models::CausalLM& model, const data::Tokenizer& tok,
               const std::vector<std::vector<int64_t>>& prompts, const SamplingParams& sampling,
               uint64_t seed) {
  Samples s;
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (size_t start = 0; start < prompts.size(); start += 32) {
    const std::vector<std::vector<int64_t>> chunk(
        prompts.begin() + start, prompts.begin() + std::min(prompts.size(), start + 32));
    for (auto& c : generate(model, chunk, sampling, tok.eos_id(), tok.pad_id(), generator)) {
      std::vector<int64_t> ids = c.tokens;
      if (c.finished_by_eos) ids.pop_back();
      s.texts.push_back(tok.decode(ids));
      s.tokens.push_back(std::move(c.tokens));
    }
  }
  return s;
}

// Summed log-probs of each sample's tokens under `model` ([n]).
std::vector<double> sequence_logprobs(models::CausalLM& model,
                                      const std::vector<std::vector<int64_t>>& prompts,
                                      const std::vector<std::vector<int64_t>>& responses,
                                      int64_t pad_id) {
  torch::NoGradGuard no_grad;
  const auto device = model.parameters().front().device();
  std::vector<double> out;
  for (size_t start = 0; start < prompts.size(); start += 32) {
    std::vector<data::TokenizedPair> rows;
    for (size_t i = start; i < std::min(prompts.size(), start + 32); ++i)
      rows.push_back({prompts[i], responses[i], {}});
    const data::Batch b = data::collate(rows, pad_id);
    const at::Tensor lp =
        models::sequence_logprobs(
            model, models::batch_input(b.input_ids, b.attention_mask, b.position_ids, device),
            b.loss_mask.to(device))
            .to(torch::kDouble)
            .cpu();
    for (int64_t i = 0; i < lp.size(0); ++i) out.push_back(lp[i].item<double>());
  }
  return out;
}

}  // namespace

PolicyComparison compare_policies(models::CausalLM& policy, models::CausalLM& reference,
                                  const data::Tokenizer& tok,
                                  const std::vector<data::TaskExample>& tasks,
                                  const SamplingParams& sampling,
                                  rewards::RewardModel* reward_model, uint64_t seed) {
  RUDDER_CHECK(!tasks.empty(), "compare_policies needs at least one prompt");
  const bool policy_training = policy.is_training(), reference_training = reference.is_training();
  policy.eval();
  reference.eval();
  std::vector<std::vector<int64_t>> prompts;
  std::vector<std::string> prompt_texts;
  for (const auto& t : tasks) {
    prompts.push_back(tok.encode(t.prompt));
    prompt_texts.push_back(t.prompt);
  }
  const Samples ours = sample(policy, tok, prompts, sampling, seed);
  const Samples theirs = sample(reference, tok, prompts, sampling, seed);

  PolicyComparison c;
  c.prompts = tasks.size();
  std::vector<double> a, b;
  for (size_t i = 0; i < tasks.size(); ++i) {
    a.push_back(data::SyntheticTasks::score(tasks[i], ours.texts[i]));
    b.push_back(data::SyntheticTasks::score(tasks[i], theirs.texts[i]));
    c.policy_score += a.back();
    c.reference_score += b.back();
  }
  c.policy_score /= static_cast<double>(tasks.size());
  c.reference_score /= static_cast<double>(tasks.size());
  c.win_rate = win_rate(a, b);
  if (reward_model != nullptr) {
    const auto ra = reward_model->score(prompt_texts, ours.texts);
    const auto rb = reward_model->score(prompt_texts, theirs.texts);
    c.rm_win_rate = win_rate(ra, rb);
    c.rm_policy_reward = c.rm_reference_reward = 0;
    for (size_t i = 0; i < ra.size(); ++i) {
      c.rm_policy_reward += ra[i] / static_cast<double>(ra.size());
      c.rm_reference_reward += rb[i] / static_cast<double>(rb.size());
    }
  }
  const auto lp = sequence_logprobs(policy, prompts, ours.tokens, tok.pad_id());
  const auto lr = sequence_logprobs(reference, prompts, ours.tokens, tok.pad_id());
  for (size_t i = 0; i < lp.size(); ++i) c.kl += (lp[i] - lr[i]) / static_cast<double>(lp.size());
  policy.train(policy_training);
  reference.train(reference_training);
  return c;
}

}  // namespace rudder::rollout
