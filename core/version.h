// What this build is and what it runs on (for `rudder version` and rudder_build_info).
#pragma once

#include <string>

namespace rudder::core {

/// Rudder's version, from the CMake project.
std::string rudder_version();

/// The git commit the build was configured from ("unknown" outside a checkout).
std::string git_hash();

/// The libtorch version compiled against, e.g. "1.13.1".
std::string libtorch_version();

/// Facts about the running process's compute backend.
struct RuntimeInfo {
  std::string blas;          // BLAS library mapped into the process (resolved path)
  int intra_op_threads = 0;  // at::get_num_threads()
  bool cuda = false;         // torch::cuda::is_available()
  int cuda_devices = 0;      // torch::cuda::device_count()
  std::string parallel;      // at::get_parallel_info(), one line
};

/// Probes the runtime (loads BLAS and CUDA state; cheap after the first call).
RuntimeInfo runtime_info();

}  // namespace rudder::core
