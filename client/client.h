// The client library: submit tasks and groups, read their status, wait for them, and call the
// router's control operations. The `zbatch` command line is built on it.
//
// Eager mode (the seed's CELERY_ALWAYS_EAGER): with ZBATCH_ALWAYS_EAGER=1 in the environment
// (or options.eager), nothing is sent anywhere: submit runs the task inline through the
// worker's built-in handlers and those added with register_handler, retrying a "retry" outcome
// up to max_retries times without delay; status, group and wait answer from memory. For users'
// unit tests.
//
// A Client owns one DEALER socket to the router's frontend and is not thread-safe: use one per
// thread. Every call is bounded by options.timeout; a router that does not answer is
// Code::kUnavailable, never a hang. Errors the router reports keep its code and message.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "common/id.h"
#include "common/protocol.h"
#include "common/status.h"
#include "worker/worker.h"

namespace zb {

struct ClientOptions {
  std::string router = "tcp://127.0.0.1:5555";
  std::chrono::milliseconds timeout{10000};
  // Run tasks inline; nullopt = as ZBATCH_ALWAYS_EAGER says (1/true/yes).
  std::optional<bool> eager;
};

struct GroupOptions {
  Id group;                // nil → a new random id
  uint32_t parallel = 0;   // group concurrency cap; 0 = none
  size_t chunk_tasks = 1000;  // tasks per Submit message
  size_t window = 8;          // Submit messages in flight at once
  // A repeat with the same key answers the first submission's ids and runs nothing again.
  // With a nil group the group id is derived from the key, so a repeat after a partial
  // failure completes the same group.
  std::string idempotency_key;
};

struct GroupReceipt {
  Id group;
  std::vector<Id> tasks;  // in submission order
  bool duplicate = false;  // every chunk was answered from the idempotency key
};

struct SubmitReceipt {
  Id task;
  bool duplicate = false;
};

class Client {
 public:
  // Connects (lazily, as ZeroMQ does); fails only on a malformed endpoint.
  static Result<std::unique_ptr<Client>> connect(ClientOptions options,
                                                 zmq::context_t* context = nullptr);
  ~Client();

  Result<Id> submit(const proto::TaskSpec& task);
  Result<SubmitReceipt> submit(const proto::TaskSpec& task, const std::string& idempotency_key);
  // Pipelined: chunk_tasks per message, `window` messages outstanding. The group is sealed by
  // the last chunk, so it reads ready only after every task was accepted.
  Result<GroupReceipt> submit_group(std::span<const proto::TaskSpec> tasks,
                                    const GroupOptions& options = {});
  Result<proto::TaskRecord> status(const Id& task);
  Result<proto::GroupRecord> group(const Id& group);
  // Returns when every task is terminal, or at `timeout` with the states they have then.
  Result<std::vector<proto::TaskRecord>> wait(std::span<const Id> tasks,
                                              std::chrono::milliseconds timeout);
  // A control operation (router/router.h lists them); returns the reply's JSON text.
  Result<std::string> control(const std::string& op, const std::string& args_json = "{}");
  // The event log after `after_seq` (the store's replay), and confirmation of applied events.
  Result<proto::EventPage> replay(uint64_t after_seq, uint32_t max_events);
  Status confirm(uint64_t seq);

  bool eager() const;
  // Eager mode: adds or replaces the handler of a kind (the built-ins are there already).
  void register_handler(std::string kind, Handler handler);

 private:
  struct Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace zb
