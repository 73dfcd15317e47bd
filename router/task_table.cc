#include "router/task_table.h"

#include <algorithm>
#include <cctype>

namespace zb::router {

TaskTable::TaskTable(const std::vector<QueueConfig>& queues, uint64_t now_steady_ms)
    : configs_(&queues), ready_(queues.size()), rates_(queues.size()), running_(queues.size(), 0) {
  for (size_t i = 0; i < queues.size(); ++i) {
    index_.emplace(queues[i].name, i);
    RateBucket& r = rates_[i];
    r.rate = queues[i].rate_limit;
    r.burst = std::max(1.0, queues[i].rate_limit / 10.0);
    r.tokens = r.burst;
    r.refilled_ms = now_steady_ms;
  }
}

std::optional<size_t> TaskTable::find_queue(std::string_view name) const {
  auto it = index_.find(name);
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

std::optional<size_t> TaskTable::pick(std::span<const size_t> served) {
  open_.clear();
  for (size_t i : served)
    if (rates_[i].open()) open_.push_back(i);
  auto q = best_queue(ready_, open_);
  if (q && rates_[*q].rate > 0) rates_[*q].tokens -= 1.0;
  return q;
}

void TaskTable::refill_rates(uint64_t now_steady_ms) {
  for (auto& r : rates_) r.refill(now_steady_ms);
}

std::optional<uint64_t> TaskTable::ms_until_rate_opens(uint64_t now_steady_ms) const {
  std::optional<uint64_t> soonest;
  for (size_t i = 0; i < rates_.size(); ++i)
    if (!rates_[i].open() && !ready_[i].empty()) {
      const uint64_t ms = rates_[i].ms_until_open(now_steady_ms);
      soonest = soonest ? std::min(*soonest, ms) : ms;
    }
  return soonest;
}

std::optional<ScheduledTask> TaskTable::pop_due(uint64_t now_unix_ms) {
  while (!scheduled_.empty() && scheduled_.top().eta_ms <= now_unix_ms) {
    ScheduledTask t = scheduled_.top();
    scheduled_.pop();
    if (revoked_scheduled_.erase(t.task)) continue;
    return t;
  }
  return std::nullopt;
}

std::optional<uint64_t> TaskTable::next_due_ms() const {
  if (scheduled_.empty()) return std::nullopt;
  return scheduled_.top().eta_ms;
}

LeaseState* TaskTable::lease(const Id& task) {
  auto it = leases_.find(task);
  return it == leases_.end() ? nullptr : &it->second;
}

void TaskTable::add_lease(const Id& task, LeaseState lease) {
  ++running_[lease.queue];
  leases_[task] = std::move(lease);
}

std::optional<LeaseState> TaskTable::end_lease(const Id& task) {
  auto it = leases_.find(task);
  if (it == leases_.end()) return std::nullopt;
  LeaseState out = std::move(it->second);
  leases_.erase(it);
  if (running_[out.queue] > 0) --running_[out.queue];
  return out;
}

const PreviousHolder* TaskTable::previous_holder(const Id& task) const {
  auto it = requeued_from_.find(task);
  return it == requeued_from_.end() ? nullptr : &it->second;
}

uint64_t retry_delay_ms(const QueueConfig& queue, uint32_t retries, uint64_t random) {
  uint64_t delay = queue.retry_backoff_ms;
  for (uint32_t i = 0; i < retries && delay < queue.retry_backoff_max_ms; ++i) delay *= 2;
  delay = std::min<uint64_t>(delay, queue.retry_backoff_max_ms);
  if (queue.retry_jitter && delay > 1) delay = delay / 2 + random % (delay - delay / 2 + 1);
  return delay;
}

std::string_view error_class(std::string_view error) {
  size_t i = 0;
  while (i < error.size() && (std::isalnum(static_cast<unsigned char>(error[i])) || error[i] == '_' || error[i] == '.')) ++i;
  if (i == 0 || i >= error.size() || error[i] != ':' || std::isdigit(static_cast<unsigned char>(error[0]))) return {};
  return error.substr(0, i);
}

bool retry_matches(const QueueConfig& queue, std::string_view error) {
  if (queue.retry_on.empty()) return false;
  const std::string_view cls = error_class(error);
  for (const auto& name : queue.retry_on)
    if (name == "*" || (!cls.empty() && name == cls)) return true;
  return false;
}

}  // namespace zb::router
