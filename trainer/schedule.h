// Learning-rate schedules: linear warmup from 0, then constant, linear decay or cosine decay to
// min_lr_ratio x peak at the last step (as transformers' get_*_schedule_with_warmup).
#pragma once

#include <cstdint>

namespace rudder {
class ScheduleConfig;
}

namespace rudder::trainer {

/// The learning rate for optimizer step `step` (0-based) of `total_steps`, peak `peak_lr`.
double learning_rate(const ScheduleConfig& config, double peak_lr, int64_t step,
                     int64_t total_steps);

}  // namespace rudder::trainer
