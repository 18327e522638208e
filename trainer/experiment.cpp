#include "trainer/experiment.h"

#include <filesystem>

#include "core/error.h"
#include "core/log.h"
#include "rollout/remote_engine.h"

namespace rudder::trainer {
namespace {

// With rollout.endpoints set, the main rank exports each checkpoint's policy to
// <checkpoint>/policy (a Hugging Face directory, pruned with its checkpoint) and pushes it to
// every rollout server as version <step>. A push no server takes ends the run.
std::function<void(uint64_t, const std::string&)> push_to_rollout_servers(
    const ExperimentConfig& config, const core::ProcessGroup& group, const Experiment& e) {
  if (config.rollout().endpoints_size() == 0 || !group.is_main()) return nullptr;
  auto servers = std::make_shared<rollout::RemoteEngine>(
      rollout::remote_engine_options_from_config(config.rollout()));
  auto export_policy = e.export_final;
  return [servers, export_policy](uint64_t step, const std::string& checkpoint) {
    const std::string dir = (std::filesystem::path(checkpoint) / "policy").string();
    export_policy(dir);
    const auto result = servers->push_weights(dir, std::to_string(step));
    RUDDER_LOG(kInfo) << "pushed " << dir << " as version " << step << " to "
                      << result.updated.size() << " rollout server(s)";
  };
}

}  // namespace

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
  TrainOptions o = options;
  if (!o.on_checkpoint) o.on_checkpoint = push_to_rollout_servers(config, group, e);
  Trainer trainer(config, *e.algorithm, *e.source, group, o);
  TrainResult result = trainer.run();
  if (group.is_main() && !result.stopped_by_signal) {
    const std::string dir = (std::filesystem::path(config.output_dir()) / "final").string();
    e.export_final(dir);
    RUDDER_LOG(kInfo) << "final model written to " << dir;
  }
  return result;
}

}  // namespace rudder::trainer
