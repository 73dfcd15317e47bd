// Execution slots: `concurrency` threads that take assignments from a shared queue, run the
// handler of their kind, and hand outcomes back to the connection loop (internal to worker/).
//
// The loop thread owns the ZeroMQ sockets; slot threads touch only this object. When outcomes
// become available the slots wake the loop through `wake` (called at most once until the loop
// collects them), so a burst of tiny tasks costs one wake-up, not one per task.
#pragma once

#include <atomic>
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
  size_t busy() const;
  size_t pending() const;  // queued + running

 private:
  struct Running {
    uint32_t attempt;
    std::shared_ptr<std::atomic<bool>> cancelled;
    bool dropped = false;
  };
  void run_slot();

  const Handlers& handlers_;
  std::function<void()> wake_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<proto::Assignment> queue_;
  std::unordered_map<Id, Running, IdHash> running_;  // started or queued, by task
  std::vector<proto::Outcome> done_;
  size_t busy_ = 0;
  bool stopping_ = false;
  bool wake_pending_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace zb::worker
