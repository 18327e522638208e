#include "models/autocast.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include "core/error.h"

// libtorch 2.4 replaced the per-device functions (is_cpu_enabled, set_autocast_gpu_dtype, ...)
// by ones that take the device type; the old names still exist there but warn when called.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define RUDDER_AUTOCAST_BY_DEVICE 1
#endif

namespace rudder::models {
namespace {

void check_device(c10::DeviceType device) {
  RUDDER_CHECK(device == c10::DeviceType::CPU || device == c10::DeviceType::CUDA,
               "bf16 autocast runs on CPU or CUDA, not on ", c10::DeviceTypeName(device));
}

#ifdef RUDDER_AUTOCAST_BY_DEVICE
void set_enabled(c10::DeviceType device, bool on) {
  at::autocast::set_autocast_enabled(device, on);
}
c10::ScalarType dtype_of(c10::DeviceType device) {
  return at::autocast::get_autocast_dtype(device);
}
void set_dtype(c10::DeviceType device, c10::ScalarType dtype) {
  at::autocast::set_autocast_dtype(device, dtype);
}
#else
void set_enabled(c10::DeviceType device, bool on) {
  if (device == c10::DeviceType::CUDA) {
    at::autocast::set_enabled(on);
  } else {
    at::autocast::set_cpu_enabled(on);
  }
}
c10::ScalarType dtype_of(c10::DeviceType device) {
  return device == c10::DeviceType::CUDA ? at::autocast::get_autocast_gpu_dtype()
                                         : at::autocast::get_autocast_cpu_dtype();
}
void set_dtype(c10::DeviceType device, c10::ScalarType dtype) {
  if (device == c10::DeviceType::CUDA) {
    at::autocast::set_autocast_gpu_dtype(dtype);
  } else {
    at::autocast::set_autocast_cpu_dtype(dtype);
  }
}
#endif

}  // namespace

bool autocast_enabled(c10::DeviceType device) {
#ifdef RUDDER_AUTOCAST_BY_DEVICE
  return at::autocast::is_autocast_enabled(device);
#else
  return device == c10::DeviceType::CUDA ? at::autocast::is_enabled()
                                         : at::autocast::is_cpu_enabled();
#endif
}

// As torch.autocast's __enter__ and __exit__: the nesting count decides when the cache of
// bfloat16 weight copies (one per weight per region) is dropped.
AutocastGuard::AutocastGuard(c10::DeviceType device, bool enabled)
    : device_(device), active_(enabled) {
  if (!active_) return;
  check_device(device_);
  previous_enabled_ = autocast_enabled(device_);
  previous_dtype_ = dtype_of(device_);
  set_dtype(device_, c10::ScalarType::BFloat16);
  set_enabled(device_, true);
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  if (!active_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  set_enabled(device_, previous_enabled_);
  set_dtype(device_, previous_dtype_);
}

NoAutocastGuard::NoAutocastGuard()
    : cpu_(autocast_enabled(c10::DeviceType::CPU)), cuda_(autocast_enabled(c10::DeviceType::CUDA)) {
  if (cpu_) set_enabled(c10::DeviceType::CPU, false);
  if (cuda_) set_enabled(c10::DeviceType::CUDA, false);
}

NoAutocastGuard::~NoAutocastGuard() {
  if (cpu_) set_enabled(c10::DeviceType::CPU, true);
  if (cuda_) set_enabled(c10::DeviceType::CUDA, true);
}

NoAutocastCacheGuard::NoAutocastCacheGuard()
    : previous_(at::autocast::is_autocast_cache_enabled()) {
  at::autocast::set_autocast_cache_enabled(false);
}

NoAutocastCacheGuard::~NoAutocastCacheGuard() {
  at::autocast::set_autocast_cache_enabled(previous_);
}

}  // namespace rudder::models
