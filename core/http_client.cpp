#include "core/http_client.h"

#include <limits>
#include <optional>
#include <thread>

#include <google/protobuf/message.h>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace rudder::core {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

class HttpClient::Impl {
 public:
  explicit Impl(HttpClientOptions o) : options(std::move(o)) {}

  // One attempt; returns false (with `error` set) on a connection-level failure.
  bool attempt(const http::request<http::string_body>& req, HttpResponse* out, std::string* error) {
    beast::error_code ec;
    if (!stream || !stream->socket().is_open()) {
      stream.emplace(ioc);
      tcp::resolver resolver(ioc);
      auto endpoints = resolver.resolve(options.host, std::to_string(options.port), ec);
      if (ec) return fail(error, "resolving " + options.host + ": " + ec.message());
      stream->expires_after(options.connect_timeout);
      stream->connect(endpoints, ec);
      if (ec) return fail(error, "connecting: " + ec.message());
    }
    stream->expires_after(options.request_timeout);
    http::write(*stream, req, ec);
    if (ec) return fail(error, "sending: " + ec.message());
    http::response_parser<http::string_body> parser;
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    http::read(*stream, buffer, parser, ec);
    if (ec) return fail(error, "reading the response: " + ec.message());
    auto& res = parser.get();
    out->status = static_cast<int>(res.result_int());
    out->content_type = std::string(res[http::field::content_type]);
    out->headers.clear();
    for (const auto& field : res)
      out->headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    out->body = std::move(res.body());
    if (!res.keep_alive()) reset();
    return true;
  }

  bool fail(std::string* error, std::string message) {
    *error = std::move(message);
    reset();
    return false;
  }

  void reset() {
    if (stream) {
      beast::error_code ignored;
      stream->socket().shutdown(tcp::socket::shutdown_both, ignored);
      stream->socket().close(ignored);
    }
    stream.reset();
    buffer.clear();
  }

  HttpClientOptions options;
  net::io_context ioc;
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;
};

HttpClient::HttpClient(HttpClientOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

HttpClient::~HttpClient() = default;

HttpResponse HttpClient::request(const std::string& method, const std::string& target,
                                 const std::string& body, const std::string& content_type,
                                 const std::string& accept) {
  http::request<http::string_body> req(http::string_to_verb(method), target, 11);
  RUDDER_CHECK(req.method() != http::verb::unknown, "unknown HTTP method '", method, "'");
  req.set(http::field::host, impl_->options.host + ":" + std::to_string(impl_->options.port));
  req.set(http::field::user_agent, "rudder");
  req.set(http::field::accept, accept);
  if (!impl_->options.token.empty())
    req.set(http::field::authorization, "Bearer " + impl_->options.token);
  if (!body.empty() || method == "POST" || method == "PUT") {
    req.set(http::field::content_type, content_type);
    req.body() = body;
  }
  req.keep_alive(true);
  req.prepare_payload();

  auto backoff = impl_->options.retry_backoff;
  std::string error;
  HttpResponse response;
  for (int attempt = 0; attempt <= impl_->options.max_retries; ++attempt) {
    if (attempt > 0) {
      std::this_thread::sleep_for(backoff);
      backoff *= 2;
    }
    if (!impl_->attempt(req, &response, &error)) continue;
    if ((response.status == 429 || response.status == 503) &&
        attempt < impl_->options.max_retries) {
      error = "server answered " + std::to_string(response.status);
      continue;
    }
    return response;
  }
  throw Unavailable(str(method, " http://", impl_->options.host, ":", impl_->options.port, target,
                        " failed after ", impl_->options.max_retries + 1, " attempts: ", error));
}

void HttpClient::call(const std::string& target, const google::protobuf::Message& message,
                      google::protobuf::Message* reply, Wire wire) {
  const std::string type(media_type(wire));
  const HttpResponse response = request("POST", target, encode_message(message, wire), type, type);
  if (response.status / 100 != 2) {
    std::string text = response.body;
    try {
      text = nlohmann::json::parse(response.body).at("error").at("message").get<std::string>();
    } catch (const std::exception&) {
    }
    const std::string what = str("POST ", target, ": HTTP ", response.status, ": ", text);
    switch (response.status) {
      case 400:
        throw InvalidArgument(what);
      case 401:
        throw Unauthenticated(what);
      case 404:
        throw NotFound(what);
      case 413:
        throw TooLarge(what);
      case 415:
        throw UnsupportedMediaType(what);
      case 429:
      case 503:
        throw Unavailable(what);
      default:
        throw Error(what);
    }
  }
  const Wire reply_wire = response.content_type.find(kProtobufType) != std::string::npos
                              ? Wire::kProtobuf
                              : Wire::kJson;
  decode_message(response.body, reply_wire, reply);
}

}  // namespace rudder::core
