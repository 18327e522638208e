// Attention of a whole sequence (prefill and training): queries [B, H, T, D] against keys and
// values [B, Hkv, S, D], with a bool mask `blocked` [B, 1, T, S] of the pairs that may not
// attend and the softmax in float32, a block of query rows at a time so that a layer never
// holds all of its [B, H, T, S] scores at once.
//
// Two ways to keep what the backward needs:
// - kKeepProbabilities: each block's probabilities stay for the backward (autograd through the
//   blocks): the fastest backward, and [B, H, T, S] floats per layer until then.
// - kRecompute: only the output and each row's softmax max and sum stay; the backward computes
//   each block's probabilities again from q, k and the mask (as FlashAttention's backward does,
//   Dao et al. 2022) and takes the gradients analytically. Activation checkpointing uses it, so
//   on the CPU a replayed layer at 2048 tokens holds a few MiB of scores instead of H x 16 MiB.
#pragma once

#include <cstdint>
#include <utility>

#include <ATen/core/Tensor.h>

namespace rudder::models::detail {

/// What attend() keeps for the backward (see above).
enum class AttentionMemory { kKeepProbabilities, kRecompute };

/// The pairs that may not attend, bool [B or 1, 1, T, S]. `causal` says they are exactly key j
/// after query i (T == S, the same for every row): on CUDA the causal kernel then runs without
/// the mask (FlashAttention takes none).
struct AttentionMask {
  AttentionMask(at::Tensor blocked_pairs, bool causal_only = false)  // NOLINT: a tensor is a mask
      : blocked(std::move(blocked_pairs)), causal(causal_only) {}
  at::Tensor blocked;
  bool causal;
};

/// softmax(q k^T / sqrt(D), blocked pairs excluded) v, [B, H, T, D]; query head h reads
/// key/value head h / (H / Hkv). `block_rows` <= 0 sizes blocks at about 1M score elements on
/// the CPU and 256M on a GPU. Gradients flow to q, k and v in either memory mode, equal within
/// float rounding. On CUDA with libtorch >= 2, libtorch's fused attention
/// (scaled_dot_product_attention) runs instead, in either mode (it keeps no scores either): its
/// causal kernel without a mask when `mask.causal`, else with the mask as a bias;
/// RUDDER_SDPA=0 in the environment turns it off.
at::Tensor attend(const at::Tensor& q, at::Tensor k, at::Tensor v, const AttentionMask& mask,
                  AttentionMemory memory = AttentionMemory::kKeepProbabilities,
                  int64_t block_rows = 0);

}  // namespace rudder::models::detail
