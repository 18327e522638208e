// Helpers shared by the benchmarks: the benchmark models and flags, running the Python baseline
// as users run it and under Rudder's allocator settings, the comparison table, and the
// agreement check of the step benchmarks (losses of the first steps and the weights after them).
#pragma once

#include <array>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <c10/core/Device.h>

#include "models/model_spec.h"
#include "models/safetensors.h"
#include "proto/rudder.pb.h"
#include "trainer/optimizer.h"

namespace rudder::models {
class CausalLM;
}

namespace rudder::bench {

/// A Llama with the byte vocabulary (260) and 512 positions.
models::ModelSpec llama_spec(int64_t hidden, int64_t layers, int64_t heads, int64_t kv_heads,
                             int64_t intermediate);

/// The ~9M-parameter Llama of the forward, SFT and small DPO benchmarks.
inline models::ModelSpec llama_10m() { return llama_spec(256, 12, 4, 2, 688); }

/// "--name value" pairs; `fallback` values for the rest. Throws on an unknown flag.
std::map<std::string, std::string> parse_flags(int argc, char** argv,
                                               std::map<std::string, std::string> fallback);

/// The items of a comma-separated list ("10M,100M").
std::vector<std::string> split_list(const std::string& list);

/// Where a step benchmark runs: the device, and whether the forward and the loss run under bf16
/// autocast (float32 weights and optimizer state) rather than in float32.
struct StepDevice {
  c10::Device device{c10::kCPU};
  bool bf16 = false;
};

/// From --device (cpu, cuda or cuda:N) and --dtype (float32 or bf16); throws naming a bad value,
/// or cuda where libtorch sees no GPU.
StepDevice step_device(const std::string& device, const std::string& dtype);

/// Runs `body`, printing "<name>: <what>" and returning 1 for any exception it throws.
int main_guard(const char* name, const std::function<int()>& body);

/// Runs `command` (stderr merged into stdout) and returns its output lines; throws when it
/// cannot start or exits non-zero.
std::vector<std::string> run_lines(const std::string& command);

/// How the Python baseline's process allocates memory.
enum class Allocator {
  kDefault,  // glibc's defaults, as users run Python
  kRudder,   // glibc tunables equal to core::configure_runtime's mallopt calls
};

/// Both allocators, in the order the tables print them.
inline constexpr std::array<Allocator, 2> kAllocators = {Allocator::kDefault, Allocator::kRudder};
/// A Python figure under each allocator, indexed like kAllocators.
using PythonFigures = std::array<double, 2>;

/// The output lines of `/usr/bin/python3 bench/python/<script> <args>` (or $RUDDER_BENCH_PYTHON)
/// run under `allocator`; throws when it fails.
std::vector<std::string> run_python(const std::string& script, const std::string& args,
                                    Allocator allocator);

/// Prints the header of a comparison table: `label`, then Rudder's figure in `unit`, Python's,
/// Rudder's speedup, Python's under Rudder's allocator, Rudder's speedup; then `extra`.
void print_table_header(const std::string& label, const std::string& unit,
                        const std::string& extra = "");

/// One row of that table; `rate`: the figures are rates (higher is faster), else times.
void print_table_row(const std::string& label, double rudder, const PythonFigures& python,
                     bool rate, const std::string& extra = "");

// ---- Step benchmarks: train a few steps on both sides, check they agree, then time. ----

/// Optimizer steps whose losses and resulting weights both sides must agree on.
inline constexpr int kCheckSteps = 3;
/// Largest relative difference of a checked step's loss.
inline constexpr double kLossRtol = 1e-4;
/// Largest relative L2 difference of the weight updates after kCheckSteps steps:
/// |dw_rudder - dw_python| / |dw_rudder|, with dw = weights after - weights before.
inline constexpr double kUpdateRtol = 1e-3;
// Off the CPU in float32 (bf16 autocast, or a GPU's kernels, which pick their reduction orders
// per shape), both sides' sums differ in rounding, and AdamW's first updates (about lr times the
// gradient's sign) flip where a gradient is near zero: there the check prints its figures and a
// warning instead of stopping the benchmark.

/// torch.optim.AdamW's defaults (betas 0.9/0.999, eps 1e-8) without weight decay, as the Python
/// sides use (bench/python/step_bench.py).
OptimizerConfig adamw_defaults();

/// AdamW over every parameter of `model`.
trainer::AdamW make_adamw(models::CausalLM& model);

/// How long the timed part of a step benchmark runs: at least `steps` steps and `seconds`.
struct Timing {
  int steps = 1;
  double seconds = 0;
};

/// Mean seconds of `step` over at least timing.steps calls and timing.seconds.
double time_steps(const std::function<double()>& step, const Timing& timing);

/// One side's figures: the checked steps' losses and the mean seconds of the timed steps.
struct StepRun {
  std::vector<double> losses;
  double step_s = 0;
};

/// Rudder's side: copies `model`'s weights into `initial`, makes kCheckSteps calls of `step`
/// (which returns the loss), copies the weights into `trained`, then times `step`.
StepRun run_rudder_steps(const std::function<double()>& step, const models::CausalLM& model,
                         const Timing& timing, models::TensorMap* initial,
                         models::TensorMap* trained);

/// A batch of random byte tokens [rows, seq] as the step benchmarks save it: "input_ids",
/// "attention_mask" (all 1), "position_ids", and "loss_mask" (0 on the first quarter, the prompt).
models::TensorMap random_batch(int64_t rows, int64_t seq);

/// Python's side under each allocator: bench/python/<script> (see step_bench.py) trains
/// kCheckSteps steps from `dir`'s model.safetensors and bench_batch.safetensors at learning rate
/// `lr`, then times `timing`; returns its seconds per step. Throws std::runtime_error with the
/// figures when its losses or weights disagree with Rudder's (`rudder`, and `trained`, which
/// started from `initial`); off the float32 CPU a finite disagreement prints a warning instead
/// (see kUpdateRtol).
/// `where`: the device and dtype both sides run on.
PythonFigures run_python_steps(const std::string& script, const std::string& dir, double lr,
                               const Timing& timing, const StepRun& rudder,
                               const models::TensorMap& initial, const models::TensorMap& trained,
                               const StepDevice& where = {});

}  // namespace rudder::bench
