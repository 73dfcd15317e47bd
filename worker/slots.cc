#include "worker/slots.h"

#include <algorithm>
#include <exception>

namespace zb::worker {
namespace {

// How long past its hard limit an in-process handler may keep its slot.
constexpr auto kAbandonGrace = std::chrono::milliseconds(1000);

}  // namespace
}  // namespace zb::worker

namespace zb {

HandlerResult invoke_handler(const Handler& handler, const TaskContext& ctx) {
  HandlerResult r;
  try {
    r = handler(ctx);
  } catch (const std::exception& e) {
    r = HandlerResult::fail(std::string("HandlerError: handler threw: ") + e.what());
  } catch (...) {
    r = HandlerResult::fail("HandlerError: handler threw a non-standard exception");
  }
  if (r.status == proto::OutcomeStatus::kSucceeded && r.result.empty()) r.result = "null";
  return r;
}

}  // namespace zb

namespace zb::worker {

Slots::Slots(uint32_t concurrency, const Handlers& handlers, std::function<void()> wake)
    : handlers_(handlers), wake_(std::move(wake)) {
  std::lock_guard lock(mu_);
  target_ = concurrency;
  for (uint32_t i = 0; i < concurrency; ++i) spawn_locked();
}

Slots::~Slots() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (auto& [id, r] : running_) r.cancelled->store(true);
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void Slots::spawn_locked() {
  ++live_;
  threads_.emplace_back([this] { run_slot(); });
}

void Slots::set_target(uint32_t threads) {
  {
    std::lock_guard lock(mu_);
    target_ = threads;
    while (live_ < target_) spawn_locked();
  }
  cv_.notify_all();  // surplus idle threads notice and retire
}

uint32_t Slots::target() const {
  std::lock_guard lock(mu_);
  return target_;
}

void Slots::add(std::vector<proto::Assignment> tasks) {
  {
    std::lock_guard lock(mu_);
    for (auto& t : tasks) {
      if (running_.count(t.task)) continue;  // never run one task twice at once
      Running r{t.attempt, std::make_shared<std::atomic<bool>>(false)};
      r.soft_limit_ms = t.soft_limit_ms;
      r.hard_limit_ms = t.hard_limit_ms;
      running_.emplace(t.task, std::move(r));
      queue_.push_back(std::move(t));
    }
  }
  cv_.notify_all();
}

std::vector<proto::Outcome> Slots::collect() {
  std::lock_guard lock(mu_);
  wake_pending_ = false;
  return std::exchange(done_, {});
}

std::vector<proto::Claim> Slots::claims() const {
  std::lock_guard lock(mu_);
  std::vector<proto::Claim> out;
  for (const auto& [id, r] : running_)
    if (!r.dropped) out.push_back({id, r.attempt});
  return out;
}

std::vector<proto::Assignment> Slots::take_queued() {
  std::lock_guard lock(mu_);
  std::vector<proto::Assignment> out(std::make_move_iterator(queue_.begin()),
                                     std::make_move_iterator(queue_.end()));
  queue_.clear();
  for (const auto& a : out) running_.erase(a.task);
  return out;
}

void Slots::drop(const std::vector<proto::Claim>& claims) {
  std::lock_guard lock(mu_);
  for (const auto& c : claims) {
    auto it = running_.find(c.task);
    if (it == running_.end() || it->second.attempt != c.attempt) continue;
    it->second.dropped = true;
    it->second.cancelled->store(true);
  }
}

std::vector<proto::Claim> Slots::cancel_running() {
  std::lock_guard lock(mu_);
  std::vector<proto::Claim> out;
  for (auto& [id, r] : running_) {
    r.cancelled->store(true);
    if (!r.dropped) out.push_back({id, r.attempt});
    r.dropped = true;  // the caller returns these; a late outcome would contradict it
  }
  return out;
}

Slots::Clock::time_point Slots::enforce(Clock::time_point now) {
  // Nothing falls due before the earliest deadline of any started task: no lock, no scan.
  const auto due = Clock::time_point(Clock::duration(earliest_due_.load(std::memory_order_acquire)));
  if (now < due) return due;
  std::vector<proto::Outcome> abandoned;
  Clock::time_point next = Clock::time_point::max();
  {
    std::lock_guard lock(mu_);
    for (auto it = running_.begin(); it != running_.end();) {
      auto& [id, r] = *it;
      if (!r.started || r.dropped) {
        ++it;
        continue;
      }
      if (!r.soft_hit && now >= r.soft_at) {
        r.soft_hit = true;
        r.cancelled->store(true);
      }
      if (now >= r.abandon_at) {
        r.cancelled->store(true);
        abandoned_.push_back({id, r.attempt});
        abandoned.push_back({id, r.attempt, proto::OutcomeStatus::kFailed, {},
                             "TimeLimitExceeded: hard time limit of " + std::to_string(r.hard_limit_ms) +
                                 " ms exceeded; the handler did not return and its slot was replaced",
                             static_cast<uint64_t>(r.hard_limit_ms) * 1000});
        // The stuck thread no longer counts; a fresh one keeps the slot count.
        --live_;
        --busy_;
        if (live_ < target_) spawn_locked();
        it = running_.erase(it);
        continue;
      }
      if (!r.soft_hit) next = std::min(next, r.soft_at);
      next = std::min(next, r.abandon_at);
      ++it;
    }
    for (auto& o : abandoned) push_done_locked(std::move(o));
    earliest_due_.store(next.time_since_epoch().count(), std::memory_order_release);
  }
  return next;
}

void Slots::note_deadline_locked(Clock::time_point at) {
  auto current = earliest_due_.load(std::memory_order_relaxed);
  while (at.time_since_epoch().count() < current &&
         !earliest_due_.compare_exchange_weak(current, at.time_since_epoch().count(), std::memory_order_release)) {
  }
}

size_t Slots::busy() const {
  std::lock_guard lock(mu_);
  return busy_;
}

size_t Slots::queued() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

size_t Slots::pending() const {
  std::lock_guard lock(mu_);
  return running_.size();
}

void Slots::push_done_locked(proto::Outcome outcome) {
  done_.push_back(std::move(outcome));
  if (!wake_pending_) {
    wake_pending_ = true;
    wake_();
  }
}

void Slots::run_slot() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty() || live_ > target_; });
    if (stopping_) return;
    if (live_ > target_) {  // autoscale shrink: retire
      --live_;
      return;
    }
    proto::Assignment task = std::move(queue_.front());
    queue_.pop_front();
    auto& entry = running_.at(task.task);
    auto cancelled = entry.cancelled;
    const auto start = Clock::now();
    entry.started = true;
    if (task.soft_limit_ms) entry.soft_at = start + std::chrono::milliseconds(task.soft_limit_ms);
    if (task.hard_limit_ms) entry.abandon_at = start + std::chrono::milliseconds(task.hard_limit_ms) + kAbandonGrace;
    note_deadline_locked(std::min(entry.soft_at, entry.abandon_at));  // the loop looks at least every 100 ms
    ++busy_;
    lock.unlock();

    proto::Outcome outcome{task.task, task.attempt, proto::OutcomeStatus::kSucceeded, {}, {}, 0};
    auto handler = handlers_.find(task.kind);
    if (handler == handlers_.end()) {
      outcome.status = proto::OutcomeStatus::kFailed;
      outcome.error = "UnknownKind: no handler for kind '" + task.kind + "' on this worker";
    } else {
      TaskContext ctx{task.task, task.attempt, task.group, task.ref, task.queue, task.kind,
                      task.payload, cancelled.get(), task.soft_limit_ms, task.hard_limit_ms, start};
      HandlerResult r = invoke_handler(handler->second, ctx);
      outcome.status = r.status;
      outcome.result = std::move(r.result);
      outcome.error = std::move(r.error);
    }
    outcome.runtime_us = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count());

    lock.lock();
    if (auto a = std::find(abandoned_.begin(), abandoned_.end(), proto::Claim{task.task, task.attempt});
        a != abandoned_.end()) {
      abandoned_.erase(a);  // failed at the hard limit and replaced: the result is dropped
      return;
    }
    --busy_;
    auto it = running_.find(task.task);
    bool dropped = it == running_.end() || it->second.dropped;
    if (!dropped && it->second.soft_hit && outcome.status != proto::OutcomeStatus::kSucceeded &&
        outcome.error.rfind("SoftTimeLimitExceeded", 0) != 0 && outcome.error.rfind("TimeLimitExceeded", 0) != 0)
      outcome.error = "SoftTimeLimitExceeded: soft time limit of " + std::to_string(task.soft_limit_ms) +
                      " ms exceeded (" + outcome.error + ")";
    if (it != running_.end() && it->second.attempt == task.attempt) running_.erase(it);
    if (!dropped) push_done_locked(std::move(outcome));
  }
}

}  // namespace zb::worker
