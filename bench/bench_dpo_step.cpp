// One DPO step (chosen and rejected in one concatenated forward, summed response log-probs,
// sigmoid loss against precomputed reference log-probs, backward, AdamW at a constant learning
// rate) for a ~9M and a ~85M Llama, beside the same step in PyTorch-Python
// (bench/python/dpo_step.py) on the same weights and batch, in one run, plainly and under
// Rudder's allocator settings. Checks that both sides agree on the losses of the first
// bench::kCheckSteps steps and on the weights after them, then prints seconds per step, Rudder's
// speedup, its achieved GFLOP/s (6 x params x tokens) and MFU: that rate over the peak of a
// large matrix product on the same device and dtype (trainer::detail::measure_peak_flops).
// --device cuda runs both sides on the GPU; --dtype bf16 runs the forward and loss under bf16
// autocast with float32 weights and optimizer state on both sides (Rudder's
// training.bf16_autocast, torch.autocast in Python). Off the float32 CPU the agreement check
// prints its figures and warns when they pass the float32 limits, rather than stopping.
// --profile PATH writes where Rudder's step spends its time (bench/step_profile.h), one file per
// size (PATH with the size before its extension), after the timed steps.
//   bench_dpo_step [--pairs 4] [--seq 128] [--steps 3] [--seconds 2] [--lr 1e-5] [--threads N]
//                  [--device cpu|cuda] [--dtype float32|bf16] [--sizes 10M,100M] [--profile PATH]
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include <torch/torch.h>

#include "algorithms/dpo_loss.h"
#include "bench/bench_util.h"
#include "bench/step_profile.h"
#include "core/runtime.h"
#include "models/autocast.h"
#include "models/causal_lm.h"
#include "models/hf_io.h"
#include "models/logprobs.h"
#include "models/safetensors.h"
#include "trainer/detail/train_metrics.h"
#include "trainer/optimizer.h"

using namespace rudder;

namespace {

struct Size {
  const char* name;
  int64_t hidden, layers, heads, kv_heads, intermediate;
};

struct Result {
  int64_t params = 0;
  double ours = 0;
  bench::PythonFigures python{};
};

Result run_size(const Size& size, int64_t pairs, int64_t seq, const bench::Timing& timing,
                double lr, const bench::StepDevice& where, const std::string& profile) {
  torch::manual_seed(0);
  const models::ModelSpec s =
      bench::llama_spec(size.hidden, size.layers, size.heads, size.kv_heads, size.intermediate);
  models::CausalLM model(s);
  Result r;
  model.to(where.device);
  for (const auto& p : model.parameters()) r.params += p.numel();
  const auto dir =
      std::filesystem::temp_directory_path() / (std::string("rudder-bench-dpo-") + size.name);
  models::save_hf_model(model, dir.string());
  models::TensorMap data = bench::random_batch(2 * pairs, seq);  // chosen rows, then rejected
  const at::Tensor ref_c = (-torch::rand({pairs}, torch::kDouble) * 10 - 500).to(torch::kFloat);
  const at::Tensor ref_r = (-torch::rand({pairs}, torch::kDouble) * 10 - 500).to(torch::kFloat);
  data.emplace("ref_chosen", ref_c);
  data.emplace("ref_rejected", ref_r);
  models::save_safetensors((dir / "bench_batch.safetensors").string(), data);
  const models::ForwardInput input =  // [2 pairs, seq], as algorithms::Dpo
      models::batch_input(data.at("input_ids"), data.at("attention_mask"), data.at("position_ids"),
                          where.device);
  const at::Tensor& ids = input.input_ids;
  const at::Tensor labels = data.at("loss_mask").to(where.device);
  const at::Tensor ref_chosen = ref_c.to(where.device), ref_rejected = ref_r.to(where.device);

  trainer::AdamW optimizer = bench::make_adamw(model);
  algorithms::DpoLossOptions options;  // sigmoid, beta 0.1, as dpo_step.py
  auto step = [&] {
    optimizer.zero_grad();
    at::Tensor loss;
    {
      models::AutocastGuard autocast(where.device.type(), where.bf16);
      const at::Tensor seq_logp =  // [2 pairs]
          models::sequence_logprobs(model.forward(input), ids, labels);
      loss = algorithms::dpo_loss(seq_logp.narrow(0, 0, pairs), seq_logp.narrow(0, pairs, pairs),
                                  ref_chosen, ref_rejected, options)
                 .loss;
    }
    loss.backward();
    optimizer.step(lr);
    return loss.item<double>();  // waits for the device, as Python's loss.item()
  };
  models::TensorMap initial, trained;
  const bench::StepRun ours = bench::run_rudder_steps(step, model, timing, &initial, &trained);
  r.ours = ours.step_s;
  if (!profile.empty()) {
    const std::filesystem::path p(profile);
    const auto to =
        p.parent_path() / (p.stem().string() + "_" + size.name + p.extension().string());
    try {  // a profiler this libtorch lacks costs the profile, not the comparison
      bench::write_step_profile([&] { step(); }, bench::kCheckSteps, to.string());
      std::cout << "profile of Rudder's step: " << to.string() << "\n";
    } catch (const std::exception& e) {
      std::cout << "profile of Rudder's step: not written (" << e.what() << ")\n";
    }
  }
  r.python = bench::run_python_steps("dpo_step.py", dir.string(), lr, timing, ours, initial,
                                     trained, where);
  return r;
}

int run(int argc, char** argv) {
  const auto flags = bench::parse_flags(argc, argv,
                                        {{"pairs", "4"},
                                         {"seq", "128"},
                                         {"steps", "3"},
                                         {"seconds", "2"},
                                         {"lr", "1e-5"},
                                         {"threads", "0"},
                                         {"device", "cpu"},
                                         {"dtype", "float32"},
                                         {"sizes", "10M,100M"},
                                         {"profile", ""}});
  const int64_t pairs = std::stoll(flags.at("pairs")), seq = std::stoll(flags.at("seq"));
  const bench::Timing timing{std::stoi(flags.at("steps")), std::stod(flags.at("seconds"))};
  const double lr = std::stod(flags.at("lr"));
  core::configure_runtime(std::stoi(flags.at("threads")));
  const bench::StepDevice where = bench::step_device(flags.at("device"), flags.at("dtype"));
  const double peak = trainer::detail::measure_peak_flops(
      where.device, where.bf16 ? torch::kBFloat16 : torch::kFloat);
  std::cout << "bench_dpo_step: " << pairs << " pairs (" << 2 * pairs << " rows) x seq " << seq
            << ", lr " << lr << " (constant), " << at::get_num_threads() << " threads, "
            << "timed steps: at least " << timing.steps << " and " << timing.seconds << " s, "
            << "on " << where.device << " in " << (where.bf16 ? "bf16 autocast" : "float32")
            << "; peak (large matrix product): " << peak / 1e9 << " GFLOP/s\n";
  const std::vector<Size> sizes = {Size{"10M", 256, 12, 4, 2, 688},
                                   Size{"100M", 768, 12, 12, 12, 2048}};
  std::vector<std::pair<std::string, Result>> rows;
  for (const std::string& name : bench::split_list(flags.at("sizes"))) {
    const auto it =
        std::find_if(sizes.begin(), sizes.end(), [&](const Size& s) { return name == s.name; });
    if (it == sizes.end()) throw std::invalid_argument("--sizes: unknown size '" + name + "'");
    rows.emplace_back(name, run_size(*it, pairs, seq, timing, lr, where, flags.at("profile")));
  }
  bench::print_table_header("model", "s/step", "   params  rudder GF/s   MFU");
  for (const auto& [name, r] : rows) {
    const double flops = 6.0 * static_cast<double>(r.params) * static_cast<double>(2 * pairs * seq);
    char extra[96];
    std::snprintf(extra, sizeof(extra), "%8.1fM %12.1f %5.1f%%", r.params / 1e6,
                  flops / r.ours / 1e9, 100.0 * flops / r.ours / peak);
    bench::print_table_row(name, r.ours, r.python, /*rate=*/false, extra);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return bench::main_guard("bench_dpo_step", [&] { return run(argc, argv); });
}
