#include "cli/service_notify.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string_view>

#include "common/log.h"

namespace zb::cli {
namespace {

constexpr auto kReadyPoll = std::chrono::milliseconds(50);

// libsystemd is loaded only under systemd (NOTIFY_SOCKET set): a process started otherwise —
// most workers — does not map it, which keeps an idle worker's memory small.
struct Systemd {
  decltype(&sd_notify) notify = nullptr;
  decltype(&sd_watchdog_enabled) watchdog_enabled = nullptr;
};

const Systemd& systemd() {
  static const Systemd loaded = [] {
    Systemd s;
    void* lib = ::dlopen("libsystemd.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      spdlog::warn("systemd notify unavailable: cannot load libsystemd.so.0 ({})", ::dlerror());
      return s;
    }
    s.notify = reinterpret_cast<decltype(&sd_notify)>(::dlsym(lib, "sd_notify"));
    s.watchdog_enabled = reinterpret_cast<decltype(&sd_watchdog_enabled)>(::dlsym(lib, "sd_watchdog_enabled"));
    return s;
  }();
  return loaded;
}

void notify(const std::string& state) {
  if (!systemd().notify) return;
  // 0: the variable stays set, so that later notifications reach systemd too.
  if (int r = systemd().notify(0, state.c_str()); r < 0)
    spdlog::warn("systemd notify failed state=\"{}\" errno={}", state, -r);
}

// A file descriptor closed when it goes out of scope.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

int remaining_ms(std::chrono::steady_clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

bool wait_for(int fd, short events, std::chrono::steady_clock::time_point deadline) {
  pollfd p{fd, events, 0};
  for (;;) {
    int r = ::poll(&p, 1, remaining_ms(deadline));
    if (r > 0) return (p.revents & (events | POLLHUP)) != 0;
    if (r == 0 || errno != EINTR) return false;
  }
}

}  // namespace

ServiceNotifier::ServiceNotifier() : enabled_(std::getenv("NOTIFY_SOCKET") != nullptr) {
  if (!enabled_) return;
  uint64_t usec = 0;
  if (systemd().watchdog_enabled && systemd().watchdog_enabled(0, &usec) > 0) watchdog_usec_ = usec;
}

ServiceNotifier::~ServiceNotifier() { join(); }

void ServiceNotifier::join() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ServiceNotifier::start(std::string what, ServiceProbes probes) {
  if (!enabled_ || thread_.joinable()) return;
  thread_ = std::thread([this, what = std::move(what), probes = std::move(probes)] { loop(what, probes); });
}

void ServiceNotifier::stopping() {
  if (!enabled_) return;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_all();
  notify("STOPPING=1\nSTATUS=stopping");
}

void ServiceNotifier::reloading() {
  if (enabled_) notify("RELOADING=1\nSTATUS=reloading");
}

void ServiceNotifier::reloaded() {
  if (enabled_) notify("READY=1\nSTATUS=reloaded");
}

bool ServiceNotifier::wait_until(std::chrono::steady_clock::time_point until) {
  std::unique_lock lock(mu_);
  wake_.wait_until(lock, until, [&] { return stopping_; });
  return !stopping_;
}

void ServiceNotifier::loop(std::string what, ServiceProbes probes) {
  while (!probes.ready()) {
    if (!wait_until(std::chrono::steady_clock::now() + kReadyPoll)) return;
  }
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;  // a stop before readiness: STOPPING=1 was the last word
  }
  notify("READY=1\nSTATUS=" + what);
  spdlog::info("systemd ready status=\"{}\" watchdog_usec={}", what, watchdog_usec_);
  if (watchdog_usec_ == 0) return;
  const auto half = std::chrono::microseconds(watchdog_usec_ / 2);
  auto next = std::chrono::steady_clock::now();
  for (;;) {
    if (probes.alive()) {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      notify("WATCHDOG=1");
    } else {
      spdlog::warn("systemd watchdog withheld: the process does not answer its own probe");
    }
    next += half;
    if (!wait_until(next)) return;
  }
}

int parse_http_status_line(std::string_view head) {
  // "HTTP/1.1 200 OK": the version, one space, three digits, then a space or the line's end.
  if (head.size() < 12 || head.substr(0, 7) != "HTTP/1.") return 0;
  if (head[7] != '0' && head[7] != '1') return 0;
  if (head[8] != ' ') return 0;
  int code = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (head[i] < '0' || head[i] > '9') return 0;
    code = code * 10 + (head[i] - '0');
  }
  if (head.size() > 12 && head[12] != ' ' && head[12] != '\r') return 0;
  return code >= 100 ? code : 0;
}

int http_probe(const std::string& host_port, const std::string& path, int timeout_ms, bool tcp_only) {
  std::string host, port;
  if (!host_port.empty() && host_port.front() == '[') {
    auto close = host_port.find(']');
    if (close == std::string::npos || close + 1 >= host_port.size() || host_port[close + 1] != ':') return 0;
    host = host_port.substr(1, close - 1);
    port = host_port.substr(close + 2);
  } else {
    auto colon = host_port.rfind(':');
    if (colon == std::string::npos) return 0;
    host = host_port.substr(0, colon);
    port = host_port.substr(colon + 1);
  }
  if (host.empty() || host == "0.0.0.0" || host == "*") host = "127.0.0.1";
  if (host == "::") host = "::1";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0 || !found) return 0;
  Fd sock{::socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
  int connected = sock.fd < 0 ? -1 : ::connect(sock.fd, found->ai_addr, found->ai_addrlen);
  ::freeaddrinfo(found);
  if (sock.fd < 0) return 0;
  if (connected != 0) {
    if (errno != EINPROGRESS || !wait_for(sock.fd, POLLOUT, deadline)) return 0;
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(sock.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) return 0;
  }
  if (tcp_only) return 200;
  const std::string request = "GET " + path + " HTTP/1.1\r\nHost: " + host_port + "\r\nConnection: close\r\n\r\n";
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = ::send(sock.fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!wait_for(sock.fd, POLLOUT, deadline)) return 0;
    } else {
      return 0;
    }
  }
  // Only the status line is read, at most 256 bytes of it.
  std::string head;
  char buf[256];
  while (head.find('\n') == std::string::npos && head.size() < sizeof buf) {
    if (!wait_for(sock.fd, POLLIN, deadline)) return 0;
    ssize_t n = ::recv(sock.fd, buf, sizeof buf - head.size(), 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return 0;
    }
    head.append(buf, static_cast<size_t>(n));
  }
  return parse_http_status_line(head);
}

}  // namespace zb::cli
