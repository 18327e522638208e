// Framing at the socket: body and header limits, Transfer-Encoding, Host, HEAD, and the methods
// of the built-in routes, each sent as exact bytes.
#include "core/http_server.h"

#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/core/http_testing.h"

namespace rudder::core {
namespace {

using http_testing::answers_with;
using http_testing::header_value;
using http_testing::RawSocket;
using http_testing::sample_request;

class HttpFramingTest : public http_testing::HttpServerFixture {};

// rudder_http_requests_total{code, route} in a metrics exposition; 0 where it has none.
double requests_counted(const std::string& metrics, const std::string& route, int code) {
  std::istringstream lines(metrics);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("rudder_http_requests_total{", 0) == 0 &&
        line.find("route=\"" + route + "\"") != std::string::npos &&
        line.find("code=\"" + std::to_string(code) + "\"") != std::string::npos)
      return std::stod(line.substr(line.rfind(' ') + 1));
  }
  return 0.0;
}

TEST_F(HttpFramingTest, OversizedBodyIs413) {
  HttpServerOptions o;
  o.max_body_bytes = 1024;
  start(o);
  HttpClient c = client();
  const std::string before = c.request("GET", "/metrics").body;
  const HttpResponse r = c.request("POST", "/v1/echo", std::string(4096, 'x'));
  EXPECT_EQ(r.status, 413);
  EXPECT_NE(r.body.find("\"code\":413"), std::string::npos) << r.body;

  // Answered from Content-Length alone, before any body byte is sent.
  EXPECT_TRUE(answers_with(
      exchange("POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n"),
      "HTTP/1.1 413"));
  // A chunked body cut at the limit.
  EXPECT_TRUE(answers_with(exchange("POST /v1/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
                                    "chunked\r\n\r\n800\r\n" +
                                    std::string(2048, 'x') + "\r\n0\r\n\r\n"),
                           "HTTP/1.1 413"));
  // Each counts under the route it was sent to.
  const std::string after = client().request("GET", "/metrics").body;
  EXPECT_EQ(requests_counted(after, "/v1/echo", 413) - requests_counted(before, "/v1/echo", 413), 3)
      << after;
}

// A client that sends its whole body before reading (no Expect: 100-continue) still reads the
// 413: the server drops what follows the answer instead of resetting the connection under it.
TEST_F(HttpFramingTest, ClientSendingAWholeOversizedBodyReadsThe413) {
  HttpServerOptions o;
  o.max_body_bytes = 1024;
  start(o);
  const size_t size = size_t{16} << 20;
  RawSocket raw(server_->port());
  ASSERT_TRUE(raw.send_all(
      "POST /v1/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
      "Content-Length: " +
      std::to_string(size) + "\r\n\r\n"));
  EXPECT_TRUE(raw.send_all(std::string(size, ' '))) << "the server reset the connection";
  const std::string answer = raw.read_until_close();
  EXPECT_TRUE(answers_with(answer, "HTTP/1.1 413"));
  EXPECT_NE(answer.find("larger than 1024 bytes"), std::string::npos) << answer;
}

// A Transfer-Encoding other than chunked alone is refused and the connection closed, so that no
// part of the body is read as the next request (RFC 9112, 6.1).
TEST_F(HttpFramingTest, TransferCodingsOtherThanChunkedAre501AndClose) {
  start();
  const std::string body = encode_message(sample_request(), Wire::kJson);
  const auto send = [&](const std::string& coding, const std::string& framed) {
    return exchange(
        "POST /v1/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: "
        "application/json\r\nTransfer-Encoding: " +
        coding + "\r\n\r\n" + framed);
  };
  const std::string chunked = [&] {
    char size[16];
    std::snprintf(size, sizeof(size), "%zx", body.size());
    return std::string(size) + "\r\n" + body + "\r\n0\r\n\r\n";
  }();
  for (const std::string coding : {"gzip", "GZIP, chunked", "xchunked", "chunked, identity"}) {
    const std::string answer =
        send(coding, coding.find("chunked") != std::string::npos ? chunked : body);
    EXPECT_TRUE(answers_with(answer, "HTTP/1.1 501"));
    EXPECT_NE(answer.find("not supported"), std::string::npos) << answer;
    EXPECT_EQ(answer.find("HTTP/1.1", 1), std::string::npos) << coding << ": a second answer";
  }
  // Every Transfer-Encoding field counts, wherever it is among the others.
  const std::string split = send(",\r\nX-Between: 1\r\nTransfer-Encoding: gzip", body);
  EXPECT_TRUE(answers_with(split, "HTTP/1.1 501"));
  EXPECT_EQ(split.find("HTTP/1.1", 1), std::string::npos) << split;
  const std::string empty_first = send("\r\nX-Between: 1\r\nTransfer-Encoding: chunked", chunked);
  EXPECT_TRUE(answers_with(empty_first, "HTTP/1.1 200"));
  const std::string twice = send("chunked, chunked", chunked);
  EXPECT_TRUE(answers_with(twice, "HTTP/1.1 400"));
  EXPECT_EQ(twice.find("HTTP/1.1", 1), std::string::npos) << twice;
  const std::string good = send("Chunked", chunked);  // the coding's name in any case
  EXPECT_TRUE(answers_with(good, "HTTP/1.1 200"));
}

// HEAD gets GET's status and headers, Content-Length included, and no body: the next answer on
// the connection follows the headers directly.
TEST_F(HttpFramingTest, HeadAnswersWithTheHeadersOfGetAlone) {
  start();
  const std::string all = exchange(
      "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
      "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
      "HEAD /v1/echo HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  std::vector<std::string> answers;
  for (size_t at = 0; at != std::string::npos;) {
    const size_t next = all.find("HTTP/1.1 ", at + 1);
    answers.push_back(all.substr(at, next == std::string::npos ? next : next - at));
    at = next;
  }
  ASSERT_EQ(answers.size(), 4u) << all;
  EXPECT_TRUE(answers_with(answers[0], "HTTP/1.1 200"));
  EXPECT_NE(answers[0].find("Content-Length: 15\r\n"), std::string::npos) << answers[0];
  EXPECT_EQ(answers[0].substr(answers[0].size() - 4), "\r\n\r\n") << "a body followed";
  EXPECT_TRUE(answers_with(answers[1], "HTTP/1.1 200"));
  EXPECT_EQ(answers[1].substr(answers[1].size() - 4), "\r\n\r\n");
  EXPECT_TRUE(answers_with(answers[2], "HTTP/1.1 405"));
  EXPECT_NE(answers[2].find("Allow: POST\r\n"), std::string::npos) << answers[2];
  EXPECT_NE(answers[3].find("{\"status\":\"ok\"}"), std::string::npos) << answers[3];
  // A GET route's 405 lists HEAD beside GET.
  HttpClient c = client();
  const HttpResponse r = c.request("POST", "/v1/throw-bad", "{}");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(header_value(r, "Allow"), "GET, HEAD");
}

TEST_F(HttpFramingTest, HeaderBlockOverLimitIs431) {
  HttpServerOptions o;
  o.max_header_bytes = 1024;
  start(o);
  EXPECT_TRUE(answers_with(
      exchange("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(4000, 'a') + "\r\n\r\n"),
      "HTTP/1.1 431"));
}

// RFC 9112, 3.2: an HTTP/1.1 request without Host, any request with two, or one whose value is no
// host and port, is 400; HTTP/1.0 needs none.
TEST_F(HttpFramingTest, HostHeaderIsRequiredOnceInHttp11) {
  start();
  const std::string none = exchange("GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(answers_with(none, "HTTP/1.1 400"));
  EXPECT_NE(none.find("needs a Host header"), std::string::npos) << none;
  const std::string two = exchange("GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
  EXPECT_TRUE(answers_with(two, "HTTP/1.1 400"));
  EXPECT_NE(two.find("more than one Host"), std::string::npos) << two;
  const std::string two_old = exchange("GET /healthz HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n");
  EXPECT_TRUE(answers_with(two_old, "HTTP/1.0 400"));
  for (const std::string bad : {"a b", "a/b", "user@host", "host?x"}) {
    const std::string answer = exchange("GET /healthz HTTP/1.1\r\nHost: " + bad + "\r\n\r\n");
    EXPECT_TRUE(answers_with(answer, "HTTP/1.1 400")) << bad;
    EXPECT_NE(answer.find("not a host and port"), std::string::npos) << answer;
  }
  for (const std::string good : {"", "127.0.0.1:8080", "[::1]:80", "reward-0.svc.local"}) {
    const std::string answer =
        exchange("GET /healthz HTTP/1.1\r\nHost: " + good + "\r\nConnection: close\r\n\r\n");
    EXPECT_TRUE(answers_with(answer, "HTTP/1.1 200")) << good;
  }
  const std::string old = exchange("GET /healthz HTTP/1.0\r\n\r\n");
  EXPECT_TRUE(answers_with(old, "HTTP/1.0 200"));
  const std::string one = exchange("GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(answers_with(one, "HTTP/1.1 200"));
}

// A POST says how long its body is; without Content-Length or chunked it is 411, and what
// follows its header is not read as a request.
TEST_F(HttpFramingTest, PostWithoutALengthIs411) {
  start();
  const std::string answer = exchange(
      "POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\r\n"
      "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_TRUE(answers_with(answer, "HTTP/1.1 411"));
  EXPECT_NE(answer.find("POST without Content-Length"), std::string::npos) << answer;
  EXPECT_EQ(answer.find("HTTP/1.1", 1), std::string::npos) << "a second answer: " << answer;
  // An empty body whose length is given is the route's to judge.
  HttpClient c = client();
  EXPECT_EQ(c.request("POST", "/v1/echo", "").status, 400);
  EXPECT_TRUE(answers_with(exchange("PUT /v1/echo HTTP/1.1\r\nHost: x\r\n\r\n"), "HTTP/1.1 411"));
}

// Credentials are checked from the header, before the body is read: a client without them
// gets 401 at once, and sending no byte of its declared megabyte.
TEST_F(HttpFramingTest, MissingCredentialsAre401BeforeTheBodyIsRead) {
  HttpServerOptions o;
  o.token = "s3cret-token";
  start(o);
  const std::string before = client("s3cret-token").request("GET", "/metrics").body;
  const std::string answer =
      exchange("POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n");
  EXPECT_TRUE(answers_with(answer, "HTTP/1.1 401"));
  EXPECT_NE(answer.find("missing bearer token"), std::string::npos) << answer;
  EXPECT_NE(answer.find("WWW-Authenticate: Bearer"), std::string::npos) << answer;
  // A wrong method on a built-in route is 405 from the header alone, credentials or not;
  // /healthz answers without them.
  HttpClient anonymous = client();
  EXPECT_EQ(anonymous.request("POST", "/metrics", "{}").status, 405);
  EXPECT_EQ(anonymous.request("GET", "/metrics").status, 401);
  EXPECT_EQ(anonymous.request("GET", "/healthz").status, 200);
  EXPECT_EQ(anonymous.request("POST", "/healthz", "{}").status, 405);
  EXPECT_EQ(client("s3cret-token").request("POST", "/v1/echo", "{}").status, 200);
  // The metrics count each refusal under the route it was sent to (a path no route has:
  // "unmatched"), the framing errors under "framing". (The metrics are the process's: counted
  // here as what this test added.)
  EXPECT_EQ(anonymous.request("GET", "/nowhere").status, 401);
  EXPECT_TRUE(answers_with(exchange("POST /v1/echo HTTP/1.1\r\nHost: x\r\n\r\n"), "HTTP/1.1 411"));
  const std::string after = client("s3cret-token").request("GET", "/metrics").body;
  const auto added = [&](const std::string& route, int code) {
    return requests_counted(after, route, code) - requests_counted(before, route, code);
  };
  EXPECT_EQ(added("/v1/echo", 401), 1) << after;
  EXPECT_EQ(added("/metrics", 401), 1) << after;
  EXPECT_EQ(added("/metrics", 405), 1) << after;
  EXPECT_EQ(added("/healthz", 405), 1) << after;
  EXPECT_EQ(added("unmatched", 401), 1) << after;
  EXPECT_EQ(added("framing", 411), 1) << after;
  EXPECT_EQ(added("framing", 401), 0) << after;
}

// /healthz, /readyz and /metrics answer GET and HEAD; other methods get 405 naming those two.
TEST_F(HttpFramingTest, BuiltInRoutesAnswerGetAndHeadAlone) {
  start();
  HttpClient c = client();
  for (const char* path : {"/healthz", "/readyz", "/metrics"}) {
    for (const char* method : {"POST", "PUT", "DELETE"}) {
      const HttpResponse r = c.request(method, path, "{}");
      EXPECT_EQ(r.status, 405) << method << " " << path;
      EXPECT_EQ(header_value(r, "Allow"), "GET, HEAD") << method << " " << path;
    }
  }
  EXPECT_EQ(c.request("GET", "/healthz").status, 200);
  EXPECT_EQ(c.request("GET", "/metrics").status, 200);
  // Not ready: HEAD gets GET's status.
  EXPECT_TRUE(answers_with(
      exchange("HEAD /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), "HTTP/1.1 503"));
}

}  // namespace
}  // namespace rudder::core
