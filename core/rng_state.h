// The state of libtorch's default CPU generator, read and set under its lock: what checkpoints
// save for exact resume and what activation checkpointing replays.
#pragma once

#include <ATen/core/Tensor.h>

namespace rudder::core {

/// libtorch's default CPU generator state.
at::Tensor cpu_generator_state();
/// Sets libtorch's default CPU generator state.
void set_cpu_generator_state(const at::Tensor& state);

}  // namespace rudder::core
