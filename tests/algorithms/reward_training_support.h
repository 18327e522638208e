// Shared by the reward-model training tests: a tiny model, the synthetic preference mix
// tokenized with the byte tokenizer, and a plain Adam loop over an Algorithm.
#pragma once

#include <memory>

#include "algorithms/algorithm.h"
#include "algorithms/preference.h"
#include "data/collate.h"
#include "data/tokenizer.h"
#include "models/causal_lm.h"
#include "proto/rudder.pb.h"

namespace rudder::testing {

/// A small Llama (hidden 64, 2 layers) over the byte tokenizer's vocabulary.
models::ModelSpec tiny_reward_spec();

/// A tiny model (seeded with `seed`) after `steps` Adam steps of SFT on batches of 32 of `rows`,
/// in order.
std::shared_ptr<models::CausalLM> sft_on_rows(const data::Tokenizer& tokenizer,
                                              const std::vector<data::TokenizedPair>& rows,
                                              int steps, uint64_t seed);

/// A tiny model after `steps` steps of SFT on the synthetic answers (the starting point of
/// reward models, as configs/sft.yaml is for the configs). Seeded: always the same model.
std::shared_ptr<models::CausalLM> sft_tiny_model(const data::Tokenizer& tokenizer, int steps = 300);

/// Tokenizer and data settings of the tests (EOS appended, max_length 64: no response is cut).
TokenizerConfig reward_tokenizer_config();
DataConfig reward_data_config();

/// `num_train` training pairs and `num_eval` held-out pairs of the synthetic mix (answer against
/// a corruption), tokenized with `tokenizer`.
algorithms::PreferenceData synthetic_preferences(const data::Tokenizer& tokenizer, size_t num_train,
                                                 size_t num_eval);

/// `steps` Adam updates (learning rate `lr`, scaled per algorithm.param_groups()) of `algorithm`
/// on shuffled batches of `batch` rows, calling on_step_end after each.
void train_steps(algorithms::Algorithm& algorithm, uint64_t num_rows, int steps, int64_t batch,
                 double lr);

}  // namespace rudder::testing
