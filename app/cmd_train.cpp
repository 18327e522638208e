// `rudder train` and `rudder launch`: wiring only.
#include <signal.h>

#include <iostream>
#include <memory>

#include "app/commands.h"
#include "core/config.h"
#include "core/distributed.h"
#include "core/http_server.h"
#include "core/launcher.h"
#include "core/log.h"
#include "trainer/experiment.h"

namespace rudder::app {
namespace {

void on_stop_signal(int) { trainer::request_stop(); }

}  // namespace

int run_train(const Args& args) {
  if (args.empty()) {
    std::cerr << "usage: rudder train CONFIG [--set KEY=VALUE]... [--resume auto|PATH] "
                 "[--allow-config-change]\n";
    return 2;
  }
  std::vector<std::string> overrides;
  trainer::TrainOptions options;
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--set" && i + 1 < args.size())
      overrides.push_back(args[++i]);
    else if (args[i].rfind("--set=", 0) == 0)
      overrides.push_back(args[i].substr(6));
    else if (args[i] == "--resume" && i + 1 < args.size())
      options.resume = args[++i];
    else if (args[i].rfind("--resume=", 0) == 0)
      options.resume = args[i].substr(9);
    else if (args[i] == "--allow-config-change")
      options.allow_config_change = true;
    else {
      std::cerr << "rudder train: unexpected argument '" << args[i] << "'\n";
      return 2;
    }
  }
  const ExperimentConfig config = core::load_experiment_config(args[0], overrides);
  auto group = core::ProcessGroup::from_environment(config.distributed());
  if (!group->is_main()) core::set_log_level(std::max(core::log_level(), core::LogLevel::kWarn));

  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);

  std::unique_ptr<core::HttpServer> metrics_server;
  if (config.metrics().port() != 0 && group->is_main()) {
    core::HttpServerOptions o;
    o.host = config.metrics().host();
    o.port = static_cast<uint16_t>(config.metrics().port());
    o.threads = 1;
    metrics_server = std::make_unique<core::HttpServer>(o);
    metrics_server->start();
    metrics_server->set_ready(true);
  }
  const trainer::TrainResult result = trainer::run_experiment(config, *group, options);
  if (group->is_main()) {
    std::cout << "steps " << result.steps << "\n";
    for (const auto& [k, v] : result.initial_eval) std::cout << "initial " << k << " " << v << "\n";
    for (const auto& [k, v] : result.final_eval) std::cout << "final " << k << " " << v << "\n";
    if (!result.last_checkpoint.empty())
      std::cout << "checkpoint " << result.last_checkpoint << "\n";
  }
  return 0;
}

int run_launch(const Args& args, const std::string& self) {
  int nproc = 0;
  size_t i = 0;
  for (; i < args.size() && args[i] != "--"; ++i) {
    std::string value;
    if (args[i] == "--nproc" && i + 1 < args.size())
      value = args[++i];
    else if (args[i].rfind("--nproc=", 0) == 0)
      value = args[i].substr(8);
    if (!value.empty() && value.size() <= 4 &&
        value.find_first_not_of("0123456789") == std::string::npos)
      nproc = std::stoi(value);  // launch_local checks the range
  }
  if (nproc < 1 || i + 1 >= args.size()) {
    std::cerr << "usage: rudder launch --nproc N -- train CONFIG [args]\n";
    return 2;
  }
  std::vector<std::string> argv = {self};
  argv.insert(argv.end(), args.begin() + static_cast<long>(i) + 1, args.end());
  return core::launch_local(nproc, argv);
}

}  // namespace rudder::app
