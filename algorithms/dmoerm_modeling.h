// DMoERM training (ALGORITHMS.md section 6) in two phases of one run. Phase 1 (the first
// `base_steps` optimizer steps): the full base with a value head on overall preference pairs.
// Then the base and its value head are frozen (the optimizer skips frozen parameters, so their
// momentum does not move them), each expert head starts as a copy of the base head, and each step
// trains, jointly, every expert (category c, dimension k) on dimension-k pairs of category c
// (phase 2) and each category's aggregator on overall pairs with the experts' hidden states
// detached (phase 3: frozen experts). The router (a linear head on the base) learns the
// category of each prompt by cross-entropy on logits throughout; in phase 1 its gradient also
// reaches the base (DMoERM trains a separate router LM; here the two share one base). Each part
// learns from its own labels; every loss is summed over the batch's task rows and divided by the
// update's rows.
#pragma once

#include <memory>

#include "algorithms/algorithm.h"
#include "algorithms/preference.h"
#include "data/synthetic.h"
#include "proto/rudder.pb.h"
#include "rewards/dmoerm.h"

namespace rudder::algorithms {

/// Task rows with every label DMoERM learns from; row i of each list is one task instance.
struct DmoermRows {
  PreferenceRows overall;                    // overall preference pairs
  std::vector<PreferenceRows> dimensions;    // per capability dimension, a pair of the same task
  std::vector<data::TokenizedPair> prompts;  // prompt only (the router's input)
  std::vector<int64_t> categories;           // category index (into the layout)
  size_t size() const { return overall.size(); }
};

/// Training and held-out rows.
struct DmoermData {
  DmoermRows train;
  DmoermRows eval;
};

/// Rows of the synthetic tasks `examples`: the overall pair (answer against a corruption) and one
/// pair per dimension of `layout` (data::SyntheticTasks::dimension_preference), tokenized as
/// configured. Throws InvalidArgument for a category or dimension the layout lacks.
DmoermRows make_dmoerm_rows(const std::vector<data::TaskExample>& examples,
                            const rewards::DmoermLayout& layout, const data::Tokenizer& tokenizer,
                            const TokenizerConfig& tokenizer_config, const DataConfig& data_config,
                            data::SplitMix64& rng);

/// Trains a DmoermNet.
class DmoermModeling : public DatasetAlgorithm {
 public:
  /// Throws InvalidArgument when there are no training rows.
  DmoermModeling(std::shared_ptr<rewards::DmoermNet> net, int64_t pad_id, DmoermData data);

  std::string name() const override { return "dmoerm"; }
  uint64_t num_train() const override { return data_.train.size(); }
  double example_units(const std::vector<uint64_t>& examples) const override {
    return static_cast<double>(examples.size());
  }
  /// Held-out: eval/accuracy (overall pairs, the routed category's aggregated reward),
  /// eval/router_accuracy, eval/dimension_accuracy/<dimension> (the routed experts on dimension
  /// pairs),
  /// eval/accuracy/<category>, eval/base_accuracy (phase 1's value head).
  std::map<std::string, double> evaluate() override;
  torch::nn::Module& trainable() override { return *net_; }
  std::vector<std::string> metric_names() const override { return {"router_accuracy"}; }
  /// The expert adapters and aggregators learn at reward_model.dmoerm.expert_lr_scale x the
  /// schedule's rate.
  std::vector<ParamGroup> param_groups() const override;
  double flops_per_token() const override;
  models::TensorMap state() const override;
  void load_state(const models::TensorMap& state, const std::string& source) override;
  void on_step_end(uint64_t step) override;

 protected:
  StepStats train_examples(const std::vector<uint64_t>& examples, double total_units) override;

 private:
  bool base_phase() const { return steps_ < net_->config().base_steps(); }
  void freeze_base();
  at::Tensor router_loss(const std::vector<uint64_t>& rows, double* correct);
  at::Tensor expert_loss(const std::vector<uint64_t>& rows);
  at::Tensor base_loss(const std::vector<uint64_t>& rows);

  std::shared_ptr<rewards::DmoermNet> net_;
  int64_t pad_id_;
  DmoermData data_;
  uint64_t steps_ = 0;
};

}  // namespace rudder::algorithms
