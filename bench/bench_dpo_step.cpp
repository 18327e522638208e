// One DPO step (chosen and rejected in one concatenated forward, summed response log-probs,
// sigmoid loss against precomputed reference log-probs, backward, AdamW) for a ~9M and a ~85M
// Llama, beside the same step in PyTorch-Python (bench/python/dpo_step.py) on the same weights
// and batch, in one run. Prints step time, achieved GFLOP/s (6 x params x tokens) and the ratio.
//   bench_dpo_step [--pairs 4] [--seq 128] [--steps 3] [--threads N]
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include <torch/torch.h>

#include "algorithms/dpo_loss.h"
#include "bench/bench_util.h"
#include "core/runtime.h"
#include "models/causal_lm.h"
#include "models/logprobs.h"
#include "models/safetensors.h"
#include "proto/rudder.pb.h"
#include "trainer/optimizer.h"

using namespace rudder;

namespace {

struct Size {
  const char* name;
  int64_t hidden, layers, heads, kv_heads, intermediate;
};

struct Result {
  int64_t params = 0;
  double ours = 0, python = 0, loss_ours = 0, loss_python = 0;
};

Result run(const Size& size, int64_t pairs, int64_t seq, int steps) {
  torch::manual_seed(0);
  const models::ModelSpec s =
      bench::llama_spec(size.hidden, size.layers, size.heads, size.kv_heads, size.intermediate);
  models::CausalLM model(s);
  Result r;
  for (const auto& p : model.parameters()) r.params += p.numel();
  const auto dir =
      std::filesystem::temp_directory_path() / (std::string("rudder-bench-dpo-") + size.name);
  models::save_hf_model(model, dir.string());
  const int64_t rows = 2 * pairs;
  const at::Tensor ids = torch::randint(0, 260, {rows, seq});
  const at::Tensor mask = torch::ones({rows, seq}, torch::kLong);
  const at::Tensor pos = torch::arange(seq).repeat({rows, 1});
  at::Tensor labels = torch::ones({rows, seq}, torch::kLong);
  labels.narrow(1, 0, seq / 4).zero_();
  const at::Tensor ref_c = -torch::rand({pairs}, torch::kDouble) * 10 - 500;
  const at::Tensor ref_r = -torch::rand({pairs}, torch::kDouble) * 10 - 500;
  models::save_safetensors((dir / "bench_batch.safetensors").string(),
                           {{"input_ids", ids},
                            {"attention_mask", mask},
                            {"position_ids", pos},
                            {"loss_mask", labels},
                            {"ref_chosen", ref_c.to(torch::kFloat)},
                            {"ref_rejected", ref_r.to(torch::kFloat)}});
  const std::string command = "/usr/bin/python3 " + std::string(RUDDER_SOURCE_DIR) +
                              "/bench/python/dpo_step.py " + dir.string() + " " +
                              std::to_string(steps) + " " + std::to_string(at::get_num_threads());
  bool parsed = false;
  for (const auto& line : bench::run_lines(command)) {
    parsed = parsed || std::sscanf(line.c_str(), "python loss0=%lf step_s=%lf", &r.loss_python,
                                   &r.python) == 2;
  }
  if (!parsed) throw std::runtime_error("no figures from the Python baseline");

  const OptimizerConfig oc = bench::adamw_defaults();
  std::vector<std::pair<std::string, at::Tensor>> named;
  for (const auto& item : model.named_parameters(true))
    named.emplace_back(item.key(), item.value());
  trainer::AdamW optimizer(trainer::trainable_parameters(named), oc);
  algorithms::DpoLossOptions options;
  auto step = [&] {
    optimizer.zero_grad();
    const at::Tensor seq_logp =
        models::sequence_logprobs(model.forward(ids, mask, pos), ids, labels);
    const auto out =
        algorithms::dpo_loss(seq_logp.narrow(0, 0, pairs), seq_logp.narrow(0, pairs, pairs),
                             ref_c.to(torch::kFloat), ref_r.to(torch::kFloat), options);
    out.loss.backward();
    optimizer.step(1e-5);
    return out.loss.item<double>();
  };
  r.loss_ours = step();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) step();
  r.ours = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / steps;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  const auto flags = bench::parse_flags(
      argc, argv, {{"pairs", "4"}, {"seq", "128"}, {"steps", "3"}, {"threads", "0"}});
  const int64_t pairs = std::stoll(flags.at("pairs")), seq = std::stoll(flags.at("seq"));
  const int steps = std::stoi(flags.at("steps")), threads = std::stoi(flags.at("threads"));
  core::configure_runtime(threads);
  std::cout << "bench_dpo_step: " << pairs << " pairs (" << 2 * pairs << " rows) x seq " << seq
            << ", " << at::get_num_threads() << " threads, " << steps << " timed steps\n";
  std::printf("%-6s %8s %12s %12s %10s %10s %8s\n", "model", "params", "rudder s", "python s",
              "rudder GF/s", "python GF/s", "ratio");
  for (const Size& size : {Size{"10M", 256, 12, 4, 2, 688}, Size{"100M", 768, 12, 12, 12, 2048}}) {
    Result r;
    try {
      r = run(size, pairs, seq, steps);
    } catch (const std::exception& e) {
      std::cerr << "bench_dpo_step: " << e.what() << " (make bench installs python3-torch)\n";
      return 1;
    }
    if (std::abs(r.loss_ours - r.loss_python) > 1e-3) {
      std::cerr << "bench_dpo_step: first-step losses differ: " << r.loss_ours << " vs "
                << r.loss_python << "\n";
      return 1;
    }
    const double flops = 6.0 * static_cast<double>(r.params) * static_cast<double>(2 * pairs * seq);
    std::printf("%-6s %7.1fM %12.3f %12.3f %10.1f %10.1f %7.2fx\n", size.name, r.params / 1e6,
                r.ours, r.python, flops / r.ours / 1e9, flops / r.python / 1e9, r.python / r.ours);
  }
  return 0;
}
