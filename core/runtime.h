// Process-wide runtime settings applied once at start-up by every Rudder executable.
#pragma once

namespace rudder::core {

/// Keeps freed tensor memory in the heap instead of returning it to the kernel after every
/// operation (glibc's mmap and trim thresholds), so repeated forward passes do not page-fault
/// on fresh memory; and sets libtorch's intra-op threads to `threads` (0: every core, unless
/// OMP_NUM_THREADS says otherwise). Call before the first tensor is allocated.
void configure_runtime(int threads = 0);

/// Whether the environment variable `name` is "0": how a user turns off one of Rudder's fast
/// paths (RUDDER_CUDA_GRAPHS, RUDDER_SDPA, RUDDER_FUSE_PROJECTIONS, RUDDER_CUDA_KERNELS,
/// RUDDER_FUSED_NORM, RUDDER_FUSED_ADAMW) to compare or work around it.
bool turned_off(const char* name);

}  // namespace rudder::core
