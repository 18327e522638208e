// Data-parallel process groups over c10d (Gloo on CPU, NCCL on CUDA when compiled in), set up
// from the launcher's environment: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT
// (torchrun, Slurm wrappers, `rudder launch`). World size 1 needs no environment and no network.
#pragma once

#include <memory>
#include <vector>

#include <ATen/core/Tensor.h>

namespace rudder {
class DistributedConfig;
}

namespace rudder::core {

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
