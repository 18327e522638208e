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
#include "trainer/detail/rank_state.h"
#include "trainer/detail/train_metrics.h"
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

}  // namespace

void request_stop() { g_stop.store(true); }

class Trainer::Impl {
 public:
  Impl(const ExperimentConfig& config, algorithms::Algorithm& algorithm,
       algorithms::BatchSource& source, core::ProcessGroup& group, TrainOptions options)
      : config_(config),
        algorithm_(algorithm),
        source_(source),
        group_(group),
        options_(std::move(options)) {}

  TrainResult run();

 private:
  // What one update left for the batch's bookkeeping.
  struct UpdateOutcome {
    bool stop = false;  // a rank asked to stop
  };

  void prepare();
  uint64_t total_steps() const;
  void build_optimizer();
  void restore(const std::string& path);
  std::string save();
  void start_iteration_if_due();
  UpdateOutcome run_update(const algorithms::Batch& batch, const std::vector<size_t>& items);
  void report_update(const algorithms::StepStats& stats, const std::vector<double>& reduced,
                     double total_units, double lr, double grad_norm, double seconds);
  bool finish_batch(uint64_t first_step_of_batch, bool stop);
  void allreduce_grads();
  void progress(uint64_t step, uint64_t total, double loss, double lr, double grad_norm, double tps,
                double eta, bool force);

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
  uint32_t nonfinite_streak_ = 0;
  double peak_flops_ = 0;
  Clock::time_point run_start_;
  TrainResult result_;
  detail::TrainMetrics metrics_;
  bool tty_ = ::isatty(2) != 0;
};

uint64_t Trainer::Impl::total_steps() const {
  const auto& t = config_.training();
  if (t.max_steps() > 0) return t.max_steps();
  const uint64_t batches =
      (t.epochs() * source_.epoch_size() + t.global_batch_size() - 1) / t.global_batch_size();
  return batches * algorithm_.updates_per_batch();
}

void Trainer::Impl::build_optimizer() {
  std::vector<std::pair<std::string, at::Tensor>> named;
  for (const auto& item : algorithm_.trainable().named_parameters(true))
    named.emplace_back(item.key(), item.value());
  std::vector<NamedParameter> params = trainable_parameters(named);
  for (const auto& group : algorithm_.param_groups()) {
    RUDDER_CHECK(group.lr_scale > 0, algorithm_.name(), ": parameter group '", group.prefix,
                 "' has learning-rate scale ", group.lr_scale, "; expected > 0");
    bool matched = false;
    for (auto& p : params) {
      if (p.name.rfind(group.prefix, 0) != 0) continue;
      p.lr_scale = group.lr_scale;
      matched = true;
    }
    RUDDER_CHECK(matched, algorithm_.name(), ": parameter group '", group.prefix,
                 "' matches no trainable parameter");
  }
  optimizer_ = std::make_unique<AdamW>(std::move(params), config_.optimizer());
}

void Trainer::Impl::prepare() {
  const auto& t = config_.training();
  source_.check_batching(t.global_batch_size(), t.micro_batch_size(), group_.world_size());
  const uint64_t per_iteration = algorithm_.steps_per_iteration();
  RUDDER_CHECK(per_iteration % algorithm_.updates_per_batch() == 0, algorithm_.name(), ": ",
               per_iteration, " steps per iteration is not a multiple of its ",
               algorithm_.updates_per_batch(), " updates per batch");
  total_ = total_steps();
  build_optimizer();
  peak_flops_ = detail::measure_peak_flops();
  std::string resume_path = options_.resume;
  if (resume_path == "auto") resume_path = find_resume_checkpoint(checkpoint_dir(config_));
  if (!resume_path.empty()) {
    restore(resume_path);
  } else {
    result_.initial_eval = algorithm_.evaluate();
    for (const auto& [k, v] : result_.initial_eval)
      RUDDER_LOG(kInfo) << "initial " << k << " = " << v;
  }
  RUDDER_LOG(kInfo) << algorithm_.name() << ": " << total_ << " steps, "
                    << t.global_batch_size() << " rows per batch, "
                    << algorithm_.updates_per_batch() << " update(s) per batch ("
                    << source_.epoch_size() << " rows per epoch, " << group_.world_size()
                    << " rank(s))";
}

void Trainer::Impl::restore(const std::string& path) {
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
  optimizer_->load_state(s.optimizer, path + "/optimizer.safetensors");
  source_.set_position(s.sampler);
  models::TensorMap method;
  for (const auto& [name, t] : s.method_state) {
    if (name == "loop.iteration") {
      iteration_ = t.item<int64_t>();
    } else {
      method.emplace(name, t);
    }
  }
  algorithm_.load_state(method, path + "/state.safetensors");
  const auto rank = static_cast<size_t>(group_.rank());
  if (s.rank_states.size() == static_cast<size_t>(group_.world_size())) {
    const models::TensorMap& mine = s.rank_states[rank];
    RUDDER_CHECK(mine.count("rng_cpu"), path, "/state.safetensors: no CPU generator of rank ",
                 rank);
    detail::set_default_cpu_generator_state(mine.at("rng_cpu"));
    source_.load_rank_state(mine, path + "/state.safetensors");
  } else {
    if (!s.rank_states.empty()) {
      RUDDER_LOG(kWarn) << path << ": saved by " << s.rank_states.size() << " rank(s), now "
                        << group_.world_size() << "; each rank's sampler starts afresh";
    }
    detail::set_default_cpu_generator_state(s.rng_cpu);
  }
  step_ = s.step;
  RUDDER_LOG(kInfo) << "resumed from " << path << " at step " << step_ << " (epoch "
                    << s.sampler.epoch << ", row " << s.sampler.index << ")";
}

std::string Trainer::Impl::save() {
  // Every rank takes part in gathering the per-rank generators; the main rank writes.
  models::TensorMap mine = source_.rank_state();
  mine["rng_cpu"] = detail::default_cpu_generator_state();
  std::vector<models::TensorMap> ranks = detail::gather_rank_states(mine, group_);
  if (!group_.is_main()) return "";
  const auto start = Clock::now();
  CheckpointState s;
  s.step = step_;
  s.sampler = source_.position();
  for (const auto& item : algorithm_.trainable().named_parameters(true))
    s.model.emplace(item.key(), item.value());
  s.optimizer = optimizer_->state();
  s.rng_cpu = ranks[0].at("rng_cpu");
  s.method_state = algorithm_.state();
  RUDDER_ASSERT(!s.method_state.count("loop.iteration"), "'loop.iteration' is the loop's name");
  s.method_state["loop.iteration"] = torch::tensor(iteration_, torch::kLong);
  s.rank_states = std::move(ranks);
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
void Trainer::Impl::allreduce_grads() {
  if (group_.world_size() == 1) return;
  const auto bucket_bytes = static_cast<int64_t>(config_.distributed().bucket_mib() * (1 << 20));
  std::vector<at::Tensor> grads;
  for (const auto& p : optimizer_->params()) {
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
       << " tok/s | ETA " << detail::format_duration(eta);
  if (tty_) {
    std::fprintf(stderr, "\r%-100s%s", line.str().c_str(), step == total ? "\n" : "");
    std::fflush(stderr);
  } else if (force || step % config_.training().log_every() == 0) {
    RUDDER_LOG(kInfo) << line.str();
  }
}

void Trainer::Impl::start_iteration_if_due() {
  const uint64_t per_iteration = algorithm_.steps_per_iteration();
  const auto iteration = static_cast<int64_t>(per_iteration > 0 ? step_ / per_iteration : 0);
  if (iteration == iteration_) return;
  if (per_iteration > 0) RUDDER_LOG(kInfo) << "iteration " << iteration << " starts at step " << step_;
  algorithm_.on_iteration_start(static_cast<uint64_t>(iteration));
  iteration_ = iteration;
}

Trainer::Impl::UpdateOutcome Trainer::Impl::run_update(const algorithms::Batch& batch,
                                                       const std::vector<size_t>& items) {
  const auto& t = config_.training();
  const auto step_start = Clock::now();
  const double total_units = group_.allreduce_sum({algorithm_.units(batch, items)})[0];
  RUDDER_CHECK(total_units > 0, "step ", step_ + 1,
               ": the batch has no loss units (all responses truncated away?)");
  optimizer_->zero_grad();
  algorithms::StepStats stats;
  const uint64_t micro = t.micro_batch_size();
  for (size_t start = 0; start < items.size(); start += micro) {
    const std::vector<size_t> part(items.begin() + static_cast<ptrdiff_t>(start),
                                   items.begin() + static_cast<ptrdiff_t>(
                                                       std::min<size_t>(items.size(), start + micro)));
    const auto s = algorithm_.train_micro_batch(batch, part, total_units);
    stats.loss_sum += s.loss_sum;
    stats.units += s.units;
    stats.tokens += s.tokens;
    for (const auto& [k, v] : s.sums) stats.sums[k] += v;
  }
  allreduce_grads();
  detail::check_same_names(stats.sums, group_, algorithm_.name());
  std::vector<double> to_reduce = {stats.loss_sum, stats.tokens, g_stop.load() ? 1.0 : 0.0};
  for (const auto& [k, v] : stats.sums) to_reduce.push_back(v);  // same keys on every rank
  const auto reduced = group_.allreduce_sum(to_reduce);
  const double loss = reduced[0] / total_units;
  const double grad_norm = optimizer_->grad_norm();
  const double lr = learning_rate(config_.schedule(), config_.optimizer().lr(),
                                  static_cast<int64_t>(step_), static_cast<int64_t>(total_));
  ++step_;
  if (!std::isfinite(loss) || !std::isfinite(grad_norm)) {
    ++nonfinite_streak_;
    ++result_.skipped_steps;
    metrics_.skipped.inc();
    RUDDER_LOG(kWarn) << "step " << step_ << ": non-finite loss (" << loss
                      << ") or gradient norm (" << grad_norm << "); skipped ("
                      << nonfinite_streak_ << " in a row)";
    RUDDER_CHECK_T(core::Error, nonfinite_streak_ < t.max_nonfinite_steps(),
                   "stopping: ", nonfinite_streak_,
                   " consecutive steps with a non-finite loss or gradients (last at step ", step_,
                   "); lower the learning rate or check the data");
  } else {
    nonfinite_streak_ = 0;
    if (t.max_grad_norm() > 0 && grad_norm > t.max_grad_norm())
      optimizer_->scale_grads(t.max_grad_norm() / (grad_norm + 1e-6));
    optimizer_->step(lr);
    result_.last_loss = loss;
  }
  report_update(stats, reduced, total_units, lr, grad_norm,
                std::chrono::duration<double>(Clock::now() - step_start).count());
  algorithm_.on_step_end(step_);
  const bool stop = reduced[2] > 0;
  if (t.eval_every() > 0 && step_ % t.eval_every() == 0 && step_ < total_ && !stop) {
    for (const auto& [k, v] : algorithm_.evaluate())
      RUDDER_LOG(kInfo) << "step " << step_ << " " << k << " = " << v;
  }
  return {stop};
}

void Trainer::Impl::report_update(const algorithms::StepStats& stats,
                                  const std::vector<double>& reduced, double total_units,
                                  double lr, double grad_norm, double seconds) {
  const double loss = reduced[0] / total_units;
  const double tps = reduced[1] / seconds;
  const double elapsed = std::chrono::duration<double>(Clock::now() - run_start_).count();
  const double eta =
      elapsed / static_cast<double>(step_ - first_step_) * static_cast<double>(total_ - step_);
  metrics_.step.set(static_cast<double>(step_));
  metrics_.loss.set(loss);
  metrics_.lr.set(lr);
  metrics_.grad_norm.set(grad_norm);
  metrics_.tokens_per_second.set(tps);
  metrics_.mfu.set(tps * algorithm_.flops_per_token() / (peak_flops_ * group_.world_size()));
  metrics_.step_seconds.observe(seconds);
  metrics_.last_step_time.set(
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
  progress(step_, total_, loss, lr, grad_norm, tps, eta, step_ == total_);
  size_t k = 3;
  std::ostringstream extra;
  for (const auto& entry : stats.sums) {
    const double mean = reduced[k++] / total_units;  // per loss unit, over the global batch
    core::gauge("rudder_train_metric",
                "Method-specific training metrics, averaged over real units.",
                {{"name", entry.first}})
        .set(mean);
    extra << (extra.tellp() > 0 ? " " : "") << entry.first << "=" << mean;
  }
  const auto& t = config_.training();
  if (group_.is_main() && !stats.sums.empty() && (step_ % t.log_every() == 0 || step_ == total_))
    RUDDER_LOG(kInfo) << "step " << step_ << " " << extra.str();
}

// Checkpoints when a periodic checkpoint fell inside the batch, at the end, or on a stop request.
// Returns true when the run must stop now.
bool Trainer::Impl::finish_batch(uint64_t first_step_of_batch, bool stop) {
  const uint64_t every = config_.checkpoint().every_steps();
  const bool periodic = every > 0 && step_ / every > first_step_of_batch / every;
  if (periodic || step_ == total_ || stop) {
    result_.last_checkpoint = save();
    algorithm_.on_checkpoint(step_, result_.last_checkpoint);
  }
  group_.barrier();
  if (!stop) return false;
  RUDDER_LOG(kInfo) << "stop requested: checkpointed at step " << step_;
  result_.stopped_by_signal = true;
  return true;
}

TrainResult Trainer::Impl::run() {
  prepare();
  const auto& t = config_.training();
  run_start_ = Clock::now();
  first_step_ = step_;
  algorithm_.trainable().train();
  while (step_ < total_) {
    start_iteration_if_due();
    const algorithms::Batch batch =
        source_.next(t.global_batch_size(), group_.rank(), group_.world_size());
    const auto updates = algorithm_.updates(batch);
    const uint64_t first_step_of_batch = step_;
    bool stop = false;
    for (const auto& items : updates) {
      if (step_ >= total_) break;
      stop = run_update(batch, items).stop || stop;
    }
    if (finish_batch(first_step_of_batch, stop)) {
      result_.steps = step_;
      return result_;
    }
  }
  result_.steps = step_;
  result_.final_eval = algorithm_.evaluate();
  for (const auto& [k, v] : result_.final_eval) RUDDER_LOG(kInfo) << "final " << k << " = " << v;
  return result_;
}

Trainer::Trainer(const ExperimentConfig& config, algorithms::Algorithm& algorithm,
                 algorithms::BatchSource& source, core::ProcessGroup& group, TrainOptions options)
    : impl_(std::make_unique<Impl>(config, algorithm, source, group, std::move(options))) {}

Trainer::~Trainer() = default;

TrainResult Trainer::run() { return impl_->run(); }

}  // namespace rudder::trainer
