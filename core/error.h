// Typed errors and the checks that throw them.
//
// RUDDER_CHECK is for bad input (a config value, a request, a file): it throws InvalidArgument
// (or the type given to RUDDER_CHECK_T) with a message that prints the offending values.
// RUDDER_ASSERT is for bugs: it throws InternalError with the source location.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace rudder::core {

/// Base of every error Rudder throws on purpose; `what()` is a one-line message for a person.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Bad input from a user or a client (HTTP 400).
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

/// A file, route or object that does not exist (HTTP 404).
class NotFound : public Error {
 public:
  using Error::Error;
};

/// Missing or wrong credentials (HTTP 401).
class Unauthenticated : public Error {
 public:
  using Error::Error;
};

/// Input over a size limit (HTTP 413).
class TooLarge : public Error {
 public:
  using Error::Error;
};

/// A body in a media type the route does not speak (HTTP 415).
class UnsupportedMediaType : public Error {
 public:
  using Error::Error;
};

/// Temporarily unable to serve: overloaded, not ready, shutting down (HTTP 503).
class Unavailable : public Error {
 public:
  using Error::Error;
};

/// A broken invariant inside Rudder: a bug (HTTP 500).
class InternalError : public Error {
 public:
  using Error::Error;
};

/// Concatenates any streamable values into one string.
template <typename... Args>
std::string str(Args&&... args) {
  std::ostringstream out;
  if constexpr (sizeof...(Args) > 0) (out << ... << std::forward<Args>(args));
  return out.str();
}

namespace detail {
[[noreturn]] void throw_internal(const char* file, int line, const char* cond,
                                 const std::string& msg);
}  // namespace detail

}  // namespace rudder::core

/// Throws `type` with the concatenated message when `cond` is false.
#define RUDDER_CHECK_T(type, cond, ...)                        \
  do {                                                         \
    if (!(cond)) throw type(::rudder::core::str(__VA_ARGS__)); \
  } while (false)

/// Throws InvalidArgument with the concatenated message when `cond` is false.
#define RUDDER_CHECK(cond, ...) RUDDER_CHECK_T(::rudder::core::InvalidArgument, cond, __VA_ARGS__)

/// Throws InternalError naming the source location when `cond` is false (a bug in Rudder).
#define RUDDER_ASSERT(cond, ...)                                                \
  do {                                                                          \
    if (!(cond))                                                                \
      ::rudder::core::detail::throw_internal(__FILE__, __LINE__, #cond,         \
                                             ::rudder::core::str(__VA_ARGS__)); \
  } while (false)
