#include "bench/bench_util.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <stdexcept>

#include <torch/torch.h>

#include "models/causal_lm.h"

namespace rudder::bench {

namespace {

// glibc tunables with the values core/runtime.cpp passes to mallopt (M_MMAP_THRESHOLD 32 MiB,
// M_TRIM_THRESHOLD 1 GiB); a fixed mmap threshold also turns glibc's dynamic one off, as
// mallopt does. Keep the two in step.
constexpr const char* kRudderMallocEnv =
    "GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824";

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

models::TensorMap copy_weights(const models::CausalLM& model) {
  models::TensorMap out;
  for (const auto& [name, t] : model.state_dict())
    out.emplace(name, t.detach().to(torch::kCPU, /*non_blocking=*/false, /*copy=*/true));
  return out;
}

std::string join(const std::vector<double>& values) {
  std::ostringstream out;
  out.precision(7);
  for (size_t i = 0; i < values.size(); ++i) out << (i ? " " : "") << values[i];
  return out.str();
}

// The figures of step_bench.py's line "python losses=L1,L2,... step_s=S".
StepRun parse_python_steps(const std::vector<std::string>& lines, const std::string& script) {
  StepRun r;
  bool parsed = false;
  for (const auto& line : lines) {
    std::istringstream in(line);
    std::string word;
    if (!(in >> word) || word != "python") continue;
    while (in >> word) {
      if (word.rfind("losses=", 0) == 0) {
        std::istringstream list(word.substr(7));
        for (std::string loss; std::getline(list, loss, ',');) r.losses.push_back(std::stod(loss));
      }
      if (word.rfind("step_s=", 0) == 0) {
        r.step_s = std::stod(word.substr(7));
        parsed = true;
      }
    }
  }
  if (!parsed) throw std::runtime_error("no figures from bench/python/" + script);
  return r;
}

// How far apart two sides' weights are after training from the same `initial` weights.
struct WeightDiff {
  double update_rdiff = 0;  // |w_a - w_b| / |w_a - initial| over all parameters (L2)
  double max_abs = 0;       // max |w_a - w_b| over all elements
  std::string missing;      // names b lacks or shapes differently
};

WeightDiff compare_weights(const models::TensorMap& initial, const models::TensorMap& a,
                           const models::TensorMap& b) {
  WeightDiff d;
  double diff_sq = 0, update_sq = 0;
  for (const auto& [name, wa] : a) {
    const auto it = b.find(name);
    if (it == b.end() || !it->second.sizes().equals(wa.sizes())) {
      d.missing += " '" + name + "'";
      continue;
    }
    const at::Tensor diff = (wa - it->second).to(torch::kDouble);
    diff_sq += diff.pow(2).sum().item<double>();
    update_sq += (wa - initial.at(name)).to(torch::kDouble).pow(2).sum().item<double>();
    d.max_abs = std::max(d.max_abs, diff.abs().max().item<double>());
  }
  // No update at all is a failure too (NaN fails every comparison).
  d.update_rdiff = update_sq > 0 ? std::sqrt(diff_sq / update_sq) : std::nan("");
  return d;
}

// Throws unless both sides' losses agree within kLossRtol and their weight updates within
// kUpdateRtol (NaN never agrees); prints the figures either way. With `warn_only` (see
// kUpdateRtol) a disagreement prints a warning instead.
void check_agreement(const char* who, const StepRun& rudder, const StepRun& python,
                     const models::TensorMap& initial, const models::TensorMap& trained,
                     const models::TensorMap& python_trained, bool warn_only) {
  double loss_rdiff = rudder.losses.size() == python.losses.size() ? 0 : std::nan("");
  for (size_t i = 0; i < rudder.losses.size() && i < python.losses.size(); ++i) {
    const double d = std::abs(rudder.losses[i] - python.losses[i]) / std::abs(rudder.losses[i]);
    if (!(d <= loss_rdiff)) loss_rdiff = d;
  }
  const WeightDiff w = compare_weights(initial, trained, python_trained);
  std::printf(
      "check (%s): losses rudder [%s] python [%s]: max rel diff %.2e (limit %.0e); weights after "
      "%d steps: update rel diff %.2e (limit %.0e), max |diff| %.2e\n",
      who, join(rudder.losses).c_str(), join(python.losses).c_str(), loss_rdiff, kLossRtol,
      kCheckSteps, w.update_rdiff, kUpdateRtol, w.max_abs);
  // Finite differences beyond the limits are what `warn_only` forgives; NaN, a missing update,
  // another number of losses or missing weights always stop the benchmark.
  std::string why;
  bool broken = !w.missing.empty() || std::isnan(loss_rdiff) || std::isnan(w.update_rdiff);
  if (!(loss_rdiff <= kLossRtol)) why += "the losses differ; ";
  if (!(w.update_rdiff <= kUpdateRtol)) why += "the weight updates differ (or are none); ";
  if (!w.missing.empty()) why += "Python's weights lack or reshape" + w.missing + "; ";
  for (const double loss : rudder.losses) broken = broken || !std::isfinite(loss);
  for (const double loss : python.losses) broken = broken || !std::isfinite(loss);
  if (!why.empty() && warn_only && !broken) {
    std::printf("check (%s): WARNING, outside the float32 CPU limits: %s\n", who, why.c_str());
  } else if (!why.empty() || broken) {
    throw std::runtime_error(std::string("Rudder and Python (") + who + ") do not train alike: " +
                             why + "the speed comparison would compare different work");
  }
}

}  // namespace

double time_steps(const std::function<double()>& step, const Timing& timing) {
  int n = 0;
  const auto start = std::chrono::steady_clock::now();
  while (n < timing.steps || seconds_since(start) < timing.seconds) {
    step();
    ++n;
  }
  return seconds_since(start) / n;
}

models::ModelSpec llama_spec(int64_t hidden, int64_t layers, int64_t heads, int64_t kv_heads,
                             int64_t intermediate) {
  models::ModelSpec s;
  s.vocab_size = 260;
  s.hidden_size = hidden;
  s.num_layers = layers;
  s.num_heads = heads;
  s.num_kv_heads = kv_heads;
  s.head_dim = hidden / heads;
  s.intermediate_size = intermediate;
  s.max_positions = 512;
  return s;
}

std::vector<std::string> split_list(const std::string& list) {
  std::vector<std::string> items;
  std::istringstream in(list);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) items.push_back(item);
  return items;
}

StepDevice step_device(const std::string& device, const std::string& dtype) {
  StepDevice where;
  if (device != "cpu" && device.rfind("cuda", 0) != 0)
    throw std::invalid_argument("--device must be cpu or cuda[:N], got '" + device + "'");
  where.device = c10::Device(device);
  if (where.device.is_cuda() && !torch::cuda::is_available())
    throw std::invalid_argument("--device " + device + ": libtorch sees no CUDA device");
  if (dtype != "float32" && dtype != "bf16")
    throw std::invalid_argument("--dtype must be float32 or bf16, got '" + dtype + "'");
  where.bf16 = dtype == "bf16";
  return where;
}

std::map<std::string, std::string> parse_flags(int argc, char** argv,
                                               std::map<std::string, std::string> fallback) {
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag.rfind("--", 0) != 0 || fallback.count(flag.substr(2)) == 0 || i + 1 == argc) {
      throw std::invalid_argument("unknown flag or missing value: '" + flag + "'");
    }
    fallback[flag.substr(2)] = argv[i + 1];
  }
  return fallback;
}

int main_guard(const char* name, const std::function<int()>& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "%s: FAILED: %s\n", name, e.what());
    return 1;
  }
}

std::vector<std::string> run_lines(const std::string& command) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("cannot run " + command);
  std::vector<std::string> lines;
  char line[1024];
  while (fgets(line, sizeof(line), pipe) != nullptr) lines.emplace_back(line);
  if (pclose(pipe) != 0) {
    std::string text;
    for (const auto& l : lines) text += l;
    throw std::runtime_error("failed: " + command + "\n" + text +
                             "(is python3-torch installed? make bench installs it)");
  }
  return lines;
}

std::vector<std::string> run_python(const std::string& script, const std::string& args,
                                    Allocator allocator) {
  const std::string env =
      allocator == Allocator::kRudder ? std::string(kRudderMallocEnv) + " " : "";
  // RUDDER_BENCH_PYTHON: another interpreter (a GPU machine's PyTorch install).
  const char* chosen = std::getenv("RUDDER_BENCH_PYTHON");
  const std::string python = chosen != nullptr && *chosen != '\0' ? chosen : "/usr/bin/python3";
  return run_lines(env + python + " " + RUDDER_SOURCE_DIR + "/bench/python/" + script + " " + args);
}

void print_table_header(const std::string& label, const std::string& unit,
                        const std::string& extra) {
  std::printf("%-12s %14s %14s %8s %22s %8s %s\n", label.c_str(), ("rudder " + unit).c_str(),
              ("python " + unit).c_str(), "speedup", ("python+malloc " + unit).c_str(), "speedup",
              extra.c_str());
}

void print_table_row(const std::string& label, double rudder, const PythonFigures& python,
                     bool rate, const std::string& extra) {
  const char* format = rate ? "%-12s %14.0f %14.0f %7.2fx %22.0f %7.2fx %s\n"
                            : "%-12s %14.4f %14.4f %7.2fx %22.4f %7.2fx %s\n";
  if (std::isnan(python[0]) && std::isnan(python[1])) {  // no baseline was run
    std::printf(
        rate ? "%-12s %14.0f %14s %8s %22s %8s %s\n" : "%-12s %14.4f %14s %8s %22s %8s %s\n",
        label.c_str(), rudder, "-", "-", "-", "-", extra.c_str());
    return;
  }
  auto speedup = [&](double p) { return rate ? rudder / p : p / rudder; };
  std::printf(format, label.c_str(), rudder, python[0], speedup(python[0]), python[1],
              speedup(python[1]), extra.c_str());
}

OptimizerConfig adamw_defaults() {
  OptimizerConfig c;
  c.set_beta1(0.9);
  c.set_beta2(0.999);
  c.set_eps(1e-8);
  c.set_weight_decay(0.0);
  return c;
}

trainer::AdamW make_adamw(models::CausalLM& model) {
  std::vector<std::pair<std::string, at::Tensor>> named;
  for (const auto& item : model.named_parameters(true))
    named.emplace_back(item.key(), item.value());
  return trainer::AdamW(trainer::trainable_parameters(named), adamw_defaults());
}

StepRun run_rudder_steps(const std::function<double()>& step, const models::CausalLM& model,
                         const Timing& timing, models::TensorMap* initial,
                         models::TensorMap* trained) {
  StepRun r;
  *initial = copy_weights(model);
  for (int i = 0; i < kCheckSteps; ++i) r.losses.push_back(step());
  *trained = copy_weights(model);
  r.step_s = time_steps(step, timing);
  return r;
}

models::TensorMap random_batch(int64_t rows, int64_t seq) {
  at::Tensor loss_mask = torch::ones({rows, seq}, torch::kLong);  // [rows, seq]
  loss_mask.narrow(1, 0, seq / 4).zero_();
  return {{"input_ids", torch::randint(0, 260, {rows, seq})},
          {"attention_mask", torch::ones({rows, seq}, torch::kLong)},
          {"position_ids", torch::arange(seq).repeat({rows, 1})},
          {"loss_mask", loss_mask}};
}

PythonFigures run_python_steps(const std::string& script, const std::string& dir, double lr,
                               const Timing& timing, const StepRun& rudder,
                               const models::TensorMap& initial, const models::TensorMap& trained,
                               const StepDevice& where) {
  const std::string out = dir + "/python_trained.safetensors";
  std::ostringstream args;
  args.precision(17);
  args << dir << " " << lr << " " << kCheckSteps << " " << timing.steps << " " << timing.seconds
       << " " << at::get_num_threads() << " " << out << " " << where.device.str() << " "
       << (where.bf16 ? "bf16" : "float32");
  const bool warn_only = where.bf16 || !where.device.is_cpu();
  PythonFigures figures{};
  for (size_t a = 0; a < kAllocators.size(); ++a) {
    std::filesystem::remove(out);  // so a stale file cannot pass the check
    const StepRun r = parse_python_steps(run_python(script, args.str(), kAllocators[a]), script);
    check_agreement(kAllocators[a] == Allocator::kRudder ? "python, rudder malloc" : "python",
                    rudder, r, initial, trained, models::load_safetensors(out).tensors, warn_only);
    figures[a] = r.step_s;
  }
  return figures;
}

}  // namespace rudder::bench
