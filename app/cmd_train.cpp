// `rudder train` and `rudder launch`: wiring only.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <iostream>
#include <memory>

#include "app/commands.h"
#include "core/config.h"
#include "core/distributed.h"
#include "core/http_server.h"
#include "core/log.h"
#include "trainer/experiment.h"

namespace rudder::app {
namespace {

void on_stop_signal(int) { trainer::request_stop(); }

// A free TCP port on 127.0.0.1 (for the rendezvous of `rudder launch`).
int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

std::vector<pid_t> g_children;

void forward_signal(int signal) {
  for (pid_t child : g_children) kill(child, signal);
}

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
    if (args[i] == "--nproc" && i + 1 < args.size())
      nproc = std::stoi(args[++i]);
    else if (args[i].rfind("--nproc=", 0) == 0)
      nproc = std::stoi(args[i].substr(8));
  }
  if (nproc < 1 || i + 1 >= args.size()) {
    std::cerr << "usage: rudder launch --nproc N -- train CONFIG [args]\n";
    return 2;
  }
  const std::vector<std::string> child_args(args.begin() + static_cast<long>(i) + 1, args.end());
  const std::string port = std::to_string(free_port());
  for (int rank = 0; rank < nproc; ++rank) {
    const pid_t pid = fork();
    if (pid == 0) {
      setenv("RANK", std::to_string(rank).c_str(), 1);
      setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
      setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      setenv("MASTER_ADDR", "127.0.0.1", 1);
      setenv("MASTER_PORT", port.c_str(), 1);
      std::vector<char*> argv = {const_cast<char*>(self.c_str())};
      for (const auto& a : child_args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(self.c_str(), argv.data());
      std::perror("rudder launch: exec");
      _exit(127);
    }
    g_children.push_back(pid);
  }
  signal(SIGTERM, forward_signal);
  signal(SIGINT, forward_signal);
  int exit_code = 0;
  for (size_t done = 0; done < g_children.size();) {
    int status = 0;
    const pid_t pid = wait(&status);
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    ++done;
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (code != 0 && exit_code == 0) {
      exit_code = code;
      core::log_line(core::LogLevel::kError, "rudder launch: a rank failed (exit " +
                                                 std::to_string(code) + "); stopping the others");
      forward_signal(SIGTERM);
    }
  }
  return exit_code;
}

}  // namespace rudder::app
