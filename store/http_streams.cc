#include "store/http_streams.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string_view>

#include "store/tls.h"

namespace zb::store {
namespace {

// cpp-httplib answers "Expect: 100-continue" itself, in one write. The connection thread has
// already sent that interim answer if the client waited for it (the body was read before the
// request came here), so a second one is dropped.
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

ssize_t read_from(const std::string& request, size_t& at, char* ptr, size_t size) {
  const size_t n = std::min(size, request.size() - at);
  std::memcpy(ptr, request.data() + at, n);
  at += n;
  return static_cast<ssize_t>(n);
}

}  // namespace

ssize_t BufferedStream::read(char* ptr, size_t size) { return read_from(request_, read_, ptr, size); }

ssize_t BufferedStream::write(const char* ptr, size_t size) {
  if (std::string_view(ptr, size) == kContinue) return static_cast<ssize_t>(size);
  answer_.append(ptr, size);
  return static_cast<ssize_t>(size);
}

void BufferedStream::get_remote_ip_and_port(std::string& ip, int& port) const {
  ip = peer_.ip;
  port = peer_.port;
}

void BufferedStream::get_local_ip_and_port(std::string& ip, int& port) const {
  ip = peer_.local_ip;
  port = peer_.local_port;
}

ssize_t DirectStream::read(char* ptr, size_t size) { return read_from(request_, read_, ptr, size); }

bool DirectStream::wait(short events) const {
  pollfd p{fd_, static_cast<short>(events | POLLRDHUP), 0};
  int rc;
  do {
    rc = ::poll(&p, 1, static_cast<int>(write_timeout_.count()));
  } while (rc < 0 && errno == EINTR);
  return rc == 1 && !(p.revents & (POLLERR | POLLHUP | POLLRDHUP | POLLNVAL)) && (p.revents & events);
}

bool DirectStream::is_writable() const { return wait(POLLOUT); }

ssize_t DirectStream::write(const char* ptr, size_t size) {
  if (std::string_view(ptr, size) == kContinue) return static_cast<ssize_t>(size);
  size_t sent = 0;
  while (sent < size) {
    if (tls_) {
      size_t put = 0;
      switch (tls_->write(ptr + sent, size - sent, &put)) {
        case TlsSession::Io::kOk: sent += put; continue;
        case TlsSession::Io::kWantWrite:
          if (!wait(POLLOUT)) return -1;
          continue;
        case TlsSession::Io::kWantRead:
          if (!wait(POLLIN)) return -1;
          continue;
        default: return -1;
      }
    }
    const ssize_t n = ::send(fd_, ptr + sent, size - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!wait(POLLOUT)) return -1;
    } else if (!(n < 0 && errno == EINTR)) {
      return -1;
    }
  }
  return static_cast<ssize_t>(size);
}

void DirectStream::get_remote_ip_and_port(std::string& ip, int& port) const {
  ip = peer_.ip;
  port = peer_.port;
}

void DirectStream::get_local_ip_and_port(std::string& ip, int& port) const {
  ip = peer_.local_ip;
  port = peer_.local_port;
}

}  // namespace zb::store
