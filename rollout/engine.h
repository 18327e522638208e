// The rollout engine interface: requests (a prompt, sampling parameters, n samples) in,
// completions (tokens, text, log-probs under the policy and under the sampling distribution,
// finish reason, timings) out; and scoring of a given continuation. The local engine
// (rollout/local_engine.h) and the HTTP client of the rollout server implement it, so callers
// never know where generation runs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "proto/rudder.pb.h"

namespace rudder::rollout {

/// One generation request.
struct GenerateInput {
  /// Prompt token ids; when empty the engine encodes `prompt_text` with its tokenizer.
  std::vector<int64_t> prompt;
  std::string prompt_text;
  /// How to sample: max_new_tokens, min_new_tokens, temperature (below 1e-5: greedy), top_k,
  /// top_p, min_p, repetition_penalty, ignore_eos, stop strings, stop_token_ids and seed (0: drawn
  /// from the engine's own generator). See SamplingParams in proto/rudder.proto.
  SamplingParams sampling;
  /// Samples of this prompt; they share one prefill.
  uint32_t n = 1;
};

/// Why a sample stopped.
enum class FinishReason {
  kEos,     // the end-of-sequence token (kept as the last token)
  kLength,  // max_new_tokens, or the engine's longest sequence
  kStop,    // a stop string (the text ends before it) or a stop token (kept as the last token)
};

/// "eos", "length" or "stop".
const char* finish_reason_name(FinishReason reason);

/// One sample of a request.
struct Sample {
  std::vector<int64_t> tokens;  // generated ids
  std::string text;             // decoded tokens (without a final EOS); empty without tokenizer
  /// log-probability of each token under the distribution it was sampled from (after top-k,
  /// top-p, min-p, penalties and guidance; 0 for greedy choices).
  std::vector<float> logprobs;
  /// log-probability of each token under the policy: log_softmax(logits / temperature), or of
  /// the raw logits when greedy. What PPO's ratio needs.
  std::vector<float> policy_logprobs;
  FinishReason finish_reason = FinishReason::kLength;
};

/// The completions of one request, and where its time went.
struct GenerateOutput {
  std::vector<Sample> samples;     // n of them, in sample order
  std::string policy_version;      // the weights that produced every sample
  double queue_seconds = 0;        // from submission to its first prefill
  double first_token_seconds = 0;  // from submission to its first sampled token
  double total_seconds = 0;        // from submission to its last sample's end
};

/// A continuation to score after a prefix (both token ids).
struct ScoreInput {
  std::vector<int64_t> prefix;
  std::vector<int64_t> continuation;
};

/// Generation and scoring. Implementations say whether they are thread-safe.
class RolloutEngine {
 public:
  virtual ~RolloutEngine() = default;
  /// Completes every request; outputs in request order. Throws InvalidArgument naming the
  /// request for bad input (an empty or over-long prompt, parameters out of range).
  virtual std::vector<GenerateOutput> generate(const std::vector<GenerateInput>& requests) = 0;
  /// The log-probability (temperature 1) of each continuation token given the prefix and the
  /// tokens before it; one vector per input, as long as its continuation.
  virtual std::vector<std::vector<float>> score(const std::vector<ScoreInput>& inputs) = 0;
  /// The version of the weights answering now.
  virtual std::string policy_version() const = 0;
};

/// Checks `params` as a request's sampling parameters (ranges of the proto's rules); throws
/// InvalidArgument naming `what` and the field.
void validate_sampling(const SamplingParams& params, const std::string& what);

}  // namespace rudder::rollout
