// Forward throughput of a ~9M-parameter Llama (the byte vocabulary) at batch 1 and 8, beside the
// same forward in PyTorch-Python (/usr/bin/python3, bench/python/forward.py) on identical
// weights, in one run. Prints tokens/s for both and the ratio; checks both compute the same
// logits first.
//   bench_forward [--seq 128] [--seconds 3]
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <sstream>

#include <torch/torch.h>

#include "bench/bench_util.h"
#include "core/runtime.h"
#include "models/causal_lm.h"
#include "models/safetensors.h"

using namespace rudder;

namespace {

double cpp_tokens_per_s(models::CausalLM& model, int64_t batch, int64_t seq, double seconds) {
  torch::NoGradGuard no_grad;
  const at::Tensor ids = torch::randint(0, 260, {batch, seq});
  const at::Tensor mask = torch::ones({batch, seq}, torch::kLong);
  const at::Tensor pos = torch::arange(seq).repeat({batch, 1});
  for (int i = 0; i < 2; ++i) model.forward(ids, mask, pos);
  int n = 0;
  const auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  while (elapsed < seconds) {
    model.forward(ids, mask, pos);
    ++n;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return n * batch * seq / elapsed;
}

}  // namespace

int main(int argc, char** argv) {
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
  const std::string script = std::string(RUDDER_SOURCE_DIR) + "/bench/python/forward.py";
  // The baseline runs twice: as users run it, and with the same allocator settings Rudder uses.
  auto run_python = [&](const std::string& env) {
    std::map<int64_t, double> result;
    for (const auto& line : bench::run_lines(
             env + " /usr/bin/python3 " + script + " " + dir.string() + " " + std::to_string(seq) +
             " 1,8 " + std::to_string(seconds) + " " + std::to_string(at::get_num_threads()))) {
      long long b = 0;
      double tps = 0;
      if (std::sscanf(line.c_str(), "python batch=%lld tokens_per_s=%lf", &b, &tps) == 2)
        result[b] = tps;
    }
    return result;
  };
  std::map<int64_t, double> python = run_python("");
  std::map<int64_t, double> python_tuned = run_python(
      "GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824");
  if (python.size() != 2 || python_tuned.size() != 2) {
    std::cerr << "bench_forward: the Python baseline failed (is python3-torch installed? make "
                 "bench installs it)\n";
    return 1;
  }
  torch::NoGradGuard no_grad;
  const at::Tensor ours = model.forward(ids, mask, pos);
  const at::Tensor theirs =
      models::load_safetensors((dir / "python_logits.safetensors").string()).tensors.at("logits");
  const double diff = (ours - theirs).abs().max().item<double>();
  std::cout << "check: max |logits difference| vs Python = " << diff
            << (diff < 1e-3 ? " (same work)\n" : " MISMATCH\n");
  if (diff >= 1e-3) return 1;

  std::printf("%-6s %14s %14s %8s %22s %8s\n", "batch", "rudder tok/s", "python tok/s", "ratio",
              "python+malloc tok/s", "ratio");
  for (const int64_t batch : {1, 8}) {
    const double ours_tps = cpp_tokens_per_s(model, batch, seq, seconds);
    std::printf("%-6lld %14.0f %14.0f %7.2fx %22.0f %7.2fx\n", static_cast<long long>(batch),
                ours_tps, python[batch], ours_tps / python[batch], python_tuned[batch],
                ours_tps / python_tuned[batch]);
  }
  return 0;
}
