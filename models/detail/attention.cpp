#include "models/detail/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include <torch/torch.h>
#include <torch/version.h>

#include "core/runtime.h"
#include "models/autocast.h"

namespace rudder::models::detail {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Score elements [B, H, rows, S] of one block: 4 MiB of float32 on the CPU, where a block's
// scores stay in cache and freed blocks are reused; a GPU wants few large kernels.
constexpr int64_t kBlockElementsCpu = int64_t{1} << 20;
constexpr int64_t kBlockElementsGpu = int64_t{1} << 28;

// Scores of query rows q [B, H, n, D] against k [B, H, S, D] in float32 [B, H, n, S], scaled and
// masked in place (one buffer per block). A blocked pair scores the lowest float, not -inf, so
// that a row with every key blocked (a pad query) stays finite: uniform over its keys.
at::Tensor block_scores(const at::Tensor& q, const at::Tensor& k, const at::Tensor& blocked,
                        double scale) {
  at::Tensor scores = torch::matmul(q, k.transpose(-2, -1));
  if (scores.scalar_type() != torch::kFloat) scores = scores.to(torch::kFloat);
  return scores.mul_(scale).masked_fill_(blocked, std::numeric_limits<float>::lowest());
}

// One block with autograd keeping its probabilities.
at::Tensor attend_rows(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                       const at::Tensor& blocked, double scale) {
  const at::Tensor probs = torch::softmax(block_scores(q, k, blocked, scale), -1);
  return torch::matmul(probs.to(q.scalar_type()), v);  // [B, H, n, D]
}

// Attention keeping only the output and each row's softmax statistics (max m and sum l of
// exp(S - m)); the backward recomputes each block's probabilities P = exp(S - m) / l and, with
// dO the output's gradient and delta = rowsum(dO * O):
//   dV = P^T dO,  dS = P * (dO V^T - delta),  dQ = scale dS K,  dK = scale dS^T Q,
// with dS zero at blocked pairs (a row with every key blocked is uniform whatever q and k).
// The backward recomputes the scores exactly as the forward made them (the same dtype and
// autocast state, so that P matches m and l) and takes the gradients in float32.
class RecomputedAttention : public torch::autograd::Function<RecomputedAttention> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k,
                               const at::Tensor& v, const at::Tensor& blocked, double scale,
                               int64_t rows) {
    const int64_t B = q.size(0), H = q.size(1), T = q.size(2);
    at::Tensor out = torch::empty(q.sizes(), q.options());  // [B, H, T, D]
    // Each row's max and sum of exp(S - max): exp(S - lse) alone would lose a fully masked row,
    // whose scores are all the lowest float and so equal their log-sum-exp.
    at::Tensor row_max = torch::empty({B, H, T, 1}, q.options().dtype(torch::kFloat));
    at::Tensor row_sum = torch::empty_like(row_max);  // [B, H, T, 1]
    for (int64_t r = 0; r < T; r += rows) {
      const int64_t n = std::min(rows, T - r);
      at::Tensor p = block_scores(q.narrow(2, r, n), k, blocked.narrow(2, r, n), scale);
      at::Tensor m = row_max.narrow(2, r, n), l = row_sum.narrow(2, r, n);
      at::amax_out(m, p, -1, /*keepdim=*/true);
      p.sub_(m).exp_();
      at::sum_out(l, p, -1, /*keepdim=*/true);
      p.div_(l);
      out.narrow(2, r, n).copy_(torch::matmul(p.to(q.scalar_type()), v));
    }
    ctx->save_for_backward({q, k, v, blocked, out, row_max, row_sum});
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["rows"] = rows;
    ctx->saved_data["autocast"] = models::autocast_enabled(q.device().type());
    return {out};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    if (!grads[0].defined()) return {at::Tensor(), at::Tensor(), at::Tensor(), {}, {}, {}};
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &q = saved[0], &k = saved[1], &blocked = saved[3];
    const at::Tensor &row_max = saved[5], &row_sum = saved[6];  // [B, H, T, 1]
    const double scale = ctx->saved_data["scale"].toDouble();
    const int64_t rows = ctx->saved_data["rows"].toInt();
    const bool autocast = ctx->saved_data["autocast"].toBool();
    const at::Tensor qf = q.to(torch::kFloat), kf = k.to(torch::kFloat),
                     vf = saved[2].to(torch::kFloat);
    const at::Tensor dout = grads[0].to(torch::kFloat);                          // [B, H, T, D]
    const at::Tensor delta = (dout * saved[4].to(torch::kFloat)).sum(-1, true);  // [B, H, T, 1]

    const int64_t T = q.size(2);
    at::Tensor dq = torch::empty_like(qf);                              // [B, H, T, D]
    at::Tensor dk = torch::zeros_like(kf), dv = torch::zeros_like(vf);  // [B, H, S, D]
    for (int64_t r = 0; r < T; r += rows) {
      const int64_t n = std::min(rows, T - r);
      at::Tensor p;  // [B, H, n, S]
      {
        models::AutocastGuard as_in_forward(q.device().type(), autocast);
        p = block_scores(q.narrow(2, r, n), k, blocked.narrow(2, r, n), scale);
      }
      p.sub_(row_max.narrow(2, r, n)).exp_().div_(row_sum.narrow(2, r, n));
      const at::Tensor dob = dout.narrow(2, r, n);               // [B, H, n, D]
      dv.add_(torch::matmul(p.transpose(-2, -1), dob));          // [B, H, S, D]
      at::Tensor ds = torch::matmul(dob, vf.transpose(-2, -1));  // dP, [B, H, n, S]
      ds.sub_(delta.narrow(2, r, n)).mul_(p).masked_fill_(blocked.narrow(2, r, n), 0);  // dS
      dq.narrow(2, r, n).copy_(torch::matmul(ds, kf).mul_(scale));  // [B, H, n, D]
      dk.add_(torch::matmul(ds.transpose(-2, -1), qf.narrow(2, r, n)), scale);
    }
    const at::ScalarType dtype = q.scalar_type();
    return {dq.to(dtype), dk.to(dtype), dv.to(dtype), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// libtorch's fused attention (at::scaled_dot_product_attention, from torch 2.0): on CUDA it
// runs FlashAttention-style kernels that neither hold the [B, H, T, S] scores nor, in the
// backward, the probabilities (Dao et al. 2022; the memory-efficient kernel takes a mask).
#if TORCH_VERSION_MAJOR >= 2
bool fused_attention_applies(const at::Tensor& q) {
  static const bool enabled = !core::turned_off("RUDDER_SDPA");
  return enabled && q.is_cuda();
}

// The mask goes in as an additive bias in the dtype the kernel computes in (bfloat16 under
// autocast), blocked pairs at that dtype's lowest value. A query row with every key blocked (a
// pad) would come out NaN or zero depending on the kernel; as in the blocked path, it attends
// uniformly to every key instead: unblocked, with its query zeroed (which also keeps gradients
// from reaching q and k through it).
at::Tensor fused_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                           const AttentionMask& mask) {
  // Causal alone: no pad query has every key blocked, and no mask goes in (FlashAttention, which
  // takes none, runs in bf16 and fp16; the memory-efficient kernel in float32).
  if (mask.causal) return at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true);
  const at::Tensor& blocked = mask.blocked;
  const at::ScalarType dtype =
      autocast_enabled(c10::DeviceType::CUDA) ? at::kBFloat16 : q.scalar_type();
  const double lowest = dtype == at::kBFloat16 ? -3.3895313892515355e38
                        : dtype == at::kHalf   ? -65504.0
                                               : std::numeric_limits<float>::lowest();
  const at::Tensor unattended = blocked.all(-1, /*keepdim=*/true);  // [B, 1, T, 1]
  const at::Tensor bias = at::zeros(blocked.sizes(), q.options().dtype(dtype))
                              .masked_fill_(blocked & unattended.logical_not(), lowest);
  return at::scaled_dot_product_attention(q.masked_fill(unattended, 0), k, v, bias, 0.0, false);
}
#endif

// Query rows a block holds for q against k, at least one.
int64_t attention_block_rows(const at::Tensor& q, const at::Tensor& k) {
  const int64_t per_row = std::max<int64_t>(1, q.size(0) * q.size(1) * k.size(2));
  const int64_t budget = q.is_cpu() ? kBlockElementsCpu : kBlockElementsGpu;
  return std::max<int64_t>(1, budget / per_row);
}

}  // namespace

at::Tensor attend(const at::Tensor& q, at::Tensor k, at::Tensor v, const AttentionMask& mask,
                  AttentionMemory memory, int64_t block_rows) {
  const int64_t groups = q.size(1) / k.size(1);
  if (groups > 1) {
    k = k.repeat_interleave(groups, 1);
    v = v.repeat_interleave(groups, 1);
  }
#if TORCH_VERSION_MAJOR >= 2
  if (fused_attention_applies(q)) return fused_attention(q, k, v, mask);
#endif
  const at::Tensor& blocked = mask.blocked;
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  const int64_t T = q.size(2);
  const int64_t rows = block_rows > 0 ? block_rows : attention_block_rows(q, k);
  const bool graph = torch::GradMode::is_enabled() &&
                     (q.requires_grad() || k.requires_grad() || v.requires_grad());
  if (memory == AttentionMemory::kRecompute && graph)
    return RecomputedAttention::apply(q, k, v, blocked, scale, rows)[0];
  if (rows >= T) return attend_rows(q, k, v, blocked, scale);
  // split(): one backward node gathers the blocks' query gradients (narrow's would each add a
  // zero-filled tensor of q's size).
  const std::vector<at::Tensor> q_blocks = q.split(rows, 2),
                                blocked_blocks = blocked.split(rows, 2);
  std::vector<at::Tensor> blocks;
  for (size_t i = 0; i < q_blocks.size(); ++i)
    blocks.push_back(attend_rows(q_blocks[i], k, v, blocked_blocks[i], scale));
  return torch::cat(blocks, 2);  // [B, H, T, D]
}

}  // namespace rudder::models::detail
