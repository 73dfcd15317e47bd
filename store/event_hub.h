// Recent events in memory for Server-Sent Events streams (internal to store/).
//
// The follower publishes each batch after applying it; streams read from here and wait on it.
// Older events than the ring holds are read from the router's log (the system of record).
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <vector>

#include "common/protocol.h"

namespace zb::store {

class EventHub {
 public:
  explicit EventHub(size_t capacity = 100000) : capacity_(capacity) {}

  void publish(const std::vector<proto::Event>& events);
  // Forgets everything (the router's log is a new one).
  void clear();
  // Events with seq > after (at most max). `oldest` is the first seq the ring still holds
  // (0 when empty): a stream behind it must read the router's log instead.
  std::vector<proto::Event> since(uint64_t after, size_t max, uint64_t* oldest) const;
  uint64_t head() const;
  // Waits until an event with seq > after exists, or `timeout` passes.
  bool wait(uint64_t after, std::chrono::milliseconds timeout) const;

 private:
  size_t capacity_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::deque<proto::Event> ring_;
};

}  // namespace zb::store
