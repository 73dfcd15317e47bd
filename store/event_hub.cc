#include "store/event_hub.h"

#include <algorithm>

namespace zb::store {

void EventHub::publish(std::vector<StreamEntry> entries) {
  {
    std::lock_guard lock(mu_);
    for (auto& e : entries) {
      if (!ring_.empty() && e.seq <= ring_.back()->seq) continue;
      bytes_ += e.frame.size();
      ring_.push_back(std::make_shared<const StreamEntry>(std::move(e)));
    }
    while (!ring_.empty() && (ring_.size() > max_events_ || bytes_ > max_bytes_)) {
      bytes_ -= ring_.front()->frame.size();
      ring_.pop_front();
    }
  }
  cv_.notify_all();
}

void EventHub::clear() {
  {
    std::lock_guard lock(mu_);
    ring_.clear();
    bytes_ = 0;
    ++epoch_;
  }
  cv_.notify_all();
}

std::vector<EntryPtr> EventHub::since(uint64_t after, size_t max_events, size_t max_bytes, uint64_t* oldest) const {
  std::lock_guard lock(mu_);
  *oldest = ring_.empty() ? 0 : ring_.front()->seq;
  std::vector<EntryPtr> out;
  auto it = std::upper_bound(ring_.begin(), ring_.end(), after,
                             [](uint64_t s, const EntryPtr& e) { return s < e->seq; });
  size_t bytes = 0;
  for (; it != ring_.end() && out.size() < max_events && (out.empty() || bytes < max_bytes); ++it) {
    bytes += (*it)->frame.size();
    out.push_back(*it);
  }
  return out;
}

uint64_t EventHub::head() const {
  std::lock_guard lock(mu_);
  return ring_.empty() ? 0 : ring_.back()->seq;
}

uint64_t EventHub::epoch() const {
  std::lock_guard lock(mu_);
  return epoch_;
}

size_t EventHub::bytes() const {
  std::lock_guard lock(mu_);
  return bytes_;
}

bool EventHub::wait(uint64_t after, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  const uint64_t epoch = epoch_;
  return cv_.wait_for(lock, timeout,
                      [&] { return epoch_ != epoch || (!ring_.empty() && ring_.back()->seq > after); });
}

}  // namespace zb::store
