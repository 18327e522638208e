// What the HTTP server's socket tests share: a raw TCP connection for sending exact bytes, a
// sample message, and a fixture serving an echo route and two throwing routes on 127.0.0.1.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/http_client.h"
#include "core/http_server.h"
#include "core/proto_http.h"
#include "proto/rudder.pb.h"
#include "tests/support/raw_socket.h"

namespace rudder::core::http_testing {

using rudder::testing::RawSocket;

/// Whether the raw `answer` starts with `status_line` ("HTTP/1.1 400"); the failure shows it.
inline ::testing::AssertionResult answers_with(const std::string& answer,
                                               const std::string& status_line) {
  if (answer.rfind(status_line, 0) == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "expected " << status_line << ", got: " << answer;
}

/// The value of the header `name` in `response`; empty when it has none.
inline std::string header_value(const HttpResponse& response, const std::string& name) {
  for (const auto& [key, value] : response.headers) {
    if (key == name) return value;
  }
  return "";
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

  /// Sends `bytes` on a fresh raw connection to the server; returns what arrives until it closes.
  std::string exchange(const std::string& bytes) {
    return rudder::testing::exchange(server_->port(), bytes);
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
