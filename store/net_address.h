// Addresses of the HTTP server (internal to store/): HOST:PORT parsed, resolved and bound;
// whether a bound address is loopback; the key that groups one client's addresses.
//
// The loopback decision is made on the address a socket is actually bound to, never on the
// text the user wrote: "localhost" and "127.1" are loopback because they resolve there,
// "0.0.0.0", "0", "::" and any interface address are not.
#pragma once

#include <sys/socket.h>

#include <string>
#include <string_view>

#include "common/curve.h"
#include "common/status.h"

namespace zb::store {

struct HostPort {
  std::string host;  // without the brackets of "[::1]"
  int port = 0;
};
// "HOST:PORT" or "[IPV6]:PORT".
Result<HostPort> parse_host_port(const std::string& text);

// 127.0.0.0/8, ::1 and IPv4-mapped 127.x (common/curve.h: the ZeroMQ rule uses the same).
using curve::is_loopback;
// "127.0.0.1", "::1", "192.0.2.7" (IPv4-mapped IPv6 shown as IPv4); "" for other families.
std::string address_text(const sockaddr* address);
int address_port(const sockaddr* address);

// What per-client limits count by: the IPv4 address, or the /64 of an IPv6 one (a host is
// usually given a whole /64, so counting single addresses would not hold it back).
std::string client_key(std::string_view ip);

// A listening TCP socket (non-blocking, close-on-exec), and the address it is bound to.
class Listener {
 public:
  // Resolves host (a name or an address), binds the first address that binds, listens.
  // Errors name the address and the reason ("Address already in use").
  static Result<Listener> open(const HostPort& where);
  Listener(Listener&& other) noexcept;
  Listener& operator=(Listener&& other) noexcept;
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  ~Listener();

  int fd() const { return fd_; }
  bool loopback() const { return loopback_; }
  // "127.0.0.1:8000", "[::]:8000".
  const std::string& bound() const { return bound_; }

 private:
  Listener() = default;
  int fd_ = -1;
  bool loopback_ = false;
  std::string bound_;
};

}  // namespace zb::store
