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
//
// Live output: a handler's writes are kept here, consecutive texts of one task and type joined,
// at most kMaxPendingOutput bytes in all; past that a write is dropped and its chunk number
// still counts, so a reader sees the gap. collect_output() hands them to the loop.
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
  // Cancels every task, then joins the threads. A handler that ignores its cancel flag for
  // kStopGrace is left behind (its thread is detached and keeps what it uses alive; its late
  // result goes nowhere), so a stop is never held hostage by one task.
  ~Slots();

  static constexpr auto kStopGrace = std::chrono::milliseconds(2000);

  // Queues assignments; those already queued or running (same task) are ignored.
  void add(std::vector<proto::Assignment> tasks);
  // Finished outcomes since the last call, and (into `started`) the tasks that began to run
  // on a slot since. Also joins threads that have exited (retired by a shrink, or abandoned
  // past a hard limit and returned since).
  std::vector<proto::Outcome> collect(std::vector<proto::Claim>* started = nullptr);
  // Live output written by running handlers since the last call, in order (docs/STREAMING.md).
  std::vector<proto::OutputChunk> collect_output();
  // Claims of the tasks running on a slot now (not those waiting for one).
  std::vector<proto::Claim> started_claims() const;
  // Claims of every task queued, running, or finished and not yet collected (re-claimed after a
  // reconnect).
  std::vector<proto::Claim> claims() const;
  // Removes the queued, not-started tasks and returns them.
  std::vector<proto::Assignment> take_queued();
  // The same for these claims only (a Recall): those started, or not here, stay as they are.
  std::vector<proto::Assignment> take_queued(const std::vector<proto::Claim>& claims);
  // Cancels these tasks (rejected by the router): their outcomes are dropped.
  void drop(const std::vector<proto::Claim>& claims);
  // Sets every running task's cancel flag; returns their claims. Their outcomes are dropped.
  std::vector<proto::Claim> cancel_running();
  // Applies time limits; returns the earliest time a limit falls due (Clock::time_point::max()
  // when none).
  Clock::time_point enforce(Clock::time_point now);
  // While held, no queued task starts (running ones go on): the loop holds the slots while the
  // router may have given their tasks to another worker (silent past a heartbeat and a half,
  // or reconnecting until its Welcome says which claims are still ours).
  void hold(bool on);
  // Autoscale: the number of slot threads wanted.
  void set_target(uint32_t threads);
  uint32_t target() const;
  size_t busy() const;
  size_t queued() const;   // assigned, waiting for a free slot
  size_t pending() const;  // queued + running
  size_t threads() const;  // slot threads alive, abandoned ones included

 private:
  struct Shared;  // what slot threads touch: owned jointly by this object and every thread
  std::shared_ptr<Shared> s_;
};

}  // namespace zb::worker
