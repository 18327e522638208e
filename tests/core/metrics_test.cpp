#include "core/metrics.h"

#include <unistd.h>

#include <cstdlib>

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/http_client.h"
#include "core/http_server.h"
#include "tests/support/test_support.h"

namespace rudder::core {
namespace {

// The absolute path of `name` in a directory of $PATH, or "" when there is none.
std::string find_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "";
  for (size_t begin = 0; begin <= dirs.size();) {
    size_t end = dirs.find(':', begin);
    if (end == std::string::npos) end = dirs.size();
    const std::string dir = end > begin ? dirs.substr(begin, end - begin) : ".";
    const std::string candidate = dir + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    begin = end + 1;
  }
  return "";
}

// Runs Debian's `promtool check metrics` on `text`; returns its exit code and output. A missing
// promtool is a failure, not a skip: without it these tests would check nothing.
testing::ProcessResult promtool_check(const std::string& text) {
  const std::string promtool = find_on_path("promtool");
  if (promtool.empty()) {
    const char* path = std::getenv("PATH");
    ADD_FAILURE() << "promtool not found on PATH (" << (path ? path : "unset")
                  << "); install the Debian package 'prometheus' (scripts/install-deps.sh)";
    return {};
  }
  testing::TempDir dir;
  const std::string file = dir.write("metrics.txt", text);
  return testing::run_process(
      {"/bin/sh", "-c", "'" + promtool + "' check metrics < '" + file + "'"});
}

TEST(Metrics, HandlesShareTimeSeriesAndRejectTypeClashes) {
  Counter a = counter("rudder_test_events_total", "Test events.", {{"kind", "a"}});
  Counter a_again = counter("rudder_test_events_total", "Test events.", {{"kind", "a"}});
  a.inc();
  a_again.inc(2);
  EXPECT_DOUBLE_EQ(a.value(), 3.0);
  EXPECT_THROW(gauge("rudder_test_events_total", "clash"), InvalidArgument);
  EXPECT_THROW(counter("bad name", "x"), InvalidArgument);
  Gauge g = gauge("rudder_test_level", "A test level.");
  g.set(5);
  g.inc(-2);
  EXPECT_DOUBLE_EQ(g.value(), 3.0);
}

TEST(Metrics, ExpositionHasProcessAndBuildMetrics) {
  histogram("rudder_test_duration_seconds", "Test durations.", latency_buckets()).observe(0.2);
  const std::string text = render_metrics();
  for (const char* name : {"process_resident_memory_bytes ", "process_cpu_seconds_total ",
                           "process_start_time_seconds ", "rudder_build_info{",
                           "rudder_test_duration_seconds_bucket{le=\"0.25\"} 1"}) {
    EXPECT_NE(text.find(name), std::string::npos) << name << " missing in\n" << text;
  }
  EXPECT_NE(text.find("libtorch=\""), std::string::npos);
}

TEST(Metrics, ServedMetricsPassPromtool) {
  HttpServerOptions o;
  HttpServer server(o);
  server.start();
  HttpClientOptions co;
  co.port = server.port();
  HttpClient client(co);
  ASSERT_EQ(client.request("GET", "/healthz").status, 200);  // so request metrics exist
  const HttpResponse r = client.request("GET", "/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type.rfind("text/plain; version=0.0.4", 0), 0u);
  EXPECT_NE(r.body.find("rudder_http_requests_total{"), std::string::npos);
  const testing::ProcessResult check = promtool_check(r.body);
  EXPECT_EQ(check.exit_code, 0) << "promtool: " << check.out << check.err << "\n" << r.body;
}

TEST(Metrics, PromtoolRejectsBrokenExposition) {
  // The check above can fail: promtool refuses a malformed exposition.
  const testing::ProcessResult check = promtool_check("# TYPE x counter\nx{ 1\n");
  EXPECT_EQ(check.exit_code, 1) << check.out << check.err;
  EXPECT_NE((check.out + check.err).find("parsing error"), std::string::npos)
      << check.out << check.err;
}

}  // namespace
}  // namespace rudder::core
