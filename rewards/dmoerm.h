// DMoERM, the double-layer mixture-of-experts reward model (ALGORITHMS.md section 6; Quan 2024,
// code quanshr/DMoERM@ecdbdc7). The outer layer routes a prompt to one task category (a linear
// head on the base's state at the prompt's last token, top-1); the inner layer of each category
// is a dense mixture of LoRA experts on one shared frozen base, one per capability dimension,
// each with its own value head (its dimension score); a PReLU MLP aggregates the experts'
// last-token hidden states into the reward (the code's choice, not the paper's expert outputs).
//
// Parameters: "base.*" (the shared LM), "base_head.*" (phase 1's value head), "router.*",
// "experts.<c*K+k>.*" (adapters), "expert_heads.<c*K+k>.*", "aggregators.<c>.*".
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>

#include "data/collate.h"
#include "models/causal_lm.h"
#include "models/heads.h"
#include "proto/rudder.pb.h"

namespace rudder::rewards {

/// What the router chooses among and what each inner mixture's experts judge.
struct DmoermLayout {
  std::vector<std::string> categories;  // router outputs, in order
  std::vector<std::string> dimensions;  // the experts of every category, in order
};

/// The whole model as one module (see the parameter names above).
class DmoermNet : public torch::nn::Module {
 public:
  /// Throws InvalidArgument for an empty layout or a bad expert rank.
  DmoermNet(std::shared_ptr<models::CausalLM> base, DmoermLayout layout,
            const DmoermConfig& config);

  /// Router logits [B, C] of prompt-only rows: a linear head on the base's final hidden state at
  /// the last real token (gradients reach the base while it trains).
  at::Tensor route_logits(const data::Batch& prompts);
  /// Phase 1's score [B]: the base's value head at the last real token.
  at::Tensor base_scores(const data::Batch& batch);
  /// Expert (category c, dimension k)'s final hidden state at the last real token [B, H].
  at::Tensor expert_hidden(size_t c, size_t k, const data::Batch& batch);
  /// Expert (c, k)'s dimension score [B] of its hidden states [B, H].
  at::Tensor expert_scores(size_t c, size_t k, const at::Tensor& hidden);
  /// Category c's reward [B] of its experts' hidden states [B, K, H] (rewards/dmoerm_aggregate.h).
  at::Tensor aggregate(size_t c, const at::Tensor& hidden);

  /// Gives every expert head a copy of the base head (DMoERM phase 2's start).
  void copy_base_head_to_experts();

  models::CausalLM& base() { return *base_; }
  const DmoermLayout& layout() const { return layout_; }
  const DmoermConfig& config() const { return config_; }

 private:
  at::Tensor last_hidden(const data::Batch& batch);

  std::shared_ptr<models::CausalLM> base_;
  DmoermLayout layout_;
  DmoermConfig config_;
  models::ScalarHead base_head_{nullptr};
  torch::nn::Linear router_{nullptr};
  torch::nn::ModuleList experts_{nullptr}, expert_heads_{nullptr}, aggregators_{nullptr};
};

}  // namespace rudder::rewards
