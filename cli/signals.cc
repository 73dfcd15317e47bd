#include "cli/signals.h"

#include <signal.h>

#include <cerrno>
#include <cstdlib>
#include <ctime>

#include "common/log.h"
#include "router/router.h"
#include "store/store.h"
#include "worker/worker.h"

namespace zb::cli {
namespace {

sigset_t watched_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  return set;
}

}  // namespace

SignalWatcher::SignalWatcher(std::function<void(int, int)> on_signal, std::function<void()> on_reload)
    : on_signal_(std::move(on_signal)), on_reload_(std::move(on_reload)) {
  const sigset_t set = watched_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  thread_ = std::thread([this, set] {
    int count = 0;
    const timespec tick{0, 100'000'000};  // looks at done_ ten times a second
    while (!done_.load()) {
      const int sig = sigtimedwait(&set, nullptr, &tick);
      if (sig < 0) continue;  // EAGAIN (tick) or EINTR
      if (sig == SIGHUP) {
        spdlog::info("signal=SIGHUP action={}", on_reload_ ? "reload" : "none");
        if (on_reload_) on_reload_();
        continue;
      }
      ++count;
      spdlog::info("signal={} stop={}", sig == SIGINT ? "SIGINT" : "SIGTERM",
                   count == 1 ? "warm" : count == 2 ? "cold" : "immediate");
      if (count > 2) {
        spdlog::default_logger()->flush();
        std::_Exit(130);
      }
      on_signal_(count, sig);
    }
  });
}

SignalWatcher::~SignalWatcher() {
  done_.store(true);
  thread_.join();
}

void StopTargets::on_signal(int n) {
  std::lock_guard lock(mu_);
  requested_ = n;
  if (store_ && n == 1) store_->stop();
  for (Worker* w : workers_) w->stop();  // first warm, second cold
  if (router_ && !router_last_) router_->stop();
}

void StopTargets::set_router(Router* r) {
  std::lock_guard lock(mu_);
  router_ = r;
  if (requested_ && !router_last_) r->stop();
}

void StopTargets::add_worker(Worker* w) {
  std::lock_guard lock(mu_);
  workers_.push_back(w);
  for (int i = 0; i < requested_; ++i) w->stop();
}

void StopTargets::set_store(Store* s) {
  std::lock_guard lock(mu_);
  store_ = s;
  if (requested_) s->stop();
}

void StopTargets::clear() {
  std::lock_guard lock(mu_);
  router_ = nullptr;
  store_ = nullptr;
  workers_.clear();
}

}  // namespace zb::cli
