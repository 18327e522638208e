// The trainer's Prometheus series, the measured peak it reports model FLOPs utilization
// against, and how progress lines print durations.
#pragma once

#include <string>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "core/metrics.h"

namespace rudder::trainer::detail {

/// The trainer's Prometheus series (created once per process by the registry).
struct TrainMetrics {
  core::Gauge step = core::gauge("rudder_train_step", "Optimizer steps completed.");
  core::Gauge loss = core::gauge("rudder_train_loss",
                                 "Training loss of the last step (mean over its loss units).");
  core::Gauge lr = core::gauge("rudder_train_learning_rate", "Learning rate of the last step.");
  core::Gauge grad_norm =
      core::gauge("rudder_train_grad_norm", "Global gradient norm before clipping.");
  core::Gauge tokens_per_second =
      core::gauge("rudder_train_tokens_per_second", "Real tokens processed per second.");
  core::Gauge mfu =
      core::gauge("rudder_train_model_flops_utilization",
                  "Model FLOPs per second over the measured GEMM peak of the training "
                  "device and compute dtype (0-1).");
  core::Gauge last_step_time = core::gauge("rudder_train_last_step_timestamp_seconds",
                                           "Unix time at which the last step completed.");
  core::Counter skipped =
      core::counter("rudder_train_skipped_steps_total",
                    "Steps skipped because the loss or gradients were not finite.");
  core::Histogram step_seconds =
      core::histogram("rudder_train_step_duration_seconds", "Wall time of one optimizer step.",
                      core::latency_buckets());
  core::Histogram checkpoint_seconds =
      core::histogram("rudder_checkpoint_duration_seconds", "Wall time of writing one checkpoint.",
                      core::latency_buckets());
};

/// Measured GEMM peak (FLOP/s) on `device` in `dtype` (the training compute dtype), for model
/// FLOPs utilization: 512x512 products on CPU, 4096x4096 on CUDA (synchronized), for ~0.2 s.
double measure_peak_flops(const c10::Device& device, c10::ScalarType dtype);

/// "1h2m3s", "4m5s", "6s".
std::string format_duration(double seconds);

}  // namespace rudder::trainer::detail
