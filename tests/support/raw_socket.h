// A plain blocking TCP connection to 127.0.0.1, for tests that send exactly the bytes they want.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

namespace rudder::testing {

class RawSocket {
 public:
  /// Connects to 127.0.0.1:`port` with a 10 s read timeout; throws naming the errno on failure.
  explicit RawSocket(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      const int error = errno;
      ::close(fd_);
      throw std::runtime_error("connect to 127.0.0.1:" + std::to_string(port) + ": " +
                               std::strerror(error));
    }
    set_read_timeout(std::chrono::seconds(10));
  }
  ~RawSocket() { ::close(fd_); }
  RawSocket(const RawSocket&) = delete;
  RawSocket& operator=(const RawSocket&) = delete;

  /// Whether all of `data` was sent.
  bool send_all(const std::string& data) {
    return ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(data.size());
  }
  /// How long a read waits for bytes before it gives up.
  void set_read_timeout(std::chrono::milliseconds t) {
    timeval tv{static_cast<time_t>(t.count() / 1000),
               static_cast<suseconds_t>((t.count() % 1000) * 1000)};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  /// Reads until the peer closes (or the read timeout); returns what arrived.
  std::string read_until_close() {
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = ::recv(fd_, buf, sizeof(buf), 0)) > 0;)
      out.append(buf, static_cast<size_t>(n));
    return out;
  }
  /// True when the peer has closed the connection (recv returns 0 or a reset).
  bool closed_by_peer() {
    char c;
    const ssize_t n = ::recv(fd_, &c, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }

 private:
  int fd_ = -1;
};

/// Sends `bytes` on a fresh connection to 127.0.0.1:`port` and returns what arrives until the
/// peer closes; throws when the bytes cannot all be sent.
inline std::string exchange(uint16_t port, const std::string& bytes) {
  RawSocket socket(port);
  if (!socket.send_all(bytes))
    throw std::runtime_error("sending " + std::to_string(bytes.size()) + " bytes to 127.0.0.1:" +
                             std::to_string(port) + " failed: " + std::strerror(errno));
  return socket.read_until_close();
}

}  // namespace rudder::testing
