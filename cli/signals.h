// Stop requests by signal for the long-running commands (internal to the command line).
//
// SIGINT, SIGTERM and SIGHUP are blocked in every thread and taken by one watcher thread
// (sigtimedwait), never by an asynchronous handler: no other thread's system call is ever
// interrupted by them, and the stop actions may take locks and log. The signal mask is
// inherited by threads, so a SignalWatcher must be created before the command starts any
// thread (ZeroMQ contexts, HTTP pools, slots). Child processes reset their mask on spawn.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace zb {
class Router;
class Store;
class Worker;
}  // namespace zb

namespace zb::cli {

class SignalWatcher {
 public:
  // on_signal(n, sig) runs on the watcher thread for the n-th stop signal (1: warm stop, 2:
  // cold stop). A third one ends the process at once (exit status 130). SIGHUP is no stop: it
  // runs on_reload (systemd's ExecReload), or is logged and ignored without one.
  explicit SignalWatcher(std::function<void(int n, int sig)> on_signal, std::function<void()> on_reload = {});
  ~SignalWatcher();
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

 private:
  std::function<void(int, int)> on_signal_;
  std::function<void()> on_reload_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

// What a stop signal reaches. A signal that arrives while a component is still being created
// is remembered and applied when it is added: a stop is never lost, and a worker never sees a
// warm stop twice (which would make it cold). On a warm stop the store goes first, then the
// workers, then the router. Thread-safe.
class StopTargets {
 public:
  // `router_last`: the router is stopped by the command itself once its workers are done
  // (`up`: their final results need it), not by the signal.
  explicit StopTargets(bool router_last = false) : router_last_(router_last) {}

  // The n-th stop signal (1: warm, 2: cold).
  void on_signal(int n);
  void set_router(Router* r);
  void add_worker(Worker* w);
  void set_store(Store* s);
  // Forgets every target (before they are destroyed).
  void clear();

 private:
  std::mutex mu_;
  const bool router_last_;
  int requested_ = 0;
  Router* router_ = nullptr;
  Store* store_ = nullptr;
  std::vector<Worker*> workers_;
};

}  // namespace zb::cli
