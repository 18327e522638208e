#include "rewards/calibration.h"

#include <torch/torch.h>

#include "core/error.h"

namespace rudder::rewards {

at::Tensor ctrl_calibrate(const at::Tensor& reward, const at::Tensor& ref_rewards) {
  RUDDER_CHECK(reward.defined() && ref_rewards.defined(),
               "ctrl_calibrate needs reward and ref_rewards");
  RUDDER_CHECK(reward.dim() == 1 && ref_rewards.dim() == 2 &&
                   ref_rewards.size(0) == reward.size(0) && ref_rewards.size(1) > 0,
               "ctrl_calibrate needs reward [B] and ref_rewards [B, K] with K >= 1, got ",
               reward.sizes(), " and ", ref_rewards.sizes());
  // Ties count one half, so both sides must round the same way: no silent promotion.
  RUDDER_CHECK(reward.is_floating_point() && reward.scalar_type() == ref_rewards.scalar_type(),
               "ctrl_calibrate needs reward and ref_rewards of one floating dtype, got ",
               reward.scalar_type(), " and ", ref_rewards.scalar_type());
  const int64_t bad_reward = reward.isfinite().logical_not().sum().item<int64_t>();
  const int64_t bad_ref = ref_rewards.isfinite().logical_not().sum().item<int64_t>();
  RUDDER_CHECK(bad_reward == 0 && bad_ref == 0, "ctrl_calibrate needs finite rewards, got ",
               bad_reward, " non-finite in reward and ", bad_ref, " in ref_rewards");
  const at::Tensor r = reward.detach().unsqueeze(1);            // [B, 1]
  const at::Tensor ref = ref_rewards.detach();                  // [B, K]
  const at::Tensor below = (ref < r).to(reward.scalar_type());  // [B, K]
  const at::Tensor tied = (ref == r).to(reward.scalar_type());  // [B, K]
  return (below + 0.5 * tied).mean(1);
}

}  // namespace rudder::rewards
