// DMoERM's phase-3 aggregation of the capability experts into one reward (ALGORITHMS.md
// section 6; DMoERM, Quan 2024, as in the code `innermoe/modeling.py` at quanshr/DMoERM@ecdbdc7,
// which concatenates expert hidden states where the paper describes expert outputs).
#pragma once

#include <ATen/core/Tensor.h>

namespace rudder::rewards {

/// The aggregator MLP's parameters (Linear, PReLU, Linear; trainable: gradients flow to each).
struct DmoermAggregatorWeights {
  at::Tensor w1;            // [M, K*H] first Linear's weight (M = H in DMoERM)
  at::Tensor b1;            // [M]
  at::Tensor w2;            // [M] second Linear's weight (output width 1)
  at::Tensor b2;            // scalar or [1]
  at::Tensor prelu_weight;  // scalar or [1]: PReLU's one slope for negative inputs (init 0.25)
};

/// DMoERM aggregation (sec. 6, phase 3): reward = w2 . PReLU(w1 [h_1; ...; h_K] + b1) + b2, with
/// hidden [B, K, H] the K experts' last-token hidden states, concatenated in expert order.
/// Returns reward [B]; no reduction over B. Every tensor must share hidden's floating dtype.
at::Tensor dmoerm_aggregate(const at::Tensor& hidden, const DmoermAggregatorWeights& weights);

}  // namespace rudder::rewards
