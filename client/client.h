// The client library: submit tasks and groups, read their status, wait for them, and call the
// router's control operations. The `zbatch` command line is built on it.
//
// A Client owns one DEALER socket to the router's frontend and is not thread-safe: use one per
// thread. Every call is bounded by options.timeout; a router that does not answer is
// Code::kUnavailable, never a hang. Errors the router reports keep its code and message.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "common/id.h"
#include "common/protocol.h"
#include "common/status.h"

namespace zb {

struct ClientOptions {
  std::string router = "tcp://127.0.0.1:5555";
  std::chrono::milliseconds timeout{10000};
};

struct GroupOptions {
  Id group;                // nil → a new random id
  uint32_t parallel = 0;   // group concurrency cap; 0 = none
  size_t chunk_tasks = 1000;  // tasks per Submit message
  size_t window = 8;          // Submit messages in flight at once
};

struct GroupReceipt {
  Id group;
  std::vector<Id> tasks;  // in submission order
};

class Client {
 public:
  // Connects (lazily, as ZeroMQ does); fails only on a malformed endpoint.
  static Result<std::unique_ptr<Client>> connect(ClientOptions options,
                                                 zmq::context_t* context = nullptr);
  ~Client();

  Result<Id> submit(const proto::TaskSpec& task);
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

 private:
  struct Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace zb
