#include "router/ready_queue.h"

namespace zb::router {

Id ReadyQueue::pop() {
  auto it = entries_.begin();
  Id id = it->second;
  entries_.erase(it);
  return id;
}

bool ReadyQueue::erase(uint64_t key) { return entries_.erase(key) > 0; }

std::vector<std::pair<uint64_t, Id>> ReadyQueue::peek(size_t limit) const {
  std::vector<std::pair<uint64_t, Id>> out;
  for (auto it = entries_.begin(); it != entries_.end() && out.size() < limit; ++it)
    out.emplace_back(it->first, it->second);
  return out;
}

std::vector<std::pair<uint64_t, Id>> ReadyQueue::from(uint64_t key, size_t limit) const {
  std::vector<std::pair<uint64_t, Id>> out;
  for (auto it = entries_.lower_bound(key); it != entries_.end() && out.size() < limit; ++it)
    out.emplace_back(it->first, it->second);
  return out;
}

std::vector<std::pair<uint64_t, Id>> ReadyQueue::take_all() {
  std::vector<std::pair<uint64_t, Id>> out(entries_.begin(), entries_.end());
  entries_.clear();
  return out;
}

std::optional<size_t> best_queue(std::span<const ReadyQueue> queues, std::span<const size_t> served) {
  std::optional<size_t> best;
  for (size_t q : served) {
    if (queues[q].empty()) continue;
    if (!best || queues[q].front_key() < queues[*best].front_key()) best = q;
  }
  return best;
}

}  // namespace zb::router
