// SIGTERM on a real server process while requests are in flight.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "core/http_client.h"
#include "tests/support/test_support.h"

namespace rudder::core {
namespace {

using namespace std::chrono_literals;

TEST(HttpShutdown, SigtermLetsInFlightRequestsCompleteAndExitsZero) {
  testing::TempDir dir;
  const std::string port_file = dir.path() + "/port";
  const pid_t pid = fork();
  if (pid == 0) {
    const std::string binary = std::string(RUDDER_BINARY_DIR) + "/tests/core/http_test_server";
    execl(binary.c_str(), binary.c_str(), port_file.c_str(), "1500", static_cast<char*>(nullptr));
    _exit(127);
  }
  uint16_t port = 0;
  for (int i = 0; i < 200 && port == 0; ++i) {
    std::ifstream in(port_file);
    int p = 0;
    if (in >> p)
      port = static_cast<uint16_t>(p);
    else
      std::this_thread::sleep_for(50ms);
  }
  ASSERT_NE(port, 0) << "server did not start";

  std::atomic<int> completed{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&] {
      HttpClientOptions o;
      o.port = port;
      o.max_retries = 0;
      HttpClient c(o);
      const HttpResponse r = c.request("GET", "/slow");
      if (r.status == 200 && r.body == R"({"done":true})") ++completed;
    });
  }
  std::this_thread::sleep_for(400ms);  // requests are now inside the handler
  ASSERT_EQ(kill(pid, SIGTERM), 0);
  for (auto& t : clients) t.join();
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_EQ(completed.load(), 4);
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace rudder::core
