#include "rollout/generate.h"

#include <torch/torch.h>

#include "core/error.h"
#include "models/causal_lm.h"
#include "proto/rudder.pb.h"
#include "rollout/logits_processors.h"

namespace rudder::rollout {

std::pair<at::Tensor, at::Tensor> sample_next(const at::Tensor& logits,
                                              const SamplingParams& params,
                                              c10::optional<at::Generator> generator) {
  at::Tensor scores = logits.to(torch::kFloat);  // [B, V]
  if (samples_greedily(params)) {
    const at::Tensor ids = scores.argmax(-1);
    const at::Tensor logp = torch::zeros({scores.size(0)}, scores.options());  // a point mass
    return {ids, logp};
  }
  scores = scores / params.temperature();
  const float lowest = -std::numeric_limits<float>::infinity();
  if (params.top_k() > 0 && params.top_k() < scores.size(-1)) {
    const at::Tensor kth =
        std::get<0>(scores.topk(params.top_k(), -1)).narrow(-1, params.top_k() - 1, 1);
    scores = scores.masked_fill(scores < kth, lowest);
  }
  if (params.top_p() < 1.0) {
    // Keep the smallest set of most likely tokens whose mass reaches top_p (always the first).
    const auto [sorted, order] = scores.sort(-1, true);
    const at::Tensor mass = sorted.softmax(-1).cumsum(-1);
    at::Tensor drop = (mass - sorted.softmax(-1)) >= params.top_p();  // mass before this token
    drop.narrow(-1, 0, 1).fill_(false);  // also where top_p rounds to 0 in float32
    scores = scores.scatter(-1, order, sorted.masked_fill(drop, lowest));
  }
  const at::Tensor logp_all = scores.log_softmax(-1);
  const at::Tensor ids = torch::multinomial(logp_all.exp(), 1, false, generator).squeeze(-1);
  return {ids, logp_all.gather(-1, ids.unsqueeze(-1)).squeeze(-1)};
}

std::vector<Completion> generate(models::CausalLM& model,
                                 const std::vector<std::vector<int64_t>>& prompts,
                                 const SamplingParams& params, int64_t eos_id, int64_t pad_id,
                                 c10::optional<at::Generator> generator) {
  RUDDER_CHECK(!prompts.empty(), "generate needs at least one prompt");
  torch::NoGradGuard no_grad;
  const auto device = model.parameters().front().device();
  const auto B = static_cast<int64_t>(prompts.size());
  size_t longest = 0;
  for (const auto& p : prompts) {
    RUDDER_CHECK(!p.empty(), "generate: empty prompt");
    longest = std::max(longest, p.size());
  }
  const auto T = static_cast<int64_t>(longest);
  RUDDER_CHECK(T + static_cast<int64_t>(params.max_new_tokens()) <= model.spec().max_positions,
               "prompt (", T, ") + max_new_tokens (", params.max_new_tokens(),
               ") exceeds the model's ", model.spec().max_positions, " positions");
  at::Tensor ids = torch::full({B, T}, pad_id, torch::kLong);
  at::Tensor mask = torch::zeros({B, T}, torch::kLong);
  for (int64_t b = 0; b < B; ++b) {
    const auto& p = prompts[b];
    const int64_t start = T - static_cast<int64_t>(p.size());
    ids[b].narrow(0, start, p.size()).copy_(torch::tensor(p, torch::kLong));
    mask[b].narrow(0, start, p.size()).fill_(1);
  }
  ids = ids.to(device);
  mask = mask.to(device);
  at::Tensor positions = (mask.cumsum(1) - 1).clamp_min(0);

  models::KVCache cache;
  models::ForwardInput prefill{ids, mask, positions, &cache};
  prefill.logits_positions =
      torch::full({B, 1}, T - 1, torch::TensorOptions().dtype(torch::kLong).device(device));
  at::Tensor logits = model.forward(prefill).select(1, 0);    // [B, V], the last prompt position
  at::Tensor next_position = positions.select(1, T - 1) + 1;  // [B]
  at::Tensor finished =
      torch::zeros({B}, torch::TensorOptions().dtype(torch::kBool).device(device));
  std::vector<at::Tensor> tokens, logprobs;
  for (uint32_t step = 0; step < params.max_new_tokens(); ++step) {
    auto [next, logp] = sample_next(logits, params, generator);
    next = next.masked_fill(finished, pad_id);
    tokens.push_back(next);
    logprobs.push_back(logp);
    finished = finished | (next == eos_id);
    if (finished.all().item<bool>()) break;  // the one host sync per step
    mask = torch::cat({mask, torch::ones({B, 1}, mask.options())}, 1);
    logits =
        model.forward({next.unsqueeze(1), mask, next_position.unsqueeze(1), &cache}).select(1, 0);
    next_position = next_position + 1;
  }
  const at::Tensor all_tokens = torch::stack(tokens, 1).cpu();  // [B, steps]
  const at::Tensor all_logp = torch::stack(logprobs, 1).to(torch::kFloat).cpu();
  std::vector<Completion> out(B);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < all_tokens.size(1); ++t) {
      const int64_t id = all_tokens[b][t].item<int64_t>();
      out[b].tokens.push_back(id);
      out[b].logprobs.push_back(all_logp[b][t].item<float>());
      if (id == eos_id) {
        out[b].finished_by_eos = true;
        break;
      }
    }
  }
  return out;
}

}  // namespace rudder::rollout
