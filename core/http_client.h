// A blocking HTTP/1.1 client with timeouts, keep-alive and retries (Beast, behind a pimpl).
//
// Thread-safety: one HttpClient per thread; it keeps one connection open between calls.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "core/http.h"
#include "core/proto_http.h"

namespace rudder::core {

/// Where and how an HttpClient connects.
struct HttpClientOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds request_timeout{60000};  // whole request: write, wait, read
  int max_retries = 2;                           // extra attempts on connection errors, 429, 503
  std::chrono::milliseconds retry_backoff{100};  // doubled after every retry
  std::string token;                             // bearer token; empty: none
};

/// A blocking client for one server.
class HttpClient {
 public:
  explicit HttpClient(HttpClientOptions options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  /// Sends one request and returns the response, whatever its status. Retries connection
  /// failures and 429/503 answers; throws Unavailable when every attempt failed to connect
  /// or timed out.
  HttpResponse request(const std::string& method, const std::string& target,
                       const std::string& body = "",
                       const std::string& content_type = std::string(kJsonType),
                       const std::string& accept = std::string(kJsonType));

  /// POSTs `message` to `target` and decodes the reply into `reply`, both in `wire` encoding.
  /// A non-2xx answer throws the matching core error with the server's message.
  void call(const std::string& target, const google::protobuf::Message& message,
            google::protobuf::Message* reply, Wire wire = Wire::kJson);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rudder::core
