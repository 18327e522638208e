// An experiment end to end: the recipe of the config's method builds the models, the batch
// source and the method; the trainer runs them; the recipe exports the result. The body of
// `rudder train`.
#pragma once

#include <string>

#include "core/distributed.h"
#include "trainer/recipe.h"
#include "trainer/trainer.h"

namespace rudder::trainer {

/// Builds the experiment of `recipe` ("": the config's method) after refusing settings the
/// recipe does not use. Throws InvalidArgument when the config names no method, one that is not
/// implemented yet, or a setting its recipe does not read.
Experiment build_experiment(const ExperimentConfig& config, const std::string& recipe = "");

/// Builds and trains; on the main rank a finished run exports the result to <output_dir>/final.
TrainResult run_experiment(const ExperimentConfig& config, core::ProcessGroup& group,
                           const TrainOptions& options);

}  // namespace rudder::trainer
