// Execution slots: threads that take assignments from a shared queue, run the handler of their
// kind, and hand outcomes back to the connection loop (internal to worker/).
//
// The loop thread owns the ZeroMQ sockets; slot threads touch only this object. When outcomes
// become available the slots wake the loop through `wake` (called at most once until the loop
// collects them), so a burst of tiny tasks costs one wake-up, not one per task.
//
// Time limits: enforce() (called by the loop) sets a task's cancel flag at its soft limit and,
// at the hard limit + 1 s, abandons an in-process handler that is still running: its task
// fails with "TimeLimitExceeded", its late result is dropped, and a new thread takes the slot.
// The number of threads follows set_target() (autoscale): surplus threads exit when idle.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "worker/worker.h"

namespace zb::worker {

class Slots {
 public:
  using Handlers = std::unordered_map<std::string, Handler>;
  using Clock = std::chrono::steady_clock;
  Slots(uint32_t concurrency, const Handlers& handlers, std::function<void()> wake);
  ~Slots();  // cancels, then joins the threads

  // Queues assignments; those already queued or running (same task) are ignored.
  void add(std::vector<proto::Assignment> tasks);
  // Finished outcomes since the last call.
  std::vector<proto::Outcome> collect();
  // Claims of every task queued or running (re-claimed after a reconnect).
  std::vector<proto::Claim> claims() const;
  // Removes the queued, not-started tasks and returns them.
  std::vector<proto::Assignment> take_queued();
  // Cancels these tasks (rejected by the router): their outcomes are dropped.
  void drop(const std::vector<proto::Claim>& claims);
  // Sets every running task's cancel flag; returns their claims.
  std::vector<proto::Claim> cancel_running();
  // Applies time limits; returns the earliest time a limit falls due (Clock::time_point::max()
  // when none).
  Clock::time_point enforce(Clock::time_point now);
  // Autoscale: the number of slot threads wanted.
  void set_target(uint32_t threads);
  uint32_t target() const;
  size_t busy() const;
  size_t queued() const;   // assigned, waiting for a free slot
  size_t pending() const;  // queued + running

 private:
  struct Running {
    uint32_t attempt;
    std::shared_ptr<std::atomic<bool>> cancelled;
    bool dropped = false;
    bool started = false;
    bool soft_hit = false;
    Clock::time_point soft_at = Clock::time_point::max();
    Clock::time_point abandon_at = Clock::time_point::max();
    uint32_t soft_limit_ms = 0, hard_limit_ms = 0;
  };
  void run_slot();
  void spawn_locked();
  void push_done_locked(proto::Outcome outcome);
  void note_deadline_locked(Clock::time_point at);

  const Handlers& handlers_;
  std::function<void()> wake_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<proto::Assignment> queue_;
  std::unordered_map<Id, Running, IdHash> running_;  // started or queued, by task
  std::vector<proto::Outcome> done_;
  std::vector<proto::Claim> abandoned_;  // stuck past the hard limit, already failed
  // The earliest soft or abandon time of any started task (steady clock ticks): enforce()
  // does nothing before it.
  std::atomic<Clock::rep> earliest_due_{Clock::time_point::max().time_since_epoch().count()};
  size_t busy_ = 0;
  uint32_t live_ = 0;    // threads serving (not retiring, not abandoned)
  uint32_t target_ = 0;
  bool stopping_ = false;
  bool wake_pending_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace zb::worker
