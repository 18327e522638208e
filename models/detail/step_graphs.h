// CUDA graphs of a decode step (NVIDIA, "CUDA Graphs", CUDA C++ Programming Guide; what
// torch.cuda.CUDAGraph wraps): a step of fixed shapes is captured once per shape and replayed
// after, one launch in place of the hundreds of kernels of a small model's step, whose launch
// overhead otherwise bounds decoding at small batches.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <utility>

namespace rudder::models::detail {

/// The graphs of one decoder's step, keyed by its shape. Replays run on the current CUDA stream.
class StepGraphs {
 public:
  /// Whether this build captures CUDA graphs (built against a libtorch with CUDA, and the
  /// environment does not set RUDDER_CUDA_GRAPHS=0) and a CUDA device is present.
  static bool available();
  /// Whether this build has CUDA graphs at all (a libtorch with CUDA, and the CMake option
  /// RUDDER_CUDA_GRAPHS on).
  static bool compiled();

  StepGraphs();
  ~StepGraphs();
  StepGraphs(const StepGraphs&) = delete;
  StepGraphs& operator=(const StepGraphs&) = delete;

  /// Runs `step` for shape `key` on CUDA device `device`. The first time a key is seen, `step`
  /// runs eagerly on a side stream (this is the call's real work; it also warms the libraries a
  /// capture must not initialise), then is captured into a graph without running; later calls
  /// replay the graph. `step` must read its inputs from, and write its results to, tensors that
  /// outlive the graphs (captured addresses are replayed as they are), and must not synchronise
  /// with the host. A capture that fails logs a warning, and every later call runs `step`
  /// without graphs. Throws core::Error where graphs are not available.
  void run(int device, std::pair<int64_t, int64_t> key, const std::function<void()>& step);

  /// Drops every graph (their memory pool goes with them): needed when the tensors a step reads
  /// are replaced, as new weights are.
  void clear();

  /// Graphs held (none after a failed capture).
  size_t size() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rudder::models::detail
