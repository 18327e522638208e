// The trainer's state and steps, shared by the loop (trainer.cpp) and checkpointing
// (trainer_resume.cpp).
#pragma once

#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "trainer/checkpoint.h"
#include "trainer/detail/train_metrics.h"
#include "trainer/optimizer.h"
#include "trainer/trainer.h"

namespace rudder::trainer {

/// Where checkpoints of `c` go.
std::string checkpoint_dir(const ExperimentConfig& c);

class Trainer::Impl {
 public:
  using Clock = std::chrono::steady_clock;

  Impl(const ExperimentConfig& config, algorithms::Algorithm& algorithm,
       algorithms::BatchSource& source, core::ProcessGroup& group, TrainOptions options)
      : config_(config),
        algorithm_(algorithm),
        source_(source),
        group_(group),
        options_(std::move(options)) {}

  TrainResult run();

 private:
  void prepare();
  void set_precision();
  uint64_t total_steps() const;
  void build_optimizer();
  // Checkpoints (trainer_resume.cpp).
  void restore(const std::string& path);
  void restore_rank_state(const CheckpointState& s, const std::string& path);
  std::string save();
  // The loop (trainer.cpp).
  bool stop_agreed();
  std::vector<std::vector<size_t>> agreed_updates(const algorithms::Batch& batch);
  void start_iteration_if_due();
  bool run_update(const algorithms::Batch& batch, const std::vector<size_t>& items);
  algorithms::StepStats accumulate(const algorithms::Batch& batch, const std::vector<size_t>& items,
                                   double total_units, std::string* violation);
  void apply_update(double loss, double grad_norm, double lr);
  void report_update(const algorithms::StepStats& stats, const std::vector<double>& reduced,
                     double total_units, double lr, double grad_norm, double seconds);
  bool finish_batch(uint64_t first_step_of_batch, bool stop);
  void allreduce_grads();
  void progress(double loss, double lr, double grad_norm, double tps, double eta);

  ExperimentConfig config_;
  algorithms::Algorithm& algorithm_;
  algorithms::BatchSource& source_;
  core::ProcessGroup& group_;
  TrainOptions options_;
  std::unique_ptr<AdamW> optimizer_;
  uint64_t step_ = 0;
  uint64_t total_ = 0;
  int64_t iteration_ = -1;  // the iteration whose start hook ran last (-1: none yet)
  uint64_t first_step_ = 0;
  uint64_t nonfinite_streak_ = 0;
  uint64_t last_saved_step_ = 0;  // 0: none written by this process
  double peak_flops_ = 0;
  c10::DeviceType device_type_ = c10::DeviceType::CPU;  // of the trainable module
  Clock::time_point run_start_;
  TrainResult result_;
  detail::TrainMetrics metrics_;
  bool tty_ = ::isatty(2) != 0;
};

}  // namespace rudder::trainer
