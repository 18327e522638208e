// What the HTTP server's socket tests share: a raw TCP connection for sending exact bytes, a
// sample message, and a fixture serving an echo route and two throwing routes on 127.0.0.1.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/http_client.h"
#include "core/http_server.h"
#include "core/proto_http.h"
#include "proto/rudder.pb.h"

namespace rudder::core::http_testing {

// A plain blocking TCP connection for sending exactly the bytes a test wants.
class RawSocket {
 public:
  explicit RawSocket(uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      close(fd_);
      throw std::runtime_error("connect");
    }
    set_read_timeout(std::chrono::seconds(10));
  }
  ~RawSocket() { close(fd_); }
  RawSocket(const RawSocket&) = delete;
  RawSocket& operator=(const RawSocket&) = delete;
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

/// Whether the raw `answer` starts with `status_line` ("HTTP/1.1 400"); the failure shows it.
inline ::testing::AssertionResult answers_with(const std::string& answer,
                                               const std::string& status_line) {
  if (answer.rfind(status_line, 0) == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "expected " << status_line << ", got: " << answer;
}

inline ScoreRequest sample_request() {
  ScoreRequest req;
  auto* a = req.add_items();
  a->set_prompt("What is 2+2?");
  a->set_response("4");
  auto* b = req.add_items();
  b->set_prompt("Say something kind \xE2\x9C\x93");
  b->set_response("You are great.");
  return req;
}

class HttpServerFixture : public ::testing::Test {
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

}  // namespace rudder::core::http_testing
