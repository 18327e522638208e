// `rudder serve reward` and `rudder score`: wiring only.
#include <chrono>
#include <iostream>
#include <memory>

#include "app/commands.h"
#include "core/config.h"
#include "core/http_server.h"
#include "core/log.h"
#include "rewards/factory.h"
#include "rewards/score_jsonl.h"
#include "services/reward_server.h"

namespace rudder::app {
namespace {

// Splits `--set K=V` (repeatable) from the rest; returns false on an unexpected argument.
bool parse_overrides(const Args& args, size_t from, std::vector<std::string>* overrides,
                     std::vector<std::pair<std::string, std::string>>* options) {
  for (size_t i = from; i < args.size(); ++i) {
    if (args[i] == "--set" && i + 1 < args.size()) {
      overrides->push_back(args[++i]);
    } else if (args[i].rfind("--set=", 0) == 0) {
      overrides->push_back(args[i].substr(6));
    } else if (options && args[i].rfind("--", 0) == 0 && i + 1 < args.size()) {
      options->emplace_back(args[i], args[i + 1]);
      ++i;
    } else {
      std::cerr << "unexpected argument '" << args[i] << "'\n";
      return false;
    }
  }
  return true;
}

}  // namespace

int run_serve(const Args& args) {
  if (args.size() < 2 || args[0] != "reward") {
    std::cerr << "usage: rudder serve reward CONFIG [--set KEY=VALUE]...\n"
                 "(serve rollout and serve trainer arrive with their issues)\n";
    return 2;
  }
  std::vector<std::string> overrides;
  if (!parse_overrides(args, 2, &overrides, nullptr)) return 2;
  const ExperimentConfig config = core::load_experiment_config(args[1], overrides);
  RUDDER_CHECK(config.reward().endpoints_size() == 0,
               "reward.endpoints is set: a reward server scores in process; set "
               "reward.model_path instead");
  services::RewardServer server(config.reward_server(),
                                core::server_options_from_config(config.server()));
  // Fail on a missing model before listening; load it after, so /readyz means "loaded".
  rewards::require_reward_model_dir(config.reward().model_path());
  server.start();
  server.handle_signals();
  std::cout << "listening on " << config.server().host() << ":" << server.port() << std::endl;
  try {
    server.serve(rewards::make_reward_model(config));
  } catch (...) {
    server.shutdown();
    server.wait();
    throw;
  }
  RUDDER_LOG(kInfo) << "reward model " << config.reward().model_path() << " loaded; ready";
  server.wait();
  return 0;
}

int run_score(const Args& args) {
  std::vector<std::string> overrides;
  std::vector<std::pair<std::string, std::string>> options;
  if (args.empty() || !parse_overrides(args, 1, &overrides, &options)) {
    std::cerr << "usage: rudder score CONFIG --in IN.jsonl --out OUT.jsonl [--set KEY=VALUE]...\n";
    return 2;
  }
  std::string in, out;
  for (const auto& [flag, value] : options) {
    if (flag == "--in") {
      in = value;
    } else if (flag == "--out") {
      out = value;
    } else {
      std::cerr << "rudder score: unexpected argument '" << flag << "'\n";
      return 2;
    }
  }
  if (in.empty() || out.empty()) {
    std::cerr << "rudder score: --in and --out are required\n";
    return 2;
  }
  const ExperimentConfig config = core::load_experiment_config(args[0], overrides);
  const auto model = rewards::make_reward_model(config);
  rewards::ScoreJsonlOptions o;
  const auto start = std::chrono::steady_clock::now();
  auto last = start;
  o.progress = [&](int64_t done, int64_t total) {
    const auto now = std::chrono::steady_clock::now();
    if (now - last < std::chrono::seconds(2) && done < total) return;
    last = now;
    const double s = std::chrono::duration<double>(now - start).count();
    std::cerr << "scored " << done << "/" << total << " lines (" << static_cast<int>(done / s)
              << " lines/s)\n";
  };
  const auto result = rewards::score_jsonl(*model, in, out, o);
  std::cout << "scored " << result.lines << " lines (" << result.pairs << " pairs) with "
            << model->version() << " into " << out << "\n";
  return 0;
}

}  // namespace rudder::app
