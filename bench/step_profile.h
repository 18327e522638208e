// Where a benchmark step's time goes, from libtorch's profiler, for the side of the comparison
// that Python's torch.profiler cannot see: Rudder's own process.
#pragma once

#include <functional>
#include <string>

namespace rudder::bench {

/// Runs `step` `steps` times under libtorch's Kineto profiler and writes a report to `path`
/// (atomically): device time by kind (matrix products, attention, elementwise and reductions,
/// copies and casts, the optimizer, other), the device kernels by total time, and the operators
/// by calls per step. A libtorch without CUPTI (a CPU build) records operators alone, and the
/// report says so. `step` must wait for the device before it returns (a loss's .item() does).
void write_step_profile(const std::function<void()>& step, int steps, const std::string& path);

}  // namespace rudder::bench
