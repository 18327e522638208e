#include "core/launcher.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include "core/error.h"
#include "core/log.h"

namespace rudder::core {
namespace {

constexpr int kMaxRanks = 1024;

// The running ranks (0 once reaped), read by the signal handler: a fixed array of
// sig_atomic_t, so reading it there is async-signal-safe.
volatile sig_atomic_t g_ranks[kMaxRanks];
std::atomic<int> g_rank_count{0};

void forward_signal(int signal) {
  const int n = g_rank_count.load();
  for (int i = 0; i < n; ++i) {
    const pid_t pid = g_ranks[i];
    if (pid > 0) kill(pid, signal);
  }
}

// Forwards SIGINT and SIGTERM to the ranks while alive; restores the old handlers when it dies.
class SignalForwarding {
 public:
  SignalForwarding() {
    struct sigaction action {};
    action.sa_handler = forward_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &old_int_);
    sigaction(SIGTERM, &action, &old_term_);
  }
  ~SignalForwarding() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
    g_rank_count.store(0);
  }
  SignalForwarding(const SignalForwarding&) = delete;
  SignalForwarding& operator=(const SignalForwarding&) = delete;

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

// In the child: the rank's variables, then exec. Never returns.
[[noreturn]] void exec_rank(int rank, int nproc, const std::string& port,
                            const std::vector<std::string>& argv) {
  signal(SIGINT, SIG_DFL);  // until exec, a signal must not reach the launcher's handler
  signal(SIGTERM, SIG_DFL);
  setenv("RANK", std::to_string(rank).c_str(), 1);
  setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
  setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
  setenv("MASTER_ADDR", "127.0.0.1", 1);
  setenv("MASTER_PORT", port.c_str(), 1);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  execv(args[0], args.data());
  std::fprintf(stderr, "rudder launch: cannot run %s: %s\n", args[0], std::strerror(errno));
  _exit(127);  // in the forked child: no destructors of the parent's state
}

// Terminates and reaps ranks [0, started).
void stop_and_reap(int started) {
  forward_signal(SIGTERM);
  for (int rank = 0; rank < started; ++rank) {
    int status = 0;
    waitpid(g_ranks[rank], &status, 0);
    g_ranks[rank] = 0;
  }
}

int exit_code_of(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

int free_local_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  RUDDER_CHECK_T(Unavailable, fd >= 0, "cannot open a socket: ", std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  const int error = errno;
  close(fd);
  RUDDER_CHECK_T(Unavailable, ok, "cannot find a free port on 127.0.0.1: ", std::strerror(error));
  return ntohs(addr.sin_port);
}

int launch_local(int nproc, const std::vector<std::string>& argv) {
  RUDDER_CHECK(nproc >= 1 && nproc <= kMaxRanks, "--nproc must be in [1, ", kMaxRanks, "], got ",
               nproc);
  RUDDER_CHECK(!argv.empty(), "launch_local needs a program to run");
  const std::string port = std::to_string(free_local_port());
  SignalForwarding forwarding;
  for (int rank = 0; rank < nproc; ++rank) {
    const pid_t pid = fork();
    if (pid < 0) {
      const int error = errno;
      stop_and_reap(rank);  // the ranks already started would wait for this one forever
      throw Unavailable(
          str("fork for rank ", rank, " of ", nproc, " failed: ", std::strerror(error)));
    }
    if (pid == 0) exec_rank(rank, nproc, port, argv);
    g_ranks[rank] = pid;
    g_rank_count.store(rank + 1);
  }
  // Polls our own children only (waitpid(-1) would reap children the caller owns).
  int exit_code = 0;
  for (int running = nproc; running > 0;) {
    bool reaped = false;
    for (int rank = 0; rank < nproc; ++rank) {
      int status = 0;
      const pid_t pid = g_ranks[rank];
      if (pid <= 0 || waitpid(pid, &status, WNOHANG) != pid) continue;
      g_ranks[rank] = 0;
      --running;
      reaped = true;
      const int code = exit_code_of(status);
      if (code != 0 && exit_code == 0) {
        exit_code = code;
        log_line(LogLevel::kError, str("rudder launch: rank ", rank, " failed (exit ", code,
                                       "); stopping the others"));
        forward_signal(SIGTERM);
      }
    }
    if (!reaped) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return exit_code;
}

}  // namespace rudder::core
