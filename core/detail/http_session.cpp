#include "core/detail/http_session.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/log.h"

namespace rudder::core::detail {
namespace {

constexpr size_t kFirstReadBytes = 4096;
// After an answer that closes the connection, what the client still sends is read and dropped
// for a while, so that closing does not reset the connection before the client reads the answer.
// An answer sent before a body the client declared (413 on its Content-Length, an error in its
// header) waits for that body, up to 64 MiB within 5 s; any other close waits for up to 1 MiB
// within 2 s. The buffer starts at 4 KiB and grows to 64 KiB once a read fills it.
constexpr std::chrono::seconds kLingerTimeout{2};
constexpr size_t kLingerMaxBytes = size_t{1} << 20;
constexpr std::chrono::seconds kBodyLingerTimeout{5};
constexpr size_t kBodyLingerMaxBytes = size_t{64} << 20;
constexpr size_t kFirstDiscardBytes = 4096;
constexpr size_t kDiscardBytes = size_t{64} << 10;
const char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";

std::string_view view(beast::string_view text) { return {text.data(), text.size()}; }

// A request target's path: what precedes its query.
std::string path_of(std::string_view target) {
  return std::string(target.substr(0, target.find('?')));
}

// Whether `c` may appear in a Host value: RFC 3986's reg-name, IP literal and port characters.
bool host_char(char c) {
  static const std::string_view others = "-._~%!$&'()*+,;=:[]";
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         others.find(c) != std::string_view::npos;
}

bool is_disconnect(const beast::error_code& ec) {
  return ec == http::error::end_of_stream || ec == net::error::eof ||
         ec == net::error::connection_reset || ec == net::error::operation_aborted ||
         ec == beast::error::timeout || ec == net::error::broken_pipe;
}

}  // namespace

Session::Session(tcp::socket&& socket, HttpServer::Impl& server, bool reject)
    : stream_(std::move(socket)),
      linger_bytes_(kLingerMaxBytes),
      linger_time_(kLingerTimeout),
      server_(server),
      reject_(reject) {}

Session::~Session() { server_.unregister(this); }

void Session::start() {
  net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
    if (self->reject_) {
      self->respond(error_response(503, "too many connections"), false);
    } else {
      self->wait_request();
    }
  });
}

void Session::drain() {
  net::post(stream_.get_executor(), [self = shared_from_this()] {
    if (self->closing_) {  // its answer is out: stop waiting for what the client still sends
      beast::error_code ec;
      self->stream_.socket().close(ec);
      return;
    }
    if (!self->idle_) return;
    // A read for the next request is pending and no response is unsent: close now. (A new
    // expiry would not reach the pending read, which keeps its idle timeout, so a client that
    // ignores the half-close would hold the drain until drain_timeout.)
    self->closing_ = true;
    beast::error_code ec;
    self->stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    self->stream_.socket().close(ec);
  });
}

// Between requests the connection may idle up to idle_timeout; the header deadline starts at
// the first byte of a request, so a slow sender cannot hold a connection open.
void Session::wait_request() {
  idle_ = true;
  if (server_.draining.load()) return close();
  if (buffer_.size() > 0) return read_header();  // a pipelined request is already here
  stream_.expires_after(server_.options.idle_timeout);
  stream_.async_read_some(buffer_.prepare(kFirstReadBytes),
                          beast::bind_front_handler(&Session::on_first_bytes, shared_from_this()));
}

void Session::on_first_bytes(beast::error_code ec, size_t bytes) {
  if (closing_) return;  // drained while idle
  if (ec) return close();
  buffer_.commit(bytes);
  read_header();
}

void Session::read_header() {
  idle_ = false;
  head_ = false;
  request_start_ = std::chrono::steady_clock::now();
  parser_.emplace();
  parser_->header_limit(static_cast<std::uint32_t>(server_.options.max_header_bytes));
  // No limit while the header is read: Beast would refuse an oversized Content-Length before
  // the header is done, and before the checks of header_error() that come first (credentials).
  parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
  stream_.expires_after(server_.options.header_timeout);
  http::async_read_header(stream_, buffer_, *parser_,
                          beast::bind_front_handler(&Session::on_header, shared_from_this()));
}

void Session::on_header(beast::error_code ec, size_t) {
  if (ec == http::error::header_limit) {
    return refuse(error_response(431, "request header block larger than " +
                                          std::to_string(server_.options.max_header_bytes) +
                                          " bytes"));
  }
  if (ec == beast::error::timeout) {
    RUDDER_LOG(kDebug) << "closing a connection that did not send its header in time";
    return close();
  }
  if (ec) {
    if (is_disconnect(ec)) return close();
    return refuse(error_response(400, "malformed HTTP request: " + ec.message()));
  }
  version_ = parser_->get().version();
  head_ = parser_->get().method() == http::verb::head;
  // A body follows unless the parser is done; one of unknown length (an unsupported
  // Transfer-Encoding, which the parser takes for none) may follow too.
  const bool body_pending =
      !parser_->is_done() || parser_->get().count(http::field::transfer_encoding) > 0;
  std::string route;
  if (auto error = header_error(&route)) return refuse(std::move(*error), body_pending, route);
  parser_->body_limit(server_.options.max_body_bytes);  // chunked bodies: checked as they come
  if (parser_->is_done()) return process();
  const auto expect = parser_->get()[http::field::expect];
  if (beast::iequals(expect, "100-continue")) {
    stream_.expires_after(server_.options.write_timeout);
    net::async_write(stream_, net::buffer(kContinue, sizeof(kContinue) - 1),
                     [self = shared_from_this()](beast::error_code write_ec, size_t) {
                       if (write_ec) return self->close();
                       self->read_body();
                     });
    return;
  }
  read_body();
}

HttpResponse Session::body_too_large() const {
  return error_response(
      413, "request body larger than " + std::to_string(server_.options.max_body_bytes) + " bytes");
}

// What is wrong with a request's header, checked before its body is read: its framing, its Host,
// a missing length (counted under `route` "framing"), its method on a built-in route, its
// credentials, a declared body over the limit (counted under the route of its path).
std::optional<HttpResponse> Session::header_error(std::string* route) const {
  *route = "framing";
  if (auto error = framing_error()) return error;
  if (auto error = host_error()) return error;
  if (auto error = length_error()) return error;
  const auto& message = parser_->get();
  const std::string path = path_of(view(message.target()));
  *route = server_.route_label(path);
  if (auto error = server_.method_error(std::string(message.method_string()), path)) return error;
  if (auto error = server_.auth_error(path, std::string(message[http::field::authorization])))
    return error;
  const auto length = parser_->content_length();
  if (length && *length > server_.options.max_body_bytes) return body_too_large();
  return std::nullopt;
}

// A Transfer-Encoding other than chunked alone (RFC 9112, 6.1): the body's length would be
// unknown, and what follows it would be read as the next request. 501 for a coding the server
// does not decode, 400 for chunked applied twice; either way the connection closes.
std::optional<HttpResponse> Session::framing_error() const {
  std::vector<std::string> codings;
  for (const auto& field : parser_->get()) {  // every such field, wherever it is
    if (field.name() != http::field::transfer_encoding) continue;
    std::string_view list = view(field.value());
    while (!list.empty()) {
      const size_t comma = list.find(',');
      const std::string_view coding = trim_whitespace(list.substr(0, comma));
      list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
      if (!coding.empty()) codings.push_back(ascii_lowercase(coding));
    }
  }
  for (const auto& coding : codings) {
    if (coding != "chunked")
      return error_response(501, "Transfer-Encoding '" + coding +
                                     "' is not supported: send the body as is or chunked");
  }
  if (codings.size() > 1) return error_response(400, "Transfer-Encoding: chunked more than once");
  return std::nullopt;
}

// RFC 9112, 3.2: an HTTP/1.1 request names its Host once; a request of any version names it at
// most once, with a value that is a host and port (or empty).
std::optional<HttpResponse> Session::host_error() const {
  const auto& message = parser_->get();
  const size_t hosts = message.count(http::field::host);
  if (hosts > 1) return error_response(400, "more than one Host header");
  if (hosts == 0 && message.version() >= 11)
    return error_response(400, "an HTTP/1.1 request needs a Host header");
  const std::string_view host = view(message[http::field::host]);
  if (!std::all_of(host.begin(), host.end(), host_char))
    return error_response(400, "the Host header is not a host and port");
  return std::nullopt;
}

// A POST or PUT says how long its body is (Content-Length or chunked): without either its body
// would be read as empty and the bytes after the header as the next request.
std::optional<HttpResponse> Session::length_error() const {
  const auto& message = parser_->get();
  const auto method = message.method();
  if (method != http::verb::post && method != http::verb::put) return std::nullopt;
  if (parser_->content_length().has_value() || parser_->chunked()) return std::nullopt;
  return error_response(411, std::string(message.method_string()) +
                                 " without Content-Length: send the body's length, or send it "
                                 "chunked");
}

void Session::read_body() {
  stream_.expires_after(server_.options.body_timeout);
  http::async_read(stream_, buffer_, *parser_,
                   beast::bind_front_handler(&Session::on_body, shared_from_this()));
}

void Session::on_body(beast::error_code ec, size_t) {
  if (ec == http::error::body_limit) {
    return refuse(body_too_large(), true,
                  server_.route_label(path_of(view(parser_->get().target()))));
  }
  if (ec) {
    if (is_disconnect(ec)) return close();
    return refuse(error_response(400, "malformed HTTP request body: " + ec.message()), true);
  }
  process();
}

void Session::process() {
  auto& message = parser_->get();
  HttpRequest request;
  request.method = std::string(message.method_string());
  request.target = std::string(message.target());
  request.path = path_of(request.target);  // as header_error() checked it
  for (const auto& field : message)
    request.headers[ascii_lowercase(view(field.name_string()))] = std::string(field.value());
  request.body = std::move(message.body());
  request.max_json_depth = server_.options.max_json_depth;
  // RFC 9112, 6.1: HTTP/1.0 with Transfer-Encoding has faulty framing; close after answering.
  const bool keep_alive = message.keep_alive() && !(message.version() < 11 &&
                                                    message.count(http::field::transfer_encoding));

  std::string route;
  HttpResponse response = server_.route(request, &route);  // header_error() checked the rest
  server_.count_request(route, response.status, seconds_since_start());
  respond(std::move(response), keep_alive && !server_.draining.load());
}

// Answers an error found while reading a request and closes the connection; counted in the
// request metrics under `route`. With `body_pending` (the client declared a body not
// read yet), what it still sends is waited for longer (kBodyLingerMaxBytes), so a client that
// sends its whole body before reading gets the answer.
void Session::refuse(HttpResponse response, bool body_pending, const std::string& route) {
  if (body_pending) {
    linger_bytes_ = kBodyLingerMaxBytes;
    if (parser_ && parser_->is_header_done() && parser_->content_length()) {
      linger_bytes_ = std::max<uint64_t>(
          kLingerMaxBytes, std::min<uint64_t>(*parser_->content_length(), kBodyLingerMaxBytes));
    }
    linger_time_ = kBodyLingerTimeout;
  }
  server_.count_request(route, response.status, seconds_since_start());
  respond(std::move(response), false);
}

double Session::seconds_since_start() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - request_start_).count();
}

void Session::respond(HttpResponse response, bool keep_alive) {
  auto res = std::make_shared<http::response<http::string_body>>(
      static_cast<http::status>(response.status), version_ == 10 ? 10 : 11);
  res->set(http::field::server, "rudder");
  res->set(http::field::content_type, response.content_type);
  for (const auto& [name, value] : response.headers) res->set(name, value);
  res->body() = std::move(response.body);
  res->keep_alive(keep_alive);
  res->prepare_payload();
  if (head_) res->body().clear();  // Content-Length stays that of the GET answer
  response_ = res;
  stream_.expires_after(server_.options.write_timeout);
  http::async_write(stream_, *response_,
                    [self = shared_from_this(), keep_alive](beast::error_code ec, size_t) {
                      self->on_write(ec, keep_alive);
                    });
}

void Session::on_write(beast::error_code ec, bool keep_alive) {
  response_.reset();
  if (ec || !keep_alive) return close();
  wait_request();
}

// Half-close, then read and drop whatever the client still sends (up to linger_bytes_ within
// linger_time_) so that closing does not reset the connection before it reads our response.
void Session::close() {
  if (closing_) return;
  closing_ = true;
  idle_ = false;
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  if (ec) {
    stream_.socket().close(ec);
    return;
  }
  discard_size_ = kFirstDiscardBytes;
  discard_ = std::make_unique<char[]>(discard_size_);
  stream_.expires_after(linger_time_);
  stream_.async_read_some(
      net::buffer(discard_.get(), discard_size_),
      beast::bind_front_handler(&Session::discard_until_closed, shared_from_this()));
}

void Session::discard_until_closed(beast::error_code ec, size_t bytes) {
  discarded_ += bytes;
  if (ec || discarded_ > linger_bytes_) {
    beast::error_code ignored;
    stream_.socket().close(ignored);
    return;
  }
  if (bytes == discard_size_ && discard_size_ < kDiscardBytes) {  // a body is still coming
    discard_size_ = kDiscardBytes;
    discard_ = std::make_unique<char[]>(discard_size_);
  }
  stream_.async_read_some(
      net::buffer(discard_.get(), discard_size_),
      beast::bind_front_handler(&Session::discard_until_closed, shared_from_this()));
}

}  // namespace rudder::core::detail
