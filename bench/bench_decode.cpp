// Decoding throughput of the rollout engine (rollout::LocalEngine), greedy with lengths forced
// by ignore_eos, for a ~9M and a ~85M Llama at batch 1, 8 and 32, beside the same generation in
// PyTorch-Python with a KV cache (bench/python/decode.py) on identical weights and prompts, and
// beside rollout::generate (the earlier batch sampler). Both sides must produce the same tokens
// first. The ~85M batch-1 figure is also set beside the memory-bandwidth bound (weight bytes per
// token over the best read bandwidth this run measures), both for whole generate() calls and
// for the decode steps alone (a prefill-only call timed apart and taken out). Last, a
// GRPO-shaped workload: 32 prompts x 8 samples at temperature 1 with lengths spread by EOS,
// engine against rollout::generate.
//   bench_decode [--seconds 3] [--threads 0] [--sizes 10M,100M] [--grpo 1] [--python 1]
//                [--device cpu]
// (--sizes 151k adds a 41M Llama with Qwen's 151,669-token vocabulary, where the output head
// is most of the weights.)
// (--python 0 skips the baseline, for quick looks; its columns then read -. --device cuda runs
// both sides on the GPU; the bandwidth bound is then not printed.)
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <sstream>

#include <torch/torch.h>

#include "bench/bench_util.h"
#include "core/error.h"
#include "core/runtime.h"
#include "models/causal_lm.h"
#include "models/detail/packed_matmul.h"
#include "models/hf_io.h"
#include "models/safetensors.h"
#include "rollout/generate.h"
#include "rollout/local_engine.h"

using namespace rudder;

namespace {

constexpr int64_t kPromptLength = 32;
constexpr int64_t kBatches[] = {1, 8, 32};

struct Size {
  const char* name;
  int64_t hidden, layers, heads, kv_heads, intermediate, new_tokens;
  int64_t vocab = 260;  // > 260: Qwen's vocabulary, tied to the embedding as Qwen2-0.5B's is
};

using Clock = std::chrono::steady_clock;

// Tokens per second of `run` (which generates `tokens` tokens), over at least `seconds`.
double rate(const std::function<void()>& run, double tokens, double seconds) {
  run();  // warm-up
  int n = 0;
  const auto start = Clock::now();
  double elapsed = 0;
  while (n < 2 || elapsed < seconds) {
    run();
    ++n;
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  }
  return n * tokens / elapsed;
}

std::vector<std::vector<int64_t>> rows_of(const at::Tensor& prompts, int64_t count) {
  std::vector<std::vector<int64_t>> out;
  for (int64_t r = 0; r < count; ++r) {
    const at::Tensor row = prompts[r].contiguous();
    out.emplace_back(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel());
  }
  return out;
}

std::vector<rollout::GenerateInput> greedy_requests(const std::vector<std::vector<int64_t>>& rows,
                                                    int64_t new_tokens) {
  std::vector<rollout::GenerateInput> out;
  for (const auto& r : rows) {
    rollout::GenerateInput in;
    in.prompt = r;
    in.sampling.set_max_new_tokens(new_tokens);
    in.sampling.set_temperature(0.0);
    in.sampling.set_top_p(1.0);
    in.sampling.set_repetition_penalty(1.0);
    in.sampling.set_ignore_eos(true);
    out.push_back(in);
  }
  return out;
}

// Read bandwidth of this machine: the faster of two sums of a 1 GiB float tensor, placed on
// transparent huge pages as the engine's packed weights are (the most this machine reads).
double read_bandwidth() {
  static const at::Tensor big = models::detail::huge_page_floats(int64_t{1} << 28).fill_(1.0f);
  double sink = 0, best = 0;
  for (int i = 0; i < 2; ++i) {
    const auto start = Clock::now();
    sink += big.sum().item<double>();
    best = std::max(
        best, big.numel() * 4.0 / std::chrono::duration<double>(Clock::now() - start).count());
  }
  if (sink < 0) std::cout << "";
  return best;
}

struct PythonRun {
  std::map<int64_t, bench::PythonFigures> tps;
  std::map<int64_t, std::map<int64_t, std::string>> tokens;  // batch -> row -> "ids,..."
};

PythonRun run_python(const std::string& dir, int64_t new_tokens, double seconds,
                     const std::string& device) {
  PythonRun out;
  for (size_t a = 0; a < bench::kAllocators.size(); ++a) {
    std::ostringstream args;
    args << dir << " " << new_tokens << " 1,8,32 " << seconds << " " << at::get_num_threads() << " "
         << device;
    for (const auto& line : bench::run_python("decode.py", args.str(), bench::kAllocators[a])) {
      long long b = 0, row = 0;
      double tps = 0;
      char ids[65536];
      if (std::sscanf(line.c_str(), "python batch=%lld tokens_per_s=%lf", &b, &tps) == 2) {
        out.tps[b][a] = tps;
      } else if (a == 0 && std::sscanf(line.c_str(), "python batch=%lld tokens=%lld:%65535s", &b,
                                       &row, ids) == 3) {
        out.tokens[b][row] = ids;
      }
    }
  }
  return out;
}

std::string joined(const std::vector<int64_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s;
}

void bench_size(const Size& size, double seconds, bool with_python, const std::string& device) {
  torch::manual_seed(0);
  models::ModelSpec spec =
      bench::llama_spec(size.hidden, size.layers, size.heads, size.kv_heads, size.intermediate);
  if (size.vocab != spec.vocab_size) {
    spec.vocab_size = size.vocab;
    spec.tie_word_embeddings = true;
  }
  models::CausalLM model(spec);
  model.eval();
  int64_t params = 0;
  for (const auto& p : model.parameters()) params += p.numel();
  const auto dir =
      std::filesystem::temp_directory_path() / ("rudder-bench-decode-" + std::string(size.name));
  models::save_hf_model(model, dir.string());
  const at::Tensor prompts = torch::randint(0, 256, {32, kPromptLength});
  models::save_safetensors((dir / "prompts.safetensors").string(), {{"prompts", prompts}});
  model.to(torch::Device(device));
  std::cout << "\nLlama " << params / 1e6 << "M parameters, prompts of " << kPromptLength
            << " tokens, " << size.new_tokens << " new tokens, greedy, on " << device << "\n";
  const PythonRun python =
      with_python ? run_python(dir.string(), size.new_tokens, seconds, device) : PythonRun{};

  bench::print_table_header("batch", "tok/s", "   generate() tok/s  engine/generate");
  for (const int64_t batch : kBatches) {
    const auto rows = rows_of(prompts, batch);
    const auto requests = greedy_requests(rows, size.new_tokens);
    rollout::LocalEngineOptions options;
    options.max_batch = batch;
    options.max_length = kPromptLength + size.new_tokens;
    rollout::LocalEngine engine(model, options);
    const auto first = engine.generate(requests);
    int64_t same = 0;
    for (int64_t r = 0; r < batch && with_python; ++r) {
      const auto it = python.tokens.at(batch).find(r);
      same +=
          it != python.tokens.at(batch).end() && it->second == joined(first[r].samples[0].tokens);
    }
    // A GPU's kernels round differently from the CPU's and Python's own; where a near-tie
    // flips a greedy token the rows part ways. Lengths are forced, so the work stays the same:
    // on a GPU the count is printed, on the CPU too few agreeing rows stop the benchmark.
    if (with_python && same * 10 < batch * 9 && device == "cpu") {
      throw std::runtime_error("batch " + std::to_string(batch) + ": only " + std::to_string(same) +
                               " rows generate the same tokens as Python");
    }
    const double tokens = static_cast<double>(batch * size.new_tokens);
    const double ours = rate([&] { engine.generate(requests); }, tokens, seconds);
    SamplingParams greedy;
    greedy.set_max_new_tokens(size.new_tokens);
    greedy.set_temperature(0.0);
    const double old =
        rate([&] { rollout::generate(model, rows, greedy, -1, 0); }, tokens, seconds);
    if (with_python && python.tps.count(batch) == 0) {
      throw std::runtime_error("decode.py printed no figure");
    }
    char extra[96];
    std::snprintf(extra, sizeof extra, "   %17.0f  %14.2fx   (%lld/%lld rows same tokens)", old,
                  ours / old, static_cast<long long>(same), static_cast<long long>(batch));
    if (!with_python) std::snprintf(extra, sizeof extra, "   %17.0f  %14.2fx", old, ours / old);
    const bench::PythonFigures none{std::nan(""), std::nan("")};
    bench::print_table_row(std::to_string(batch), ours, with_python ? python.tps.at(batch) : none,
                           true, extra);
    if (batch == 1 && params > 50'000'000 && device == "cpu") {
      // This machine's memory is shared: its bandwidth and the engine's speed move together
      // from moment to moment. Six short rounds alternate the engine, its prefill alone (one
      // new token comes from the prefill's logits) and a bandwidth sample; the best of each
      // are compared.
      const auto prefill_only = greedy_requests(rows, 1);
      double best = 0, prefill_s = 1e9, bandwidth = 0;
      for (int round = 0; round < 6; ++round) {
        best = std::max(best, rate([&] { engine.generate(requests); }, tokens, seconds / 6));
        prefill_s = std::min(prefill_s,
                             1.0 / rate([&] { engine.generate(prefill_only); }, 1.0, seconds / 12));
        bandwidth = std::max(bandwidth, read_bandwidth());
      }
      // Rounds differ: where the best prefill came from a faster moment than the best whole
      // call, the difference can vanish; the figure is then not printed as a rate.
      const double steps_s = tokens / best - prefill_s;
      const double steps = steps_s > 0 ? (size.new_tokens - 1) / steps_s : 0.0;
      const double bound = bandwidth / (params * 4.0);
      std::printf(
          "bandwidth bound at batch 1 (best of 6 alternating rounds): %.1f GB/s read / %.0f MB"
          " of weights = %.1f tok/s; engine %.1f tok/s, %.0f%% of it (generate() with its"
          " prefill); decode steps alone %.1f tok/s, %.0f%% (prefill %.1f ms)\n",
          bandwidth / 1e9, params * 4.0 / 1e6, bound, best, 100.0 * best / bound, steps,
          100.0 * steps / bound, prefill_s * 1e3);
    }
  }
}

// 32 prompts x 8 samples at temperature 1; EOS's output row is scaled so that the lengths
// spread out.
void bench_grpo(double seconds) {
  torch::manual_seed(1);
  models::CausalLM model(bench::llama_10m());
  model.eval();
  const int64_t eos = 258;
  {
    torch::NoGradGuard no_grad;
    model.state_dict().at("lm_head.weight")[eos].mul_(12.0);
  }
  const auto prompts = rows_of(torch::randint(0, 256, {32, kPromptLength}), 32);
  SamplingParams params;
  params.set_max_new_tokens(128);
  params.set_temperature(1.0);
  params.set_top_p(1.0);
  params.set_repetition_penalty(1.0);
  std::vector<rollout::GenerateInput> requests;
  std::vector<std::vector<int64_t>> repeated;
  for (const auto& p : prompts) {
    rollout::GenerateInput in;
    in.prompt = p;
    in.sampling = params;
    in.n = 8;
    requests.push_back(in);
    for (int s = 0; s < 8; ++s) repeated.push_back(p);
  }
  rollout::LocalEngineOptions options;
  options.max_batch = 256;
  options.eos_id = eos;
  options.max_length = kPromptLength + 128;
  rollout::LocalEngine engine(model, options);
  int64_t count = 0, generated = 0, shortest = 1 << 30, longest = 0;
  const auto e0 = Clock::now();
  int runs = 0;
  while (runs < 2 || std::chrono::duration<double>(Clock::now() - e0).count() < seconds) {
    for (const auto& out : engine.generate(requests)) {
      for (const auto& s : out.samples) {
        const auto n = static_cast<int64_t>(s.tokens.size());
        generated += n;
        shortest = std::min(shortest, n);
        longest = std::max(longest, n);
        ++count;
      }
    }
    ++runs;
  }
  const double ours = generated / std::chrono::duration<double>(Clock::now() - e0).count();
  at::manual_seed(2);
  int64_t old_generated = 0;
  const auto o0 = Clock::now();
  runs = 0;
  while (runs < 2 || std::chrono::duration<double>(Clock::now() - o0).count() < seconds) {
    for (const auto& c : rollout::generate(model, repeated, params, eos, 0)) {
      old_generated += static_cast<int64_t>(c.tokens.size());
    }
    ++runs;
  }
  const double old = old_generated / std::chrono::duration<double>(Clock::now() - o0).count();
  std::printf(
      "\nGRPO-shaped: 32 prompts x 8 samples, temperature 1, up to 128 new tokens; sample"
      " lengths %lld..%lld, mean %.1f\n",
      static_cast<long long>(shortest), static_cast<long long>(longest),
      static_cast<double>(generated) / count);
  std::printf("engine %.0f tok/s, generate() %.0f tok/s: %.2fx\n", ours, old, ours / old);
}

}  // namespace

int run(int argc, char** argv) {
  const auto flags = bench::parse_flags(argc, argv,
                                        {{"seconds", "3"},
                                         {"threads", "0"},
                                         {"sizes", "10M,100M"},
                                         {"grpo", "1"},
                                         {"python", "1"},
                                         {"device", "cpu"}});
  const std::string device = flags.at("device");
  RUDDER_CHECK(device == "cpu" || device.rfind("cuda", 0) == 0,
               "--device must be cpu or cuda[:N], got '", device, "'");
  const double seconds = std::stod(flags.at("seconds"));
  core::configure_runtime(std::stoi(flags.at("threads")));
  std::cout << "bench_decode: " << at::get_num_threads() << " threads, " << seconds
            << " s per measurement\n";
  for (const Size& size :
       {Size{"10M", 256, 12, 4, 2, 688, 64}, Size{"100M", 768, 12, 12, 12, 2048, 32},
        Size{"151k", 256, 4, 4, 2, 688, 32, 151669}}) {
    if (flags.at("sizes").find(size.name) != std::string::npos)
      bench_size(size, seconds, flags.at("python") == "1", device);
  }
  if (flags.at("grpo") == "1") bench_grpo(seconds);
  return 0;
}

int main(int argc, char** argv) {
  return bench::main_guard("bench_decode", [&] { return run(argc, argv); });
}
