#include "store/event_hub.h"

#include <algorithm>

namespace zb::store {

void EventHub::publish(const std::vector<proto::Event>& events) {
  {
    std::lock_guard lock(mu_);
    for (const auto& e : events) {
      if (!ring_.empty() && e.seq <= ring_.back().seq) continue;
      proto::Event copy = e;
      copy.payload.clear();  // streams carry status, not inputs
      ring_.push_back(std::move(copy));
    }
    while (ring_.size() > capacity_) ring_.pop_front();
  }
  cv_.notify_all();
}

void EventHub::clear() {
  std::lock_guard lock(mu_);
  ring_.clear();
}

std::vector<proto::Event> EventHub::since(uint64_t after, size_t max, uint64_t* oldest) const {
  std::lock_guard lock(mu_);
  *oldest = ring_.empty() ? 0 : ring_.front().seq;
  std::vector<proto::Event> out;
  auto it = std::upper_bound(ring_.begin(), ring_.end(), after,
                             [](uint64_t s, const proto::Event& e) { return s < e.seq; });
  for (; it != ring_.end() && out.size() < max; ++it) out.push_back(*it);
  return out;
}

uint64_t EventHub::head() const {
  std::lock_guard lock(mu_);
  return ring_.empty() ? 0 : ring_.back().seq;
}

bool EventHub::wait(uint64_t after, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return !ring_.empty() && ring_.back().seq > after; });
}

}  // namespace zb::store
