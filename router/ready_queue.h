// The tasks ready to run, per named queue, in dispatch order: higher priority first, then
// FIFO by sequence number. A requeued task goes back to its original position.
//
// Only ids and their order live here; payloads stay in LMDB until dispatch, so a million
// queued tasks cost tens of megabytes, not the size of their payloads.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/id.h"

namespace zb::router {

// (priority desc, seq asc) packed into one integer: smaller sorts first.
inline uint64_t order_key(uint8_t priority, uint64_t seq) {
  return (static_cast<uint64_t>(255 - priority) << 56) | (seq & ((1ull << 56) - 1));
}
inline uint8_t priority_of(uint64_t key) { return static_cast<uint8_t>(255 - (key >> 56)); }

class ReadyQueue {
 public:
  void push(uint64_t key, const Id& task) { entries_.emplace(key, task); }
  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }
  uint64_t front_key() const { return entries_.begin()->first; }
  Id pop();
  // Removes one task (revoke, purge, re-claim); false when absent.
  bool erase(uint64_t key);
  // The first `limit` entries in dispatch order.
  std::vector<std::pair<uint64_t, Id>> peek(size_t limit) const;
  // At most `limit` entries from `key` on (inclusive), in dispatch order.
  std::vector<std::pair<uint64_t, Id>> from(uint64_t key, size_t limit) const;
  // Removes and returns every entry.
  std::vector<std::pair<uint64_t, Id>> take_all();
  void clear() { entries_.clear(); }

 private:
  std::map<uint64_t, Id> entries_;
};

// Picks, among the queues a worker serves (given as indices), the one whose head comes first.
// nullopt when all are empty.
std::optional<size_t> best_queue(std::span<const ReadyQueue> queues, std::span<const size_t> served);

}  // namespace zb::router
