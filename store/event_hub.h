// Recent events in memory for Server-Sent Events streams (internal to store/).
//
// The follower publishes each batch after applying it, as StreamEntry (the frame built once,
// shared by every stream that sends it); streams read from here and wait on it. The ring is
// bounded by events and by bytes (docs/SECURITY.md, Limits); a stream behind it reads the
// store's durable stream log (StatusDb::stream_since) instead.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "store/sse.h"

namespace zb::store {

using EntryPtr = std::shared_ptr<const StreamEntry>;

inline constexpr size_t kRingEvents = 20000;
inline constexpr size_t kRingBytes = 8u << 20;

class EventHub {
 public:
  explicit EventHub(size_t max_events = kRingEvents, size_t max_bytes = kRingBytes)
      : max_events_(max_events), max_bytes_(max_bytes) {}

  // Holds at most `max_events` (and max_bytes of frames): the store sets it to its stream
  // retention, so that the ring never promises more than the durable log. Before publishing.
  void set_max_events(size_t max_events) {
    std::lock_guard lock(mu_);
    max_events_ = max_events;
  }
  // Entries in seq order; those at or below the newest held are passed over.
  void publish(std::vector<StreamEntry> entries);
  // Forgets everything (the router's log is a new one) and starts a new epoch.
  void clear();
  // Entries with seq > after: at most max_events, and no more once max_bytes of frames are
  // reached (at least one). `oldest` is the first seq the ring still holds (0 when empty): a
  // stream behind it reads the durable log instead.
  std::vector<EntryPtr> since(uint64_t after, size_t max_events, size_t max_bytes, uint64_t* oldest) const;
  uint64_t head() const;
  // Counts clear() calls: a stream that sees it change knows its sequence numbers are void.
  uint64_t epoch() const;
  size_t bytes() const;
  // Waits until an event with seq > after exists, the epoch changes, or `timeout` passes.
  bool wait(uint64_t after, std::chrono::milliseconds timeout) const;

 private:
  size_t max_events_, max_bytes_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::deque<EntryPtr> ring_;
  size_t bytes_ = 0;
  uint64_t epoch_ = 0;
};

}  // namespace zb::store
