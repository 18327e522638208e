// Batched sampling from a causal LM with a KV cache: greedy, temperature, top-k and top-p
// (nucleus, Holtzman et al. 2020). The first sampler of the rollout layer; the batched engine
// and the guided decoders build on it.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

namespace rudder {
class SamplingParams;
}
namespace rudder::models {
class CausalLM;
}

namespace rudder::rollout {

/// What generate() returns for each prompt.
struct Completion {
  std::vector<int64_t> tokens;  // generated ids, EOS included when it was produced
  std::vector<float>
      logprobs;  // log-probability of each generated id under the sampling distribution
  bool finished_by_eos = false;  // false: stopped at max_new_tokens
};

/// Completes every prompt (token ids, unpadded). Prompts are left-padded into one batch and
/// decoded together; one host sync per step checks whether all rows have stopped. `generator`
/// seeds the sampling (nullptr: libtorch's default generator). Runs without gradients.
std::vector<Completion> generate(models::CausalLM& model,
                                 const std::vector<std::vector<int64_t>>& prompts,
                                 const SamplingParams& params, int64_t eos_id, int64_t pad_id,
                                 c10::optional<at::Generator> generator = c10::nullopt);

/// Next-token ids [batch] from logits [batch, vocab] under `params` (temperature below 1e-5:
/// argmax), and their log-probabilities under the distribution sampled from.
std::pair<at::Tensor, at::Tensor> sample_next(const at::Tensor& logits,
                                              const SamplingParams& params,
                                              c10::optional<at::Generator> generator);

}  // namespace rudder::rollout
