// Log-probabilities of given tokens and masked reductions (ALGORITHMS.md section 0).
#pragma once

#include <ATen/core/Tensor.h>

namespace rudder::models {

/// Per-token log-probabilities [batch, seq]: entry t is log p(ids[t] | ids[< t]) computed from
/// logits[t - 1] in float32 (logit - logsumexp); entry 0 is 0.
at::Tensor token_logprobs(const at::Tensor& logits, const at::Tensor& input_ids);

/// Row sums of `values` where `mask` is 1: [batch].
at::Tensor masked_sum(const at::Tensor& values, const at::Tensor& mask);

/// Row means of `values` where `mask` is 1 ([batch]; 0 for an all-masked row).
at::Tensor masked_row_mean(const at::Tensor& values, const at::Tensor& mask);

/// Mean over every position of the batch where `mask` is 1 (one scalar, not a mean of row means).
at::Tensor masked_mean(const at::Tensor& values, const at::Tensor& mask);

/// Log-probability of each row's response ([batch]): the sum over positions with loss_mask 1,
/// or, with `average`, that sum divided by the row's response length.
at::Tensor sequence_logprobs(const at::Tensor& logits, const at::Tensor& input_ids,
                             const at::Tensor& loss_mask, bool average = false);

}  // namespace rudder::models
