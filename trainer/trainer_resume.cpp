// Checkpoints of the loop: what a run needs to continue bit for bit, on every rank.
#include <filesystem>
#include <iomanip>

#include <ATen/Context.h>
#include <torch/torch.h>

#include "core/error.h"
#include "core/log.h"
#include "core/rng_state.h"
#include "trainer/detail/rank_state.h"
#include "trainer/detail/trainer_impl.h"

namespace rudder::trainer {
namespace {

// Names in the method state that belong to the loop.
constexpr const char* kIteration = "loop.iteration";
constexpr const char* kNonfiniteStreak = "loop.nonfinite_streak";
// Prefix of the method's entries in a rank's state (the rest: generators and the source's).
constexpr const char* kMethodPrefix = "method.";

// This rank's generators, its source's state and its method's per-rank state.
models::TensorMap rank_state_of(const algorithms::BatchSource& source,
                                const algorithms::Algorithm& algorithm) {
  models::TensorMap mine = source.rank_state();
  for (const auto& [name, t] : algorithm.rank_state()) mine[kMethodPrefix + name] = t;
  mine["rng_cpu"] = core::cpu_generator_state();
  if (torch::cuda::is_available()) {
    auto cuda = at::globalContext().defaultGenerator(at::Device(at::kCUDA));
    std::lock_guard<std::mutex> lock(cuda.mutex());
    mine["rng_cuda"] = cuda.get_state();
  }
  return mine;
}

}  // namespace

std::string checkpoint_dir(const ExperimentConfig& c) {
  return c.checkpoint().dir().empty()
             ? (std::filesystem::path(c.output_dir()) / "checkpoints").string()
             : c.checkpoint().dir();
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
    if (name == kIteration) {
      iteration_ = t.item<int64_t>();
    } else if (name == kNonfiniteStreak) {
      nonfinite_streak_ = static_cast<uint64_t>(t.item<int64_t>());
    } else {
      method.emplace(name, t);
    }
  }
  algorithm_.load_state(method, path + "/state.safetensors");
  restore_rank_state(s, path);
  step_ = s.step;
  last_saved_step_ = s.step;
  RUDDER_LOG(kInfo) << "resumed from " << path << " at step " << step_ << " (epoch "
                    << s.sampler.epoch << ", row " << s.sampler.index << ")";
  algorithm_.on_resume(static_cast<uint64_t>(std::max<int64_t>(iteration_, 0)));
}

void Trainer::Impl::restore_rank_state(const CheckpointState& s, const std::string& path) {
  const std::string source = path + "/state.safetensors";
  if (s.rank_states.size() != static_cast<size_t>(group_.world_size())) {
    if (!s.rank_states.empty()) {
      RUDDER_LOG(kWarn) << path << ": saved by " << s.rank_states.size() << " rank(s), now "
                        << group_.world_size() << "; each rank's generators start afresh";
    }
    core::set_cpu_generator_state(s.rng_cpu);
    return;
  }
  const models::TensorMap& mine = s.rank_states[static_cast<size_t>(group_.rank())];
  RUDDER_CHECK(mine.count("rng_cpu"), source, ": no CPU generator of rank ", group_.rank());
  core::set_cpu_generator_state(mine.at("rng_cpu"));
  if (mine.count("rng_cuda") && torch::cuda::is_available()) {
    auto cuda = at::globalContext().defaultGenerator(at::Device(at::kCUDA));
    std::lock_guard<std::mutex> lock(cuda.mutex());
    cuda.set_state(mine.at("rng_cuda"));
  }
  models::TensorMap method;
  const std::string prefix = kMethodPrefix;
  for (const auto& [name, t] : mine) {
    if (name.rfind(prefix, 0) == 0) method.emplace(name.substr(prefix.size()), t);
  }
  source_.load_rank_state(mine, source);
  algorithm_.load_rank_state(method, source);
}

std::string Trainer::Impl::save() {
  // Every rank takes part in gathering the per-rank state; the main rank writes.
  std::vector<models::TensorMap> ranks =
      detail::gather_rank_states(rank_state_of(source_, algorithm_), group_);
  last_saved_step_ = step_;
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
  for (const char* name : {kIteration, kNonfiniteStreak})
    RUDDER_ASSERT(!s.method_state.count(name), "'", name, "' is the loop's name");
  s.method_state[kIteration] = torch::tensor(iteration_, torch::kLong);
  s.method_state[kNonfiniteStreak] =
      torch::tensor(static_cast<int64_t>(nonfinite_streak_), torch::kLong);
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

}  // namespace rudder::trainer
