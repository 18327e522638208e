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

double measure_peak_flops(const c10::Device& device, c10::ScalarType dtype) {
  torch::NoGradGuard no_grad;
  const int64_t n = device.is_cuda() ? 4096 : 512;
  const auto options = torch::TensorOptions().device(device).dtype(dtype);
  const at::Tensor a = torch::randn({n, n}, options), b = torch::randn({n, n}, options);
  // The CUDA queue is drained before the clock starts and before it is read.
  auto sync = [&] {
    if (device.is_cuda()) torch::cuda::synchronize(device.index());
  };
  torch::mm(a, b);
  sync();
  int count = 0;
  const auto start = Clock::now();
  double elapsed = 0;
  while (elapsed < 0.2) {
    for (int k = 0; k < (device.is_cuda() ? 16 : 1); ++k, ++count) torch::mm(a, b);
    sync();
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  }
  const auto size = static_cast<double>(n);
  return 2.0 * size * size * size * count / elapsed;
}

}  // namespace rudder::trainer::detail
