#include "core/distributed.h"

#include <cstdlib>
#include <optional>
#include <string>

#include <torch/torch.h>
#include <torch/version.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
// Gloo's own headers come with Debian's libtorch (libgloo-dev); a PyTorch wheel may ship
// libtorch without them, and then only NCCL joins ranks.
#if defined(USE_C10D_GLOO) && __has_include(<gloo/algorithm.h>)
#define RUDDER_HAVE_GLOO 1
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
// NCCL's header comes from the NCCL install beside the PyTorch that built libtorch.
#if defined(USE_C10D_NCCL) && __has_include(<nccl.h>)
#define RUDDER_HAVE_NCCL 1
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "core/error.h"
#include "core/log.h"
#include "proto/rudder.pb.h"

namespace rudder::core {
namespace {

// The value of `name`, or nullopt when it is unset or empty.
std::optional<std::string> lookup(const EnvLookup& env, const char* name) {
  const char* v = env(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

std::optional<int> env_int(const EnvLookup& env, const char* name) {
  const auto v = lookup(env, name);
  if (!v) return std::nullopt;
  try {
    size_t used = 0;
    const int value = std::stoi(*v, &used);
    if (used == v->size()) return value;
  } catch (const std::exception&) {
  }
  throw InvalidArgument(str("environment variable ", name, "='", *v, "' is not an integer"));
}

int required_int(const EnvLookup& env, const char* name, const std::string& why) {
  const auto v = env_int(env, name);
  RUDDER_CHECK(v.has_value(), why, " needs ", name, ", which is not set");
  return *v;
}

// torch compares the variable with str(True); "true" and "1" are accepted too.
bool env_true(const EnvLookup& env, const char* name) {
  const auto v = lookup(env, name);
  return v && (*v == "True" || *v == "true" || *v == "1");
}

// Rank, world size and local rank: from torchrun's variables, else from Slurm's.
void read_ranks(const EnvLookup& env, LaunchEnvironment* e) {
  if (lookup(env, "RANK")) {
    e->rank_source = "RANK";
    e->rank = *env_int(env, "RANK");
    e->world_size = required_int(env, "WORLD_SIZE", str("RANK=", e->rank));
    e->local_rank = env_int(env, "LOCAL_RANK").value_or(e->rank);
  } else if (lookup(env, "SLURM_PROCID")) {
    e->rank_source = "SLURM_PROCID";
    e->rank = *env_int(env, "SLURM_PROCID");
    const std::string why = str("SLURM_PROCID=", e->rank, " (RANK unset)");
    e->world_size = required_int(env, "SLURM_NTASKS", why);
    e->local_rank = required_int(env, "SLURM_LOCALID", why);
  } else {
    e->world_size = env_int(env, "WORLD_SIZE").value_or(1);
    RUDDER_CHECK(e->world_size == 1, "WORLD_SIZE=", e->world_size,
                 " needs RANK (or SLURM_PROCID under srun), which is not set");
  }
  RUDDER_CHECK(e->world_size >= 1, "the world size must be >= 1, got ", e->world_size);
  RUDDER_CHECK(e->rank >= 0 && e->rank < e->world_size, e->rank_source, " must be in [0, ",
               e->world_size, "), got ", e->rank);
  RUDDER_CHECK(e->local_rank >= 0, "the local rank must be >= 0, got ", e->local_rank);
}

}  // namespace

LaunchEnvironment launch_environment(const EnvLookup& env) {
  LaunchEnvironment e;
  read_ranks(env, &e);
  if (e.world_size == 1) return e;
  const std::string why = str("a world of ", e.world_size, " ranks");
  const auto addr = lookup(env, "MASTER_ADDR");
  RUDDER_CHECK(addr.has_value(), why, " needs MASTER_ADDR (the host of the rendezvous store), ",
               "which is not set");
  e.master_addr = *addr;
  e.master_port = required_int(env, "MASTER_PORT", why);
  RUDDER_CHECK(e.master_port > 0 && e.master_port < 65536,
               "MASTER_PORT must be in [1, 65535], got ", e.master_port);
  e.agent_store = env_true(env, "TORCHELASTIC_USE_AGENT_STORE");
  e.restart_count = env_int(env, "TORCHELASTIC_RESTART_COUNT").value_or(0);
  return e;
}

// libtorch 2.0 made the Gloo and NCCL groups c10d::Backends (a c10d::ProcessGroup now wraps
// several); both versions have allreduce and barrier with the same signatures.
#if TORCH_VERSION_MAJOR >= 2
using Collectives = c10d::Backend;
#else
using Collectives = c10d::ProcessGroup;
#endif

// Gloo (CPU tensors, barriers), and NCCL beside it for CUDA tensors when the backend is nccl;
// `group` is the NCCL group itself where the build has no Gloo.
struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<Collectives> group;
  c10::intrusive_ptr<Collectives> nccl;
};

ProcessGroup::~ProcessGroup() = default;

std::unique_ptr<ProcessGroup> ProcessGroup::single() {
  return std::unique_ptr<ProcessGroup>(new ProcessGroup());
}

namespace {

// The rendezvous store: hosted by rank 0, or, under torchrun's agent, by the agent (every rank
// a client, keys under this attempt's prefix, as torch's _create_c10d_store).
c10::intrusive_ptr<c10d::Store> make_store(const LaunchEnvironment& e,
                                           std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions options;
  options.port = static_cast<uint16_t>(e.master_port);
  options.isServer = !e.agent_store && e.rank == 0;
  options.numWorkers = e.world_size;
  options.waitWorkers = true;
  options.timeout = timeout;
  auto store = c10::make_intrusive<c10d::TCPStore>(e.master_addr, options);
  if (!e.agent_store) return store;
  return c10::make_intrusive<c10d::PrefixStore>(str("/worker/attempt_", e.restart_count), store);
}

}  // namespace

std::unique_ptr<ProcessGroup> ProcessGroup::from_environment(const DistributedConfig& config) {
  const LaunchEnvironment e = launch_environment(std::getenv);
  auto pg = single();
  pg->rank_ = e.rank;
  pg->world_size_ = e.world_size;
  pg->local_rank_ = e.local_rank;
  if (e.world_size == 1) return pg;

#ifdef RUDDER_HAVE_NCCL
  constexpr bool kNccl = true;
#else
  constexpr bool kNccl = false;
#endif
#ifdef RUDDER_HAVE_GLOO
  constexpr bool kGloo = true;
#else
  constexpr bool kGloo = false;
#endif
  const std::string backend = config.backend() != "auto"                         ? config.backend()
                              : kNccl && (torch::cuda::is_available() || !kGloo) ? "nccl"
                                                                                 : "gloo";
  RUDDER_CHECK(kGloo || kNccl, "this build cannot join ranks: its libtorch came with neither ",
               "Gloo's headers nor NCCL's (nccl.h)");
  RUDDER_CHECK(backend == "gloo" || kNccl, "distributed.backend '", backend,
               "' is not available in this build: it has no NCCL (a CPU libtorch, or nccl.h ",
               "was not found when it was built); use gloo");
  RUDDER_CHECK(backend == "nccl" || kGloo, "distributed.backend '", backend,
               "' is not available in this build: its libtorch came without Gloo's headers; ",
               "use nccl");
  RUDDER_CHECK(kGloo || torch::cuda::is_available(),
               "this build joins ranks over NCCL alone (its libtorch came without Gloo's ",
               "headers), which needs a CUDA device, and libtorch sees none");
  const auto timeout =
      std::chrono::milliseconds(static_cast<int64_t>(config.timeout_seconds() * 1000));
  const std::string where = str(e.master_addr, ":", e.master_port);
  const std::string host = e.agent_store ? "torchrun's agent" : "rank 0";
  pg->impl_ = std::make_unique<Impl>();
  try {
    pg->impl_->store = make_store(e, timeout);
#ifdef RUDDER_HAVE_GLOO
    auto gloo_options = c10d::ProcessGroupGloo::Options::create(timeout);
    gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(e.master_addr));
    pg->impl_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(pg->impl_->store, e.rank,
                                                                   e.world_size, gloo_options);
#endif
#ifdef RUDDER_HAVE_NCCL
    if (backend == "nccl") {
      auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
      nccl_options->timeout = timeout;
      auto nccl_store = c10::make_intrusive<c10d::PrefixStore>("nccl", pg->impl_->store);
      pg->impl_->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(nccl_store, e.rank,
                                                                    e.world_size, nccl_options);
      // Without Gloo, NCCL carries the barriers and CPU tensors too (through the GPU).
      if (!pg->impl_->group) pg->impl_->group = pg->impl_->nccl;
    }
#endif
  } catch (const std::exception& err) {
    // The agent's store speaks its torch's wire protocol: since torch 2.1 (pytorch#107607) a
    // server drops clients that do not open with a validation query, as libtorch < 2.1 does not.
    constexpr bool kPre21 =
        TORCH_VERSION_MAJOR < 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR < 1);
    const std::string hint =
        e.agent_store && kPre21
            ? str(" (this binary has libtorch ", TORCH_VERSION, "; if torchrun comes from torch ",
                  ">= 2.1, its store refuses older clients: use a build against torchrun's torch)")
            : "";
    // c10d's socket errors are not all c10::Errors; those that are carry a backtrace.
    const auto* c10_error = dynamic_cast<const c10::Error*>(&err);
    throw Unavailable(str("joining the process group at ", where, " (store hosted by ", host,
                          ") as rank ", e.rank, " of ", e.world_size, " failed", hint, ": ",
                          c10_error ? c10_error->what_without_backtrace() : err.what()));
  }
  RUDDER_LOG(kInfo) << "rank " << e.rank << " of " << e.world_size << " joined (" << backend
                    << (backend == "nccl" && kGloo ? " for CUDA tensors, gloo for CPU ones, "
                        : backend == "nccl"        ? " for every tensor, "
                                                   : ", ")
                    << where << ", store hosted by " << host << ", rank from " << e.rank_source
                    << ")";
  return pg;
}

void ProcessGroup::allreduce_sum(std::vector<at::Tensor>& tensors) {
  if (world_size_ == 1 || tensors.empty()) return;
  const bool cuda = tensors.front().is_cuda();
  if (!cuda && impl_->group == impl_->nccl) {  // NCCL alone: CPU tensors go through the GPU
    std::vector<at::Tensor> on_gpu;
    for (const auto& t : tensors) on_gpu.push_back(t.to(torch::Device(torch::kCUDA, local_rank_)));
    impl_->nccl->allreduce(on_gpu)->wait();
    for (size_t i = 0; i < tensors.size(); ++i) tensors[i].copy_(on_gpu[i]);
    return;
  }
  (cuda && impl_->nccl ? impl_->nccl : impl_->group)->allreduce(tensors)->wait();
}

std::vector<double> ProcessGroup::allreduce_sum(const std::vector<double>& values) {
  if (world_size_ == 1) return values;
  std::vector<at::Tensor> t = {torch::tensor(values, torch::kDouble)};
  allreduce_sum(t);
  const at::Tensor r = t[0];
  return std::vector<double>(r.data_ptr<double>(), r.data_ptr<double>() + r.numel());
}

void ProcessGroup::barrier() {
  if (world_size_ == 1) return;
  impl_->group->barrier()->wait();
}

}  // namespace rudder::core
