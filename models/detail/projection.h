// A linear projection that can carry a LoRA adapter. Its parameters keep Hugging Face names:
// `weight` ([out, in], or [in, out] for GPT-2's Conv1D layout), `bias`, and with LoRA
// `lora_A.weight` [rank, in] and `lora_B.weight` [out, rank] as PEFT names them.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

namespace rudder::models::detail {

/// y = x W^T + b (+ (alpha / rank) * B A dropout(x) with LoRA, Hu et al. 2021, eq. 3).
struct ProjectionImpl : torch::nn::Module {
  /// `transposed`: weight stored [in, out] (GPT-2 Conv1D).
  ProjectionImpl(int64_t in, int64_t out, bool bias, bool transposed = false);

  at::Tensor forward(const at::Tensor& x);

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

}  // namespace rudder::models::detail
