// bf16 autocast regions (PyTorch's automatic mixed precision): inside one, matrix products
// (linear, matmul, mm, bmm, addmm) of float32 tensors run in bfloat16, while the ops on
// autocast's float32 list and every op the model casts to float32 itself (RMSNorm, attention
// softmax, log-probs) stay in float32. Weights stay float32: the master copy the optimizer
// updates. Autocast state is thread-local, so a guard affects only the thread that made it.
#pragma once

#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>

namespace rudder::models {

/// Turns bf16 autocast on for `device` (CPU or CUDA) for its lifetime when `enabled`, and
/// restores the previous state after; with `enabled` false it does nothing. Wrap forward passes
/// only: backward runs outside (NoAutocastGuard), as the PyTorch AMP recipe says.
class AutocastGuard {
 public:
  AutocastGuard(c10::DeviceType device, bool enabled);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  c10::DeviceType device_;
  bool active_;
  bool previous_enabled_ = false;
  c10::ScalarType previous_dtype_ = c10::ScalarType::Float;
};

/// Turns autocast off on CPU and CUDA for its lifetime and restores it after: for backward
/// passes and float32 math inside an autocast region.
class NoAutocastGuard {
 public:
  NoAutocastGuard();
  ~NoAutocastGuard();
  NoAutocastGuard(const NoAutocastGuard&) = delete;
  NoAutocastGuard& operator=(const NoAutocastGuard&) = delete;

 private:
  bool cpu_, cuda_;
};

/// Makes autocast cast weights afresh at every use for its lifetime, without keeping the region's
/// bfloat16 copies, and restores the previous setting after. For forward passes without grad
/// inside a region that later needs the same weights with grad: a copy cached there has no
/// gradient path to its weight, and later uses in the region would find it.
class NoAutocastCacheGuard {
 public:
  NoAutocastCacheGuard();
  ~NoAutocastCacheGuard();
  NoAutocastCacheGuard(const NoAutocastCacheGuard&) = delete;
  NoAutocastCacheGuard& operator=(const NoAutocastCacheGuard&) = delete;

 private:
  bool previous_;
};

/// Whether autocast is on for `device` in this thread.
bool autocast_enabled(c10::DeviceType device);

}  // namespace rudder::models
