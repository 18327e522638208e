#include "rewards/bt_loss.h"

#include <torch/torch.h>

#include "core/error.h"

namespace rudder::rewards {

BtLossOutput bt_loss(const at::Tensor& chosen, const at::Tensor& rejected, const at::Tensor& margin,
                     double center_coef) {
  RUDDER_CHECK(chosen.sizes() == rejected.sizes() && chosen.dim() == 1,
               "bt_loss needs chosen and rejected [B], got ", chosen.sizes(), " and ",
               rejected.sizes());
  at::Tensor diff = chosen - rejected;
  at::Tensor logits = margin.defined() ? diff - margin.to(diff.dtype()) : diff;
  BtLossOutput out;
  out.loss = -torch::log_sigmoid(logits).mean();
  if (center_coef != 0.0) out.loss = out.loss + center_coef * (chosen + rejected).pow(2).mean();
  out.accuracy = (diff > 0).to(torch::kDouble).mean().item<double>();
  out.margin = diff.detach().to(torch::kDouble).mean().item<double>();
  return out;
}

at::Tensor ranked_bt_loss(const at::Tensor& rewards, const at::Tensor& ranks) {
  RUDDER_CHECK(rewards.dim() == 1 && rewards.sizes() == ranks.sizes(),
               "ranked_bt_loss needs rewards and ranks [n]");
  const at::Tensor better = ranks.unsqueeze(1) < ranks.unsqueeze(0);  // [n, n]: i ranked above j
  RUDDER_CHECK(better.any().item<bool>(), "ranked_bt_loss: every response has the same rank");
  const at::Tensor diff = rewards.unsqueeze(1) - rewards.unsqueeze(0);
  return -torch::log_sigmoid(diff).masked_select(better).mean();
}

}  // namespace rudder::rewards
