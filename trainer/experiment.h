// An experiment end to end: tokenizer, model, data and method from the config, run in the
// trainer, and the final model exported. The body of `rudder train`.
#pragma once

#include <memory>

#include "algorithms/algorithm.h"
#include "core/distributed.h"
#include "data/tokenizer.h"
#include "models/causal_lm.h"
#include "rewards/scalar_reward_model.h"
#include "trainer/trainer.h"

namespace rudder::trainer {

/// The pieces an experiment trains.
struct Experiment {
  std::shared_ptr<data::Tokenizer> tokenizer;
  std::shared_ptr<models::CausalLM> model;
  std::unique_ptr<algorithms::Algorithm> algorithm;
  std::shared_ptr<rewards::ScalarRewardNet> reward_net;  // reward-model experiments only
};

/// Seeds libtorch with config.seed and builds the tokenizer, model, data and method. Throws
/// InvalidArgument when the config names no method or one that is not implemented yet.
Experiment build_experiment(const ExperimentConfig& config);

/// Builds and trains; on the main rank a finished run writes the model (Hugging Face layout) to
/// <output_dir>/final.
TrainResult run_experiment(const ExperimentConfig& config, core::ProcessGroup& group,
                           const TrainOptions& options);

}  // namespace rudder::trainer
