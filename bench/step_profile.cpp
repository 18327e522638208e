#include "bench/step_profile.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <vector>

#include <torch/csrc/autograd/profiler_kineto.h>
#include <torch/torch.h>

namespace rudder::bench {

namespace {

namespace kp = torch::autograd::profiler;
using torch::profiler::impl::ActivityType;
using torch::profiler::impl::ProfilerConfig;
using torch::profiler::impl::ProfilerState;

// Microseconds of an event: libtorch 1.x reports them directly, later versions in nanoseconds.
template <typename Event>
auto duration_us(const Event& e, int) -> decltype(static_cast<double>(e.durationNs()) / 1e3) {
  return static_cast<double>(e.durationNs()) / 1e3;
}
template <typename Event>
double duration_us(const Event& e, long) {
  return static_cast<double>(e.durationUs());
}

// The kind of a device kernel, from its name. Attention is tested first: its kernel names also
// carry the architecture tags of the matrix-product kernels.
std::string kernel_kind(std::string name) {
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  auto has = [&](std::initializer_list<const char*> parts) {
    return std::any_of(parts.begin(), parts.end(),
                       [&](const char* p) { return name.find(p) != std::string::npos; });
  };
  if (has({"fmha", "flash", "attention", "efficient_attention"})) return "attention";
  if (has({"gemm", "nvjet", "cutlass", "xmma", "cublas", "sm90_", "sm80_", "ampere_", "hopper"}))
    return "matrix products";
  if (has({"foreach", "multi_tensor", "adam"})) return "optimizer";
  if (has({"scatter", "gather", "index"})) return "elementwise and reductions";  // not "cat"
  if (has({"copy", "memcpy", "memset", "cat"})) return "copies and casts";
  if (has({"elementwise", "reduce", "softmax", "norm", "vectorized"}))
    return "elementwise and reductions";
  return "other";
}

struct Tally {
  int64_t calls = 0;
  double us = 0;
};

std::vector<std::pair<std::string, Tally>> by_time(const std::map<std::string, Tally>& m) {
  std::vector<std::pair<std::string, Tally>> rows(m.begin(), m.end());
  std::sort(rows.begin(), rows.end(),
            [](const auto& a, const auto& b) { return a.second.us > b.second.us; });
  return rows;
}

}  // namespace

void write_step_profile(const std::function<void()>& step, int steps, const std::string& path) {
  if (steps < 1) throw std::invalid_argument("write_step_profile: steps must be at least 1");
  const ProfilerConfig config(ProfilerState::KINETO);
  std::set<ActivityType> activities{ActivityType::CPU};
  if (torch::cuda::is_available()) activities.insert(ActivityType::CUDA);
  kp::prepareProfiler(config, activities);
  kp::enableProfiler(config, activities);
  try {
    for (int i = 0; i < steps; ++i) step();
  } catch (...) {
    kp::disableProfiler();
    throw;
  }
  const std::unique_ptr<kp::ProfilerResult> result = kp::disableProfiler();

  std::map<std::string, Tally> kernels, kinds, ops;
  double device_us = 0;
  for (const auto& e : result->events()) {
    const double us = duration_us(e, 0);
    if (e.deviceType() == c10::DeviceType::CPU) {
      auto& t = ops[e.name()];
      ++t.calls;
      t.us += us;
    } else {
      auto& k = kernels[e.name()];
      ++k.calls;
      k.us += us;
      auto& kind = kinds[kernel_kind(e.name())];
      ++kind.calls;
      kind.us += us;
      device_us += us;
    }
  }

  std::ostringstream out;
  char line[512];
  out << "Rudder's step under libtorch's profiler, " << steps << " step(s); times per step.\n";
  if (kernels.empty()) {
    out << "No device kernels recorded (no CUDA, or a libtorch without CUPTI): operators only.\n";
  } else {
    std::snprintf(line, sizeof(line), "\nDevice time: %.3f ms per step\n%-30s %10s %7s %9s\n",
                  device_us / 1e3 / steps, "kind", "ms/step", "share", "kernels");
    out << line;
    for (const auto& [kind, t] : by_time(kinds)) {
      std::snprintf(line, sizeof(line), "%-30s %10.3f %6.1f%% %9.1f\n", kind.c_str(),
                    t.us / 1e3 / steps, 100.0 * t.us / device_us,
                    static_cast<double>(t.calls) / steps);
      out << line;
    }
    std::snprintf(line, sizeof(line), "\n%10s %7s %9s %9s  %s\n", "ms/step", "share", "calls",
                  "us/call", "kernel");
    out << line;
    const auto rows = by_time(kernels);
    for (size_t i = 0; i < rows.size() && i < 40; ++i) {
      const auto& [name, t] = rows[i];
      std::snprintf(line, sizeof(line), "%10.3f %6.1f%% %9.1f %9.1f  %.150s\n", t.us / 1e3 / steps,
                    100.0 * t.us / device_us, static_cast<double>(t.calls) / steps,
                    t.us / static_cast<double>(t.calls), name.c_str());
      out << line;
    }
  }
  // Operators, by calls: time here includes the operators each one calls.
  std::vector<std::pair<std::string, Tally>> op_rows(ops.begin(), ops.end());
  std::sort(op_rows.begin(), op_rows.end(), [](const auto& a, const auto& b) {
    return a.second.calls != b.second.calls ? a.second.calls > b.second.calls : a.first < b.first;
  });
  std::snprintf(line, sizeof(line),
                "\nHost operators (time includes what each calls)\n%9s %12s  %s\n", "calls",
                "ms/step", "operator");
  out << line;
  for (size_t i = 0; i < op_rows.size() && i < 60; ++i) {
    const auto& [name, t] = op_rows[i];
    std::snprintf(line, sizeof(line), "%9.1f %12.3f  %.150s\n",
                  static_cast<double>(t.calls) / steps, t.us / 1e3 / steps, name.c_str());
    out << line;
  }

  const std::string tmp = path + ".tmp";
  {
    std::ofstream file(tmp, std::ios::binary | std::ios::trunc);
    file << out.str();
    if (!file.flush()) throw std::runtime_error("cannot write the profile to " + tmp);
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace rudder::bench
