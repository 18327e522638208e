// What every server's route handlers share: handlers that never throw, and overload answers
// that tell clients when to retry.
#pragma once

#include <exception>
#include <string>

#include "core/http.h"
#include "core/log.h"

namespace rudder::services::detail {

/// A handler that never throws: errors become JSON error responses (5xx ones logged).
template <typename F>
core::HttpHandler guarded(F f) {
  return [f](const core::HttpRequest& request) -> core::HttpResponse {
    try {
      return f(request);
    } catch (const std::exception& e) {
      const int status = core::status_for_exception(e);
      if (status >= 500)
        RUDDER_LOG(kError) << request.method << " " << request.path << ": " << e.what();
      return core::error_response(status, e.what());
    }
  };
}

/// An error response; 429 and 503 carry `Retry-After: 1`.
inline core::HttpResponse status_error(int status, const std::string& message) {
  core::HttpResponse r = core::error_response(status, message);
  if (status == 429 || status == 503) r.headers.emplace_back("Retry-After", "1");
  return r;
}

}  // namespace rudder::services::detail
