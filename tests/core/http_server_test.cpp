#include "core/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

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

namespace rudder::core {
namespace {

using namespace std::chrono_literals;

// A plain blocking TCP connection for sending exactly the bytes a test wants.
class RawSocket {
 public:
  explicit RawSocket(uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
      throw std::runtime_error("connect");
    set_read_timeout(10s);
  }
  ~RawSocket() { close(fd_); }
  bool send_all(const std::string& data) {
    return ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(data.size());
  }
  void set_read_timeout(std::chrono::milliseconds t) {
    timeval tv{static_cast<time_t>(t.count() / 1000),
               static_cast<suseconds_t>((t.count() % 1000) * 1000)};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  // Reads until the peer closes (or the timeout); returns what arrived.
  std::string read_until_close() {
    std::string out;
    char buf[4096];
    for (;;) {
      const ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
  // True when the peer has closed the connection (recv returns 0 or a reset).
  bool closed_by_peer() {
    char c;
    const ssize_t n = recv(fd_, &c, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }

 private:
  int fd_ = -1;
};

ScoreRequest sample_request() {
  ScoreRequest req;
  auto* a = req.add_items();
  a->set_prompt("What is 2+2?");
  a->set_response("4");
  auto* b = req.add_items();
  b->set_prompt("Say something kind \xE2\x9C\x93");
  b->set_response("You are great.");
  return req;
}

class HttpServerTest : public ::testing::Test {
 protected:
  void start(HttpServerOptions options = {}) {
    options.host = "127.0.0.1";
    options.port = 0;
    server_ = std::make_unique<HttpServer>(options);
    server_->route("POST", "/v1/echo", [](const HttpRequest& req) {
      ScoreRequest msg;
      parse_message(req, &msg);
      return message_response(req, msg);
    });
    server_->route("GET", "/v1/throw-bad", [](const HttpRequest&) -> HttpResponse {
      throw InvalidArgument("bad thing in the request");
    });
    server_->route("GET", "/v1/throw-bug",
                   [](const HttpRequest&) -> HttpResponse { throw std::logic_error("a bug"); });
    server_->start();
  }

  HttpClient client(const std::string& token = "") {
    HttpClientOptions o;
    o.port = server_->port();
    o.token = token;
    o.max_retries = 0;
    return HttpClient(o);
  }

  std::unique_ptr<HttpServer> server_;
};

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

TEST_F(HttpServerTest, OversizedBodyIs413) {
  HttpServerOptions o;
  o.max_body_bytes = 1024;
  start(o);
  HttpClient c = client();
  const HttpResponse r = c.request("POST", "/v1/echo", std::string(4096, 'x'));
  EXPECT_EQ(r.status, 413);
  EXPECT_NE(r.body.find("\"code\":413"), std::string::npos) << r.body;

  // Answered from Content-Length alone, before any body byte is sent.
  RawSocket raw(server_->port());
  raw.send_all("POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n");
  const std::string answer = raw.read_until_close();
  EXPECT_EQ(answer.rfind("HTTP/1.1 413", 0), 0u) << answer;
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
  EXPECT_EQ(raw.read_until_close().rfind("HTTP/1.1 400", 0), 0u);
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

// A Transfer-Encoding other than chunked alone is refused and the connection closed, so that no
// part of the body is read as the next request (RFC 9112, 6.1).
TEST_F(HttpServerTest, TransferCodingsOtherThanChunkedAre501AndClose) {
  start();
  const std::string body = encode_message(sample_request(), Wire::kJson);
  const auto send = [&](const std::string& coding, const std::string& framed) {
    RawSocket raw(server_->port());
    raw.send_all(
        "POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: " +
        coding + "\r\n\r\n" + framed);
    return raw.read_until_close();
  };
  const std::string chunked = [&] {
    char size[16];
    std::snprintf(size, sizeof(size), "%zx", body.size());
    return std::string(size) + "\r\n" + body + "\r\n0\r\n\r\n";
  }();
  for (const std::string coding : {"gzip", "GZIP, chunked", "xchunked", "chunked, identity"}) {
    const std::string answer =
        send(coding, coding.find("chunked") != std::string::npos ? chunked : body);
    EXPECT_EQ(answer.rfind("HTTP/1.1 501", 0), 0u) << coding << ": " << answer;
    EXPECT_NE(answer.find("not supported"), std::string::npos) << answer;
    EXPECT_EQ(answer.find("HTTP/1.1", 1), std::string::npos) << coding << ": a second answer";
  }
  // Every Transfer-Encoding field counts, wherever it is among the others.
  const std::string split = send(",\r\nX-Between: 1\r\nTransfer-Encoding: gzip", body);
  EXPECT_EQ(split.rfind("HTTP/1.1 501", 0), 0u) << split;
  EXPECT_EQ(split.find("HTTP/1.1", 1), std::string::npos) << split;
  const std::string empty_first = send("\r\nX-Between: 1\r\nTransfer-Encoding: chunked", chunked);
  EXPECT_EQ(empty_first.rfind("HTTP/1.1 200", 0), 0u) << empty_first;
  const std::string twice = send("chunked, chunked", chunked);
  EXPECT_EQ(twice.rfind("HTTP/1.1 400", 0), 0u) << twice;
  EXPECT_EQ(twice.find("HTTP/1.1", 1), std::string::npos) << twice;
  const std::string good = send("Chunked", chunked);  // the coding's name in any case
  EXPECT_EQ(good.rfind("HTTP/1.1 200", 0), 0u) << good;
}

// HEAD gets GET's status and headers, Content-Length included, and no body: the next answer on
// the connection follows the headers directly.
TEST_F(HttpServerTest, HeadAnswersWithTheHeadersOfGetAlone) {
  start();
  RawSocket raw(server_->port());
  raw.send_all(
      "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
      "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
      "HEAD /v1/echo HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  const std::string all = raw.read_until_close();
  std::vector<std::string> answers;
  for (size_t at = 0; at != std::string::npos;) {
    const size_t next = all.find("HTTP/1.1 ", at + 1);
    answers.push_back(all.substr(at, next == std::string::npos ? next : next - at));
    at = next;
  }
  ASSERT_EQ(answers.size(), 4u) << all;
  EXPECT_EQ(answers[0].rfind("HTTP/1.1 200", 0), 0u) << answers[0];
  EXPECT_NE(answers[0].find("Content-Length: 15\r\n"), std::string::npos) << answers[0];
  EXPECT_EQ(answers[0].substr(answers[0].size() - 4), "\r\n\r\n") << "a body followed";
  EXPECT_EQ(answers[1].rfind("HTTP/1.1 200", 0), 0u) << answers[1];
  EXPECT_EQ(answers[1].substr(answers[1].size() - 4), "\r\n\r\n");
  EXPECT_EQ(answers[2].rfind("HTTP/1.1 405", 0), 0u) << answers[2];
  EXPECT_NE(answers[2].find("Allow: POST\r\n"), std::string::npos) << answers[2];
  EXPECT_NE(answers[3].find("{\"status\":\"ok\"}"), std::string::npos) << answers[3];
  // A GET route's 405 lists HEAD beside GET.
  HttpClient c = client();
  const HttpResponse r = c.request("POST", "/v1/throw-bad", "{}");
  EXPECT_EQ(r.status, 405);
  std::string allow;
  for (const auto& [name, value] : r.headers) {
    if (name == "Allow") allow = value;
  }
  EXPECT_EQ(allow, "GET, HEAD");
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

TEST_F(HttpServerTest, HeaderBlockOverLimitIs431) {
  HttpServerOptions o;
  o.max_header_bytes = 1024;
  start(o);
  RawSocket raw(server_->port());
  raw.send_all("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(4000, 'a') + "\r\n\r\n");
  EXPECT_EQ(raw.read_until_close().rfind("HTTP/1.1 431", 0), 0u);
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
  EXPECT_EQ(extra.read_until_close().rfind("HTTP/1.1 503", 0), 0u);
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
