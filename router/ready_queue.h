// The tasks ready to run, per named queue, in dispatch order: higher priority first, then
// FIFO by sequence number. A requeued task goes back to its original position.
//
// A fair queue (QueueConfig::fair) keeps that order within each group (batch), and its groups
// take turns: each pop serves the group whose turn it is among those whose head has the
// highest priority, and sends it to the back of the line. A group that arrives joins the line
// at its back, so a batch of 3 submitted behind one of 100,000 starts within its first 3 turns
// instead of after the 100,000. Tasks without a group share one turn.
//
// Only ids and their order live here; payloads stay in LMDB until dispatch, so a million
// queued tasks cost tens of megabytes, not the size of their payloads.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/id.h"

namespace zb::router {

// (priority desc, seq asc) packed into one integer: smaller sorts first.
inline uint64_t order_key(uint8_t priority, uint64_t seq) {
  return (static_cast<uint64_t>(255 - priority) << 56) | (seq & ((1ull << 56) - 1));
}
inline uint8_t priority_of(uint64_t key) { return static_cast<uint8_t>(255 - (key >> 56)); }

// Ids by order key, in key order, stored compactly: sorted runs of at most 2 × kChunk
// (key, id) entries, each chunk found by the smallest key it may hold — a B-tree of one level.
// An entry costs 24 bytes where a std::map node costs 64 (with malloc's), which is most of
// what a queued task costs the router. Appends (new tasks: the largest keys) and pops (the
// smallest) are O(1) amortised within a chunk; anything else a binary search and a move of
// at most one chunk.
class OrderedIds {
 public:
  static constexpr size_t kChunk = 256;
  // false: the key is there already (nothing changes).
  bool insert(uint64_t key, const Id& id);
  // The id of `key`, taken out; nullopt: absent.
  std::optional<Id> take(uint64_t key);
  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  // The smallest key and its id (not empty()).
  std::pair<uint64_t, Id> front() const;
  Id pop_front();
  // At most `limit` entries from `key` on (inclusive), in key order.
  std::vector<std::pair<uint64_t, Id>> from(uint64_t key, size_t limit) const;
  void clear() {
    chunks_.clear();
    size_ = 0;
  }

 private:
  struct Entry {
    uint64_t key;
    Id id;
  };
  struct Chunk {
    std::vector<Entry> entries;  // sorted; live from `head` on
    size_t head = 0;
    size_t live() const { return entries.size() - head; }
  };
  static bool before(const Entry& e, uint64_t key) { return e.key < key; }
  // Every key of a chunk is >= its map key and < the next chunk's.
  std::map<uint64_t, Chunk> chunks_;
  size_t size_ = 0;
};

class ReadyQueue {
 public:
  explicit ReadyQueue(bool fair = false) : fair_(fair) {}
  bool fair() const { return fair_; }
  // `group` counts only in a fair queue.
  void push(uint64_t key, const Id& task, const Id& group = {});
  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }
  // The next task's key (not empty()).
  uint64_t front_key() const;
  Id pop();
  // Removes one task (revoke, purge, re-claim); false when absent.
  bool erase(uint64_t key);
  // The first `limit` entries in key order (a fair queue's dispatch order interleaves groups).
  std::vector<std::pair<uint64_t, Id>> peek(size_t limit) const;
  // At most `limit` entries from `key` on (inclusive), in key order.
  std::vector<std::pair<uint64_t, Id>> from(uint64_t key, size_t limit) const;
  // Removes and returns every entry.
  std::vector<std::pair<uint64_t, Id>> take_all();
  void clear();

 private:
  // A group's place in a fair queue: its keys in order, and where it stands in the line.
  struct Lane {
    std::set<uint64_t> keys;
    uint64_t turn = 0;  // its key in turns_, once in_line
    bool in_line = false;
  };
  // (the priority of the group's head, the order it joined the line or was last served).
  uint64_t turn_key(uint64_t head_key, uint64_t order) const {
    return (head_key & ~kOrderMask) | (order & kOrderMask);
  }
  void place(Lane& lane, const Id& group, uint64_t order);
  static constexpr uint64_t kOrderMask = (1ull << 56) - 1;

  OrderedIds entries_;
  bool fair_ = false;
  std::unordered_map<Id, Lane, IdHash> lanes_;      // fair: by group
  std::unordered_map<uint64_t, Id> group_of_;       // fair: key → group
  std::map<uint64_t, Id> turns_;                    // fair: the line, first = next served
  uint64_t next_turn_ = 0;
};

// Picks, among the queues a worker serves (given as indices), the one whose head comes first.
// nullopt when all are empty.
std::optional<size_t> best_queue(std::span<const ReadyQueue> queues, std::span<const size_t> served);

}  // namespace zb::router
