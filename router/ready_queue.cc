#include "router/ready_queue.h"

namespace zb::router {

void ReadyQueue::push(uint64_t key, const Id& task, const Id& group) {
  entries_.emplace(key, task);
  if (!fair_) return;
  group_of_[key] = group;
  Lane& lane = lanes_[group];
  const bool joined = lane.keys.empty();
  lane.keys.insert(key);
  if (joined) place(lane, group, next_turn_++);
  else if (*lane.keys.begin() == key) place(lane, group, lane.turn & kOrderMask);  // a new head: its priority
}

// Puts the lane in the line at `order` with its head's priority (taking it out first).
void ReadyQueue::place(Lane& lane, const Id& group, uint64_t order) {
  const uint64_t turn = turn_key(*lane.keys.begin(), order);
  if (lane.in_line) {
    if (turn == lane.turn) return;
    turns_.erase(lane.turn);
  }
  lane.turn = turn;
  lane.in_line = true;
  turns_.emplace(turn, group);
}

uint64_t ReadyQueue::front_key() const {
  if (!fair_) return entries_.begin()->first;
  return *lanes_.at(turns_.begin()->second).keys.begin();
}

Id ReadyQueue::pop() {
  if (!fair_) {
    auto it = entries_.begin();
    Id id = it->second;
    entries_.erase(it);
    return id;
  }
  const Id group = turns_.begin()->second;
  Lane& lane = lanes_.at(group);
  const uint64_t key = *lane.keys.begin();
  lane.keys.erase(lane.keys.begin());
  auto it = entries_.find(key);
  Id id = it->second;
  entries_.erase(it);
  group_of_.erase(key);
  if (lane.keys.empty()) {
    turns_.erase(lane.turn);
    lanes_.erase(group);
  } else {
    place(lane, group, next_turn_++);  // served: to the back of the line
  }
  return id;
}

bool ReadyQueue::erase(uint64_t key) {
  if (entries_.erase(key) == 0) return false;
  if (!fair_) return true;
  auto g = group_of_.find(key);
  const Id group = g->second;
  group_of_.erase(g);
  Lane& lane = lanes_.at(group);
  lane.keys.erase(key);
  if (lane.keys.empty()) {
    turns_.erase(lane.turn);
    lanes_.erase(group);
  } else {
    place(lane, group, lane.turn & kOrderMask);  // its head may have changed priority
  }
  return true;
}

void ReadyQueue::clear() {
  entries_.clear();
  lanes_.clear();
  group_of_.clear();
  turns_.clear();
}

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
  clear();
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
