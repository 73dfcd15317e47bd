// Time as the system speaks it: wall-clock unix milliseconds for records and events, a
// monotonic clock for timers and deadlines.
#pragma once

#include <chrono>
#include <cstdint>

namespace zb {

using SteadyClock = std::chrono::steady_clock;

inline uint64_t now_unix_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

inline uint64_t now_steady_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   SteadyClock::now().time_since_epoch())
                                   .count());
}

}  // namespace zb
