// The worker: connects a DEALER to the router's backend, announces itself (name, hostname, pid,
// queues, concurrency, capacity, task kinds), and runs the tasks it is sent on `concurrency`
// execution slots (threads).
//
// Contracts:
// - Paranoid Pirate: a heartbeat every heartbeat_ms both ways; after `liveness` silent
//   intervals the router is presumed gone: the worker closes its socket, waits (1 s doubling to
//   32 s, with jitter), reconnects and sends Ready again, re-claiming the tasks it still runs.
// - Results are kept until the router acknowledges them (ResultsAck); results finished while
//   disconnected are delivered after the reconnect. A task is never run twice by one worker.
// - Handlers run on slot threads; a handler must be thread-safe. A handler that throws fails
//   its task with the exception's message; the worker keeps running.
// - stop(): warm shutdown (takes no new tasks, finishes running ones, returns unstarted ones to
//   the router, then run() returns); a second stop() is cold (returns running tasks unfinished
//   and exits at once; the router requeues them).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <zmq.hpp>

#include "common/id.h"
#include "common/protocol.h"
#include "common/status.h"

namespace zb {

// What a handler sees of its task. Views are valid for the duration of the call.
struct TaskContext {
  Id task;
  uint32_t attempt = 0;
  Id group;
  std::string_view ref;
  std::string_view queue;
  std::string_view kind;
  std::string_view payload;  // JSON text
  // Set when the task is revoked with terminate, on cold shutdown, or at its soft time limit.
  const std::atomic<bool>* cancelled = nullptr;
  bool is_cancelled() const { return cancelled && cancelled->load(std::memory_order_relaxed); }
};

struct HandlerResult {
  proto::OutcomeStatus status = proto::OutcomeStatus::kSucceeded;
  std::string result;  // JSON text
  std::string error;

  static HandlerResult ok(std::string json) { return {proto::OutcomeStatus::kSucceeded, std::move(json), {}}; }
  static HandlerResult fail(std::string message) { return {proto::OutcomeStatus::kFailed, {}, std::move(message)}; }
  static HandlerResult retry(std::string message) { return {proto::OutcomeStatus::kRetry, {}, std::move(message)}; }
};

using Handler = std::function<HandlerResult(const TaskContext&)>;

struct WorkerOptions {
  std::string router = "tcp://127.0.0.1:5556";
  std::vector<std::string> queues;   // empty → every default queue (common/task.h)
  uint32_t concurrency = 0;          // 0 → number of CPUs
  uint32_t prefetch_multiplier = 4;  // capacity = concurrency × prefetch_multiplier
  std::string name;                  // empty → "zbatch@<hostname>"
  uint32_t heartbeat_ms = 1000;
  uint32_t liveness = 3;
  uint32_t reconnect_initial_ms = 1000;
  uint32_t reconnect_max_ms = 32000;
};

class Worker {
 public:
  // Validates options (precise messages, e.g. "--prefetch-multiplier must be >= 1, got 0") and
  // registers the built-in kinds: noop, echo, sleep ({"seconds":S}), fail ({"error":"..."}).
  static Result<std::unique_ptr<Worker>> create(WorkerOptions options,
                                                zmq::context_t* context = nullptr);
  ~Worker();

  // Adds or replaces the handler of a task kind. Call before run().
  void register_handler(std::string kind, Handler handler);

  // Connects and serves until stop(). Returns the error that ended it, if any.
  Status run();
  // Thread-safe and async-signal-safe. First call warm, second cold.
  void stop();

 private:
  struct Impl;
  explicit Worker(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace zb
