// Plain HTTP request/response values shared by the server, the client and route handlers.
// No Beast or Asio here: handlers are pure functions `HttpRequest -> HttpResponse`.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rudder::core {

/// Media type of JSON bodies (proto3 JSON mapping).
inline constexpr std::string_view kJsonType = "application/json";
/// Media type of binary protobuf bodies.
inline constexpr std::string_view kProtobufType = "application/x-protobuf";

/// A request as a handler sees it: fully read, within the server's limits.
struct HttpRequest {
  std::string method;                          // "GET", "POST", ...
  std::string target;                          // path and query, as sent
  std::string path;                            // target without the query
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  int max_json_depth = 64;  // the server's JSON nesting limit

  /// The header's value, or "" when absent; `name` is matched case-insensitively.
  std::string header(std::string_view name) const;
};

/// A response: status, content type, extra headers and body.
struct HttpResponse {
  int status = 200;
  std::string content_type = std::string(kJsonType);
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

/// A route handler. It may throw core errors; the server maps them to status codes
/// (InvalidArgument 400, Unauthenticated 401, NotFound 404, TooLarge 413, Unavailable 503,
/// anything else 500) with a JSON error body.
using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

/// `text` with ASCII letters in lower case (header names, media types, codings).
std::string ascii_lowercase(std::string_view text);

/// `text` without the spaces and tabs at its ends (HTTP's optional whitespace).
std::string_view trim_whitespace(std::string_view text);

/// `{"error": {"code": status, "message": message}}` as a JSON response.
HttpResponse error_response(int status, std::string_view message);

/// The status code the server answers when a handler throws `e`.
int status_for_exception(const std::exception& e);

}  // namespace rudder::core
