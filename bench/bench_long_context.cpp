// SFT and DPO steps of a Llama with Qwen3's 151,669-token vocabulary at 512 to 2048 tokens a
// row: Rudder (chunked log-probs, fused AdamW), Rudder with activation checkpointing, and the same
// step in PyTorch-Python with full logits (bench/python/long_context_step.py) on identical weights
// and batch. Each side runs in a process of its own, so its peak resident memory (VmHWM) is its
// step's; the table prints seconds per step and peak MiB, and Rudder's speedup and peak as a
// fraction of Python's. DPO computes the reference log-probs live (a frozen copy, no grad).
// Then AdamW's step time on the model's parameters: the fused one-pass update beside
// torch::optim::AdamW (the op-by-op update Rudder's matched before).
// The default model is a small Qwen2-shaped one: 151,669 tokens, hidden 64, and
// the output projection tied to the embedding (9.8M parameters); --tied 0 unties it.
//   bench_long_context [--vocab 151669] [--hidden 64] [--layers 4] [--tied 1] [--steps 2]
//                      [--threads 0]
//                      [--cases sft:1x512,sft:1x2048,dpo:1x512,dpo:2x1024,dpo:1x2048]
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <torch/torch.h>

#include "algorithms/dpo_loss.h"
#include "bench/bench_util.h"
#include "core/runtime.h"
#include "models/causal_lm.h"
#include "models/chunked_logprobs.h"
#include "models/hf_io.h"
#include "models/safetensors.h"
#include "trainer/optimizer.h"

using namespace rudder;
namespace fs = std::filesystem;

namespace {

constexpr double kLr = 1e-5;

int64_t status_kb(const std::string& field) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1));
  }
  return 0;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// One case: "dpo:2x1024" is 2 pairs (4 rows) of 1024 tokens; "sft:1x2048" one row of 2048.
struct Case {
  std::string method;
  int64_t count = 1, seq = 512;
  int64_t rows() const { return method == "dpo" ? 2 * count : count; }
  std::string name() const {
    return method + " " + std::to_string(count) + "x" + std::to_string(seq);
  }
};

Case parse_case(const std::string& text) {
  Case c;
  const auto colon = text.find(':'), x = text.find('x');
  if (colon == std::string::npos || x == std::string::npos)
    throw std::runtime_error("bad case '" + text + "': expected sft:ROWSxSEQ or dpo:PAIRSxSEQ");
  c.method = text.substr(0, colon);
  c.count = std::stoll(text.substr(colon + 1, x - colon - 1));
  c.seq = std::stoll(text.substr(x + 1));
  return c;
}

// The child: loads the model and batch from `dir`, takes one warm-up step and `steps` timed ones,
// prints "rudder step_s=S peak_kb=P base_kb=B loss=L".
int run_child(const std::string& dir, const std::string& method, int steps, bool checkpointing) {
  auto policy = models::load_hf_model(dir);
  policy->train();
  policy->set_activation_checkpointing(checkpointing);
  std::shared_ptr<models::CausalLM> reference;
  if (method == "dpo") {
    reference = models::load_hf_model(dir);
    reference->eval();
    for (auto& p : reference->parameters()) p.set_requires_grad(false);
  }
  const models::TensorMap batch =
      models::load_safetensors(dir + "/bench_batch.safetensors").tensors;
  const at::Tensor &ids = batch.at("input_ids"), &mask = batch.at("attention_mask");
  const at::Tensor &pos = batch.at("position_ids"), &labels = batch.at("loss_mask");
  const models::ForwardInput input =
      models::batch_input(ids, mask, pos, torch::kCPU);  // as algorithms::Sft and ::Dpo
  trainer::AdamW optimizer = bench::make_adamw(*policy);
  algorithms::DpoLossOptions options;  // sigmoid, beta 0.1, as long_context_step.py
  auto step = [&] {
    optimizer.zero_grad();
    at::Tensor loss;
    if (method == "sft") {
      const at::Tensor logp = models::score_tokens(*policy, input, labels).logprobs;
      loss = -logp.sum() / labels.narrow(1, 1, labels.size(1) - 1).sum();
    } else {
      const int64_t pairs = ids.size(0) / 2;
      const at::Tensor lp = models::sequence_logprobs(*policy, input, labels);
      at::Tensor ref;
      {
        torch::NoGradGuard no_grad;
        ref = models::sequence_logprobs(*reference, input, labels);
      }
      loss = algorithms::dpo_loss(lp.narrow(0, 0, pairs), lp.narrow(0, pairs, pairs),
                                  ref.narrow(0, 0, pairs), ref.narrow(0, pairs, pairs), options)
                 .loss;
    }
    loss.backward();
    optimizer.step(kLr);
    return loss.item<double>();
  };
  const int64_t base = status_kb("VmRSS");
  const double loss = step();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) step();
  std::printf("rudder step_s=%.6f peak_kb=%lld base_kb=%lld loss=%.9g\n",
              seconds_since(start) / steps, static_cast<long long>(status_kb("VmHWM")),
              static_cast<long long>(base), loss);
  return 0;
}

struct Figures {
  double step_s = 0, peak_mib = 0, base_mib = 0, loss = 0;
};

Figures parse_figures(const std::vector<std::string>& lines, const std::string& who) {
  for (const auto& line : lines) {
    std::istringstream in(line);
    std::string word;
    if (!(in >> word) || word != who) continue;
    Figures f;
    while (in >> word) {
      const auto eq = word.find('=');
      const std::string key = word.substr(0, eq);
      const double value = std::stod(word.substr(eq + 1));
      if (key == "step_s") f.step_s = value;
      if (key == "peak_kb") f.peak_mib = value / 1024;
      if (key == "base_kb") f.base_mib = value / 1024;
      if (key == "loss") f.loss = value;
    }
    return f;
  }
  std::string all;
  for (const auto& l : lines) all += l + "\n";
  throw std::runtime_error("no figures from " + who + ":\n" + all);
}

// The fused AdamW step against torch::optim::AdamW on `model`'s parameters with random grads.
void time_adamw(models::CausalLM& model) {
  auto time_of = [](const std::function<void()>& step) {
    step();
    const auto start = std::chrono::steady_clock::now();
    int n = 0;
    while (n < 5 || seconds_since(start) < 1.0) {
      step();
      ++n;
    }
    return seconds_since(start) / n;
  };
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> ours, theirs;
  int64_t numel = 0;
  for (const auto& p : model.parameters()) {
    ours.push_back(p.detach().clone().requires_grad_(true));
    theirs.push_back(p.detach().clone().requires_grad_(true));
    ours.back().mutable_grad() = torch::randn_like(p);
    theirs.back().mutable_grad() = ours.back().grad().clone();
    numel += p.numel();
  }
  std::vector<std::pair<std::string, at::Tensor>> named;
  for (size_t i = 0; i < ours.size(); ++i) named.emplace_back(std::to_string(i), ours[i]);
  OptimizerConfig c = bench::adamw_defaults();
  c.set_weight_decay(0.01);
  trainer::AdamW fused(trainer::trainable_parameters(named), c);
  torch::optim::AdamW reference(
      theirs, torch::optim::AdamWOptions(kLr).betas({0.9, 0.999}).eps(1e-8).weight_decay(0.01));
  const double fused_s = time_of([&] { fused.step(kLr); });
  const double reference_s = time_of([&] { reference.step(); });
  std::printf(
      "adamw on %.1fM parameters: fused %.2f ms/step, torch::optim::AdamW %.2f ms/step, "
      "speedup %.2fx\n",
      numel / 1e6, fused_s * 1e3, reference_s * 1e3, reference_s / fused_s);
}

int run(int argc, char** argv) {
  auto flags =
      bench::parse_flags(argc, argv,
                         {{"vocab", "151669"},
                          {"hidden", "64"},
                          {"layers", "4"},
                          {"tied", "1"},
                          {"steps", "2"},
                          {"threads", "0"},
                          {"cases", "sft:1x512,sft:1x2048,dpo:1x512,dpo:2x1024,dpo:1x2048"},
                          {"child", ""},
                          {"dir", ""},
                          {"method", ""},
                          {"checkpointing", "0"}});
  core::configure_runtime(std::stoi(flags.at("threads")));
  const int steps = std::stoi(flags.at("steps"));
  if (!flags.at("child").empty())
    return run_child(flags.at("dir"), flags.at("method"), steps, flags.at("checkpointing") == "1");

  models::ModelSpec s =
      bench::llama_spec(std::stoll(flags.at("hidden")), std::stoll(flags.at("layers")), 4, 2,
                        std::stoll(flags.at("hidden")) * 8 / 3);
  s.vocab_size = std::stoll(flags.at("vocab"));
  s.tie_word_embeddings = flags.at("tied") == "1";
  s.max_positions = 2048;
  torch::manual_seed(0);
  models::CausalLM model(s);
  int64_t params = 0;
  for (const auto& p : model.parameters()) params += p.numel();
  std::printf(
      "bench_long_context: Llama %.1fM params (vocab %lld, hidden %lld, %lld layers, %s), "
      "%d threads, %d timed steps after one warm-up, each side in its own process\n",
      params / 1e6, static_cast<long long>(s.vocab_size), static_cast<long long>(s.hidden_size),
      static_cast<long long>(s.num_layers), s.tie_word_embeddings ? "tied" : "untied",
      at::get_num_threads(), steps);
  const fs::path dir = fs::temp_directory_path() / "rudder-bench-long-context";
  models::save_hf_model(model, dir.string());
  const std::string self = fs::canonical("/proc/self/exe").string();
  const std::string common =
      " --steps " + std::to_string(steps) + " --threads " + std::to_string(at::get_num_threads());

  std::printf("%-12s %-8s %9s %10s %10s %9s %10s\n", "case", "side", "s/step", "peak MiB",
              "base MiB", "speedup", "peak/py");
  std::istringstream list(flags.at("cases"));
  for (std::string text; std::getline(list, text, ',');) {
    const Case c = parse_case(text);
    torch::manual_seed(1);
    at::Tensor loss_mask = torch::ones({c.rows(), c.seq}, torch::kLong);  // [rows, seq]
    loss_mask.narrow(1, 0, c.seq / 4).zero_();                            // the prompt
    models::save_safetensors((dir / "bench_batch.safetensors").string(),
                             {{"input_ids", torch::randint(0, s.vocab_size, {c.rows(), c.seq})},
                              {"attention_mask", torch::ones({c.rows(), c.seq}, torch::kLong)},
                              {"position_ids", torch::arange(c.seq).repeat({c.rows(), 1})},
                              {"loss_mask", loss_mask}});
    const std::string child = self + " --child 1 --dir " + dir.string() + " --method " + c.method +
                              common + " --checkpointing ";
    const Figures ours = parse_figures(bench::run_lines(child + "0"), "rudder");
    const Figures ckpt = parse_figures(bench::run_lines(child + "1"), "rudder");
    std::ostringstream args;
    args << dir.string() << " " << c.method << " " << steps << " " << at::get_num_threads() << " "
         << kLr;
    const Figures py = parse_figures(
        bench::run_python("long_context_step.py", args.str(), bench::Allocator::kDefault),
        "python");
    if (std::abs(ours.loss - py.loss) > 1e-3 * std::max(1.0, std::abs(py.loss)) ||
        std::abs(ckpt.loss - ours.loss) > 1e-4 * std::max(1.0, std::abs(ours.loss))) {
      throw std::runtime_error(c.name() + ": first-step losses differ: rudder " +
                               std::to_string(ours.loss) + ", checkpointed " +
                               std::to_string(ckpt.loss) + ", python " + std::to_string(py.loss));
    }
    auto row = [&](const char* side, const Figures& f) {
      std::printf("%-12s %-8s %9.3f %10.0f %10.0f %8.2fx %10.2f\n", c.name().c_str(), side,
                  f.step_s, f.peak_mib, f.base_mib, py.step_s / f.step_s, f.peak_mib / py.peak_mib);
    };
    row("rudder", ours);
    row("ckpt", ckpt);
    row("python", py);
    std::printf(
        "%-12s checkpointing: peak %.2f of rudder's (above the resident base: %.2f), time %.2f "
        "of rudder's\n",
        c.name().c_str(), ckpt.peak_mib / ours.peak_mib,
        (ckpt.peak_mib - ckpt.base_mib) / (ours.peak_mib - ours.base_mib),
        ckpt.step_s / ours.step_s);
    std::fflush(stdout);
  }
  time_adamw(model);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return bench::main_guard("bench_long_context", [&] { return run(argc, argv); });
}
