// Stop requests by signal for the long-running commands (internal to the command line).
//
// SIGINT and SIGTERM are blocked in every thread and taken by one watcher thread
// (sigtimedwait), never by an asynchronous handler: no other thread's system call is ever
// interrupted by them, and the stop actions may take locks and log. The signal mask is
// inherited by threads, so a SignalWatcher must be created before the command starts any
// thread (ZeroMQ contexts, HTTP pools, slots). Child processes reset their mask on spawn.
#pragma once

#include <atomic>
#include <functional>
#include <thread>

namespace zb::cli {

class SignalWatcher {
 public:
  // on_signal(n, sig) runs on the watcher thread for the n-th signal (1: warm stop, 2: cold
  // stop). A third signal ends the process at once (exit status 130).
  explicit SignalWatcher(std::function<void(int n, int sig)> on_signal);
  ~SignalWatcher();
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

 private:
  std::function<void(int, int)> on_signal_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

}  // namespace zb::cli
