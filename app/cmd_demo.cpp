// `rudder eval` and `rudder demo`: wiring only.
#include <iostream>

#include "app/commands.h"
#include "core/config.h"
#include "core/distributed.h"
#include "core/files.h"
#include "core/log.h"
#include "trainer/evaluation.h"
#include "trainer/experiment.h"

namespace rudder::embedded {
extern const char* const kSftConfig;
extern const char* const kRewardConfig;
extern const char* const kDpoConfig;
}  // namespace rudder::embedded

namespace rudder::app {

int run_eval(const Args& args) {
  if (args.empty()) {
    std::cerr << "usage: rudder eval CONFIG --policy DIR --reference DIR [--reward DIR] [--set "
                 "KEY=VALUE]...\n";
    return 2;
  }
  std::string policy, reference, reward;
  std::vector<std::string> overrides;
  for (size_t i = 1; i < args.size(); ++i) {
    const bool has_value = i + 1 < args.size();
    if (args[i] == "--policy" && has_value)
      policy = args[++i];
    else if (args[i] == "--reference" && has_value)
      reference = args[++i];
    else if (args[i] == "--reward" && has_value)
      reward = args[++i];
    else if (args[i] == "--set" && has_value)
      overrides.push_back(args[++i]);
    else {
      std::cerr << "rudder eval: unexpected argument '" << args[i] << "'\n";
      return 2;
    }
  }
  if (policy.empty() || reference.empty()) {
    std::cerr << "rudder eval: --policy and --reference are required\n";
    return 2;
  }
  const ExperimentConfig config = core::load_experiment_config(args[0], overrides);
  std::cout << trainer::format_comparison(
      trainer::evaluate_policies(config, policy, reference, reward));
  return 0;
}

int run_demo(const Args& args) {
  std::string out = "runs/demo";
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--output" && i + 1 < args.size())
      out = args[++i];
    else {
      std::cerr << "usage: rudder demo [--output DIR]\n";
      return 2;
    }
  }
  const std::string sft = out + "/sft", reward = out + "/reward_bt", dpo = out + "/dpo";
  struct Stage {
    const char* title;
    const char* yaml;
    const char* origin;
    std::vector<std::string> overrides;
  };
  const std::vector<Stage> stages = {
      {"1/3 supervised fine-tuning",
       embedded::kSftConfig,
       "configs/sft.yaml",
       {"output_dir=" + sft}},
      {"2/3 reward model (Bradley-Terry)",
       embedded::kRewardConfig,
       "configs/reward_bt.yaml",
       {"output_dir=" + reward, "model.path=" + sft + "/final"}},
      {"3/3 DPO",
       embedded::kDpoConfig,
       "configs/dpo.yaml",
       {"output_dir=" + dpo, "model.path=" + sft + "/final"}},
  };
  auto group = core::ProcessGroup::single();
  ExperimentConfig dpo_config;
  for (const auto& stage : stages) {
    std::cout << "== " << stage.title << " (" << stage.origin << ")\n" << std::flush;
    ExperimentConfig config;
    core::parse_config_text(stage.yaml, stage.origin, stage.overrides, &config);
    core::remove_tree(config.output_dir());  // the demo always starts fresh
    const auto result = trainer::run_experiment(config, *group, {});
    for (const auto& [k, v] : result.initial_eval)
      std::cout << "   initial " << k << " " << v << "\n";
    for (const auto& [k, v] : result.final_eval)
      std::cout << "   final   " << k << " " << v << "\n";
    dpo_config = config;
  }
  std::cout << "== DPO policy against the SFT reference on " << dpo_config.eval().num_prompts()
            << " held-out prompts\n";
  std::cout << trainer::format_comparison(
      trainer::evaluate_policies(dpo_config, dpo + "/final", sft + "/final", reward + "/final"));
  return 0;
}

}  // namespace rudder::app
