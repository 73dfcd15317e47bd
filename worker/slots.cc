#include "worker/slots.h"

#include <chrono>
#include <exception>

namespace zb::worker {

Slots::Slots(uint32_t concurrency, const Handlers& handlers, std::function<void()> wake)
    : handlers_(handlers), wake_(std::move(wake)) {
  threads_.reserve(concurrency);
  for (uint32_t i = 0; i < concurrency; ++i) threads_.emplace_back([this] { run_slot(); });
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

void Slots::add(std::vector<proto::Assignment> tasks) {
  {
    std::lock_guard lock(mu_);
    for (auto& t : tasks) {
      if (running_.count(t.task)) continue;  // never run one task twice at once
      running_.emplace(t.task, Running{t.attempt, std::make_shared<std::atomic<bool>>(false)});
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

size_t Slots::busy() const {
  std::lock_guard lock(mu_);
  return busy_;
}

size_t Slots::pending() const {
  std::lock_guard lock(mu_);
  return running_.size();
}

void Slots::run_slot() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    proto::Assignment task = std::move(queue_.front());
    queue_.pop_front();
    auto cancelled = running_.at(task.task).cancelled;
    ++busy_;
    lock.unlock();

    proto::Outcome outcome{task.task, task.attempt, proto::OutcomeStatus::kSucceeded, {}, {}, 0};
    const auto start = std::chrono::steady_clock::now();
    auto handler = handlers_.find(task.kind);
    if (handler == handlers_.end()) {
      outcome.status = proto::OutcomeStatus::kFailed;
      outcome.error = "no handler for kind '" + task.kind + "' on this worker";
    } else {
      TaskContext ctx{task.task, task.attempt, task.group, task.ref, task.queue, task.kind,
                      task.payload, cancelled.get()};
      try {
        HandlerResult r = handler->second(ctx);
        outcome.status = r.status;
        outcome.result = std::move(r.result);
        outcome.error = std::move(r.error);
      } catch (const std::exception& e) {
        outcome.status = proto::OutcomeStatus::kFailed;
        outcome.error = std::string("handler threw: ") + e.what();
      } catch (...) {
        outcome.status = proto::OutcomeStatus::kFailed;
        outcome.error = "handler threw a non-standard exception";
      }
    }
    if (outcome.status == proto::OutcomeStatus::kSucceeded && outcome.result.empty())
      outcome.result = "null";
    outcome.runtime_us = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                                   std::chrono::steady_clock::now() - start).count());

    lock.lock();
    --busy_;
    auto it = running_.find(task.task);
    const bool dropped = it != running_.end() && it->second.dropped;
    if (it != running_.end() && it->second.attempt == task.attempt) running_.erase(it);
    if (!dropped) done_.push_back(std::move(outcome));
    if (!dropped && !wake_pending_) {
      wake_pending_ = true;
      wake_();
    }
  }
}

}  // namespace zb::worker
