#include "core/http.h"

#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace rudder::core {

std::string ascii_lowercase(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view trim_whitespace(std::string_view text) {
  const size_t first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  return text.substr(first, text.find_last_not_of(" \t") - first + 1);
}

std::string HttpRequest::header(std::string_view name) const {
  const auto it = headers.find(ascii_lowercase(name));
  return it == headers.end() ? std::string() : it->second;
}

HttpResponse error_response(int status, std::string_view message) {
  nlohmann::json body;
  body["error"]["code"] = status;
  // Invalid UTF-8 in a message (say, echoing a bad byte) must not throw while reporting.
  body["error"]["message"] = std::string(message);
  HttpResponse response;
  response.status = status;
  response.content_type = std::string(kJsonType);
  response.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return response;
}

int status_for_exception(const std::exception& e) {
  if (dynamic_cast<const InvalidArgument*>(&e)) return 400;
  if (dynamic_cast<const Unauthenticated*>(&e)) return 401;
  if (dynamic_cast<const NotFound*>(&e)) return 404;
  if (dynamic_cast<const TooLarge*>(&e)) return 413;
  if (dynamic_cast<const UnsupportedMediaType*>(&e)) return 415;
  if (dynamic_cast<const Unavailable*>(&e)) return 503;
  return 500;
}

}  // namespace rudder::core
