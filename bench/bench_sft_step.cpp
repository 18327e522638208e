// One SFT step (forward, masked token NLL, backward, AdamW at a constant learning rate) of the
// ~9M-parameter Llama at batch 8 x seq 128, beside the same step in PyTorch-Python
// (bench/python/sft_step.py) on the same weights and batch, in one run, plainly and under
// Rudder's allocator settings. Checks that both sides agree on the losses of the first
// bench::kCheckSteps steps and on the weights after them, then prints seconds per step and
// Rudder's speedup. Then SFT with sft.packing beside unpacked SFT on the same examples of mixed
// lengths (Rudder both sides: real tokens per second of the whole step).
//   bench_sft_step [--batch 8] [--seq 128] [--seconds 5] [--lr 1e-4] [--threads N]
#include <cstdio>
#include <filesystem>
#include <iostream>

#include <torch/torch.h>

#include "bench/bench_util.h"
#include "core/runtime.h"
#include "data/collate.h"
#include "models/causal_lm.h"
#include "models/hf_io.h"
#include "models/logprobs.h"
#include "models/safetensors.h"
#include "trainer/optimizer.h"

using namespace rudder;

namespace {

// Seconds of one SFT step (forward, NLL over response tokens, backward, AdamW) on batch `b`.
double packed_or_padded_step(models::CausalLM& model, trainer::AdamW& optimizer,
                             const data::Batch& b, double lr) {
  optimizer.zero_grad();
  models::ForwardInput input =
      models::batch_input(b.input_ids, b.attention_mask, b.position_ids, torch::kCPU);
  input.segment_ids = b.segment_ids;  // undefined when padded; right_padded is ignored when not
  at::Tensor logp = models::token_logprobs(model.forward(input), b.input_ids);  // [rows, T]
  if (b.segment_ids.defined()) logp = logp.masked_fill(b.position_ids == 0, 0.0);
  const at::Tensor loss = -models::masked_sum(logp, b.loss_mask).sum() / b.loss_mask.sum();
  loss.backward();
  optimizer.step(lr);
  return loss.item<double>();
}

// 16 examples with lengths uniform in [seq/8, seq] (a quarter prompt): padded to the longest,
// or packed into rows of `seq` tokens.
void packing_rows(models::CausalLM& model, int64_t seq, double lr, const bench::Timing& timing) {
  std::vector<data::TokenizedPair> examples;
  int64_t real = 0;
  for (int i = 0; i < 16; ++i) {
    const int64_t len = torch::randint(seq / 8, seq + 1, {1}).item<int64_t>();
    const at::Tensor ids = torch::randint(0, 260, {len}, torch::kLong);
    const std::vector<int64_t> all(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + len);
    examples.push_back({{all.begin(), all.begin() + len / 4}, {all.begin() + len / 4, all.end()}});
    real += len;
  }
  const data::Batch padded = data::collate(examples, 0), packed = data::pack(examples, 0, seq);
  trainer::AdamW optimizer = bench::make_adamw(model);
  const double padded_s = bench::time_steps(
      [&] { return packed_or_padded_step(model, optimizer, padded, lr); }, timing);
  const double packed_s = bench::time_steps(
      [&] { return packed_or_padded_step(model, optimizer, packed, lr); }, timing);
  std::printf("packing: 16 examples, %lld real tokens; padded %lld x %lld, packed %lld x %lld\n",
              static_cast<long long>(real), static_cast<long long>(padded.input_ids.size(0)),
              static_cast<long long>(padded.input_ids.size(1)),
              static_cast<long long>(packed.input_ids.size(0)),
              static_cast<long long>(packed.input_ids.size(1)));
  std::printf("%-12s %14s %14s %9s\n", "layout", "s/step", "real tok/s", "vs padded");
  std::printf("%-12s %14.4f %14.0f %8.2fx\n", "padded", padded_s, real / padded_s, 1.0);
  std::printf("%-12s %14.4f %14.0f %8.2fx\n", "packed", packed_s, real / packed_s,
              padded_s / packed_s);
}

int run(int argc, char** argv) {
  const auto flags = bench::parse_flags(
      argc, argv,
      {{"batch", "8"}, {"seq", "128"}, {"seconds", "5"}, {"lr", "1e-4"}, {"threads", "0"}});
  const int64_t batch = std::stoll(flags.at("batch")), seq = std::stoll(flags.at("seq"));
  const bench::Timing timing{1, std::stod(flags.at("seconds"))};
  const double lr = std::stod(flags.at("lr"));
  core::configure_runtime(std::stoi(flags.at("threads")));
  torch::manual_seed(0);
  models::CausalLM model(bench::llama_10m());
  int64_t params = 0;
  for (const auto& p : model.parameters()) params += p.numel();
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "rudder-bench-sft";
  models::save_hf_model(model, dir.string());
  const models::TensorMap data = bench::random_batch(batch, seq);
  models::save_safetensors((dir / "bench_batch.safetensors").string(), data);
  const at::Tensor& ids = data.at("input_ids");  // [batch, seq]
  const at::Tensor& mask = data.at("attention_mask");
  const at::Tensor& pos = data.at("position_ids");
  const at::Tensor& labels = data.at("loss_mask");

  trainer::AdamW optimizer = bench::make_adamw(model);
  auto step = [&] {
    optimizer.zero_grad();
    const at::Tensor logp = models::token_logprobs(model.forward({ids, mask, pos}), ids);
    const at::Tensor loss =
        -models::masked_sum(logp, labels).sum() / labels.narrow(1, 1, seq - 1).sum();
    loss.backward();
    optimizer.step(lr);
    return loss.item<double>();
  };

  std::cout << "bench_sft_step: Llama " << params / 1e6 << "M parameters, batch " << batch
            << " x seq " << seq << ", lr " << lr << " (constant), " << at::get_num_threads()
            << " threads, " << timing.seconds << " s per measurement\n";
  models::TensorMap initial, trained;
  const bench::StepRun ours = bench::run_rudder_steps(step, model, timing, &initial, &trained);
  const bench::PythonFigures python =
      bench::run_python_steps("sft_step.py", dir.string(), lr, timing, ours, initial, trained);
  char tokens[32];
  std::snprintf(tokens, sizeof(tokens), "%14.0f", static_cast<double>(batch * seq) / ours.step_s);
  bench::print_table_header("batch", "s/step", "rudder tok/s");
  bench::print_table_row(std::to_string(batch), ours.step_s, python, /*rate=*/false, tokens);
  packing_rows(model, seq, lr, timing);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return bench::main_guard("bench_sft_step", [&] { return run(argc, argv); });
}
