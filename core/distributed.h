// Data-parallel process groups over c10d (Gloo on CPU, NCCL on CUDA when compiled in), set up
// from the launcher's environment: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT
// (torchrun, `rudder launch`), or SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID when RANK is unset
// (srun). World size 1 needs no environment and no network.
//
// The c10d TCP store on MASTER_ADDR:MASTER_PORT is hosted by rank 0, except under torchrun's
// agent (TORCHELASTIC_USE_AGENT_STORE=True), which hosts it itself: then every rank is a client
// and keys live under /worker/attempt_<TORCHELASTIC_RESTART_COUNT>, as torch's
// _create_c10d_store does.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace rudder {
class DistributedConfig;
}

namespace rudder::core {

/// The job as the launcher's environment describes it.
struct LaunchEnvironment {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr;   // host of the c10d store; empty for a world of one
  int master_port = 0;       // its port; 0 for a world of one
  bool agent_store = false;  // TORCHELASTIC_USE_AGENT_STORE=True: the launcher hosts the store
  int restart_count = 0;     // TORCHELASTIC_RESTART_COUNT: names this attempt's key prefix
  std::string rank_source;   // the variable the rank came from ("RANK", "SLURM_PROCID", "")
};

/// A variable's value, or nullptr when it is unset (std::getenv's contract).
using EnvLookup = std::function<const char*(const char*)>;

/// Reads the launcher's variables through `env`. Throws InvalidArgument naming the variable that
/// is missing, malformed or inconsistent (e.g. SLURM_PROCID without SLURM_NTASKS).
LaunchEnvironment launch_environment(const EnvLookup& env);

/// This process's place in the job.
class ProcessGroup {
 public:
  /// Joins the job the environment describes (or a world of one). Throws InvalidArgument for an
  /// inconsistent environment and Unavailable when the rendezvous times out.
  static std::unique_ptr<ProcessGroup> from_environment(const DistributedConfig& config);

  /// A world of one (no communication).
  static std::unique_ptr<ProcessGroup> single();

  ~ProcessGroup();
  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  int local_rank() const { return local_rank_; }
  bool is_main() const { return rank_ == 0; }

  /// Sums `tensors` over all ranks, in place (all on one device, one dtype each).
  void allreduce_sum(std::vector<at::Tensor>& tensors);

  /// Sums doubles over all ranks.
  std::vector<double> allreduce_sum(const std::vector<double>& values);

  /// Waits for every rank.
  void barrier();

 private:
  ProcessGroup() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int rank_ = 0;
  int world_size_ = 1;
  int local_rank_ = 0;
};

}  // namespace rudder::core
