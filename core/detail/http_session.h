// Internals of core/http_server: the server state and one connection's session. Only
// http_server.cpp and http_session.cpp include this (Beast and Asio stay out of public headers).
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "core/http_server.h"
#include "core/metrics.h"

namespace rudder::core {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

namespace detail {
class Session;
}

/// The server's state. Sessions reach it by reference; it outlives them (the io_context, which
/// owns every pending handler, is declared last among the state the sessions touch).
class HttpServer::Impl {
 public:
  explicit Impl(HttpServerOptions options);

  /// Checks a request's method and credentials (method_error, auth_error), then routes it;
  /// `label` receives the metric label (route_label).
  HttpResponse handle(const HttpRequest& request, std::string* label) const;
  /// Routes a request whose method and credentials were checked already.
  HttpResponse route(const HttpRequest& request, std::string* label) const;
  /// The request metrics' label for a request to `path`: the path where a route (built-in or
  /// added) answers it, else "unmatched", so that the label takes as few values as there are
  /// routes.
  std::string route_label(const std::string& path) const;
  /// Records one answered request in the request metrics.
  void count_request(const std::string& route, int status, double seconds);
  void do_accept();
  /// After an accept error: waits `accept_backoff`, doubled per consecutive error up to
  /// kMaxAcceptBackoff, then accepts again (so EMFILE does not spin a core).
  void retry_accept_later(const boost::system::error_code& ec);
  void unregister(detail::Session* session);
  void begin_shutdown();
  /// 405 for a method other than GET and HEAD on a built-in route (/healthz, /readyz, /metrics).
  std::optional<HttpResponse> method_error(const std::string& method,
                                           const std::string& path) const;
  /// 401 when the server has a token and `authorization` does not carry it; nothing for
  /// /healthz, which answers anyone.
  std::optional<HttpResponse> auth_error(const std::string& path,
                                         const std::string& authorization) const;

  HttpServerOptions options;
  net::ip::address address;
  std::map<std::pair<std::string, std::string>, HttpHandler> routes;  // (method, path)
  std::atomic<bool> ready{false};
  std::atomic<bool> draining{false};
  std::atomic<bool> stopped{false};
  uint16_t bound_port = 0;
  Counter requests_rejected;
  Counter accept_errors;
  Gauge open_connections;
  std::mutex sessions_mutex;
  std::unordered_map<detail::Session*, std::weak_ptr<detail::Session>> sessions;
  std::vector<std::thread> threads;
  net::io_context ioc;
  tcp::acceptor acceptor{ioc};
  net::steady_timer drain_timer{ioc};
  net::steady_timer accept_timer{ioc};
  // Touched only by the accept chain (one accept or one timer wait pending at a time).
  std::chrono::milliseconds accept_backoff{0};
  std::optional<net::signal_set> signals;
};

namespace detail {

/// One client connection: reads requests within the deadlines, answers them, keeps alive.
/// All its work runs on its own strand.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, HttpServer::Impl& server, bool reject);
  ~Session();

  /// Starts serving (or, for a rejected connection, answers 503 and closes).
  void start();
  /// Closes the connection if it is between requests or lingering after its last answer;
  /// otherwise it closes after the response.
  void drain();

 private:
  void wait_request();
  void on_first_bytes(beast::error_code ec, size_t bytes);
  void read_header();
  void on_header(beast::error_code ec, size_t bytes);
  HttpResponse body_too_large() const;
  std::optional<HttpResponse> header_error(std::string* route) const;
  std::optional<HttpResponse> framing_error() const;
  std::optional<HttpResponse> host_error() const;
  std::optional<HttpResponse> length_error() const;
  void read_body();
  void on_body(beast::error_code ec, size_t bytes);
  void process();
  void refuse(HttpResponse response, bool body_pending = false,
              const std::string& route = "framing");
  /// Seconds since the request's first bytes arrived.
  double seconds_since_start() const;
  void respond(HttpResponse response, bool keep_alive);
  void on_write(beast::error_code ec, bool keep_alive);
  void close();
  void discard_until_closed(beast::error_code ec, size_t bytes);

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<http::response<http::string_body>> response_;
  std::unique_ptr<char[]> discard_;  // allocated by close()
  size_t discard_size_ = 0;
  size_t discarded_ = 0;
  size_t linger_bytes_;               // what close() reads and drops at most
  std::chrono::seconds linger_time_;  // and for how long
  HttpServer::Impl& server_;
  bool reject_;
  bool idle_ = true;
  bool closing_ = false;
  unsigned version_ = 11;
  bool head_ = false;  // the request is HEAD: its answer has the headers of GET's, no body
  std::chrono::steady_clock::time_point request_start_;
};

}  // namespace detail
}  // namespace rudder::core
