// The logits processors of the local engine and its sampler, kept apart: processors rewrite the
// scores [n, vocab] of one decode step (each row with its own request's parameters), and the
// sampler picks a token per row from what they leave. The built-in chain, in order:
// repetition penalty, banned tokens (EOS and stop tokens before min_new_tokens), guidance
// (extra processors such as GenARM and GeDi), temperature, top-k, top-p, min-p.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include <ATen/core/Tensor.h>

#include "proto/rudder.pb.h"

namespace rudder::rollout {

/// Temperatures below this sample greedily, as in vLLM: logits divided by less could overflow
/// float32 and leave no distribution to draw from.
constexpr double kGreedyBelowTemperature = 1e-5;

/// The largest temperature, and the repetition penalty's range [1 / max, max], a request may
/// ask for (validate_sampling): within them every processed score of a float32 logit stays
/// finite.
constexpr double kMaxTemperature = 1e6;
constexpr double kMaxRepetitionPenalty = 1e6;

/// Whether `params` pick the most likely token (temperature 0, or below kGreedyBelowTemperature).
inline bool samples_greedily(const SamplingParams& params) {
  return params.temperature() < kGreedyBelowTemperature;
}

/// What a processor knows of one row (one running sample) of a decode step.
struct RowView {
  const SamplingParams* params = nullptr;
  const std::vector<int64_t>* prompt = nullptr;     // the request's prompt ids
  const std::vector<int64_t>* generated = nullptr;  // ids sampled so far
};

/// Rewrites the scores of a decode step. The engine calls the slot hooks so that a processor
/// may keep per-slot state aligned with the engine's (a guidance model's own KV cache): slot i
/// is row i of every process() call. One thread drives a processor.
class LogitsProcessor {
 public:
  virtual ~LogitsProcessor() = default;
  /// Rewrites `scores` [n, vocab] (float32, the engine's device) of rows 0..n-1.
  virtual void process(at::Tensor& scores, const std::vector<RowView>& rows) = 0;
  /// `prompt` was written into the empty `slot`.
  virtual void on_prefill(int64_t /*slot*/, const std::vector<int64_t>& /*prompt*/) {}
  /// `dst` became a copy of `src`.
  virtual void on_copy(int64_t /*src*/, int64_t /*dst*/) {}
  /// `slot` was emptied.
  virtual void on_clear(int64_t /*slot*/) {}
  /// tokens[i] [n] was appended to slot i.
  virtual void on_step(const at::Tensor& /*tokens*/) {}
};

/// Applies the built-in chain around `guidance` to `scores` [n, vocab] in place. `eos_id` < 0:
/// no EOS token.
void apply_processors(at::Tensor& scores, const std::vector<RowView>& rows, int64_t eos_id,
                      const std::vector<std::shared_ptr<LogitsProcessor>>& guidance);

/// What the sampler chose for each row.
struct Choice {
  std::vector<int64_t> tokens;
  std::vector<float> logprobs;         // under the processed distribution (0 when greedy)
  std::vector<float> policy_logprobs;  // under log_softmax(raw logits / temperature)
};

/// Picks a token per row: argmax of `scores` for rows that sample greedily, else a draw from
/// softmax(scores) by inverse CDF with one uniform from that row's generator, so a row's draws
/// depend on its own seed alone. `logits` are the raw logits (for policy_logprobs). One host
/// synchronisation.
Choice choose_tokens(const at::Tensor& logits, const at::Tensor& scores,
                     const std::vector<RowView>& rows, std::vector<std::mt19937_64*>& generators);

}  // namespace rudder::rollout
