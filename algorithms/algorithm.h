// The interface every training method implements. The trainer owns the loop (data order,
// accumulation, all-reduce, optimizer, checkpoints); a method owns its models' losses.
//
// Exact averaging: a loss is a sum over units (SFT: response tokens; DPO: pairs) divided by the
// number of units in the whole global batch over all ranks, so accumulation and data
// parallelism give the gradient of one big batch.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>

namespace rudder::algorithms {

/// Sums over a micro-batch, reduced over ranks by the trainer; `values` are sums too (each metric
/// is divided by `units` when reported).
struct StepStats {
  double loss_sum = 0.0;               // unnormalized loss summed over units
  double units = 0.0;                  // loss units (tokens or pairs)
  double tokens = 0.0;                 // real tokens processed (for throughput)
  std::map<std::string, double> sums;  // other per-unit metrics, summed
};

/// One training method.
class Algorithm {
 public:
  virtual ~Algorithm() = default;

  /// The method's name ("sft", "dpo", ...).
  virtual std::string name() const = 0;

  /// Number of training examples (the sampler's range).
  virtual uint64_t num_train() const = 0;

  /// Loss units in `examples` (summed over ranks by the trainer to get the global total).
  virtual double units(const std::vector<uint64_t>& examples) const = 0;

  /// Forward and backward of `examples` with the loss divided by `total_units`; gradients
  /// accumulate in the trainable parameters.
  virtual StepStats forward_backward(const std::vector<uint64_t>& examples, double total_units) = 0;

  /// Held-out metrics (eval loss, ground-truth accuracy, ...); runs without gradients.
  virtual std::map<std::string, double> evaluate() = 0;

  /// The module whose parameters train and are checkpointed (its named parameters are the
  /// checkpoint's tensor names).
  virtual torch::nn::Module& trainable() = 0;

  /// FLOPs of one forward+backward per token processed, for model FLOPs utilization (6N for a
  /// decoder of N parameters).
  virtual double flops_per_token() const = 0;
};

/// 6 x the number of parameters of `module`: the FLOPs of one forward and backward per token
/// (Kaplan et al. 2020).
inline double training_flops_per_token(const torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return 6.0 * static_cast<double>(n);
}

}  // namespace rudder::algorithms
