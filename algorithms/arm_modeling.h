// GenARM reward-model training (ALGORITHMS.md section 7): the ARM loss on the summed response
// log-probs of a causal LM (a LoRA adapter or the full model), with no reference model; averaged
// over the pairs of the global batch.
#pragma once

#include <memory>

#include "algorithms/algorithm.h"
#include "algorithms/preference.h"
#include "models/causal_lm.h"
#include "proto/rudder.pb.h"

namespace rudder::algorithms {

/// Trains an autoregressive reward model on preference pairs.
class ArmModeling : public DatasetAlgorithm {
 public:
  /// Throws InvalidArgument when there are no training pairs.
  ArmModeling(std::shared_ptr<models::CausalLM> arm, int64_t pad_id, PreferenceData data,
              const GenArmConfig& config);

  std::string name() const override { return "genarm"; }
  uint64_t num_train() const override { return data_.train.size(); }
  double example_units(const std::vector<uint64_t>& examples) const override {
    return static_cast<double>(examples.size());
  }
  /// eval/accuracy (pairwise, held-out, by reward beta_r * log pi_r), eval/margin, eval/loss,
  /// eval/accuracy/<category>.
  std::map<std::string, double> evaluate() override;
  torch::nn::Module& trainable() override { return *arm_; }
  std::vector<std::string> metric_names() const override { return {"accuracy", "margin"}; }
  double flops_per_token() const override;

 protected:
  StepStats train_examples(const std::vector<uint64_t>& examples, double total_units) override;

 private:
  std::shared_ptr<models::CausalLM> arm_;
  int64_t pad_id_;
  PreferenceData data_;
  GenArmConfig config_;
};

}  // namespace rudder::algorithms
