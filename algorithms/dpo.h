// DPO and its variants as a training method: chosen and rejected in one concatenated forward,
// reference log-probs precomputed (passed in) or from a live frozen reference, TRL's metrics
// averaged over the real pairs of the global batch.
#pragma once

#include <memory>

#include "algorithms/algorithm.h"
#include "algorithms/dpo_loss.h"
#include "algorithms/preference.h"
#include "data/tokenizer.h"
#include "models/causal_lm.h"
#include "proto/rudder.pb.h"

namespace rudder::algorithms {

/// Reference log-probs of each training pair ([N] each, summed over response tokens).
struct ReferenceLogps {
  at::Tensor chosen;
  at::Tensor rejected;
};

/// Summed response log-probs of every pair under `model` (no gradients), batched.
ReferenceLogps compute_reference_logps(models::CausalLM& model, const PreferenceRows& rows,
                                       int64_t pad_id);

/// The DPO family on a causal-LM policy.
class Dpo : public DatasetAlgorithm {
 public:
  /// `reference` is the frozen reference model (also used by evaluate()); `precomputed` holds
  /// its log-probs of the training pairs when reference_mode is precompute.
  Dpo(std::shared_ptr<models::CausalLM> policy, std::shared_ptr<models::CausalLM> reference,
      std::shared_ptr<data::Tokenizer> tokenizer, PreferenceData data,
      const ExperimentConfig& config, ReferenceLogps precomputed = {});

  std::string name() const override { return "dpo"; }
  uint64_t num_train() const override { return data_.train.size(); }
  double example_units(const std::vector<uint64_t>& examples) const override {
    return static_cast<double>(examples.size());
  }
  /// eval/loss, eval/rewards/accuracies and eval/rewards/margins on held-out pairs; with task
  /// prompts also eval/win_rate, eval/policy_score, eval/reference_score, eval/kl.
  std::map<std::string, double> evaluate() override;
  torch::nn::Module& trainable() override { return *policy_; }
  std::vector<std::string> metric_names() const override {
    return {"rewards/chosen", "rewards/rejected", "rewards/accuracies",
            "rewards/margins", "logps/chosen",   "logps/rejected"};
  }
  double flops_per_token() const override;

 protected:
  StepStats train_examples(const std::vector<uint64_t>& examples, double total_units) override;

 private:
  // Policy (with grad) and reference log-probs of `indices` of `rows`, and the loss.
  DpoLossOutput loss_of(const PreferenceRows& rows, const std::vector<uint64_t>& indices,
                        bool training, double* tokens, at::Tensor* policy_chosen,
                        at::Tensor* policy_rejected);

  std::shared_ptr<models::CausalLM> policy_;
  std::shared_ptr<models::CausalLM> reference_;
  std::shared_ptr<data::Tokenizer> tokenizer_;
  PreferenceData data_;
  DpoLossOptions options_;
  ReferenceLogps precomputed_;
  EvalConfig eval_config_;
  uint64_t seed_;
};

}  // namespace rudder::algorithms
