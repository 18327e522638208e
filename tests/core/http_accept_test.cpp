// Accept errors: when the process runs out of file descriptors, the server backs off instead of
// spinning on accept(), and serves again once descriptors are back.
#include "core/http_server.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core/http_client.h"
#include "core/metrics.h"
#include "tests/support/raw_socket.h"

namespace rudder::core {
namespace {

using namespace std::chrono_literals;

// User plus system CPU time of this process.
double process_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec * 1e-6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// Takes every free file descriptor (under a lowered soft RLIMIT_NOFILE), so accept() fails with
// EMFILE; gives them back, and restores the limit, when released or destroyed.
class FdExhaustion {
 public:
  FdExhaustion() {
    getrlimit(RLIMIT_NOFILE, &saved_);
    int highest = 0;
    if (DIR* dir = opendir("/proc/self/fd")) {
      while (const dirent* entry = readdir(dir)) highest = std::max(highest, atoi(entry->d_name));
      closedir(dir);
    }
    rlimit lowered = saved_;
    lowered.rlim_cur = std::min<rlim_t>(saved_.rlim_cur, static_cast<rlim_t>(highest) + 32);
    setrlimit(RLIMIT_NOFILE, &lowered);
    for (int fd; (fd = open("/dev/null", O_RDONLY)) >= 0;) fds_.push_back(fd);
    errno_ = errno;
  }
  ~FdExhaustion() { release(); }
  /// Frees one descriptor (for the test's own client socket).
  void free_one() {
    close(fds_.back());
    fds_.pop_back();
  }
  void release() {
    for (int fd : fds_) close(fd);
    fds_.clear();
    setrlimit(RLIMIT_NOFILE, &saved_);
  }
  int open_errno() const { return errno_; }

 private:
  rlimit saved_{};
  std::vector<int> fds_;
  int errno_ = 0;
};

TEST(HttpServerAccept, ErrorsBackOffInsteadOfSpinningAndTheServerRecovers) {
  HttpServerOptions o;
  o.threads = 2;
  HttpServer server(o);
  server.start();
  const Counter errors = counter("rudder_http_accept_errors_total", "");
  const double errors_before = errors.value();
  FdExhaustion exhaustion;
  ASSERT_EQ(exhaustion.open_errno(), EMFILE);
  exhaustion.free_one();
  // The kernel completes this connection, but the server cannot accept it: no descriptor left.
  testing::RawSocket pending(server.port());
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (errors.value() == errors_before && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_GT(errors.value(), errors_before) << "accept never failed: the test proves nothing";

  // With backoff (50 ms doubling to 1 s) a 1.5 s window sees a handful of retries; re-arming at
  // once retries thousands of times and burns a core.
  const double errors_start = errors.value();
  const double cpu_start = process_cpu_seconds();
  std::this_thread::sleep_for(1500ms);
  const double retries = errors.value() - errors_start;
  const double cpu = process_cpu_seconds() - cpu_start;
  std::cout << "in 1.5 s: " << retries << " accept retries, " << cpu << " s of CPU\n";
  EXPECT_LE(retries, 10);
  EXPECT_LT(cpu, 0.3);

  // Descriptors back: the waiting connection is served within the backoff cap.
  exhaustion.release();
  const auto freed = std::chrono::steady_clock::now();
  const std::string request = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  ASSERT_TRUE(pending.send_all(request));
  const std::string answer = pending.read_until_close();
  EXPECT_EQ(answer.rfind("HTTP/1.1 200", 0), 0u) << answer;
  EXPECT_LT(std::chrono::steady_clock::now() - freed, 5s);
  HttpClientOptions co;
  co.port = server.port();
  co.max_retries = 0;
  EXPECT_EQ(HttpClient(co).request("GET", "/healthz").status, 200);
}

}  // namespace
}  // namespace rudder::core
