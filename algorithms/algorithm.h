// The interface every training method implements. The trainer owns the loop (batches from a
// source, accumulation, all-reduce, optimizer, checkpoints, hooks); a method owns its models'
// losses, the updates it takes per batch, and any state of its own.
//
// Exact averaging: a loss is a sum over units (SFT: response tokens; DPO: pairs) divided by the
// number of units of the whole update over all ranks, so accumulation and data parallelism give
// the gradient of one big batch.
//
// Contract, checked by the non-virtual entry points: forward_backward reports exactly the units
// that units() declared for the same items, plan_updates returns updates_per_batch() updates,
// and StepStats::sums holds only names metric_names() declares. The loop agrees on a violation
// over all ranks before it throws on every one of them, so a mistake fails loudly instead of
// hanging an all-reduce.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>

#include "algorithms/batch.h"
#include "models/safetensors.h"

namespace rudder::algorithms {

/// Sums over a micro-batch, reduced over ranks by the trainer; `values` are sums too (each metric
/// is divided by `units` when reported).
struct StepStats {
  double loss_sum = 0.0;               // unnormalized loss summed over units
  double units = 0.0;                  // loss units (tokens or pairs)
  double tokens = 0.0;                 // real tokens processed (for throughput)
  std::map<std::string, double> sums;  // other per-unit metrics, summed
};

/// Parameters whose learning rate is the schedule's times `lr_scale` (a critic with its own
/// learning rate). Parameters matching no group use scale 1.
struct ParamGroup {
  std::string prefix;     // parameter-name prefix, e.g. "critic."
  double lr_scale = 1.0;  // multiplies the scheduled learning rate
};

/// One training method.
class Algorithm {
 public:
  virtual ~Algorithm() = default;

  /// The method's name ("sft", "dpo", ...).
  virtual std::string name() const = 0;

  /// Optimizer updates one batch gives (PPO: epochs x mini-batches). The loop counts steps as
  /// updates; a method must plan exactly this many for every batch.
  virtual uint64_t updates_per_batch() const { return 1; }

  /// The updates of `batch` as lists of its item indices, each split by the loop into
  /// micro-batches. Checks the count against updates_per_batch().
  std::vector<std::vector<size_t>> updates(const Batch& batch);

  /// Loss units of `items` of `batch` (summed over ranks by the trainer to get the global total).
  virtual double units(const Batch& batch, const std::vector<size_t>& items) const = 0;

  /// Forward and backward of `items` of `batch` with the loss divided by `total_units`;
  /// gradients accumulate in the trainable parameters. Checks the units the method reports
  /// against units().
  StepStats train_micro_batch(const Batch& batch, const std::vector<size_t>& items,
                              double total_units);

  /// Held-out metrics (eval loss, ground-truth accuracy, ...); runs without gradients.
  virtual std::map<std::string, double> evaluate() = 0;

  /// The module whose parameters train and are checkpointed (its named parameters are the
  /// checkpoint's tensor names).
  virtual torch::nn::Module& trainable() = 0;

  /// Names of the per-unit metrics forward_backward() sums into StepStats::sums. A rank whose
  /// share of an update is empty reports them as 0; a name not declared here is an error.
  virtual std::vector<std::string> metric_names() const { return {}; }

  /// Learning-rate groups by parameter-name prefix (default: one group at the schedule's rate).
  virtual std::vector<ParamGroup> param_groups() const { return {}; }

  /// FLOPs of one forward+backward per token processed, for model FLOPs utilization (6N for a
  /// decoder of N parameters).
  virtual double flops_per_token() const = 0;

  /// The method's own state, the same on every rank (a KL coefficient, an iteration counter, a
  /// reference model refreshed during training, generators drawn in the same order on every
  /// rank); saved in checkpoints and restored before training continues.
  virtual models::TensorMap state() const { return {}; }
  /// Restores state(); throws InvalidArgument naming `source` for anything missing or misshapen.
  virtual void load_state(const models::TensorMap& /*state*/, const std::string& /*source*/) {}

  /// State that differs between ranks (a generator seeded per rank); gathered from every rank
  /// into checkpoints and handed back to each rank on resume.
  virtual models::TensorMap rank_state() const { return {}; }
  /// Restores this rank's rank_state(); throws InvalidArgument naming `source`.
  virtual void load_rank_state(const models::TensorMap& /*state*/, const std::string& /*source*/) {}

  /// Optimizer steps per iteration of a multi-round method (a new reference or opponent each
  /// iteration); 0: the whole run is one iteration. A multiple of updates_per_batch().
  virtual uint64_t steps_per_iteration() const { return 0; }
  /// Called before the first batch of iteration `iteration` (0 at the start of a fresh run; on
  /// resume only when the checkpoint sits on an iteration boundary).
  virtual void on_iteration_start(uint64_t /*iteration*/) {}
  /// Called once after a checkpoint is restored, before training continues, with the iteration
  /// the run is in: the place to rebuild what an iteration start made that is not in state()
  /// (e.g. regenerate a dataset from generators that state() saved at the iteration start).
  virtual void on_resume(uint64_t /*iteration*/) {}
  /// Called after each optimizer step (`step` counts completed steps).
  virtual void on_step_end(uint64_t /*step*/) {}
  /// Called on every rank after a checkpoint of `step` is complete (`path` is "" off the main
  /// rank): the place to push new weights to rollout servers.
  virtual void on_checkpoint(uint64_t /*step*/, const std::string& /*path*/) {}

 protected:
  /// The updates of `batch` (default: one update of every item).
  virtual std::vector<std::vector<size_t>> plan_updates(const Batch& batch);
  /// The micro-batch work behind train_micro_batch().
  virtual StepStats forward_backward(const Batch& batch, const std::vector<size_t>& items,
                                     double total_units) = 0;
};

/// A method that trains on rows of a fixed dataset: the batch's items are dataset rows.
class DatasetAlgorithm : public Algorithm {
 public:
  /// Number of training rows (the dataset source's range).
  virtual uint64_t num_train() const = 0;
  /// Loss units of dataset rows `examples`.
  virtual double example_units(const std::vector<uint64_t>& examples) const = 0;

  double units(const Batch& batch, const std::vector<size_t>& items) const final {
    return example_units(rows_of(batch, items));
  }

 protected:
  /// Forward and backward of dataset rows `examples` (see Algorithm::forward_backward).
  virtual StepStats train_examples(const std::vector<uint64_t>& examples, double total_units) = 0;

  StepStats forward_backward(const Batch& batch, const std::vector<size_t>& items,
                             double total_units) final {
    return train_examples(rows_of(batch, items), total_units);
  }

 private:
  static std::vector<uint64_t> rows_of(const Batch& batch, const std::vector<size_t>& items);
};

/// `loss.backward()` with autocast off: a bf16 autocast region covers the forward pass only, and
/// each op's backward runs in the dtype its forward used (PyTorch's AMP recipe). Methods call
/// this instead of Tensor::backward.
void backward(const at::Tensor& loss);

/// 6 x the number of parameters of `module`: the FLOPs of one forward and backward per token
/// (Kaplan et al. 2020).
inline double training_flops_per_token(const torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return 6.0 * static_cast<double>(n);
}

}  // namespace rudder::algorithms
