// Activation checkpointing (Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost"):
// a function's forward runs without keeping its intermediates, and the backward runs it again
// from its saved input, with the random state it first saw, to backpropagate through it.
#pragma once

#include <functional>

#include <ATen/core/Tensor.h>

namespace rudder::models::detail {

/// A function of one tensor (a decoder layer with its other inputs bound).
using CheckpointedFn = std::function<at::Tensor(const at::Tensor&)>;

/// fn(x), keeping only x for the backward; the backward replays fn with the random state at the
/// forward (the CPU generator's, and that of x's device when it is not the CPU), so dropout masks
/// repeat, and its autocast state, and accumulates the gradients of the parameters fn uses. The
/// result requires grad even when x does not (frozen embeddings).
at::Tensor checkpoint(CheckpointedFn fn, const at::Tensor& x);

}  // namespace rudder::models::detail
