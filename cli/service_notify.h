// systemd's service notifications (sd_notify(3)) for the long-running commands (internal to
// the command line): READY=1 once the process really serves, WATCHDOG=1 while it is alive,
// RELOADING=1 and READY=1 around a reload (SIGHUP), STOPPING=1 on a stop.
//
// Without $NOTIFY_SOCKET (not started by systemd with Type=notify) a ServiceNotifier does
// nothing and starts no thread. With it, start() runs one thread that polls the `ready` probe
// every 50 ms until it holds, sends READY=1, then, when systemd asked for a watchdog
// ($WATCHDOG_USEC), sends WATCHDOG=1 every half interval for as long as the `alive` probe
// holds: a process whose probe fails is left for systemd to restart. The probes run on that
// thread only. Create the notifier before the SignalWatcher and start it after (its thread
// must inherit the blocked stop signals); all other calls are thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace zb::cli {

struct ServiceProbes {
  std::function<bool()> ready;  // true once the process serves
  std::function<bool()> alive;  // true while it does (asked every half watchdog interval)
};

class ServiceNotifier {
 public:
  ServiceNotifier();
  ~ServiceNotifier();
  ServiceNotifier(const ServiceNotifier&) = delete;
  ServiceNotifier& operator=(const ServiceNotifier&) = delete;

  // Whether systemd listens ($NOTIFY_SOCKET is set).
  bool enabled() const { return enabled_; }
  // Starts the thread with `what` (the STATUS= text once ready). Once only.
  void start(std::string what, ServiceProbes probes);
  void stopping();   // STOPPING=1; no more watchdog pings
  void reloading();  // RELOADING=1
  void reloaded();   // READY=1 (after a reload)
  // Ends the thread (and destroys its probes) without a notification: before what the
  // probes use goes away.
  void join();

 private:
  void loop(std::string what, ServiceProbes probes);
  // Sleeps until `until` or a stop; false on a stop.
  bool wait_until(std::chrono::steady_clock::time_point until);

  const bool enabled_;
  uint64_t watchdog_usec_ = 0;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

// The HTTP status code of `GET path` at HOST:PORT (a wildcard host is asked on loopback), or 0
// when nothing answers within timeout_ms or the answer is not an HTTP status line. With
// `tcp_only`, 200 as soon as the port accepts a connection (an HTTPS server, which this probe
// does not speak).
int http_probe(const std::string& host_port, const std::string& path, int timeout_ms, bool tcp_only = false);

// "HTTP/1.x NNN ..." → NNN; 0 for anything else. What http_probe reads from the wire.
int parse_http_status_line(std::string_view head);

}  // namespace zb::cli
