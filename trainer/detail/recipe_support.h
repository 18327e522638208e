// Pieces the built-in recipes share: the tokenizer and policy every method starts from, the
// SFT and preference data of the config (files or synthetic tasks), and frozen model copies.
#pragma once

#include <memory>

#include "algorithms/preference.h"
#include "algorithms/sft.h"
#include "data/dataset.h"
#include "data/tokenizer.h"
#include "models/causal_lm.h"
#include "proto/rudder.pb.h"
#include "trainer/recipe.h"

namespace rudder::trainer::detail {

/// Checks device and the dtype/autocast pair, seeds libtorch with config.seed, and makes the
/// tokenizer and the policy (on the configured device). The rest of `Experiment` is left to the
/// recipe.
Experiment make_base(const ExperimentConfig& config);

/// The fields data.fields names otherwise, for the data loaders.
data::FieldNames data_fields(const ExperimentConfig& c);

/// SFT data: JSONL files, or the synthetic tasks (with ground truth for evaluation).
algorithms::SftData load_sft_data(const ExperimentConfig& c, const data::Tokenizer& tokenizer);

/// `count` synthetic task instances of split `split` (0 train, 1 eval) of the config's tasks.
std::vector<data::TaskExample> synthetic_examples(const ExperimentConfig& c, uint64_t count,
                                                  uint64_t split);

/// Preference data: JSONL files, or pairs made from the synthetic tasks (answer against a
/// corruption, or best against worst of `model`'s own samples by ground truth).
algorithms::PreferenceData load_preference_data(const ExperimentConfig& c,
                                                const data::Tokenizer& tokenizer,
                                                models::CausalLM& model);

/// Training lists and held-out pairs of `reward_model.loss: ranked`.
struct RankedData {
  algorithms::RankedRows train;
  algorithms::PreferenceData pairs;  // eval: held-out pairs (and tasks); train: empty
};

/// Ranked lists from data.train_path (JSONL, ranked layout; held-out pairs from every pair of
/// different rank of data.eval_path's lists), or of the synthetic tasks (the answer and three
/// corruptions ranked by ground truth; held-out pairs as for loss bt).
RankedData load_ranked_data(const ExperimentConfig& c, const data::Tokenizer& tokenizer);

/// Completes `e` for a method that trains the policy on dataset rows: a DatasetSource over
/// `algorithm`'s rows (seeded, shuffled as the config says), the algorithm, and an export of the
/// policy in Hugging Face layout.
void train_policy_on_rows(Experiment& e, std::unique_ptr<algorithms::DatasetAlgorithm> algorithm,
                          const ExperimentConfig& config);

/// A frozen copy of `model` on its device.
std::shared_ptr<models::CausalLM> frozen_copy(const models::CausalLM& model);

}  // namespace rudder::trainer::detail
