#include "core/runtime.h"

#include <malloc.h>

#include <cstdlib>
#include <cstring>
#include <thread>

#include <ATen/Parallel.h>

#include "core/log.h"

namespace rudder::core {

void configure_runtime(int threads) {
  // 32 MiB is glibc's largest mmap threshold on 64-bit; allocations below it reuse heap memory.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  if (threads <= 0) {
    if (std::getenv("OMP_NUM_THREADS") != nullptr) return;
    threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  at::set_num_threads(threads);
  RUDDER_LOG(kDebug) << "libtorch intra-op threads: " << at::get_num_threads();
}

bool turned_off(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && std::strcmp(value, "0") == 0;
}

}  // namespace rudder::core
