#include "store/login_throttle.h"

namespace zb::store {

uint32_t LoginThrottle::locked_for(const std::string& client, Clock::time_point now) {
  std::lock_guard lock(mu_);
  auto it = clients_.find(client);
  if (it == clients_.end() || it->second.locked_until <= now) return 0;
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(it->second.locked_until - now).count();
  return static_cast<uint32_t>((left + 999) / 1000);
}

size_t LoginThrottle::remembered() {
  std::lock_guard lock(mu_);
  return clients_.size();
}

void LoginThrottle::forget_stale(Clock::time_point now) {
  for (auto it = clients_.begin(); it != clients_.end();) {
    const bool stale = it->second.locked_until <= now && now - it->second.window_start >= lockout_;
    it = stale ? clients_.erase(it) : std::next(it);
  }
}

LoginThrottle::Failure LoginThrottle::fail(const std::string& client, Clock::time_point now) {
  std::lock_guard lock(mu_);
  auto it = clients_.find(client);
  if (it == clients_.end()) {
    if (clients_.size() >= max_clients_ && now - last_sweep_ >= std::chrono::seconds(1)) {
      forget_stale(now);
      last_sweep_ = now;
    }
    // Still full: every client remembered is failing right now. One of them is forgotten
    // (memory stays bounded; that client starts counting again).
    if (clients_.size() >= max_clients_) clients_.erase(clients_.begin());
    it = clients_.emplace(client, Entry{0, now, {}}).first;
  }
  Entry& e = it->second;
  if (now - e.window_start >= lockout_) {  // a new window
    e.failures = 0;
    e.window_start = now;
  }
  ++e.failures;
  if (e.failures >= max_failures_ && e.locked_until <= now) {
    e.locked_until = now + lockout_;
    return {e.failures, true};
  }
  return {e.failures, false};
}

}  // namespace zb::store
