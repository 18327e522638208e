// `rudder generate`: wiring only.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <unistd.h>

#include "app/commands.h"
#include "core/config.h"
#include "core/error.h"
#include "data/tokenizer.h"
#include "models/causal_lm.h"
#include "models/hf_io.h"
#include "rollout/generate_jsonl.h"
#include "rollout/guidance_config.h"
#include "rollout/local_engine.h"
#include "rollout/remote_engine.h"

namespace rudder::app {
namespace {

struct GenerateArgs {
  std::string config, prompts, out;
  uint32_t n = 1;
  int64_t max_batch = 0;  // 0: rollout_server.max_batch
  std::vector<std::string> overrides;
};

// Returns false (after printing why) on bad usage.
bool parse(const Args& args, GenerateArgs* g) {
  if (args.empty()) return false;
  g->config = args[0];
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    const bool has_value = i + 1 < args.size();
    if (a == "--set" && has_value) {
      g->overrides.push_back(args[++i]);
    } else if (a == "--prompts" && has_value) {
      g->prompts = args[++i];
    } else if (a == "--out" && has_value) {
      g->out = args[++i];
    } else if ((a == "--n" || a == "--max-batch") && has_value) {
      const std::string v = args[++i];
      const long long value = std::atoll(v.c_str());
      if (value < 1 || value > 1'000'000 || std::to_string(value) != v) {
        std::cerr << "rudder generate: " << a << " needs an integer in 1..1000000, got '" << v
                  << "'\n";
        return false;
      }
      if (a == "--n") g->n = static_cast<uint32_t>(value);
      if (a == "--max-batch") g->max_batch = value;
    } else {
      std::cerr << "rudder generate: unexpected argument '" << a << "'\n";
      return false;
    }
  }
  if (g->prompts.empty()) std::cerr << "rudder generate: --prompts is required\n";
  return !g->prompts.empty();
}

}  // namespace

int run_generate(const Args& args) {
  GenerateArgs g;
  if (!parse(args, &g)) {
    std::cerr << "usage: rudder generate CONFIG --prompts IN.jsonl [--out OUT.jsonl] [--n N]"
                 " [--max-batch B] [--set KEY=VALUE]...\n";
    return 2;
  }
  const ExperimentConfig config = core::load_experiment_config(g.config, g.overrides);
  // Rollout servers when the config names them, else the model in process.
  std::shared_ptr<const data::Tokenizer> tokenizer;
  std::shared_ptr<models::CausalLM> model;
  std::unique_ptr<rollout::RolloutEngine> engine;
  const std::string& model_dir = config.model().path();
  if (config.rollout().endpoints_size() > 0) {
    RUDDER_CHECK(config.rollout().decoder() == "sample", g.config,
                 ": rollout.decoder is set, but generation runs on rollout.endpoints; set the "
                 "decoder in the rollout servers' config instead");
    tokenizer = data::make_tokenizer(config.tokenizer(), model_dir);
    engine = std::make_unique<rollout::RemoteEngine>(
        rollout::remote_engine_options_from_config(config.rollout()));
  } else {
    RUDDER_CHECK(!model_dir.empty(), g.config, ": model.path names no model to generate with");
    RUDDER_CHECK(std::filesystem::is_directory(model_dir), g.config, ": model.path '", model_dir,
                 "' is not a directory (train one first, e.g. rudder train configs/sft.yaml)");
    model = models::load_hf_model(model_dir);
    model->eval();
    tokenizer = data::make_tokenizer(config.tokenizer(), model_dir);
    rollout::LocalEngineOptions engine_options;
    engine_options.max_batch = g.max_batch > 0 ? g.max_batch : config.rollout_server().max_batch();

    engine_options.eos_id = tokenizer->eos_id();
    engine_options.tokenizer = tokenizer;
    engine_options.seed = config.seed();
    rollout::Guidance guidance =
        rollout::make_guidance(config.rollout(), model->spec(), engine_options.max_batch,
                               config.rollout_server().max_length());
    engine_options.max_length = guidance.max_length;
    engine_options.guidance = std::move(guidance.processors);
    engine = std::make_unique<rollout::LocalEngine>(*model, engine_options);
  }

  rollout::GenerateJsonlOptions options;
  options.sampling = config.rollout().sampling();
  options.n = g.n;
  options.chat_template = config.tokenizer().chat_template();
  options.add_bos = config.tokenizer().add_bos();
  const auto start = std::chrono::steady_clock::now();
  options.progress = [&](int64_t done, int64_t total) {
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cerr << "generated " << done << "/" << total << " prompts (" << done / s
              << " prompts/s)\n";
  };
  const bool to_stdout = g.out.empty();
  const std::string out = to_stdout ? (std::filesystem::temp_directory_path() /
                                       ("rudder-generate-" + std::to_string(::getpid()) + ".jsonl"))
                                          .string()
                                    : g.out;
  const int64_t count = rollout::generate_jsonl(*engine, *tokenizer, g.prompts, out, options);
  if (to_stdout) {
    std::cout << std::ifstream(out).rdbuf() << std::flush;
    std::filesystem::remove(out);
  } else {
    std::cerr << "wrote " << count << " prompts x " << g.n << " samples to " << out << "\n";
  }
  return 0;
}

}  // namespace rudder::app
