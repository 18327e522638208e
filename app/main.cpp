// rudder: the command-line entry point. It only parses the global flags and dispatches.
#include <cstdio>
#include <exception>
#include <iostream>

#include "app/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "core/runtime.h"

int main(int argc, char** argv) {
  using namespace rudder;
  app::Args args(argv + 1, argv + argc);
  try {
    // Global flags come before the subcommand.
    while (!args.empty() && args.front().rfind("--", 0) == 0) {
      const std::string flag = args.front();
      args.erase(args.begin());
      if (flag == "--help" || flag == "-h") {
        std::cout << app::usage();
        return 0;
      }
      if (flag == "--log-level" && !args.empty()) {
        core::set_log_level(core::parse_log_level(args.front()));
        args.erase(args.begin());
      } else if (flag.rfind("--log-level=", 0) == 0) {
        core::set_log_level(core::parse_log_level(flag.substr(12)));
      } else {
        std::cerr << "rudder: unknown option '" << flag << "'\n" << app::usage();
        return 2;
      }
    }
    if (args.empty() || args.front() == "help") {
      std::cout << app::usage();
      return args.empty() ? 2 : 0;
    }
    core::configure_runtime();
    const std::string command = args.front();
    args.erase(args.begin());
    if (command == "version") return app::run_version(args);
    if (command == "train") return app::run_train(args);
    if (command == "eval") return app::run_eval(args);
    if (command == "demo") return app::run_demo(args);
    if (command == "serve") return app::run_serve(args);
    if (command == "score") return app::run_score(args);
    if (command == "generate") return app::run_generate(args);
    if (command == "launch") return app::run_launch(args, "/proc/self/exe");
    if (command == "config") return app::run_config(args);
    std::cerr << "rudder: unknown command '" << command << "'\n" << app::usage();
    return 2;
  } catch (const core::Error& e) {
    std::cerr << "rudder: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "rudder: unexpected error: " << e.what() << "\n";
    return 1;
  }
}
