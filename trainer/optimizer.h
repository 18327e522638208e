// AdamW (Loshchilov & Hutter 2019) with PyTorch's update rule, owning its state by parameter
// name so checkpoints store and restore it exactly.
//
// Mixed precision (Micikevicius et al. 2018, "Mixed Precision Training"): a parameter in
// bfloat16 or float16 (model dtype bfloat16) gets a float32 master copy. Each micro-batch's
// low-precision gradient is moved into the master's float32 gradient (collect_grads), so
// accumulation, the all-reduce, clipping and the moments are float32; step() updates the
// master and rounds it into the working weight. params() then holds the masters.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "models/safetensors.h"

namespace rudder {
class OptimizerConfig;
}

namespace rudder::trainer {

/// A parameter the optimizer updates.
struct NamedParameter {
  std::string name;
  at::Tensor tensor;
  bool decay = true;      // false for norms and biases (no weight decay)
  double lr_scale = 1.0;  // multiplies the learning rate (parameter groups)
};

/// The trainable parameters of `module`'s named parameters, with decay off for 1-D tensors
/// (norm weights, biases).
std::vector<NamedParameter> trainable_parameters(
    const std::vector<std::pair<std::string, at::Tensor>>& named);

/// AdamW: p <- p (1 - lr wd) - lr m_hat / (sqrt(v_hat) + eps), as torch.optim.AdamW.
class AdamW {
 public:
  AdamW(std::vector<NamedParameter> params, const OptimizerConfig& config);

  /// One update with learning rate `lr` (times each parameter's lr_scale) from the parameters'
  /// current gradients (collected first); rounds masters into their working weights.
  void step(double lr);
  /// Adds the working weights' low-precision gradients into their masters' float32 gradients
  /// and clears them; call after each micro-batch's backward. A no-op without masters.
  void collect_grads();
  /// Drops every gradient (torch.optim's set_to_none): the next backward's first gradient
  /// becomes the parameter's own instead of being added into a zeroed copy, so no gradient
  /// memory is held between steps and none twice during the backward. step() skips a parameter
  /// that then gets no gradient, as torch.optim does.
  void zero_grad();
  /// Global L2 norm of the gradients (float64 accumulation).
  double grad_norm() const;
  /// Multiplies every gradient by `factor`.
  void scale_grads(double factor);

  /// The tensors updated: float32 masters where the model's weight is low-precision.
  const std::vector<NamedParameter>& params() const { return params_; }
  /// Number of updates taken.
  int64_t steps() const { return steps_; }

  /// State as tensors: "exp_avg.<name>", "exp_avg_sq.<name>", "steps", and "master.<name>" for
  /// each float32 master.
  models::TensorMap state() const;
  /// Restores state(); throws InvalidArgument naming `source` for a missing or misshapen tensor.
  /// A master missing from `state` starts from its working weight (call after loading those).
  void load_state(const models::TensorMap& state, const std::string& source);

 private:
  std::vector<NamedParameter> params_;
  std::vector<at::Tensor> working_;  // the model's low-precision weight per master, else undefined
  std::vector<at::Tensor> exp_avg_, exp_avg_sq_;
  double beta1_, beta2_, eps_, weight_decay_;
  int64_t steps_ = 0;
};

}  // namespace rudder::trainer
