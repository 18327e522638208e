// Leveled, timestamped logging: one line per event on stderr, safe from any thread.
//
//   RUDDER_LOG(kInfo) << "loaded " << n << " examples";
//   -> 2026-11-26T07:40:01.123Z INFO  loaded 2000 examples
#pragma once

#include <sstream>
#include <string>
#include <string_view>

namespace rudder::core {

/// Severity of a log event, in increasing order.
enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

/// Parses `debug`, `info`, `warn`, `error` or `off`; throws InvalidArgument otherwise.
LogLevel parse_log_level(std::string_view name);

/// Sets the process-wide threshold; events below it are dropped. Thread-safe.
void set_log_level(LogLevel level);

/// The process-wide threshold.
LogLevel log_level();

/// Writes one line (timestamp, level, message) to stderr; the line is never interleaved.
void log_line(LogLevel level, std::string_view message);

namespace detail {
/// Collects one event's text and writes it as one line when destroyed.
class LogEvent {
 public:
  explicit LogEvent(LogLevel level) : level_(level) {}
  ~LogEvent() { log_line(level_, stream_.str()); }
  LogEvent(const LogEvent&) = delete;
  LogEvent& operator=(const LogEvent&) = delete;
  std::ostringstream& stream() { return stream_; }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};
}  // namespace detail

}  // namespace rudder::core

/// Streams one log event at `level` (kDebug, kInfo, kWarn, kError); skipped below the threshold.
#define RUDDER_LOG(level)                                                                    \
  for (bool rudder_log_on_ = ::rudder::core::LogLevel::level >= ::rudder::core::log_level(); \
       rudder_log_on_; rudder_log_on_ = false)                                               \
  ::rudder::core::detail::LogEvent(::rudder::core::LogLevel::level).stream()
