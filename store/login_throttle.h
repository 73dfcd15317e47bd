// Failed authentication attempts per client (internal to store/): after max_failures failed
// attempts within `lockout`, that client (client_key: an IPv4 address, an IPv6 /64) is locked
// out for `lockout`, whatever it sends, while every other client is served as before.
//
// Thread-safe. Memory is bounded: at most max_clients clients are remembered; when full,
// entries that no longer matter are dropped (at most once a second), then an arbitrary one.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace zb::store {

class LoginThrottle {
 public:
  using Clock = std::chrono::steady_clock;

  LoginThrottle(uint32_t max_failures, std::chrono::seconds lockout, size_t max_clients = 100000)
      : max_failures_(max_failures), lockout_(lockout), max_clients_(max_clients) {}

  // Whole seconds the client must still wait (at least 1), or 0 when it is not locked.
  uint32_t locked_for(const std::string& client, Clock::time_point now);

  struct Failure {
    uint32_t failures;  // within the current window, this one included
    bool locked;        // this failure locked the client out
  };
  Failure fail(const std::string& client, Clock::time_point now);

  uint32_t max_failures() const { return max_failures_; }
  // Clients remembered (at most max_clients).
  size_t remembered();

 private:
  struct Entry {
    uint32_t failures = 0;
    Clock::time_point window_start;
    Clock::time_point locked_until;
  };
  void forget_stale(Clock::time_point now);

  const uint32_t max_failures_;
  const std::chrono::seconds lockout_;
  const size_t max_clients_;
  std::mutex mu_;
  std::unordered_map<std::string, Entry> clients_;
  Clock::time_point last_sweep_{};
};

}  // namespace zb::store
