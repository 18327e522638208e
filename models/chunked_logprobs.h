// Token log-probabilities, entropy and cross-entropy read from the final hidden states and the
// output projection a chunk of tokens at a time, so the [tokens, vocab] logits never exist at
// once (the chunked loss of torchtune and the fused linear cross-entropy of Liger Kernel). The
// backward recomputes each chunk's logits and accumulates the gradients of the hidden states,
// the weight and the bias. Softmax and reductions run in float32 whatever the weights' dtype.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace rudder::models {

class CausalLM;
struct ForwardInput;

/// The output projection: logits = hidden weight^T + bias.
struct OutputHead {
  at::Tensor weight;  // [vocab, hidden] (the embedding matrix when tied)
  at::Tensor bias;    // [vocab], or undefined
};

/// Options of chunked_token_scores.
struct ChunkedScoreOptions {
  /// Logit elements computed at once: a chunk holds max(1, chunk_elements / vocab) tokens.
  /// The default keeps a float32 chunk at 16 MiB (27 tokens of a 151k vocabulary).
  int64_t chunk_elements = int64_t{1} << 22;
  /// Also compute the entropy of each token's distribution (PPO's bonus).
  bool entropy = false;
};

/// Per-token results of chunked_token_scores, float32.
struct TokenScores {
  at::Tensor logprobs;  // [tokens]: log p(target | hidden)
  at::Tensor entropy;   // [tokens]: -sum_v p log p; zeros unless options.entropy
};

/// Log-probs of `targets` [tokens] (int64) under softmax(hidden [tokens, hidden] weight^T +
/// bias), and optionally the entropy, without materializing [tokens, vocab]. Differentiable in
/// hidden, weight and bias (a custom autograd function). Throws InvalidArgument on mismatched
/// shapes.
TokenScores chunked_token_scores(const at::Tensor& hidden, const OutputHead& head,
                                 const at::Tensor& targets,
                                 const ChunkedScoreOptions& options = {});

/// Mean cross-entropy of `targets` over the tokens (-mean log p), chunked as above.
at::Tensor chunked_cross_entropy(const at::Tensor& hidden, const OutputHead& head,
                                 const at::Tensor& targets,
                                 const ChunkedScoreOptions& options = {});

/// Per-token scores [batch, seq] of `input.input_ids` under `model`, chunked from its final
/// hidden states: entry t is log p(ids[t] | ids[< t]) (and the entropy of that distribution);
/// entry 0, and every entry where `mask` [batch, seq] (optional) is 0, is 0 and costs nothing.
/// Except that a batch whose [batch, seq, vocab] logits fit in one chunk (options.chunk_elements)
/// is scored from them whole, every position, bit for bit as token_logprobs(model.forward(input),
/// ids) with those entries zeroed (input.logits_positions unset): chunking would save a few
/// chunks' memory there (the logits, their float32 copy and, with entropy, their softmax stay
/// for the backward) and cost a second product in the backward.
TokenScores score_tokens(CausalLM& model, const ForwardInput& input, const at::Tensor& mask = {},
                         const ChunkedScoreOptions& options = {});

/// Log-probability of each row's response ([batch]) under `model`: the sum over positions where
/// loss_mask is 1, or with `average` that sum over the response length. Chunked as above.
at::Tensor sequence_logprobs(CausalLM& model, const ForwardInput& input,
                             const at::Tensor& loss_mask, bool average = false);

}  // namespace rudder::models
