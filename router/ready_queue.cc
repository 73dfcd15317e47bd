#include "router/ready_queue.h"

namespace zb::router {

bool OrderedIds::insert(uint64_t key, const Id& id) {
  auto it = chunks_.upper_bound(key);
  if (it == chunks_.begin()) {
    if (it == chunks_.end()) {  // the first entry
      Chunk c;
      c.entries.reserve(16);
      c.entries.push_back({key, id});
      chunks_.emplace(key, std::move(c));
      ++size_;
      return true;
    }
    // Smaller than every chunk's bound: the first chunk takes it, under the new bound.
    auto node = chunks_.extract(it);
    node.key() = key;
    it = chunks_.insert(std::move(node)).position;
  } else {
    --it;
  }
  Chunk& c = it->second;
  auto at = std::lower_bound(c.entries.begin() + static_cast<ptrdiff_t>(c.head), c.entries.end(), key, before);
  if (at != c.entries.end() && at->key == key) return false;
  if (at == c.entries.begin() + static_cast<ptrdiff_t>(c.head) && c.head > 0) {
    c.entries[--c.head] = {key, id};  // before the live ones, in room a pop left
  } else {
    c.entries.insert(at, {key, id});
  }
  ++size_;
  if (c.live() > 2 * kChunk) {
    // Split in two: the upper half becomes a chunk of its own.
    const auto mid = c.entries.begin() + static_cast<ptrdiff_t>(c.head + c.live() / 2);
    Chunk upper;
    upper.entries.assign(mid, c.entries.end());
    c.entries.erase(mid, c.entries.end());
    c.entries.erase(c.entries.begin(), c.entries.begin() + static_cast<ptrdiff_t>(c.head));
    c.head = 0;
    c.entries.shrink_to_fit();
    const uint64_t bound = upper.entries.front().key;
    chunks_.emplace_hint(std::next(it), bound, std::move(upper));
  }
  return true;
}

std::optional<Id> OrderedIds::take(uint64_t key) {
  auto it = chunks_.upper_bound(key);
  if (it == chunks_.begin()) return std::nullopt;
  --it;
  Chunk& c = it->second;
  auto at = std::lower_bound(c.entries.begin() + static_cast<ptrdiff_t>(c.head), c.entries.end(), key, before);
  if (at == c.entries.end() || at->key != key) return std::nullopt;
  const Id id = at->id;
  if (at == c.entries.begin() + static_cast<ptrdiff_t>(c.head)) ++c.head;
  else c.entries.erase(at);
  --size_;
  if (c.live() == 0) chunks_.erase(it);
  return id;
}

std::pair<uint64_t, Id> OrderedIds::front() const {
  const Chunk& c = chunks_.begin()->second;
  return {c.entries[c.head].key, c.entries[c.head].id};
}

Id OrderedIds::pop_front() {
  auto it = chunks_.begin();
  Chunk& c = it->second;
  const Id id = c.entries[c.head++].id;
  --size_;
  if (c.live() == 0) chunks_.erase(it);
  return id;
}

std::vector<std::pair<uint64_t, Id>> OrderedIds::from(uint64_t key, size_t limit) const {
  std::vector<std::pair<uint64_t, Id>> out;
  auto it = chunks_.upper_bound(key);
  if (it != chunks_.begin()) --it;
  for (; it != chunks_.end() && out.size() < limit; ++it) {
    const Chunk& c = it->second;
    auto at = std::lower_bound(c.entries.begin() + static_cast<ptrdiff_t>(c.head), c.entries.end(), key, before);
    for (; at != c.entries.end() && out.size() < limit; ++at) out.emplace_back(at->key, at->id);
  }
  return out;
}

void ReadyQueue::push(uint64_t key, const Id& task, const Id& group) {
  if (!entries_.insert(key, task)) return;
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
  if (!fair_) return entries_.front().first;
  return *lanes_.at(turns_.begin()->second).keys.begin();
}

Id ReadyQueue::pop() {
  if (!fair_) return entries_.pop_front();
  const Id group = turns_.begin()->second;
  Lane& lane = lanes_.at(group);
  const uint64_t key = *lane.keys.begin();
  lane.keys.erase(lane.keys.begin());
  const Id id = *entries_.take(key);
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
  if (!entries_.take(key)) return false;
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

std::vector<std::pair<uint64_t, Id>> ReadyQueue::peek(size_t limit) const { return entries_.from(0, limit); }

std::vector<std::pair<uint64_t, Id>> ReadyQueue::from(uint64_t key, size_t limit) const {
  return entries_.from(key, limit);
}

std::vector<std::pair<uint64_t, Id>> ReadyQueue::take_all() {
  std::vector<std::pair<uint64_t, Id>> out = entries_.from(0, entries_.size());
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
