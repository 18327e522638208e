// Forward throughput of a ~9M-parameter Llama (the byte vocabulary) at batch 1 and 8, beside the
// same forward in PyTorch-Python (/usr/bin/python3, bench/python/forward.py) on identical
// weights, in one run, plainly and under Rudder's allocator settings. Prints tokens/s for each
// and Rudder's speedup; checks both compute the same logits first.
//   bench_forward [--seq 128] [--seconds 3]
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>

#include <torch/torch.h>

#include "bench/bench_util.h"
#include "core/runtime.h"
#include "models/causal_lm.h"
#include "models/hf_io.h"
#include "models/safetensors.h"

using namespace rudder;

namespace {

double cpp_tokens_per_s(models::CausalLM& model, int64_t batch, int64_t seq, double seconds) {
  torch::NoGradGuard no_grad;
  const at::Tensor ids = torch::randint(0, 260, {batch, seq});
  const at::Tensor mask = torch::ones({batch, seq}, torch::kLong);
  const at::Tensor pos = torch::arange(seq).repeat({batch, 1});
  for (int i = 0; i < 2; ++i) model.forward({ids, mask, pos});
  int n = 0;
  const auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  while (elapsed < seconds) {
    model.forward({ids, mask, pos});
    ++n;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return n * batch * seq / elapsed;
}

}  // namespace

int run(int argc, char** argv) {
  const auto flags =
      bench::parse_flags(argc, argv, {{"seq", "128"}, {"seconds", "3"}, {"threads", "0"}});
  const int64_t seq = std::stoll(flags.at("seq"));
  const double seconds = std::stod(flags.at("seconds"));
  const int threads = std::stoi(flags.at("threads"));
  core::configure_runtime(threads);
  torch::manual_seed(0);
  models::CausalLM model(bench::llama_10m());
  model.eval();
  int64_t params = 0;
  for (const auto& p : model.parameters()) params += p.numel();
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "rudder-bench-forward";
  models::save_hf_model(model, dir.string());

  // The check input: both sides must produce the same logits, or the comparison means nothing.
  const at::Tensor ids = torch::randint(0, 260, {2, 32});
  const at::Tensor mask = torch::ones({2, 32}, torch::kLong);
  const at::Tensor pos = torch::arange(32).repeat({2, 1});
  models::save_safetensors((dir / "check_input.safetensors").string(),
                           {{"input_ids", ids}, {"attention_mask", mask}, {"position_ids", pos}});

  std::cout << "bench_forward: Llama " << params / 1e6 << "M parameters, seq " << seq << ", "
            << at::get_num_threads() << " threads, " << seconds << " s per measurement\n";
  // The baseline runs twice: as users run it, and with the same allocator settings Rudder uses.
  std::map<int64_t, bench::PythonFigures> python;
  for (size_t a = 0; a < bench::kAllocators.size(); ++a) {
    const std::string args = dir.string() + " " + std::to_string(seq) + " 1,8 " +
                             std::to_string(seconds) + " " + std::to_string(at::get_num_threads());
    for (const auto& line : bench::run_python("forward.py", args, bench::kAllocators[a])) {
      long long b = 0;
      double tps = 0;
      if (std::sscanf(line.c_str(), "python batch=%lld tokens_per_s=%lf", &b, &tps) == 2)
        python[b][a] = tps;
    }
  }
  for (const int64_t batch : {1, 8}) {
    if (python[batch][0] <= 0 || python[batch][1] <= 0)
      throw std::runtime_error("bench/python/forward.py printed no figure for batch " +
                               std::to_string(batch));
  }
  torch::NoGradGuard no_grad;
  const at::Tensor ours = model.forward({ids, mask, pos});
  const at::Tensor theirs =
      models::load_safetensors((dir / "python_logits.safetensors").string()).tensors.at("logits");
  const double diff = (ours - theirs).abs().max().item<double>();
  std::cout << "check: max |logits difference| vs Python = " << diff
            << (diff < 1e-3 ? " (same work)\n" : " MISMATCH\n");
  if (diff >= 1e-3) throw std::runtime_error("Rudder and Python compute different logits");

  bench::print_table_header("batch", "tok/s");
  for (const int64_t batch : {1, 8}) {
    bench::print_table_row(std::to_string(batch), cpp_tokens_per_s(model, batch, seq, seconds),
                           python[batch], /*rate=*/true);
  }
  return 0;
}

int main(int argc, char** argv) {
  return bench::main_guard("bench_forward", [&] { return run(argc, argv); });
}
