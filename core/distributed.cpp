#include "core/distributed.h"

#include <cstdlib>
#include <string>

#include <torch/torch.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "core/error.h"
#include "core/log.h"
#include "proto/rudder.pb.h"

namespace rudder::core {
namespace {

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  try {
    size_t used = 0;
    const int value = std::stoi(v, &used);
    RUDDER_CHECK(used == std::string(v).size(), "");
    return value;
  } catch (const std::exception&) {
    throw InvalidArgument(str("environment variable ", name, "='", v, "' is not an integer"));
  }
}

}  // namespace

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> group;
};

ProcessGroup::~ProcessGroup() = default;

std::unique_ptr<ProcessGroup> ProcessGroup::single() {
  return std::unique_ptr<ProcessGroup>(new ProcessGroup());
}

std::unique_ptr<ProcessGroup> ProcessGroup::from_environment(const DistributedConfig& config) {
  const int world = env_int("WORLD_SIZE", 1);
  const int rank = env_int("RANK", 0);
  RUDDER_CHECK(world >= 1, "WORLD_SIZE must be >= 1, got ", world);
  RUDDER_CHECK(rank >= 0 && rank < world, "RANK must be in [0, WORLD_SIZE=", world, "), got ",
               rank);
  auto pg = single();
  pg->rank_ = rank;
  pg->world_size_ = world;
  pg->local_rank_ = env_int("LOCAL_RANK", rank);
  if (world == 1) return pg;

  const char* addr = std::getenv("MASTER_ADDR");
  const int port = env_int("MASTER_PORT", -1);
  RUDDER_CHECK(addr != nullptr && port > 0 && port < 65536, "WORLD_SIZE=", world,
               " needs MASTER_ADDR and MASTER_PORT (got ", addr ? addr : "unset", ":", port, ")");
  const std::string backend = config.backend() == "auto" ? "gloo" : config.backend();
  RUDDER_CHECK(backend == "gloo", "distributed.backend '", config.backend(),
               "' is not available in this build (CPU libtorch: use gloo)");
  const auto timeout =
      std::chrono::milliseconds(static_cast<int64_t>(config.timeout_seconds() * 1000));
  c10d::TCPStoreOptions options;
  options.port = static_cast<uint16_t>(port);
  options.isServer = rank == 0;
  options.numWorkers = world;
  options.waitWorkers = true;
  options.timeout = timeout;
  pg->impl_ = std::make_unique<Impl>();
  try {
    pg->impl_->store = c10::make_intrusive<c10d::TCPStore>(addr, options);
    auto gloo_options = c10d::ProcessGroupGloo::Options::create(timeout);
    gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(addr));
    pg->impl_->group =
        c10::make_intrusive<c10d::ProcessGroupGloo>(pg->impl_->store, rank, world, gloo_options);
  } catch (const c10::Error& e) {
    throw Unavailable(str("joining the process group at ", addr, ":", port, " as rank ", rank,
                          " of ", world, " failed: ", e.what_without_backtrace()));
  }
  RUDDER_LOG(kInfo) << "rank " << rank << " of " << world << " joined (gloo, " << addr << ":"
                    << port << ")";
  return pg;
}

void ProcessGroup::allreduce_sum(std::vector<at::Tensor>& tensors) {
  if (world_size_ == 1 || tensors.empty()) return;
  impl_->group->allreduce(tensors)->wait();
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
