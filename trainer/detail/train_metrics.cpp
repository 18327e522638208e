#include "trainer/detail/train_metrics.h"

#include <chrono>
#include <sstream>

#include <torch/torch.h>

namespace rudder::trainer::detail {

using Clock = std::chrono::steady_clock;

std::string format_duration(double seconds) {
  const auto s = static_cast<long>(seconds);
  std::ostringstream out;
  if (s >= 3600) out << s / 3600 << "h";
  if (s >= 60) out << (s % 3600) / 60 << "m";
  out << s % 60 << "s";
  return out.str();
}

double measure_peak_flops() {
  torch::NoGradGuard no_grad;
  const at::Tensor a = torch::randn({512, 512}), b = torch::randn({512, 512});
  torch::mm(a, b);
  int n = 0;
  const auto start = Clock::now();
  double elapsed = 0;
  while (elapsed < 0.2) {
    torch::mm(a, b);
    ++n;
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  }
  return 2.0 * 512 * 512 * 512 * n / elapsed;
}

}  // namespace rudder::trainer::detail
