#include "cli/signals.h"

#include <signal.h>

#include <cerrno>
#include <cstdlib>
#include <ctime>

#include "common/log.h"

namespace zb::cli {
namespace {

sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

}  // namespace

SignalWatcher::SignalWatcher(std::function<void(int, int)> on_signal) : on_signal_(std::move(on_signal)) {
  const sigset_t set = stop_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  thread_ = std::thread([this, set] {
    int count = 0;
    const timespec tick{0, 100'000'000};  // looks at done_ ten times a second
    while (!done_.load()) {
      const int sig = sigtimedwait(&set, nullptr, &tick);
      if (sig < 0) continue;  // EAGAIN (tick) or EINTR
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

}  // namespace zb::cli
