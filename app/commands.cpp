#include "app/commands.h"

#include <algorithm>
#include <iostream>

#include "core/config.h"
#include "core/config_reference.h"
#include "core/version.h"
#include "trainer/recipe.h"

namespace rudder::app {

std::string usage() {
  return R"(rudder: alignment and reward-model training

usage: rudder [--log-level debug|info|warn|error] <command> [args]

commands:
  train CONFIG [--set KEY=VALUE]... [--resume auto|PATH] [--allow-config-change]
                                       train as the config says (SIGTERM: checkpoint, exit 0)
  launch --nproc N -- train CONFIG ... run N data-parallel ranks on this machine (Gloo)
  eval CONFIG --policy DIR --reference DIR [--reward DIR]
                                       win rate and KL of a policy against its reference
  serve reward CONFIG [--set KEY=VALUE]...
                                       the reward server (/v1/score, /get_reward), until SIGTERM
  serve rollout CONFIG [--set KEY=VALUE]...
                                       the rollout server (/v1/generate, /v1/weights), until SIGTERM
  score CONFIG --in IN.jsonl --out OUT.jsonl
                                       score responses or preference pairs (SFT/preference data)
  generate CONFIG --prompts IN.jsonl [--out OUT.jsonl] [--n N] [--max-batch B]
                                       complete prompts (model.path or rollout.endpoints)
  demo [--output DIR]                  SFT -> reward model -> DPO on the embedded default
  version                              version, git hash, libtorch, BLAS, threads, CUDA
  config check FILE [--set KEY=VALUE]  validate a config and print it resolved (YAML)
  config reference                     print the configuration reference (Markdown)
  help                                 this text

--set takes a dotted key path (optimizer.lr=3e-4); it may be repeated.
)";
}

int run_version(const Args& args) {
  if (!args.empty()) {
    std::cerr << "rudder version: takes no arguments\n";
    return 2;
  }
  const core::RuntimeInfo info = core::runtime_info();
  std::cout << "rudder " << core::rudder_version() << "\n"
            << "git " << core::git_hash() << "\n"
            << "libtorch " << core::libtorch_version() << "\n"
            << "blas " << info.blas << "\n"
            << "threads " << info.intra_op_threads << "\n"
            << "cuda "
            << (info.cuda ? "yes (" + std::to_string(info.cuda_devices) + " devices)" : "no")
            << "\n"
            << "parallel " << info.parallel << "\n";
  return 0;
}

int run_config(const Args& args) {
  if (args.size() == 1 && args[0] == "reference") {
    std::cout << core::config_reference_markdown() << "\n";
    return 0;
  }
  if (args.size() < 2 || args[0] != "check") {
    std::cerr << "usage: rudder config check FILE [--set KEY=VALUE]...\n"
                 "       rudder config reference\n";
    return 2;
  }
  std::vector<std::string> overrides;
  for (size_t i = 2; i < args.size(); ++i) {
    if (args[i] == "--set" && i + 1 < args.size()) {
      overrides.push_back(args[++i]);
    } else if (args[i].rfind("--set=", 0) == 0) {
      overrides.push_back(args[i].substr(6));
    } else {
      std::cerr << "rudder config check: unexpected argument '" << args[i] << "'\n";
      return 2;
    }
  }
  const ExperimentConfig config = core::load_experiment_config(args[1], overrides);
  // What `rudder train` would refuse before any work, refused here too.
  const std::string method = trainer::method_name(config);
  const auto known = trainer::recipes().names();
  if (std::find(known.begin(), known.end(), method) != known.end())
    trainer::refuse_unused_settings(config, method, trainer::recipes().get(method), args[1]);
  std::cout << core::config_to_yaml(config);
  return 0;
}

}  // namespace rudder::app
