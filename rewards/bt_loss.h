// Bradley-Terry losses for reward models (ALGORITHMS.md section 1).
#pragma once

#include <ATen/core/Tensor.h>

namespace rudder::rewards {

/// The loss and its metrics.
struct BtLossOutput {
  at::Tensor loss;  // scalar: mean_i -log sigmoid(r_w - r_l - m) [+ center_coef mean (r_w + r_l)^2]
  double accuracy = 0;  // mean 1{r_w > r_l} (ties are not accurate)
  double margin = 0;    // mean (r_w - r_l)
};

/// Pairwise Bradley-Terry loss on rewards [B]; `margin` [B] is optional (undefined: 0).
BtLossOutput bt_loss(const at::Tensor& chosen, const at::Tensor& rejected,
                     const at::Tensor& margin = {}, double center_coef = 0.0);

/// Ranked-list loss: mean over all pairs (i, j) with rank_i < rank_j (smaller is better) of
/// -log sigmoid(r_i - r_j); rewards and ranks [n].
at::Tensor ranked_bt_loss(const at::Tensor& rewards, const at::Tensor& ranks);

}  // namespace rudder::rewards
