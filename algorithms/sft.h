// Supervised fine-tuning: next-token cross-entropy on response tokens (prompt masked), averaged
// over every response token of the global batch. With sft.packing, a micro-batch's examples are
// packed into rows of data.max_length tokens (data::pack) with block-diagonal attention: the
// same loss with less padding.
#pragma once

#include <memory>
#include <vector>

#include "algorithms/algorithm.h"
#include "data/collate.h"
#include "data/synthetic.h"
#include "data/tokenizer.h"
#include "models/causal_lm.h"

namespace rudder {
class ExperimentConfig;
}

namespace rudder::algorithms {

/// Everything SFT trains and evaluates on.
struct SftData {
  std::vector<data::TokenizedPair> train;
  std::vector<data::TokenizedPair> eval;
  std::vector<data::TaskExample> eval_tasks;  // held-out prompts with ground truth (may be empty)
};

/// SFT on a causal LM.
class Sft : public DatasetAlgorithm {
 public:
  Sft(std::shared_ptr<models::CausalLM> model, std::shared_ptr<data::Tokenizer> tokenizer,
      SftData data, const ExperimentConfig& config);

  std::string name() const override { return "sft"; }
  uint64_t num_train() const override { return data_.train.size(); }
  double example_units(const std::vector<uint64_t>& examples) const override;
  std::map<std::string, double> evaluate() override;
  torch::nn::Module& trainable() override { return *model_; }
  double flops_per_token() const override;

 protected:
  StepStats train_examples(const std::vector<uint64_t>& examples, double total_units) override;

 private:
  std::shared_ptr<models::CausalLM> model_;
  std::shared_ptr<data::Tokenizer> tokenizer_;
  SftData data_;
  bool mask_prompt_;
  uint32_t eval_prompts_;
  uint32_t max_new_tokens_;
  bool packing_;        // several examples per row with block-diagonal attention
  int64_t max_length_;  // tokens per packed row
};

/// Mean NLL per response token of `rows` (no gradients), in batches of `batch`.
double token_nll(models::CausalLM& model, const std::vector<data::TokenizedPair>& rows,
                 int64_t pad_id, size_t batch);

/// Mean ground-truth score of greedy completions of `tasks` (first `limit`).
double greedy_task_score(models::CausalLM& model, const data::Tokenizer& tokenizer,
                         const std::vector<data::TaskExample>& tasks, size_t limit,
                         uint32_t max_new_tokens);

}  // namespace rudder::algorithms
