#include "trainer/schedule.h"

#include <algorithm>
#include <cmath>

#include "proto/rudder.pb.h"

namespace rudder::trainer {

double learning_rate(const ScheduleConfig& c, double peak_lr, int64_t step, int64_t total_steps) {
  const auto warmup = static_cast<int64_t>(c.warmup_steps());
  if (step < warmup)
    return peak_lr * static_cast<double>(step + 1) / static_cast<double>(warmup + 1);
  if (c.kind() == "constant") return peak_lr;
  const int64_t decay_steps = std::max<int64_t>(1, total_steps - warmup);
  const double progress =
      std::clamp(static_cast<double>(step - warmup) / static_cast<double>(decay_steps), 0.0, 1.0);
  const double floor = c.min_lr_ratio();
  const double shape =
      c.kind() == "linear" ? 1.0 - progress : 0.5 * (1.0 + std::cos(M_PI * progress));
  return peak_lr * (floor + (1.0 - floor) * shape);
}

}  // namespace rudder::trainer
