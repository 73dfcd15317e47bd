#include "router/task_table.h"

#include <algorithm>
#include <cctype>

namespace zb::router {

TaskTable::TaskTable(const std::vector<QueueConfig>& queues, const std::vector<PoolConfig>& pools,
                     uint64_t now_steady_ms)
    : configs_(&queues),
      pools_(&pools),
      pool_slots_(pools.size()),
      pool_turn_(pools.size(), 0),
      queue_pool_(queues.size(), -1),
      now_ms_(now_steady_ms),
      rates_(queues.size()),
      running_(queues.size(), 0) {
  for (size_t p = 0; p < pools.size(); ++p)
    for (const auto& host : pools[p].hosts) {
      auto s = find_slot(host, pools[p].model);
      if (!s) {
        s = static_cast<int32_t>(slots_.size());
        slots_.push_back({host, pools[p].model});
      }
      PoolSlot& slot = slots_[static_cast<size_t>(*s)];
      slot.parallel = std::max(slot.parallel, pools[p].parallel);
      pool_slots_[p].push_back(*s);
    }
  ready_.reserve(queues.size());
  for (size_t i = 0; i < queues.size(); ++i) {
    ready_.emplace_back(queues[i].fair);
    for (size_t p = 0; p < pools.size(); ++p)
      if (pools[p].name == queues[i].pool) queue_pool_[i] = static_cast<int32_t>(p);
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

std::optional<size_t> TaskTable::pick(std::span<const size_t> served, bool free_slot) {
  open_.clear();
  for (size_t i : served)
    if (rates_[i].open() && (!pooled(i) || (free_slot && pool_open(i)))) open_.push_back(i);
  auto q = best_queue(ready_, open_);
  if (q && rates_[*q].rate > 0) rates_[*q].tokens -= 1.0;
  return q;
}

void TaskTable::refill_rates(uint64_t now_steady_ms) {
  now_ms_ = now_steady_ms;
  for (auto& r : rates_) r.refill(now_steady_ms);
}

std::optional<uint64_t> TaskTable::ms_until_rate_opens(uint64_t now_steady_ms) const {
  std::optional<uint64_t> soonest;
  auto soon = [&](uint64_t ms) { soonest = soonest ? std::min(*soonest, ms) : ms; };
  for (size_t i = 0; i < rates_.size(); ++i) {
    if (ready_[i].empty()) continue;
    if (!rates_[i].open()) soon(rates_[i].ms_until_open(now_steady_ms));
    if (!pooled(i)) continue;
    // A server with a free place that cools down opens by itself; one that is full opens
    // when a lease ends, which is a turn of its own.
    for (int32_t s : pool_slots_[static_cast<size_t>(queue_pool_[i])]) {
      const PoolSlot& slot = slots_[static_cast<size_t>(s)];
      if (slot.running < slot.parallel && slot.cool_until_ms > now_steady_ms) soon(slot.cool_until_ms - now_steady_ms);
    }
  }
  return soonest;
}

bool TaskTable::pool_open(size_t q) const {
  for (int32_t s : pool_slots_[static_cast<size_t>(queue_pool_[q])])
    if (slots_[static_cast<size_t>(s)].open(now_ms_)) return true;
  return false;
}

std::optional<int32_t> TaskTable::take_slot(size_t q) {
  if (!pooled(q)) return std::nullopt;
  const size_t p = static_cast<size_t>(queue_pool_[q]);
  const auto& mine = pool_slots_[p];
  std::optional<int32_t> best;
  double best_load = 0;
  const size_t start = pool_turn_[p]++ % mine.size();
  for (size_t i = 0; i < mine.size(); ++i) {
    const int32_t s = mine[(start + i) % mine.size()];
    const PoolSlot& slot = slots_[static_cast<size_t>(s)];
    if (!slot.open(now_ms_)) continue;
    const double load = static_cast<double>(slot.running) / slot.parallel;
    if (!best || load < best_load) best = s, best_load = load;
  }
  return best;
}

std::optional<int32_t> TaskTable::find_slot(std::string_view host, std::string_view model) const {
  for (size_t s = 0; s < slots_.size(); ++s)
    if (slots_[s].host == host && slots_[s].model == model) return static_cast<int32_t>(s);
  return std::nullopt;
}

void TaskTable::cool(int32_t s, uint64_t ms, uint64_t now_steady_ms) {
  PoolSlot& slot = slots_[static_cast<size_t>(s)];
  slot.cool_until_ms = std::max(slot.cool_until_ms, now_steady_ms + ms);
}

std::vector<proto::PoolStats> TaskTable::pool_stats(uint64_t now_steady_ms) const {
  std::vector<proto::PoolStats> out;
  for (size_t p = 0; p < pools_->size(); ++p) {
    proto::PoolStats& ps = out.emplace_back();
    ps.name = (*pools_)[p].name;
    ps.model = (*pools_)[p].model;
    for (int32_t s : pool_slots_[p]) {
      const PoolSlot& slot = slots_[static_cast<size_t>(s)];
      ps.hosts.push_back({slot.host, slot.parallel, slot.running,
                          slot.cool_until_ms > now_steady_ms ? slot.cool_until_ms - now_steady_ms : 0});
    }
  }
  return out;
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
  if (lease.slot >= 0) ++slots_[static_cast<size_t>(lease.slot)].running;
  leases_[task] = std::move(lease);
}

std::optional<LeaseState> TaskTable::end_lease(const Id& task) {
  auto it = leases_.find(task);
  if (it == leases_.end()) return std::nullopt;
  LeaseState out = std::move(it->second);
  leases_.erase(it);
  if (running_[out.queue] > 0) --running_[out.queue];
  if (out.slot >= 0 && slots_[static_cast<size_t>(out.slot)].running > 0) --slots_[static_cast<size_t>(out.slot)].running;
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
