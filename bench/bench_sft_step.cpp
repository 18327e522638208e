// One SFT step (forward, masked token NLL, backward, AdamW) of the ~9M-parameter Llama at
// batch 8 x seq 128, beside the same step in PyTorch-Python (bench/python/sft_step.py) on the
// same weights and batch, in one run. Checks the first step's loss agrees, then prints step time,
// tokens/s and the ratio.
//   bench_sft_step [--batch 8] [--seq 128] [--seconds 5] [--threads N]
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include <torch/torch.h>

#include "bench/bench_util.h"
#include "core/runtime.h"
#include "models/causal_lm.h"
#include "models/logprobs.h"
#include "models/safetensors.h"
#include "proto/rudder.pb.h"
#include "trainer/optimizer.h"

using namespace rudder;

int main(int argc, char** argv) {
  const auto flags = bench::parse_flags(
      argc, argv, {{"batch", "8"}, {"seq", "128"}, {"seconds", "5"}, {"threads", "0"}});
  const int64_t batch = std::stoll(flags.at("batch")), seq = std::stoll(flags.at("seq"));
  const double seconds = std::stod(flags.at("seconds"));
  const int threads = std::stoi(flags.at("threads"));
  core::configure_runtime(threads);
  torch::manual_seed(0);
  models::CausalLM model(bench::llama_10m());
  int64_t params = 0;
  for (const auto& p : model.parameters()) params += p.numel();
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "rudder-bench-sft";
  models::save_hf_model(model, dir.string());
  const at::Tensor ids = torch::randint(0, 260, {batch, seq});
  const at::Tensor mask = torch::ones({batch, seq}, torch::kLong);
  const at::Tensor pos = torch::arange(seq).repeat({batch, 1});
  at::Tensor labels = torch::ones({batch, seq}, torch::kLong);
  labels.narrow(1, 0, seq / 4).zero_();  // the first quarter is prompt
  models::save_safetensors(
      (dir / "bench_batch.safetensors").string(),
      {{"input_ids", ids}, {"attention_mask", mask}, {"position_ids", pos}, {"loss_mask", labels}});

  const OptimizerConfig oc = bench::adamw_defaults();
  std::vector<std::pair<std::string, at::Tensor>> named;
  for (const auto& item : model.named_parameters(true))
    named.emplace_back(item.key(), item.value());
  trainer::AdamW optimizer(trainer::trainable_parameters(named), oc);
  auto step = [&] {
    optimizer.zero_grad();
    const at::Tensor logp = models::token_logprobs(model.forward(ids, mask, pos), ids);
    const at::Tensor loss =
        -models::masked_sum(logp, labels).sum() / labels.narrow(1, 1, seq - 1).sum();
    loss.backward();
    optimizer.step(1e-4);
    return loss.item<double>();
  };

  std::cout << "bench_sft_step: Llama " << params / 1e6 << "M parameters, batch " << batch
            << " x seq " << seq << ", " << at::get_num_threads() << " threads\n";
  const std::string command = "/usr/bin/python3 " + std::string(RUDDER_SOURCE_DIR) +
                              "/bench/python/sft_step.py " + dir.string() + " " +
                              std::to_string(batch) + " " + std::to_string(seq) + " " +
                              std::to_string(seconds) + " " + std::to_string(at::get_num_threads());
  double py_loss0 = 0, py_step = 0, py_tps = 0;
  bool parsed = false;
  for (const auto& line : bench::run_lines(command)) {
    parsed = parsed || std::sscanf(line.c_str(), "python loss0=%lf step_s=%lf tokens_per_s=%lf",
                                   &py_loss0, &py_step, &py_tps) == 3;
  }
  if (!parsed) {
    std::cerr << "bench_sft_step: no figures from the Python baseline\n";
    return 1;
  }
  const double loss0 = step();
  std::printf("check: first-step loss rudder %.6f, python %.6f\n", loss0, py_loss0);
  if (std::abs(loss0 - py_loss0) > 1e-3) return 1;
  step();
  int n = 0;
  const auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  while (elapsed < seconds) {
    step();
    ++n;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  const double ours = elapsed / n;
  std::printf("%-10s %12s %14s\n", "", "step (s)", "tokens/s");
  std::printf("%-10s %12.4f %14.0f\n", "rudder", ours, batch * seq / ours);
  std::printf("%-10s %12.4f %14.0f\n", "python", py_step, py_tps);
  std::printf("speedup %.2fx\n", py_step / ours);
  return 0;
}
