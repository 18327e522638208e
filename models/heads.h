// Heads on top of a causal LM's final hidden states: a scalar reward read at the last real
// token (reward models) and a per-token value (PPO's critic).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

namespace rudder::models {

/// Index of the last position with mask 1 in each row ([batch]); works for left and right padding.
at::Tensor last_real_index(const at::Tensor& attention_mask);

/// hidden -> one scalar per position; the reward of a sequence is read at its last real token.
/// The parameters are `score.weight` [1, hidden] and `score.bias` [1] (HF's
/// *ForSequenceClassification naming).
struct ScalarHeadImpl : torch::nn::Module {
  explicit ScalarHeadImpl(int64_t hidden_size);
  /// Per-position scores [batch, seq] of hidden [batch, seq, hidden]; float32 when the
  /// product ran in bfloat16 or float16.
  at::Tensor forward(const at::Tensor& hidden);
  /// One score per row [batch], at each row's last real token.
  at::Tensor sequence_scores(const at::Tensor& hidden, const at::Tensor& attention_mask);

  torch::nn::Linear score{nullptr};
};
TORCH_MODULE(ScalarHead);

}  // namespace rudder::models
