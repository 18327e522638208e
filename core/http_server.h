// An HTTP/1.1 server on Boost.Beast (hidden behind a pimpl).
//
// Threading: `start()` runs `threads` I/O threads; handlers run on them, so a handler must be
// thread-safe and quick (long work belongs on a queue owned by one worker thread). Routes are
// registered before `start()`. `shutdown()` may be called from any thread, signal-safe via
// `handle_signals()`.
//
// HEAD is answered by the GET route of its path (a GET handler may see method "HEAD"), with the
// headers of its answer and no body.
//
// Hostile clients: the header block must arrive within `header_timeout` of its first byte
// (slowloris), bodies within `body_timeout`; an idle keep-alive connection is closed after
// `idle_timeout`. Everything about a request that its header shows is checked before its body
// is read: a Transfer-Encoding other than chunked is 501 (its body's end would be unknown), an
// HTTP/1.1 request without a Host header or any with two 400, a POST or PUT with neither
// Content-Length nor chunked 411, missing credentials 401, a Content-Length over
// `max_body_bytes` 413 (a chunked body is cut at the limit); each closes the connection. The
// request metrics count 401, 405 and 413 under the route of the path ("unmatched" where no route
// has it), the framing errors (400, 411, 431, 501) under the route "framing". What the client
// still sends of a declared body is read and dropped, up to 64 MiB within 5 s, so that a client
// which sends its whole body before reading still gets the answer. A header block over
// `max_header_bytes` is 431, connections over `max_connections` 503; the built-in routes answer
// GET and HEAD alone (405 otherwise); a JSON body in another charset than UTF-8 is 415.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "core/http.h"

namespace rudder {
class ServerConfig;
}

namespace rudder::core {

/// Limits and addresses of an HttpServer; see ServerConfig in the proto for each field.
struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0: pick a free port
  int threads = 4;
  size_t max_body_bytes = 8u << 20;
  size_t max_header_bytes = 16u << 10;
  int max_json_depth = 64;
  size_t max_connections = 1024;
  std::chrono::milliseconds header_timeout{10000};
  std::chrono::milliseconds body_timeout{30000};
  std::chrono::milliseconds write_timeout{30000};
  std::chrono::milliseconds idle_timeout{60000};
  std::chrono::milliseconds drain_timeout{
      30000};         // most time shutdown waits for in-flight requests
  std::string token;  // bearer token guarding every route but /healthz; empty: none
};

/// Options from the config; the token is read from `token_file` or the `token_env` variable
/// (never from the command line). Throws InvalidArgument when neither can be read.
HttpServerOptions server_options_from_config(const ServerConfig& config);

/// The HTTP server: routes, built-in /healthz, /readyz and /metrics, auth, limits.
class HttpServer {
 public:
  /// Validates the options (throws InvalidArgument): a non-loopback host needs a token.
  explicit HttpServer(HttpServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// Registers `handler` for `method` (not HEAD: see above) and exact `path`. Call before
  /// start().
  void route(const std::string& method, const std::string& path, HttpHandler handler);

  /// Marks the server ready (/readyz 200) or not (503, the initial state).
  void set_ready(bool ready);

  /// Binds, listens and starts the I/O threads; returns once accepting. Throws on bind failure.
  void start();

  /// The bound port (after start()).
  uint16_t port() const;

  /// Makes SIGINT and SIGTERM start a graceful shutdown. Call after start().
  void handle_signals();

  /// Graceful shutdown: stop accepting, let in-flight requests finish (up to drain_timeout),
  /// close idle connections. Returns immediately; wait() blocks until it is done.
  void shutdown();

  /// Blocks until the server has shut down and its threads have exited.
  void wait();

  /// Routes one request: auth, built-in routes, handlers, error mapping. No sockets involved;
  /// the sessions call it and tests may too.
  HttpResponse handle(const HttpRequest& request) const;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace rudder::core
