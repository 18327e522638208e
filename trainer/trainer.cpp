#include "trainer/trainer.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <sstream>

#include <torch/torch.h>

#include "core/error.h"
#include "core/log.h"
#include "core/metrics.h"
#include "data/sampler.h"
#include "trainer/checkpoint.h"
#include "trainer/optimizer.h"
#include "trainer/schedule.h"

namespace rudder::trainer {
namespace {

using core::str;
using Clock = std::chrono::steady_clock;

std::atomic<bool> g_stop{false};

std::string checkpoint_dir(const ExperimentConfig& c) {
  return c.checkpoint().dir().empty()
             ? (std::filesystem::path(c.output_dir()) / "checkpoints").string()
             : c.checkpoint().dir();
}

std::string format_duration(double seconds) {
  const auto s = static_cast<long>(seconds);
  std::ostringstream out;
  if (s >= 3600) out << s / 3600 << "h";
  if (s >= 60) out << (s % 3600) / 60 << "m";
  out << s % 60 << "s";
  return out.str();
}

// Measured peak of this machine's float32 GEMM, for model FLOPs utilization.
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

// The trainer's Prometheus series.
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
                  "Model FLOPs per second over the measured float32 GEMM peak (0-1).");
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

}  // namespace

void request_stop() { g_stop.store(true); }

class Trainer::Impl {
 public:
  Impl(const ExperimentConfig& config, algorithms::Algorithm& algorithm, core::ProcessGroup& group,
       TrainOptions options)
      : config_(config), algorithm_(algorithm), group_(group), options_(std::move(options)) {}

  TrainResult run();

 private:
  void validate_batching() const;
  void restore(const std::string& path, data::EpochSampler& sampler, AdamW& optimizer);
  std::string save(data::EpochSampler& sampler, AdamW& optimizer);
  void allreduce_grads(AdamW& optimizer);
  void progress(uint64_t step, uint64_t total, double loss, double lr, double grad_norm, double tps,
                double eta, bool force);

  ExperimentConfig config_;
  algorithms::Algorithm& algorithm_;
  core::ProcessGroup& group_;
  TrainOptions options_;
  uint64_t step_ = 0;
  TrainMetrics metrics_;
  bool tty_ = ::isatty(2) != 0;
};

void Trainer::Impl::validate_batching() const {
  const auto& t = config_.training();
  const uint64_t per_rank_multiple =
      static_cast<uint64_t>(t.micro_batch_size()) * group_.world_size();
  RUDDER_CHECK(t.global_batch_size() % per_rank_multiple == 0, "training.global_batch_size (",
               t.global_batch_size(), ") must be a multiple of micro_batch_size (",
               t.micro_batch_size(), ") x world size (", group_.world_size(), ")");
}

void Trainer::Impl::restore(const std::string& path, data::EpochSampler& sampler,
                            AdamW& optimizer) {
  CheckpointState s = load_checkpoint(path);
  const auto& old_c = s.config;
  if (!options_.allow_config_change) {
    RUDDER_CHECK(old_c.training().global_batch_size() == config_.training().global_batch_size(),
                 path, ": the checkpoint was trained with global_batch_size ",
                 old_c.training().global_batch_size(), ", now ",
                 config_.training().global_batch_size(),
                 "; pass --allow-config-change to resume anyway");
    RUDDER_CHECK(old_c.model().SerializeAsString() == config_.model().SerializeAsString(), path,
                 ": the model settings changed since the checkpoint; pass --allow-config-change to "
                 "resume anyway");
  }
  torch::NoGradGuard no_grad;
  for (auto& item : algorithm_.trainable().named_parameters(true)) {
    const auto it = s.model.find(item.key());
    RUDDER_CHECK(it != s.model.end(), path, "/model.safetensors: missing tensor '", item.key(),
                 "'");
    RUDDER_CHECK(it->second.sizes() == item.value().sizes(), path, "/model.safetensors: tensor '",
                 item.key(), "' has shape ", it->second.sizes(), ", the model expects ",
                 item.value().sizes());
    item.value().copy_(it->second);
  }
  optimizer.load_state(s.optimizer, path + "/optimizer.safetensors");
  sampler.set_position(s.sampler);
  auto generator = at::detail::getDefaultCPUGenerator();
  {
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(s.rng_cpu);
  }
  step_ = s.step;
  RUDDER_LOG(kInfo) << "resumed from " << path << " at step " << step_ << " (epoch "
                    << s.sampler.epoch << ", example " << s.sampler.index << ")";
}

std::string Trainer::Impl::save(data::EpochSampler& sampler, AdamW& optimizer) {
  if (!group_.is_main()) return "";
  const auto start = Clock::now();
  CheckpointState s;
  s.step = step_;
  s.sampler = sampler.position();
  for (const auto& item : algorithm_.trainable().named_parameters(true))
    s.model.emplace(item.key(), item.value());
  s.optimizer = optimizer.state();
  auto generator = at::detail::getDefaultCPUGenerator();
  {
    std::lock_guard<std::mutex> lock(generator.mutex());
    s.rng_cpu = generator.get_state();
  }
  s.config = config_;
  s.world_size = static_cast<uint32_t>(group_.world_size());
  const std::string path =
      save_checkpoint(checkpoint_dir(config_), s, config_.checkpoint().keep_last());
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  metrics_.checkpoint_seconds.observe(seconds);
  RUDDER_LOG(kInfo) << "checkpoint " << path << " (" << std::fixed << std::setprecision(2)
                    << seconds << " s)";
  return path;
}

// Sums gradients over ranks in buckets of distributed.bucket_mib (flattened per bucket).
void Trainer::Impl::allreduce_grads(AdamW& optimizer) {
  if (group_.world_size() == 1) return;
  const auto bucket_bytes = static_cast<int64_t>(config_.distributed().bucket_mib() * (1 << 20));
  std::vector<at::Tensor> grads;
  for (const auto& p : optimizer.params()) {
    if (!p.tensor.grad().defined()) p.tensor.mutable_grad() = torch::zeros_like(p.tensor);
    grads.push_back(p.tensor.grad());
  }
  size_t begin = 0;
  while (begin < grads.size()) {
    size_t end = begin;
    int64_t bytes = 0;
    while (end < grads.size() &&
           (end == begin || bytes + static_cast<int64_t>(grads[end].nbytes()) <= bucket_bytes))
      bytes += static_cast<int64_t>(grads[end++].nbytes());
    std::vector<at::Tensor> flat_parts;
    for (size_t i = begin; i < end; ++i) flat_parts.push_back(grads[i].reshape(-1));
    std::vector<at::Tensor> bucket = {torch::cat(flat_parts)};
    group_.allreduce_sum(bucket);
    int64_t offset = 0;
    for (size_t i = begin; i < end; ++i) {
      const int64_t n = grads[i].numel();
      grads[i].copy_(bucket[0].narrow(0, offset, n).view_as(grads[i]));
      offset += n;
    }
    begin = end;
  }
}

void Trainer::Impl::progress(uint64_t step, uint64_t total, double loss, double lr,
                             double grad_norm, double tps, double eta, bool force) {
  if (!group_.is_main()) return;
  std::ostringstream line;
  line << "step " << step << "/" << total << " | loss " << std::fixed << std::setprecision(4)
       << loss << " | lr " << std::scientific << std::setprecision(2) << lr << " | grad "
       << std::fixed << std::setprecision(3) << grad_norm << " | " << std::setprecision(0) << tps
       << " tok/s | ETA " << format_duration(eta);
  if (tty_) {
    std::fprintf(stderr, "\r%-100s%s", line.str().c_str(), step == total ? "\n" : "");
    std::fflush(stderr);
  } else if (force || step % config_.training().log_every() == 0) {
    RUDDER_LOG(kInfo) << line.str();
  }
}

TrainResult Trainer::Impl::run() {
  validate_batching();
  const auto& t = config_.training();
  const uint64_t global_batch = t.global_batch_size();
  const uint64_t total =
      t.max_steps() > 0 ? t.max_steps()
                        : (t.epochs() * algorithm_.num_train() + global_batch - 1) / global_batch;
  std::vector<std::pair<std::string, at::Tensor>> named;
  for (const auto& item : algorithm_.trainable().named_parameters(true))
    named.emplace_back(item.key(), item.value());
  AdamW optimizer(trainable_parameters(named), config_.optimizer());
  data::EpochSampler sampler(algorithm_.num_train(), config_.seed(), config_.data().shuffle());
  TrainMetrics& metrics = metrics_;
  const double peak_flops = measure_peak_flops();

  std::string resume_path = options_.resume;
  if (resume_path == "auto") resume_path = find_resume_checkpoint(checkpoint_dir(config_));
  TrainResult result;
  if (!resume_path.empty()) {
    restore(resume_path, sampler, optimizer);
  } else {
    result.initial_eval = algorithm_.evaluate();
    for (const auto& [k, v] : result.initial_eval)
      RUDDER_LOG(kInfo) << "initial " << k << " = " << v;
  }
  RUDDER_LOG(kInfo) << algorithm_.name() << ": " << total << " steps of " << global_batch
                    << " examples (" << algorithm_.num_train() << " training examples, "
                    << group_.world_size() << " rank(s))";

  const uint64_t per_rank = global_batch / group_.world_size();
  const uint64_t micro = t.micro_batch_size();
  uint32_t nonfinite_streak = 0;
  const auto run_start = Clock::now();
  const uint64_t first_step = step_;
  algorithm_.trainable().train();
  while (step_ < total) {
    const auto step_start = Clock::now();
    const std::vector<uint64_t> batch = sampler.next(global_batch);
    const std::vector<uint64_t> mine(batch.begin() + group_.rank() * per_rank,
                                     batch.begin() + (group_.rank() + 1) * per_rank);
    const double total_units = group_.allreduce_sum({algorithm_.units(mine)})[0];
    RUDDER_CHECK(total_units > 0, "step ", step_ + 1,
                 ": the batch has no loss units (all responses truncated away?)");

    optimizer.zero_grad();
    algorithms::StepStats stats;
    for (uint64_t start = 0; start < mine.size(); start += micro) {
      const std::vector<uint64_t> part(
          mine.begin() + start, mine.begin() + std::min<uint64_t>(mine.size(), start + micro));
      const auto s = algorithm_.forward_backward(part, total_units);
      stats.loss_sum += s.loss_sum;
      stats.units += s.units;
      stats.tokens += s.tokens;
      for (const auto& [k, v] : s.sums) stats.sums[k] += v;
    }
    allreduce_grads(optimizer);
    std::vector<double> to_reduce = {stats.loss_sum, stats.tokens, g_stop.load() ? 1.0 : 0.0};
    for (const auto& [k, v] : stats.sums)
      to_reduce.push_back(v);  // same keys, same order on every rank
    const auto reduced = group_.allreduce_sum(to_reduce);
    const double loss = reduced[0] / total_units;
    const double grad_norm = optimizer.grad_norm();
    const double lr = learning_rate(config_.schedule(), config_.optimizer().lr(),
                                    static_cast<int64_t>(step_), static_cast<int64_t>(total));
    ++step_;
    if (!std::isfinite(loss) || !std::isfinite(grad_norm)) {
      ++nonfinite_streak;
      ++result.skipped_steps;
      metrics.skipped.inc();
      RUDDER_LOG(kWarn) << "step " << step_ << ": non-finite loss (" << loss
                        << ") or gradient norm (" << grad_norm << "); skipped (" << nonfinite_streak
                        << " in a row)";
      RUDDER_CHECK_T(core::Error, nonfinite_streak < t.max_nonfinite_steps(),
                     "stopping: ", nonfinite_streak,
                     " consecutive steps with a non-finite loss or gradients (last at step ", step_,
                     "); lower the learning rate or check the data");
    } else {
      nonfinite_streak = 0;
      if (t.max_grad_norm() > 0 && grad_norm > t.max_grad_norm())
        optimizer.scale_grads(t.max_grad_norm() / (grad_norm + 1e-6));
      optimizer.step(lr);
      result.last_loss = loss;
    }
    const double step_seconds = std::chrono::duration<double>(Clock::now() - step_start).count();
    const double tps = reduced[1] / step_seconds;
    const double elapsed = std::chrono::duration<double>(Clock::now() - run_start).count();
    const double eta =
        elapsed / static_cast<double>(step_ - first_step) * static_cast<double>(total - step_);
    metrics.step.set(static_cast<double>(step_));
    metrics.loss.set(loss);
    metrics.lr.set(lr);
    metrics.grad_norm.set(grad_norm);
    metrics.tokens_per_second.set(tps);
    metrics.mfu.set(tps * algorithm_.flops_per_token() / (peak_flops * group_.world_size()));
    metrics.step_seconds.observe(step_seconds);
    metrics.last_step_time.set(
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
    progress(step_, total, loss, lr, grad_norm, tps, eta, step_ == total);
    size_t k = 3;
    std::ostringstream extra;
    for (const auto& [name, v] : stats.sums) {
      const double mean = reduced[k++] / total_units;  // per loss unit, over the global batch
      core::gauge("rudder_train_metric",
                  "Method-specific training metrics, averaged over real units.", {{"name", name}})
          .set(mean);
      extra << (extra.tellp() > 0 ? " " : "") << name << "=" << mean;
    }
    if (group_.is_main() && !stats.sums.empty() && (step_ % t.log_every() == 0 || step_ == total)) {
      RUDDER_LOG(kInfo) << "step " << step_ << " " << extra.str();
    }

    const bool stop = reduced[2] > 0;
    if (t.eval_every() > 0 && step_ % t.eval_every() == 0 && step_ < total && !stop) {
      for (const auto& [k, v] : algorithm_.evaluate())
        RUDDER_LOG(kInfo) << "step " << step_ << " " << k << " = " << v;
    }
    const bool periodic =
        config_.checkpoint().every_steps() > 0 && step_ % config_.checkpoint().every_steps() == 0;
    if (periodic || step_ == total || stop) result.last_checkpoint = save(sampler, optimizer);
    group_.barrier();
    if (stop) {
      RUDDER_LOG(kInfo) << "stop requested: checkpointed at step " << step_;
      result.stopped_by_signal = true;
      result.steps = step_;
      return result;
    }
  }
  result.steps = step_;
  result.final_eval = algorithm_.evaluate();
  for (const auto& [k, v] : result.final_eval) RUDDER_LOG(kInfo) << "final " << k << " = " << v;
  return result;
}

Trainer::Trainer(const ExperimentConfig& config, algorithms::Algorithm& algorithm,
                 core::ProcessGroup& group, TrainOptions options)
    : impl_(std::make_unique<Impl>(config, algorithm, group, std::move(options))) {}

Trainer::~Trainer() = default;

TrainResult Trainer::run() { return impl_->run(); }

}  // namespace rudder::trainer
