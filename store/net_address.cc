#include "store/net_address.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace zb::store {

Result<HostPort> parse_host_port(const std::string& text) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return Status(Code::kBadRequest, "--http must be HOST:PORT, got '" + text + "'");
  HostPort out;
  out.host = text.substr(0, colon);
  if (out.host.size() >= 2 && out.host.front() == '[' && out.host.back() == ']')
    out.host = out.host.substr(1, out.host.size() - 2);
  const std::string port = text.substr(colon + 1);
  int value = -1;
  if (!port.empty() && port.size() <= 5 && port.find_first_not_of("0123456789") == std::string::npos)
    value = std::stoi(port);
  if (value <= 0 || value > 65535) return Status(Code::kBadRequest, "--http port must be 1..65535, got '" + port + "'");
  out.port = value;
  return out;
}

std::string address_text(const sockaddr* address) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (address->sa_family == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(address)->sin_addr, buf, sizeof buf);
  } else if (address->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(address);
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) ::inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], buf, sizeof buf);
    else ::inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf);
  }
  return buf;
}

int address_port(const sockaddr* address) {
  if (address->sa_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(address)->sin_port);
  if (address->sa_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(address)->sin6_port);
  return 0;
}

std::string client_key(std::string_view ip) {
  in6_addr a6{};
  const std::string text(ip);
  if (text.find(':') == std::string::npos || ::inet_pton(AF_INET6, text.c_str(), &a6) != 1) return text;
  std::memset(&a6.s6_addr[8], 0, 8);
  char buf[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET6, &a6, buf, sizeof buf);
  return std::string(buf) + "/64";
}

Result<Listener> Listener::open(const HostPort& where) {
  const std::string shown = (where.host.find(':') != std::string::npos ? "[" + where.host + "]" : where.host) + ":" +
                            std::to_string(where.port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  if (int rc = ::getaddrinfo(where.host.c_str(), std::to_string(where.port).c_str(), &hints, &found); rc != 0)
    return Status(Code::kIo, "cannot listen on http://" + shown + ": cannot resolve '" + where.host + "': " + ::gai_strerror(rc));
  std::string reason = "no address to bind";
  Listener out;
  for (addrinfo* a = found; a && out.fd_ < 0; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      reason = std::strerror(errno);
      continue;
    }
    // SO_REUSEADDR only: SO_REUSEPORT would let a second store bind the same port and
    // silently split the requests between two clusters.
    int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    if (::bind(fd, a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd, SOMAXCONN) != 0) {
      reason = std::strerror(errno);
      ::close(fd);
      continue;
    }
    sockaddr_storage bound{};
    socklen_t len = sizeof bound;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
    out.fd_ = fd;
    out.loopback_ = is_loopback(reinterpret_cast<sockaddr*>(&bound));
    const std::string ip = address_text(reinterpret_cast<sockaddr*>(&bound));
    out.bound_ = (bound.ss_family == AF_INET6 && ip.find(':') != std::string::npos ? "[" + ip + "]" : ip) + ":" +
                 std::to_string(address_port(reinterpret_cast<sockaddr*>(&bound)));
  }
  ::freeaddrinfo(found);
  if (out.fd_ < 0) return Status(Code::kIo, "cannot listen on http://" + shown + ": " + reason);
  return out;
}

Listener::Listener(Listener&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), loopback_(other.loopback_), bound_(std::move(other.bound_)) {}

Listener& Listener::operator=(Listener&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    loopback_ = other.loopback_;
    bound_ = std::move(other.bound_);
  }
  return *this;
}

Listener::~Listener() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace zb::store
