// A linear projection that can carry a LoRA adapter. Its parameters keep Hugging Face names:
// `weight` ([out, in], or [in, out] for GPT-2's Conv1D layout), `bias`, and with LoRA
// `lora_A.weight` [rank, in] and `lora_B.weight` [out, rank] as PEFT names them.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <vector>

namespace rudder::models::detail {

/// y = x W^T + b (+ (alpha / rank) * B A dropout(x) with LoRA, Hu et al. 2021, eq. 3).
struct ProjectionImpl : torch::nn::Module {
  /// `transposed`: weight stored [in, out] (GPT-2 Conv1D).
  ProjectionImpl(int64_t in, int64_t out, bool bias, bool transposed = false);

  at::Tensor forward(const at::Tensor& x);
  /// `y` plus the adapter's term on the input `x`, or `y` itself without an unmerged adapter.
  at::Tensor add_lora(at::Tensor y, const at::Tensor& x);

  /// Adds a LoRA adapter (A Kaiming-uniform, B zero, so the output is unchanged).
  void enable_lora(int64_t rank, double alpha, double dropout);
  /// Folds the adapter into `weight` (inference); forward then skips the adapter.
  void merge();
  /// Undoes merge().
  void unmerge();

  int64_t in_features, out_features;
  bool transposed;
  at::Tensor weight, bias;
  torch::nn::Linear lora_A{nullptr}, lora_B{nullptr};
  double lora_scaling = 0.0;
  double lora_dropout = 0.0;
  bool merged = false;
};
TORCH_MODULE(Projection);

/// Rows from which project_together runs one matrix product: below it, copying the weights side
/// by side would cost about as much as the products themselves.
inline constexpr int64_t kFuseMinRows = 64;

/// The projections `ps` of the same input `x`, in order: one matrix product over their weights
/// side by side under autocast, when they share the [out, in] layout, input width, dtype, device,
/// bias-or-not and frozen-or-not and `x` has at least kFuseMinRows rows; else one product each.
/// A LoRA adapter adds its term to its own projection's slice. The one product casts `x` to
/// bf16 once rather than once per projection, fills the device better, and its backward sums one
/// input gradient; it keeps one bf16 copy of the weights for the backward, as the separate
/// products keep theirs. (Outside autocast it would keep a copy the parameters make needless.)
/// RUDDER_FUSE_PROJECTIONS=0 in the environment runs them one by one.
std::vector<at::Tensor> project_together(const at::Tensor& x,
                                         const std::vector<ProjectionImpl*>& ps);

/// project_together's one product itself, [..., the sum of the output widths] with the
/// projections' outputs side by side in order, where it would run that product and no LoRA
/// adapter is active; an undefined tensor (nothing computed) where not. For a consumer that
/// reads the parts in place and gives back one joined gradient, saving split's concatenation.
at::Tensor project_joined(const at::Tensor& x, const std::vector<ProjectionImpl*>& ps);

}  // namespace rudder::models::detail
