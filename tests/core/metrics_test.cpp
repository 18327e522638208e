#include "core/metrics.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/http_client.h"
#include "core/http_server.h"
#include "tests/support/test_support.h"

namespace rudder::core {
namespace {

// Runs Debian's `promtool check metrics` on `text`; returns its exit code and output.
testing::ProcessResult promtool_check(const std::string& text) {
  testing::TempDir dir;
  const std::string file = dir.write("metrics.txt", text);
  return testing::run_process({"/bin/sh", "-c", "promtool check metrics < '" + file + "'"});
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
  EXPECT_NE(check.exit_code, 0);
}

}  // namespace
}  // namespace rudder::core
