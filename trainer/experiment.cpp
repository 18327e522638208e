#include "trainer/experiment.h"

#include <filesystem>

#include "core/error.h"
#include "core/log.h"

namespace rudder::trainer {

Experiment build_experiment(const ExperimentConfig& config, const std::string& recipe) {
  const std::string name = recipe.empty() ? method_name(config) : recipe;
  if (name.empty()) {
    std::string known;
    for (const auto& n : recipes().names()) known += (known.empty() ? "" : ", ") + n;
    throw core::InvalidArgument(core::str("the config names no method: add one of ", known));
  }
  const Recipe& r = recipes().get(name);
  refuse_unused_settings(config, name, r);
  Experiment e = r.build(config);
  RUDDER_ASSERT(e.algorithm && e.source && e.export_final, "recipe '", name,
                "' left out the algorithm, the batch source or the export");
  return e;
}

TrainResult run_experiment(const ExperimentConfig& config, core::ProcessGroup& group,
                           const TrainOptions& options) {
  Experiment e = build_experiment(config, options.recipe);
  Trainer trainer(config, *e.algorithm, *e.source, group, options);
  TrainResult result = trainer.run();
  if (group.is_main() && !result.stopped_by_signal) {
    const std::string dir = (std::filesystem::path(config.output_dir()) / "final").string();
    e.export_final(dir);
    RUDDER_LOG(kInfo) << "final model written to " << dir;
  }
  return result;
}

}  // namespace rudder::trainer
