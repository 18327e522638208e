#include "trainer/trainer.h"

#include <atomic>
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <sstream>

#include <torch/torch.h>

#include "core/error.h"
#include "core/log.h"
#include "core/metrics.h"
#include "models/autocast.h"
#include "trainer/detail/rank_state.h"
#include "trainer/detail/trainer_impl.h"
#include "trainer/schedule.h"

namespace rudder::trainer {
namespace {

std::atomic<bool> g_stop{false};

// Index of the values after the fixed ones in an update's all-reduce.
enum Reduced : size_t { kLoss, kTokens, kStop, kViolation, kFirstMetric };

}  // namespace

void request_stop() { g_stop.store(true); }

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

// dtype bfloat16: the trainable module's weights become bfloat16 working copies (the optimizer
// keeps float32 masters); bf16_autocast keeps them float32 and runs forward passes in bfloat16.
// Model FLOPs utilization is measured against the GEMM peak of that device and dtype.
void Trainer::Impl::set_precision() {
  torch::nn::Module& module = algorithm_.trainable();
  const bool bf16_weights = config_.dtype() == "bfloat16";
  if (bf16_weights) module.to(torch::kBFloat16);
  const c10::Device device = module.parameters().front().device();
  device_type_ = device.type();
  const bool bf16 = bf16_weights || config_.training().bf16_autocast();
  peak_flops_ = detail::measure_peak_flops(device, bf16 ? torch::kBFloat16 : torch::kFloat);
  if (bf16) {
    RUDDER_LOG(kInfo) << (bf16_weights ? "bfloat16 weights with float32 masters"
                                       : "bf16 autocast over float32 weights")
                      << "; GEMM peak " << peak_flops_ / 1e9 << " GFLOP/s on " << device;
  }
}

void Trainer::Impl::prepare() {
  const auto& t = config_.training();
  source_.check_batching(t.global_batch_size(), t.micro_batch_size(), group_.world_size());
  const uint64_t per_iteration = algorithm_.steps_per_iteration();
  RUDDER_CHECK(per_iteration % algorithm_.updates_per_batch() == 0, algorithm_.name(), ": ",
               per_iteration, " steps per iteration is not a multiple of its ",
               algorithm_.updates_per_batch(), " updates per batch");
  RUDDER_CHECK(t.max_steps() % algorithm_.updates_per_batch() == 0, "training.max_steps (",
               t.max_steps(), ") must be a multiple of ", algorithm_.name(), "'s ",
               algorithm_.updates_per_batch(),
               " updates per batch: checkpoints fall between "
               "batches");
  total_ = total_steps();
  set_precision();
  build_optimizer();
  std::string resume_path = options_.resume;
  if (resume_path == "auto") resume_path = find_resume_checkpoint(checkpoint_dir(config_));
  if (!resume_path.empty()) {
    restore(resume_path);
  } else {
    result_.initial_eval = algorithm_.evaluate();
    for (const auto& [k, v] : result_.initial_eval)
      RUDDER_LOG(kInfo) << "initial " << k << " = " << v;
  }
  RUDDER_LOG(kInfo) << algorithm_.name() << ": " << total_ << " steps, " << t.global_batch_size()
                    << " rows per batch, " << algorithm_.updates_per_batch()
                    << " update(s) per batch (" << source_.epoch_size() << " rows per epoch, "
                    << group_.world_size() << " rank(s))";
}

// Sums gradients over ranks in buckets of distributed.bucket_mib (flattened per bucket). A
// parameter that no rank gave a gradient keeps none, as on one rank (AdamW then skips it); one
// that some ranks did sums with zeros from the others.
void Trainer::Impl::allreduce_grads() {
  if (group_.world_size() == 1) return;
  const auto bucket_bytes = static_cast<int64_t>(config_.distributed().bucket_mib() * (1 << 20));
  const auto& params = optimizer_->params();
  std::vector<double> has_grad;
  for (const auto& p : params) has_grad.push_back(p.tensor.grad().defined() ? 1.0 : 0.0);
  has_grad = group_.allreduce_sum(has_grad);
  std::vector<at::Tensor> grads;
  for (size_t i = 0; i < params.size(); ++i) {
    at::Tensor& grad = params[i].tensor.mutable_grad();
    if (has_grad[i] == 0) continue;
    if (!grad.defined()) grad = torch::zeros_like(params[i].tensor);
    grads.push_back(grad);
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

void Trainer::Impl::progress(double loss, double lr, double grad_norm, double tps, double eta) {
  if (!group_.is_main()) return;
  std::ostringstream line;
  line << "step " << step_ << "/" << total_ << " | loss " << std::fixed << std::setprecision(4)
       << loss << " | lr " << std::scientific << std::setprecision(2) << lr << " | grad "
       << std::fixed << std::setprecision(3) << grad_norm << " | " << std::setprecision(0) << tps
       << " tok/s | ETA " << detail::format_duration(eta);
  if (tty_) {
    std::fprintf(stderr, "\r%-100s%s", line.str().c_str(), step_ == total_ ? "\n" : "");
    std::fflush(stderr);
  } else if (step_ == total_ || step_ % config_.training().log_every() == 0) {
    RUDDER_LOG(kInfo) << line.str();
  }
}

// A stop request (SIGTERM) seen by any rank, agreed before the next batch is drawn, so a signal
// that lands while a checkpoint is written or samples are generated is not a batch late.
bool Trainer::Impl::stop_agreed() {
  const double mine = g_stop.load() ? 1.0 : 0.0;
  return (group_.world_size() == 1 ? mine : group_.allreduce_sum({mine})[0]) > 0;
}

// The method's plan for `batch`, agreed over ranks: a plan that fails on one rank fails on all.
std::vector<std::vector<size_t>> Trainer::Impl::agreed_updates(const algorithms::Batch& batch) {
  std::vector<std::vector<size_t>> plan;
  std::string violation;
  try {
    plan = algorithm_.updates(batch);
  } catch (const std::exception& e) {
    violation = e.what();
  }
  double failed = violation.empty() ? 0.0 : 1.0;
  if (group_.world_size() > 1) failed = group_.allreduce_sum({failed})[0];
  RUDDER_CHECK_T(
      core::InternalError, failed == 0,
      violation.empty() ? "another rank failed to plan its updates (see its log)" : violation);
  return plan;
}

void Trainer::Impl::start_iteration_if_due() {
  const uint64_t per_iteration = algorithm_.steps_per_iteration();
  const auto iteration = static_cast<int64_t>(per_iteration > 0 ? step_ / per_iteration : 0);
  if (iteration == iteration_) return;
  if (per_iteration > 0)
    RUDDER_LOG(kInfo) << "iteration " << iteration << " starts at step " << step_;
  algorithm_.on_iteration_start(static_cast<uint64_t>(iteration));
  iteration_ = iteration;
}

// Forward and backward of `items` in micro-batches. An exception (a broken contract, bad data)
// is kept in `violation` instead of thrown, so this rank still joins the update's all-reduces
// and every rank can stop together.
algorithms::StepStats Trainer::Impl::accumulate(const algorithms::Batch& batch,
                                                const std::vector<size_t>& items,
                                                double total_units, std::string* violation) {
  algorithms::StepStats stats;
  const uint64_t micro = config_.training().micro_batch_size();
  try {
    for (size_t start = 0; start < items.size(); start += micro) {
      const auto end =
          items.begin() + static_cast<ptrdiff_t>(std::min<size_t>(items.size(), start + micro));
      const std::vector<size_t> part(items.begin() + static_cast<ptrdiff_t>(start), end);
      algorithms::StepStats s;
      {
        models::AutocastGuard autocast(device_type_, config_.training().bf16_autocast());
        s = algorithm_.train_micro_batch(batch, part, total_units);
      }
      optimizer_->collect_grads();
      stats.loss_sum += s.loss_sum;
      stats.units += s.units;
      stats.tokens += s.tokens;
      for (const auto& [k, v] : s.sums) stats.sums[k] += v;
    }
  } catch (const std::exception& e) {
    *violation = e.what();
  }
  const auto names = algorithm_.metric_names();
  for (const auto& name : names) stats.sums[name] += 0.0;  // the same keys on every rank
  if (stats.sums.size() != names.size() && violation->empty())
    *violation = algorithm_.name() + ": metric_names() lists a name twice";
  return stats;
}

void Trainer::Impl::apply_update(double loss, double grad_norm, double lr) {
  const auto& t = config_.training();
  if (!std::isfinite(loss) || !std::isfinite(grad_norm)) {
    ++nonfinite_streak_;
    ++result_.skipped_steps;
    metrics_.skipped.inc();
    RUDDER_LOG(kWarn) << "step " << step_ << ": non-finite loss (" << loss << ") or gradient norm ("
                      << grad_norm << "); skipped (" << nonfinite_streak_ << " in a row)";
    RUDDER_CHECK_T(core::Error, nonfinite_streak_ < t.max_nonfinite_steps(),
                   "stopping: ", nonfinite_streak_,
                   " consecutive steps with a non-finite loss or gradients (last at step ", step_,
                   "); lower the learning rate or check the data");
    return;
  }
  nonfinite_streak_ = 0;
  if (t.max_grad_norm() > 0 && grad_norm > t.max_grad_norm())
    optimizer_->scale_grads(t.max_grad_norm() / (grad_norm + 1e-6));
  optimizer_->step(lr);
  result_.last_loss = loss;
}

// One optimizer update on `items`; returns whether a rank asked to stop.
bool Trainer::Impl::run_update(const algorithms::Batch& batch, const std::vector<size_t>& items) {
  const auto step_start = Clock::now();
  const double total_units = group_.allreduce_sum({algorithm_.units(batch, items)})[0];
  RUDDER_CHECK(total_units > 0, "step ", step_ + 1,
               ": the batch has no loss units (all responses truncated away?)");
  optimizer_->zero_grad();
  std::string violation;
  const algorithms::StepStats stats = accumulate(batch, items, total_units, &violation);
  allreduce_grads();
  std::vector<double> to_reduce = {stats.loss_sum, stats.tokens, g_stop.load() ? 1.0 : 0.0,
                                   violation.empty() ? 0.0 : 1.0};
  for (const auto& [k, v] : stats.sums) to_reduce.push_back(v);  // declared names, every rank
  const auto reduced = group_.allreduce_sum(to_reduce);
  RUDDER_CHECK_T(core::InternalError, reduced[kViolation] == 0, "step ", step_ + 1, ": ",
                 violation.empty() ? "another rank failed (see its log)" : violation);
  const double loss = reduced[kLoss] / total_units;
  const double grad_norm = optimizer_->grad_norm();
  const double lr = learning_rate(config_.schedule(), config_.optimizer().lr(),
                                  static_cast<int64_t>(step_), static_cast<int64_t>(total_));
  ++step_;
  apply_update(loss, grad_norm, lr);
  report_update(stats, reduced, total_units, lr, grad_norm,
                std::chrono::duration<double>(Clock::now() - step_start).count());
  algorithm_.on_step_end(step_);
  const bool stop = reduced[kStop] > 0;
  const auto& t = config_.training();
  if (t.eval_every() > 0 && step_ % t.eval_every() == 0 && step_ < total_ && !stop) {
    for (const auto& [k, v] : algorithm_.evaluate())
      RUDDER_LOG(kInfo) << "step " << step_ << " " << k << " = " << v;
  }
  return stop;
}

void Trainer::Impl::report_update(const algorithms::StepStats& stats,
                                  const std::vector<double>& reduced, double total_units, double lr,
                                  double grad_norm, double seconds) {
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
  progress(loss, lr, grad_norm, tps, eta);
  size_t k = 4;
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
  if ((periodic || step_ == total_ || stop) && last_saved_step_ != step_) {
    result_.last_checkpoint = save();
    algorithm_.on_checkpoint(step_, result_.last_checkpoint);
    if (options_.on_checkpoint && !result_.last_checkpoint.empty())
      options_.on_checkpoint(step_, result_.last_checkpoint);
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
    if (stop_agreed() && finish_batch(step_, true)) break;
    start_iteration_if_due();
    const algorithms::Batch batch =
        source_.next(t.global_batch_size(), group_.rank(), group_.world_size());
    const uint64_t first_step_of_batch = step_;
    bool stop = false;
    for (const auto& items : agreed_updates(batch)) stop = run_update(batch, items) || stop;
    if (finish_batch(first_step_of_batch, stop)) break;
  }
  result_.steps = step_;
  if (result_.stopped_by_signal) return result_;
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
