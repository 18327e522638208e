#include "core/error.h"

namespace rudder::core::detail {

void throw_internal(const char* file, int line, const char* cond, const std::string& msg) {
  throw InternalError(str("internal error at ", file, ":", line, ": ", cond, " failed",
                          msg.empty() ? "" : ": ", msg));
}

}  // namespace rudder::core::detail
