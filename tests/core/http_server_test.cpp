#include "core/http_server.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/http_client.h"
#include "core/proto_http.h"
#include "proto/rudder.pb.h"
#include "tests/core/http_testing.h"

namespace rudder::core {
namespace {

using namespace std::chrono_literals;

using http_testing::answers_with;
using http_testing::RawSocket;
using http_testing::sample_request;

class HttpServerTest : public http_testing::HttpServerFixture {};

TEST_F(HttpServerTest, SameMessageRoundTripsAsJsonAndProtobuf) {
  start();
  const ScoreRequest sent = sample_request();
  HttpClient c = client();
  for (const Wire wire : {Wire::kJson, Wire::kProtobuf}) {
    ScoreRequest got;
    c.call("/v1/echo", sent, &got, wire);
    EXPECT_EQ(got.SerializeAsString(), sent.SerializeAsString());
  }
  // The content types follow the request.
  const HttpResponse json = c.request("POST", "/v1/echo", encode_message(sent, Wire::kJson));
  EXPECT_EQ(json.status, 200);
  EXPECT_EQ(json.content_type, "application/json");
  EXPECT_NE(json.body.find("\"prompt\":\"What is 2+2?\""), std::string::npos) << json.body;
  const HttpResponse pb = c.request("POST", "/v1/echo", encode_message(sent, Wire::kProtobuf),
                                    "application/x-protobuf", "application/x-protobuf");
  EXPECT_EQ(pb.status, 200);
  EXPECT_EQ(pb.content_type, "application/x-protobuf");
  EXPECT_EQ(pb.body, sent.SerializeAsString());
}

TEST_F(HttpServerTest, MalformedBodiesAre400WithAMessage) {
  start();
  HttpClient c = client();
  HttpResponse r = c.request("POST", "/v1/echo", "{\"items\": [ {\"prompt\": 1,");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("malformed JSON body for rudder.ScoreRequest"), std::string::npos)
      << r.body;

  r = c.request("POST", "/v1/echo", R"({"itemz": []})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("itemz"), std::string::npos) << r.body;

  r = c.request("POST", "/v1/echo", std::string("\xff\xff\xff\xff\x0f", 5),
                "application/x-protobuf");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("malformed protobuf body"), std::string::npos) << r.body;

  // A string field that is not UTF-8: 400, and libprotobuf's own complaint stays off stderr.
  ::testing::internal::CaptureStderr();
  r = c.request("POST", "/v1/echo", std::string("\x0a\x03\x0a\x01\xff", 5),
                "application/x-protobuf");
  const std::string stderr_text = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(stderr_text.find("libprotobuf"), std::string::npos) << stderr_text;

  r = c.request("POST", "/v1/echo", "<xml/>", "text/xml");
  EXPECT_EQ(r.status, 415);

  const std::string deep = "{\"items\":" + std::string(200, '[') + std::string(200, ']') + "}";
  r = c.request("POST", "/v1/echo", deep);
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("nested deeper than 64"), std::string::npos) << r.body;

  // Garbage on the wire: 400, and the server keeps serving.
  RawSocket raw(server_->port());
  raw.send_all("NOT HTTP AT ALL\r\n\r\n");
  EXPECT_TRUE(answers_with(raw.read_until_close(), "HTTP/1.1 400"));
  EXPECT_EQ(c.request("GET", "/healthz").status, 200);
}

TEST_F(HttpServerTest, UnknownRouteIs404AndWrongMethodIs405) {
  start();
  HttpClient c = client();
  HttpResponse r = c.request("GET", "/v1/nothing-here");
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.body.find("\"error\""), std::string::npos);
  r = c.request("GET", "/v1/echo");
  EXPECT_EQ(r.status, 405);
}

// Content-Type names the body's encoding by its media type, in any case; JSON is UTF-8 only.
TEST_F(HttpServerTest, ContentTypeIsAMediaTypeInAnyCase) {
  start();
  HttpClient c = client();
  const std::string body = encode_message(sample_request(), Wire::kJson);
  for (const char* type : {"APPLICATION/JSON", "application/json; charset=UTF-8",
                           "application/json;charset=\"utf-8\"", " application/json "}) {
    EXPECT_EQ(c.request("POST", "/v1/echo", body, type).status, 200) << type;
  }
  EXPECT_EQ(c.request("POST", "/v1/echo", encode_message(sample_request(), Wire::kProtobuf),
                      "Application/X-Protobuf")
                .status,
            200);
  for (const char* type : {"application/json; charset=latin-1", "text/plain; x=application/json",
                           "application/jsonx"}) {
    const HttpResponse r = c.request("POST", "/v1/echo", body, type);
    EXPECT_EQ(r.status, 415) << type << " -> " << r.body;
  }
}

TEST_F(HttpServerTest, HandlerErrorsMapToStatusCodesAndNeverStopTheServer) {
  start();
  HttpClient c = client();
  HttpResponse r = c.request("GET", "/v1/throw-bad");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("bad thing in the request"), std::string::npos);
  EXPECT_EQ(c.request("GET", "/v1/throw-bug").status, 500);
  EXPECT_EQ(c.request("GET", "/healthz").status, 200);
}

TEST_F(HttpServerTest, TokenGuardsEveryRouteButHealthz) {
  HttpServerOptions o;
  o.token = "s3cret-token";
  start(o);
  HttpClient anonymous = client();
  HttpResponse r = anonymous.request("GET", "/readyz");
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(r.body.find("missing bearer token"), std::string::npos);
  EXPECT_EQ(anonymous.request("GET", "/metrics").status, 401);
  EXPECT_EQ(anonymous.request("GET", "/healthz").status, 200);

  HttpClient wrong = client("s3cret-tokeN");
  r = wrong.request("POST", "/v1/echo", "{}");
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(r.body.find("invalid bearer token"), std::string::npos);

  HttpClient right = client("s3cret-token");
  EXPECT_EQ(right.request("POST", "/v1/echo", "{}").status, 200);
}

TEST(HttpServerAuth, BearerSchemeIsCaseInsensitive) {
  HttpServerOptions o;
  o.token = "s3cret";
  HttpServer server(o);
  server.set_ready(true);
  const auto status_with = [&](const std::string& authorization) {
    HttpRequest req;
    req.method = "GET";
    req.path = req.target = "/readyz";
    req.headers["authorization"] = authorization;
    return server.handle(req).status;
  };
  // RFC 7235 2.1: the scheme name is case-insensitive; one or more spaces separate it.
  for (const char* ok :
       {"Bearer s3cret", "bearer s3cret", "BEARER s3cret", "bEaReR s3cret", "Bearer   s3cret"}) {
    EXPECT_EQ(status_with(ok), 200) << "'" << ok << "'";
  }
  for (const char* bad : {"Bearer S3CRET", "Basic s3cret", "Bearers3cret", "Bearer", "Bearer ",
                          "xBearer s3cret", "Bear s3cret", "s3cret"}) {
    EXPECT_EQ(status_with(bad), 401) << "'" << bad << "'";
  }
}

TEST_F(HttpServerTest, ReadyzIs503UntilReady) {
  start();
  HttpClient c = client();
  EXPECT_EQ(c.request("GET", "/readyz").status, 503);
  server_->set_ready(true);
  EXPECT_EQ(c.request("GET", "/readyz").status, 200);
}

TEST_F(HttpServerTest, SlowHeaderClientIsCutOffWhileOthersAreServed) {
  HttpServerOptions o;
  o.header_timeout = 1500ms;
  start(o);
  std::atomic<bool> slow_cut{false};
  std::atomic<int> sent_bytes{0};
  std::thread slow([&] {
    RawSocket raw(server_->port());
    raw.set_read_timeout(100ms);
    const std::string request =
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Padding: " + std::string(64, 'p') +
        "\r\n\r\n";
    for (char ch : request) {
      if (!raw.send_all(std::string(1, ch)) || raw.closed_by_peer()) {
        slow_cut = true;
        return;
      }
      ++sent_bytes;
      std::this_thread::sleep_for(900ms);  // about one byte a second
    }
  });
  // Meanwhile, ordinary clients are served promptly.
  HttpClient c = client();
  const auto begin = std::chrono::steady_clock::now();
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(c.request("GET", "/healthz").status, 200);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 1s);
  slow.join();
  EXPECT_TRUE(slow_cut.load());
  // Cut at the 1.5 s deadline: a few bytes in, far from the whole header.
  EXPECT_LE(sent_bytes.load(), 5);
}

TEST_F(HttpServerTest, ThousandRequestsFromSixteenConnectionsHaveNoErrors) {
  start();
  constexpr int kClients = 16;
  constexpr int kPerClient = 63;  // 1008 requests
  std::atomic<int> ok{0};
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  const ScoreRequest sent = sample_request();
  for (int t = 0; t < kClients; ++t) {
    threads.emplace_back([&, t] {
      HttpClient c = client();
      for (int i = 0; i < kPerClient; ++i) {
        try {
          ScoreRequest got;
          c.call("/v1/echo", sent, &got, (t + i) % 2 ? Wire::kJson : Wire::kProtobuf);
          if (got.SerializeAsString() == sent.SerializeAsString())
            ++ok;
          else
            ++errors;
        } catch (const std::exception&) {
          ++errors;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(ok.load(), kClients * kPerClient);
}

TEST_F(HttpServerTest, ConnectionsOverTheCapAre503) {
  HttpServerOptions o;
  o.max_connections = 3;
  start(o);
  std::vector<std::unique_ptr<RawSocket>> held;
  for (int i = 0; i < 3; ++i) held.push_back(std::make_unique<RawSocket>(server_->port()));
  std::this_thread::sleep_for(200ms);  // let the server accept them
  RawSocket extra(server_->port());
  EXPECT_TRUE(answers_with(extra.read_until_close(), "HTTP/1.1 503"));
  held.clear();
  std::this_thread::sleep_for(200ms);
  HttpClient c = client();
  EXPECT_EQ(c.request("GET", "/healthz").status, 200);
}

TEST_F(HttpServerTest, ShutdownLetsInFlightRequestsFinish) {
  HttpServerOptions o;
  o.host = "127.0.0.1";
  server_ = std::make_unique<HttpServer>(o);
  server_->route("GET", "/slow", [](const HttpRequest&) {
    std::this_thread::sleep_for(500ms);
    HttpResponse r;
    r.body = R"({"done":true})";
    return r;
  });
  server_->start();
  std::atomic<int> done{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&] {
      if (client().request("GET", "/slow").status == 200) ++done;
    });
  }
  std::this_thread::sleep_for(150ms);
  server_->shutdown();
  server_->wait();
  for (auto& t : threads) t.join();
  EXPECT_EQ(done.load(), 3);
}

TEST_F(HttpServerTest, ShutdownClosesIdleKeepAliveConnectionsAtOnce) {
  HttpServerOptions o;
  o.drain_timeout = 30s;
  start(o);
  // Keep-alive connections left idle by clients that are not reading (a blocking client
  // between calls): the drain must not wait for them.
  HttpClient a = client(), b = client();
  ASSERT_EQ(a.request("GET", "/healthz").status, 200);
  ASSERT_EQ(b.request("GET", "/healthz").status, 200);
  const auto start_time = std::chrono::steady_clock::now();
  server_->shutdown();
  server_->wait();
  EXPECT_LT(std::chrono::steady_clock::now() - start_time, 10s);
}

TEST(HttpServerOptionsTest, NonLoopbackBindNeedsAToken) {
  HttpServerOptions o;
  o.host = "0.0.0.0";
  try {
    HttpServer server(o);
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("without a token"), std::string::npos);
  }
  o.token = "t";
  EXPECT_NO_THROW(HttpServer server(o));
  o.host = "not-an-ip";
  EXPECT_THROW(HttpServer server(o), InvalidArgument);
}

TEST(HttpServerOptionsTest, TokenComesFromFileOrEnvironment) {
  ServerConfig config;
  config.set_host("127.0.0.1");
  config.set_threads(1);
  config.set_max_body_bytes(10);
  config.set_max_connections(1);
  config.set_token_env("RUDDER_TEST_TOKEN");
  unsetenv("RUDDER_TEST_TOKEN");
  EXPECT_THROW(server_options_from_config(config), InvalidArgument);
  setenv("RUDDER_TEST_TOKEN", "from-env", 1);
  EXPECT_EQ(server_options_from_config(config).token, "from-env");
  config.set_token_file("/nonexistent/token");
  EXPECT_THROW(server_options_from_config(config), InvalidArgument);
}

}  // namespace
}  // namespace rudder::core
