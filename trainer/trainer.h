// The training loop every method runs in. It pulls batches from a BatchSource, runs the
// method's updates (gradient accumulation over micro-batches, data-parallel all-reduce,
// clipping, AdamW and the schedule, NaN guard) and calls the method's hooks (iteration start,
// step end, checkpoint); evaluation, checkpoints, resume, progress and metrics hang off it. It
// never names a method.
//
// Checkpoints fall on batch boundaries: a method that takes several updates per batch finishes
// the batch before a periodic or requested checkpoint, so no rollout buffer needs saving.
//
// Preemption: request_stop() (async-signal-safe; the CLI calls it on SIGTERM/SIGINT) makes the
// loop finish the current batch (one step for dataset methods; all of a batch's updates for
// on-policy ones), write a checkpoint and return with stopped_by_signal set. A request that
// arrives between batches is honoured before the next batch is drawn.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "algorithms/algorithm.h"
#include "algorithms/batch_source.h"
#include "core/distributed.h"
#include "proto/rudder.pb.h"

namespace rudder::trainer {

/// How to start.
struct TrainOptions {
  std::string resume;  // "": fresh; "auto": the newest good checkpoint if any; else a path
  bool allow_config_change = false;  // resume even if global batch or model settings changed
  std::string recipe;  // "": the recipe of the config's method; else a registered recipe's name
  /// Called on the main rank after each checkpoint of `step` is complete, with its directory
  /// (run_experiment pushes the policy to rollout servers here). Its exceptions end the run.
  std::function<void(uint64_t step, const std::string& path)> on_checkpoint;
};

/// What a run did.
struct TrainResult {
  uint64_t steps = 0;                          // optimizer steps completed (including resumed ones)
  uint64_t skipped_steps = 0;                  // steps skipped by the NaN guard in this process
  std::map<std::string, double> initial_eval;  // before training (fresh runs with eval data)
  std::map<std::string, double> final_eval;
  double last_loss = 0.0;
  bool stopped_by_signal = false;
  std::string last_checkpoint;  // "" when none was written
};

/// Makes running loops checkpoint and stop after their current step. Async-signal-safe.
void request_stop();

/// Runs `algorithm` on batches of `source` as `config` says.
class Trainer {
 public:
  Trainer(const ExperimentConfig& config, algorithms::Algorithm& algorithm,
          algorithms::BatchSource& source, core::ProcessGroup& group, TrainOptions options);
  ~Trainer();

  /// Trains to the end (or a stop request). Throws on unrecoverable errors, e.g. too many
  /// consecutive non-finite steps.
  TrainResult run();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rudder::trainer
