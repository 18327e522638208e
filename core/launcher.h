// `rudder launch`: starts the ranks of a data-parallel job on this machine, as torchrun does
// for one node, with the variables core/distributed.h reads.
//
// Process-wide effects: launch_local forks, installs SIGINT/SIGTERM handlers (which forward the
// signal to the ranks) for as long as it runs, and restores the previous ones before returning.
// Call it from one thread at a time.
#pragma once

#include <string>
#include <vector>

namespace rudder::core {

/// A TCP port on 127.0.0.1 that was free a moment ago (the kernel's pick). Throws Unavailable.
int free_local_port();

/// Runs `argv` (argv[0] the executable's path) as ranks 0..nproc-1 with RANK, LOCAL_RANK,
/// WORLD_SIZE, MASTER_ADDR=127.0.0.1 and MASTER_PORT (a free port) set, and waits for all of
/// them. When one fails, the others get SIGTERM. Returns 0 when every rank exits 0, else the
/// first failure's exit code (128 + signal number for a rank killed by a signal). Throws
/// InvalidArgument for nproc outside [1, 1024] or an empty argv.
int launch_local(int nproc, const std::vector<std::string>& argv);

}  // namespace rudder::core
