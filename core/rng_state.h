// The state of libtorch's default generators, read and set under their locks: what checkpoints
// save for exact resume and what activation checkpointing replays.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

namespace rudder::core {

/// The state of libtorch's default generator of `device` (the CPU's, or a CUDA device's).
at::Tensor generator_state(const c10::Device& device);
/// Sets the state of libtorch's default generator of `device`.
void set_generator_state(const c10::Device& device, const at::Tensor& state);

/// libtorch's default CPU generator state.
inline at::Tensor cpu_generator_state() { return generator_state(c10::Device(c10::kCPU)); }
/// Sets libtorch's default CPU generator state.
inline void set_cpu_generator_state(const at::Tensor& state) {
  set_generator_state(c10::Device(c10::kCPU), state);
}

}  // namespace rudder::core
