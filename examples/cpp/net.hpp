// Loopback TCP helpers shared by the gateway and its load driver: listen, connect, send a whole
// buffer, read line by line. POSIX sockets, IPv4 127.0.0.1 only.
#ifndef POINTSMAN_EXAMPLE_NET_HPP
#define POINTSMAN_EXAMPLE_NET_HPP

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdexcept>
#include <string>
#include <sys/socket.h>
#include <unistd.h>

namespace net {

inline std::runtime_error os_error(const std::string &what) {
  return std::runtime_error(what + ": " + std::strerror(errno));
}

/// A listening socket on 127.0.0.1:`port` (0: any free port); `port` receives the one bound.
inline int listen_loopback(int &port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw os_error("socket");
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) < 0) throw os_error("bind");
  if (::listen(fd, 128) < 0) throw os_error("listen");
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len);
  port = ntohs(addr.sin_port);
  return fd;
}

/// A connection to 127.0.0.1:`port`, with Nagle's algorithm off (one small line per request).
inline int connect_loopback(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw os_error("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) < 0) {
    ::close(fd);
    throw os_error("connect to 127.0.0.1:" + std::to_string(port));
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

/// Writes all of `data`; false when the peer is gone.
inline bool send_all(int fd, const std::string &data) {
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<std::size_t>(n);
  }
  return true;
}

/// Writes all of `data` to any file descriptor (a socket, a pipe, a terminal); false when the
/// reader is gone. The caller ignores SIGPIPE.
inline bool write_all(int fd, const std::string &data) {
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<std::size_t>(n);
  }
  return true;
}

/// Reads newline-terminated lines from a file descriptor.
class LineReader {
 public:
  explicit LineReader(int fd) : fd_(fd) {}

  /// The next line without its newline; false at end of input or on error. A line longer than
  /// `max_line` bytes is an error (it would otherwise grow without bound).
  bool next(std::string &line, std::size_t max_line = 16u << 20) {
    while (true) {
      std::size_t nl = buf_.find('\n', scan_);
      if (nl != std::string::npos) {
        line.assign(buf_, 0, nl);
        buf_.erase(0, nl + 1);
        scan_ = 0;
        return true;
      }
      scan_ = buf_.size();
      if (buf_.size() > max_line) return false;
      char chunk[65536];
      ssize_t n = ::read(fd_, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        if (buf_.empty()) return false;
        line.swap(buf_);  // a last line without a newline
        buf_.clear();
        scan_ = 0;
        return true;
      }
      buf_.append(chunk, static_cast<std::size_t>(n));
    }
  }

 private:
  int fd_;
  std::string buf_;
  std::size_t scan_ = 0;
};

}  // namespace net

#endif  // POINTSMAN_EXAMPLE_NET_HPP
