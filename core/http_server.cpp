#include "core/http_server.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include <google/protobuf/stubs/common.h>
#if GOOGLE_PROTOBUF_VERSION < 4022000  // from protobuf 22 on, Abseil's logging replaces this
#include <google/protobuf/stubs/logging.h>
#endif

#include "core/detail/http_session.h"
#include "core/error.h"
#include "core/log.h"
#include "core/metrics.h"
#include "proto/rudder.pb.h"

namespace rudder::core {

using detail::Session;

namespace {

const std::string kGet = "GET";

// libprotobuf's own log lines go to Rudder's log: its complaints about a client's body (a string
// field that is not UTF-8 writes one) at debug level, since the client already gets a 400 and
// could otherwise fill stderr at will; fatal ones as errors. Installed once, on the thread that
// makes the first server, before any I/O thread runs.
void route_protobuf_logs() {
#if GOOGLE_PROTOBUF_VERSION < 4022000
  static std::once_flag once;
  std::call_once(once, [] {
    google::protobuf::SetLogHandler([](google::protobuf::LogLevel level, const char* file, int line,
                                       const std::string& message) {
      if (level >= google::protobuf::LOGLEVEL_FATAL) {
        RUDDER_LOG(kError) << "protobuf (" << file << ":" << line << "): " << message;
      } else {
        RUDDER_LOG(kDebug) << "protobuf (" << file << ":" << line << "): " << message;
      }
    });
  });
#endif
}

std::string read_token_file(const std::string& path) {
  std::ifstream in(path);
  RUDDER_CHECK(in.good(), "cannot read token file '", path, "'");
  std::string token;
  std::getline(in, token);
  while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
  RUDDER_CHECK(!token.empty(), "token file '", path, "' is empty");
  return token;
}

// Constant-time comparison: hash both sides so neither content nor length leaks through timing.
bool token_matches(const std::string& given, const std::string& expected) {
  unsigned char a[SHA256_DIGEST_LENGTH];
  unsigned char b[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(given.data()), given.size(), a);
  SHA256(reinterpret_cast<const unsigned char*>(expected.data()), expected.size(), b);
  return CRYPTO_memcmp(a, b, SHA256_DIGEST_LENGTH) == 0;
}

// The credentials of an `Authorization: Bearer <token>` header, or nullopt for another scheme.
// The scheme name is case-insensitive and is followed by one or more spaces (RFC 7235 2.1).
std::optional<std::string> bearer_token(const std::string& header) {
  const std::string scheme = "bearer";
  if (header.size() <= scheme.size() || header[scheme.size()] != ' ') return std::nullopt;
  for (size_t i = 0; i < scheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(header[i])) != scheme[i]) return std::nullopt;
  }
  const size_t start = header.find_first_not_of(' ', scheme.size());
  if (start == std::string::npos) return std::nullopt;
  return header.substr(start);
}

// Backoff after an accept error: the cause (EMFILE, ENFILE, ENOBUFS) usually persists for a
// while, and re-arming at once would spin a core on the same error.
constexpr std::chrono::milliseconds kMinAcceptBackoff{50};
constexpr std::chrono::milliseconds kMaxAcceptBackoff{1000};

HttpResponse text_response(int status, std::string body, std::string content_type) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  r.content_type = std::move(content_type);
  return r;
}

}  // namespace

HttpServerOptions server_options_from_config(const ServerConfig& config) {
  HttpServerOptions o;
  o.host = config.host();
  o.port = static_cast<uint16_t>(config.port());
  o.threads = static_cast<int>(config.threads());
  o.max_body_bytes = config.max_body_bytes();
  o.max_header_bytes = config.max_header_bytes();
  o.max_json_depth = static_cast<int>(config.max_json_depth());
  o.max_connections = config.max_connections();
  o.header_timeout = std::chrono::milliseconds(config.header_timeout_ms());
  o.body_timeout = std::chrono::milliseconds(config.body_timeout_ms());
  o.write_timeout = std::chrono::milliseconds(config.write_timeout_ms());
  o.idle_timeout = std::chrono::milliseconds(config.idle_timeout_ms());
  if (!config.token_file().empty()) {
    o.token = read_token_file(config.token_file());
  } else if (!config.token_env().empty()) {
    const char* value = std::getenv(config.token_env().c_str());
    RUDDER_CHECK(value != nullptr && *value != '\0', "server.token_env names ", config.token_env(),
                 ", which is not set or empty");
    o.token = value;
  }
  return o;
}

HttpServer::Impl::Impl(HttpServerOptions o)
    : options(std::move(o)),
      requests_rejected(counter("rudder_http_rejected_connections_total",
                                "Connections refused because max_connections was reached.")),
      accept_errors(counter("rudder_http_accept_errors_total",
                            "Failed accept calls (e.g. out of file descriptors).")),
      open_connections(gauge("rudder_http_open_connections", "Open HTTP connections.")) {
  RUDDER_CHECK(options.threads >= 1, "server threads must be >= 1, got ", options.threads);
  RUDDER_CHECK(options.max_body_bytes >= 1, "max_body_bytes must be >= 1");
  RUDDER_CHECK(options.max_connections >= 1, "max_connections must be >= 1");
  boost::system::error_code ec;
  const std::string host = options.host == "localhost" ? "127.0.0.1" : options.host;
  address = net::ip::make_address(host, ec);
  RUDDER_CHECK(!ec, "server host '", options.host, "' is not an IP address");
  RUDDER_CHECK(address.is_loopback() || !options.token.empty(), "refusing to bind ", options.host,
               " without a token: set server.token_file or server.token_env, or bind 127.0.0.1");
}

void HttpServer::Impl::count_request(const std::string& route, int status, double seconds) {
  counter("rudder_http_requests_total", "HTTP requests answered, by route and status code.",
          {{"route", route}, {"code", std::to_string(status)}})
      .inc();
  histogram("rudder_http_request_duration_seconds", "Time to handle an HTTP request, in seconds.",
            latency_buckets(), {{"route", route}})
      .observe(seconds);
}

std::optional<HttpResponse> HttpServer::Impl::auth_error(const std::string& path,
                                                         const std::string& authorization) const {
  if (options.token.empty() || path == "/healthz") return std::nullopt;
  const std::optional<std::string> given = bearer_token(authorization);
  if (given && token_matches(*given, options.token)) return std::nullopt;
  HttpResponse r =
      error_response(401, authorization.empty() ? "missing bearer token" : "invalid bearer token");
  r.headers.emplace_back("WWW-Authenticate", "Bearer");
  return r;
}

std::optional<HttpResponse> HttpServer::Impl::method_error(const std::string& method,
                                                           const std::string& path) const {
  const bool builtin = path == "/healthz" || path == "/readyz" || path == "/metrics";
  if (!builtin || method == kGet || method == "HEAD") return std::nullopt;
  HttpResponse r = error_response(405, str("method ", method, " not allowed on ", path));
  r.headers.emplace_back("Allow", "GET, HEAD");
  return r;
}

std::string HttpServer::Impl::route_label(const std::string& path) const {
  if (path == "/healthz" || path == "/readyz" || path == "/metrics") return path;
  for (const auto& [key, handler] : routes)
    if (key.second == path) return path;
  return "unmatched";
}

// For callers without sockets; the sessions run these checks before reading a body and call
// route() themselves.
HttpResponse HttpServer::Impl::handle(const HttpRequest& request, std::string* label) const {
  if (auto error = method_error(request.method, request.path)) {
    *label = route_label(request.path);
    return *error;
  }
  if (auto error = auth_error(request.path, request.header("authorization"))) {
    *label = route_label(request.path);
    return *error;
  }
  return route(request, label);
}

HttpResponse HttpServer::Impl::route(const HttpRequest& request, std::string* label) const {
  *label = "unmatched";
  if (request.path == "/healthz") {
    *label = request.path;
    return text_response(200, R"({"status":"ok"})", std::string(kJsonType));
  }
  if (request.path == "/readyz") {
    *label = request.path;
    return ready.load() ? text_response(200, R"({"status":"ready"})", std::string(kJsonType))
                        : error_response(503, "not ready");
  }
  if (request.path == "/metrics") {
    *label = request.path;
    return text_response(200, render_metrics(), kMetricsContentType);
  }
  // HEAD is answered as GET; the session sends the headers alone.
  const std::string& method = request.method == "HEAD" ? kGet : request.method;
  const auto it = routes.find({method, request.path});
  if (it == routes.end()) {
    std::string allowed;
    for (const auto& [key, handler] : routes) {
      if (key.second != request.path) continue;
      allowed += (allowed.empty() ? "" : ", ") + key.first;
      if (key.first == kGet) allowed += ", HEAD";
    }
    if (allowed.empty())
      return error_response(404, str("no route ", request.method, " ", request.path));
    *label = request.path;
    HttpResponse r =
        error_response(405, str("method ", request.method, " not allowed on ", request.path));
    r.headers.emplace_back("Allow", allowed);
    return r;
  }
  *label = request.path;
  try {
    return it->second(request);
  } catch (const std::exception& e) {
    const int status = status_for_exception(e);
    if (status >= 500)
      RUDDER_LOG(kError) << request.method << " " << request.path << ": " << e.what();
    return error_response(status, e.what());
  } catch (...) {
    RUDDER_LOG(kError) << request.method << " " << request.path << ": unknown exception";
    return error_response(500, "internal error");
  }
}

void HttpServer::Impl::do_accept() {
  acceptor.async_accept(net::make_strand(ioc),
                        [this](boost::system::error_code ec, tcp::socket socket) {
                          if (ec) {
                            if (!acceptor.is_open() || draining.load()) return;
                            accept_errors.inc();
                            retry_accept_later(ec);
                            return;
                          }
                          accept_backoff = std::chrono::milliseconds(0);
                          bool reject = false;
                          std::shared_ptr<Session> session;
                          {
                            std::lock_guard<std::mutex> lock(sessions_mutex);
                            reject = sessions.size() >= options.max_connections;
                            session = std::make_shared<Session>(std::move(socket), *this, reject);
                            sessions.emplace(session.get(), session);
                          }
                          if (reject) requests_rejected.inc();
                          open_connections.inc();
                          session->start();
                          if (!draining.load()) do_accept();
                        });
}

void HttpServer::Impl::retry_accept_later(const boost::system::error_code& ec) {
  accept_backoff = accept_backoff.count() == 0 ? kMinAcceptBackoff
                                               : std::min(2 * accept_backoff, kMaxAcceptBackoff);
  RUDDER_LOG(kWarn) << "accept failed: " << ec.message() << "; retrying in "
                    << accept_backoff.count() << " ms";
  accept_timer.expires_after(accept_backoff);
  // Not cancelled at shutdown (that would race with this chain); the wait ends with the ioc.
  accept_timer.async_wait([this](boost::system::error_code wait_ec) {
    if (wait_ec || draining.load() || !acceptor.is_open()) return;
    do_accept();
  });
}

void HttpServer::Impl::unregister(Session* session) {
  bool finished = false;
  {
    std::lock_guard<std::mutex> lock(sessions_mutex);
    sessions.erase(session);
    finished = draining.load() && sessions.empty() && !stopped.load();
  }
  open_connections.inc(-1);
  if (finished) net::post(ioc, [this] { ioc.stop(); });
}

void HttpServer::Impl::begin_shutdown() {
  bool expected = false;
  if (!draining.compare_exchange_strong(expected, true)) return;
  net::post(ioc, [this] {
    boost::system::error_code ec;
    acceptor.close(ec);
    if (signals) signals->cancel(ec);
    ready.store(false);
    std::vector<std::shared_ptr<Session>> live;
    {
      std::lock_guard<std::mutex> lock(sessions_mutex);
      for (auto& [ptr, weak] : sessions) {
        if (auto s = weak.lock()) live.push_back(std::move(s));
      }
    }
    RUDDER_LOG(kInfo) << "shutting down: " << live.size() << " open connections to drain";
    if (live.empty()) {
      ioc.stop();
      return;
    }
    for (auto& s : live) s->drain();
    drain_timer.expires_after(options.drain_timeout);
    drain_timer.async_wait([this](boost::system::error_code wait_ec) {
      if (!wait_ec) {
        RUDDER_LOG(kWarn) << "drain timeout: closing remaining connections";
        ioc.stop();
      }
    });
  });
}

HttpServer::HttpServer(HttpServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {
  route_protobuf_logs();
}

HttpServer::~HttpServer() {
  if (!impl_->threads.empty()) {
    shutdown();
    wait();
  }
}

void HttpServer::route(const std::string& method, const std::string& path, HttpHandler handler) {
  RUDDER_ASSERT(impl_->threads.empty(), "route() after start()");
  RUDDER_ASSERT(method != "HEAD", "HEAD is answered by the GET route of ", path);
  impl_->routes[{method, path}] = std::move(handler);
}

void HttpServer::set_ready(bool ready) { impl_->ready.store(ready); }

void HttpServer::start() {
  Impl& s = *impl_;
  RUDDER_ASSERT(s.threads.empty(), "start() called twice");
  const tcp::endpoint endpoint(s.address, s.options.port);
  boost::system::error_code ec;
  s.acceptor.open(endpoint.protocol(), ec);
  if (!ec) s.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor.bind(endpoint, ec);
  if (!ec) s.acceptor.listen(net::socket_base::max_listen_connections, ec);
  RUDDER_CHECK_T(Unavailable, !ec, "cannot listen on ", s.options.host, ":", s.options.port, ": ",
                 ec.message());
  s.bound_port = s.acceptor.local_endpoint().port();
  s.do_accept();
  for (int i = 0; i < s.options.threads; ++i) {
    s.threads.emplace_back([&s] {
      for (;;) {
        try {
          s.ioc.run();
          return;
        } catch (const std::exception& e) {
          RUDDER_LOG(kError) << "http server thread: " << e.what();  // keep serving
        }
      }
    });
  }
  RUDDER_LOG(kInfo) << "listening on " << s.options.host << ":" << s.bound_port;
}

uint16_t HttpServer::port() const { return impl_->bound_port; }

void HttpServer::handle_signals() {
  Impl& s = *impl_;
  s.signals.emplace(s.ioc, SIGINT, SIGTERM);
  s.signals->async_wait([&s](boost::system::error_code ec, int signal) {
    if (ec) return;
    RUDDER_LOG(kInfo) << "received signal " << signal << ", finishing in-flight requests";
    s.begin_shutdown();
  });
}

void HttpServer::shutdown() { impl_->begin_shutdown(); }

void HttpServer::wait() {
  for (auto& t : impl_->threads) {
    if (t.joinable()) t.join();
  }
  impl_->stopped.store(true);
}

HttpResponse HttpServer::handle(const HttpRequest& request) const {
  std::string route;
  return impl_->handle(request, &route);
}

}  // namespace rudder::core
