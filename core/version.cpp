#include "core/version.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <climits>
#include <cstdlib>
#include <fstream>

#include "core/build_info.h"

namespace rudder::core {
namespace {

std::string mapped_blas() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    const size_t slash = line.find('/');
    if (slash == std::string::npos) continue;
    const std::string path = line.substr(slash);
    const std::string file = path.substr(path.rfind('/') + 1);
    if (file.find("blas") == std::string::npos) continue;
    char resolved[PATH_MAX];
    return realpath(path.c_str(), resolved) != nullptr ? std::string(resolved) : path;
  }
  return "none mapped";
}

}  // namespace

std::string rudder_version() { return RUDDER_VERSION_STRING; }

std::string git_hash() { return RUDDER_GIT_HASH_STRING; }

std::string libtorch_version() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

RuntimeInfo runtime_info() {
  RuntimeInfo info;
  info.intra_op_threads = at::get_num_threads();
  info.cuda = torch::cuda::is_available();
  info.cuda_devices = info.cuda ? static_cast<int>(torch::cuda::device_count()) : 0;
  std::string parallel = at::get_parallel_info();
  for (char& c : parallel) {
    if (c == '\n') c = ';';
  }
  info.parallel = parallel;
  info.blas = mapped_blas();  // after the probes above, libtorch has loaded its BLAS
  return info;
}

}  // namespace rudder::core
