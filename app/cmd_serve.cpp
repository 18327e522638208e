// `rudder serve reward`, `rudder serve rollout` and `rudder score`: wiring only.
#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>

#include <torch/torch.h>

#include "app/commands.h"
#include "core/config.h"
#include "core/http_server.h"
#include "core/log.h"
#include "data/dataset.h"
#include "data/tokenizer.h"
#include "models/factory.h"
#include "rewards/factory.h"
#include "rewards/score_jsonl.h"
#include "rollout/guidance_config.h"
#include "services/reward_server.h"
#include "services/rollout_server.h"

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

// The policy of `rudder serve rollout` and its tokenizer: model.path, on the configured device.
std::shared_ptr<models::CausalLM> load_policy(const ExperimentConfig& config,
                                              std::shared_ptr<const data::Tokenizer>* tokenizer) {
  const std::string& dir = config.model().path();
  RUDDER_CHECK(!dir.empty(),
               "model.path is empty: name a policy directory (such as runs/sft/final, written by "
               "`rudder train configs/sft.yaml`)");
  RUDDER_CHECK_T(core::NotFound, std::filesystem::is_directory(dir), "policy directory '", dir,
                 "' does not exist: train one first (`rudder train configs/sft.yaml` writes "
                 "runs/sft/final) or point model.path at a Hugging Face model directory");
  *tokenizer = data::make_tokenizer(config.tokenizer(), dir);
  auto model = models::make_model(config.model(), (*tokenizer)->vocab_size());
  const std::string& device = config.device();
  RUDDER_CHECK(device == "auto" || device == "cpu" || device.rfind("cuda", 0) == 0, "device '",
               device, "': expected auto, cpu, cuda or cuda:N");
  if (device.rfind("cuda", 0) == 0 || (device == "auto" && torch::cuda::is_available())) {
    RUDDER_CHECK(torch::cuda::is_available(), "device '", device, "' but CUDA is not available");
    model->to(torch::Device(device == "auto" ? "cuda" : device));
  }
  model->eval();
  return model;
}

int serve_reward(const ExperimentConfig& config) {
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

int serve_rollout(const ExperimentConfig& config) {
  RUDDER_CHECK(config.rollout().endpoints_size() == 0,
               "rollout.endpoints is set: a rollout server generates in process; set model.path "
               "instead");
  services::RolloutServer server(config.rollout_server(),
                                 core::server_options_from_config(config.server()));
  std::shared_ptr<const data::Tokenizer> tokenizer;
  const auto policy = load_policy(config, &tokenizer);
  rollout::Guidance guidance =
      rollout::make_guidance(config.rollout(), policy->spec(), config.rollout_server().max_batch(),
                             config.rollout_server().max_length());
  server.serve(*policy, std::move(tokenizer), std::move(guidance.processors), guidance.max_length);
  server.start();
  server.handle_signals();
  std::cout << "listening on " << config.server().host() << ":" << server.port() << std::endl;
  RUDDER_LOG(kInfo) << "policy " << config.model().path() << " loaded; ready";
  server.wait();
  return 0;
}

}  // namespace

int run_serve(const Args& args) {
  if (args.size() < 2 || (args[0] != "reward" && args[0] != "rollout")) {
    std::cerr << "usage: rudder serve reward|rollout CONFIG [--set KEY=VALUE]...\n"
                 "(serve trainer arrives with its issue)\n";
    return 2;
  }
  std::vector<std::string> overrides;
  if (!parse_overrides(args, 2, &overrides, nullptr)) return 2;
  const ExperimentConfig config = core::load_experiment_config(args[1], overrides);
  return args[0] == "reward" ? serve_reward(config) : serve_rollout(config);
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
  o.chat_template = config.tokenizer().chat_template();
  o.fields = data::field_names(config.data().fields());
  o.skip_bad = config.data().on_bad_line() == "skip";
  const auto start = std::chrono::steady_clock::now();
  auto last = start;
  o.progress = [&](int64_t done, int64_t total) {
    const auto now = std::chrono::steady_clock::now();
    if (now - last < std::chrono::seconds(2) && (total < 0 || done < total)) return;
    last = now;
    const double s = std::chrono::duration<double>(now - start).count();
    std::cerr << "scored " << done;
    if (total >= 0) std::cerr << "/" << total;
    std::cerr << " records (" << static_cast<int>(done / s) << " records/s)\n";
  };
  const auto result = rewards::score_jsonl(*model, in, out, o);
  std::cout << "scored " << result.lines << " records (" << result.pairs << " pairs) with "
            << model->version() << " into " << out;
  if (result.skipped > 0) std::cout << "; skipped " << result.skipped << " bad records";
  std::cout << "\n";
  return 0;
}

}  // namespace rudder::app
