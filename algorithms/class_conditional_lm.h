// GeDi's class-conditional LM (ALGORITHMS.md section 8): a causal LM that reads a control code
// (the desired or the anti code, one token each) and then a text, trained with
//   L = gen_weight x L_gen + (1 - gen_weight) x L_disc,
// L_gen the NLL of the text under its true code (per-token mean per text), L_disc the
// cross-entropy over the two codes of logit_scale x [-NLL(x | desired), -NLL(x | anti)]. Averaged
// over the texts of the global batch.
#pragma once

#include <memory>

#include "algorithms/algorithm.h"
#include "data/collate.h"
#include "data/dataset.h"
#include "models/causal_lm.h"
#include "proto/rudder.pb.h"

namespace rudder::algorithms {

/// Tokenized labelled texts: ids[i] holds text i (its prompt, then its text), after no code.
struct LabelledRows {
  std::vector<std::vector<int64_t>> ids;
  std::vector<uint8_t> desired;  // 1 for the desired class
  std::vector<std::string> categories;
  size_t size() const { return ids.size(); }
};

/// Training and held-out texts.
struct LabelledData {
  LabelledRows train;
  LabelledRows eval;
};

/// Tokenizes `texts` as tokenize_pair(prompt, text) does (BOS, EOS and max_length from the
/// configs); the code's position is reserved within max_length. Texts with no token are refused.
LabelledRows tokenize_labelled(const std::vector<data::LabelledText>& texts,
                               const data::Tokenizer& tokenizer,
                               const TokenizerConfig& tokenizer_config,
                               const DataConfig& data_config);

/// The class-conditional LM and its learned logit scale (GeDi's `logit_scale`).
class ClassConditionalLm : public torch::nn::Module {
 public:
  explicit ClassConditionalLm(std::shared_ptr<models::CausalLM> lm);
  models::CausalLM& lm() { return *lm_; }
  const std::shared_ptr<models::CausalLM>& lm_ptr() const { return lm_; }
  /// alpha, a one-element float32 parameter (1 at the start).
  const at::Tensor& logit_scale() const { return logit_scale_; }

 private:
  std::shared_ptr<models::CausalLM> lm_;
  at::Tensor logit_scale_;
};

/// Trains a class-conditional LM on labelled texts.
class ClassConditionalLmTraining : public DatasetAlgorithm {
 public:
  /// `desired_code` and `anti_code`: the two codes' token ids. Throws InvalidArgument when there
  /// are no training texts, the codes are equal or outside the vocabulary, or gen_weight is
  /// outside [0, 1].
  ClassConditionalLmTraining(std::shared_ptr<models::CausalLM> lm, int64_t pad_id,
                             int64_t desired_code, int64_t anti_code, LabelledData data,
                             const GediConfig& config);

  std::string name() const override { return "gedi"; }
  uint64_t num_train() const override { return data_.train.size(); }
  double example_units(const std::vector<uint64_t>& examples) const override {
    return static_cast<double>(examples.size());
  }
  /// eval/loss (the training loss on held-out texts), eval/gen_nll (per-token NLL under the
  /// true code), eval/accuracy (the discriminator's class accuracy), eval/logit_scale.
  std::map<std::string, double> evaluate() override;
  torch::nn::Module& trainable() override { return *model_; }
  std::vector<std::string> metric_names() const override { return {"gen_nll", "accuracy"}; }
  double flops_per_token() const override;

  const ClassConditionalLm& model() const { return *model_; }

 protected:
  StepStats train_examples(const std::vector<uint64_t>& examples, double total_units) override;

 private:
  struct Losses {
    at::Tensor loss;     // [B]: per-text training loss
    at::Tensor gen_nll;  // [B]: NLL per token under the true code
    at::Tensor correct;  // [B]: 1 where the discriminator picks the true class
    double tokens = 0;
  };
  Losses losses(const LabelledRows& rows, const std::vector<uint64_t>& indices);

  std::shared_ptr<ClassConditionalLm> model_;
  int64_t pad_id_;
  int64_t desired_code_;
  int64_t anti_code_;
  LabelledData data_;
  GediConfig config_;
};

}  // namespace rudder::algorithms
