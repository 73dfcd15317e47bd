// The client library: submit tasks and groups, read their status, wait for them, and call the
// router's control operations. The `zbatch` command line is built on it.
//
// A Client owns one DEALER socket to the router's frontend and is not thread-safe: use one per
// thread. Every call is bounded by options.timeout; errors the router reports keep its code
// and message.
//
// Honest outcomes. Every submission ends in exactly one of:
// - acknowledged: the receipt; the tasks are durable and will run;
// - refused: an error (Code::kUnavailable when the router could not be reached: nothing was
//   sent, because the socket never queues towards an absent router); the tasks never run;
// - Code::kOutcomeUnknown: it was sent and no answer came before its deadline. It may have
//   been accepted just before; the router refuses it if it arrives later. Repeating it with
//   the same idempotency key (named in the message and in every receipt; one is made up when
//   the caller gives none) is safe: it answers the first acknowledgement, or is accepted now.
// Operations that change state (purge, revoke, retry, worker commands) follow the same rule;
// reads that time out are kUnavailable.
//
// Eager mode (the seed's CELERY_ALWAYS_EAGER) is an in-process router and worker:
// eager/eager.h. This library never runs tasks itself.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "common/curve.h"
#include "common/id.h"
#include "common/protocol.h"
#include "common/status.h"

namespace zb {

struct ClientOptions {
  std::string router = "tcp://127.0.0.1:5555";
  std::chrono::milliseconds timeout{10000};
  // Celery's always-eager behaviour, for the clients of an in-process cluster (eager/eager.h
  // sets it): a submission returns once its tasks have run — ended, or waiting for their ETA
  // or a retry's backoff — instead of as soon as they are durable.
  bool eager = false;
  // CURVE towards the router (common/curve.h); required for a router off loopback unless
  // insecure_plaintext.
  curve::ClientKeys curve;
  bool insecure_plaintext = false;
};

struct GroupOptions {
  Id group;                // nil → derived from the idempotency key (made up when none is given)
  uint32_t parallel = 0;   // group concurrency cap; 0 = none
  size_t chunk_tasks = 1000;  // tasks per Submit message
  size_t window = 8;          // Submit messages in flight at once
  // A repeat with the same key (and the same tasks and options) answers the chunks the router
  // has with their first ids and sends the missing ones, so a repeat after an interrupted
  // submission completes the group with each task once. With a nil group the group id is
  // derived from the key.
  std::string idempotency_key;
  // A chord (docs/WORKFLOWS.md): tasks made with the group, outside it, each waiting for the
  // whole group (their `when` says on which outcome they run). A group with callbacks, or
  // whose tasks depend on each other by position (TaskSpec::after_index), is sent in one
  // message, whatever chunk_tasks says.
  std::vector<proto::TaskSpec> callbacks;
  // The group's budget (docs/kinds/agent.md): once its tasks have spent this many model
  // tokens, or this much run time, no more of them starts. 0 = none.
  uint64_t budget_tokens = 0;
  uint64_t budget_run_ms = 0;
};

// The Submit messages of one group, as submit_group sends them (corr and deadline left 0):
// chunk i of n carries its index, n, the group's size and the fingerprint of the whole group
// (its id, parallel, chunking and every task), under idempotency key K for chunk 0 and "K#i"
// for the others, with a fingerprint of its own covering the group's. The router seals the
// group once all n are present, in any order; a chunk repeated under its key is answered with
// its first ids, and any difference in content is a conflict. Built one chunk at a time, so
// a large group is never copied whole.
class GroupChunks {
 public:
  // An empty `idempotency_key` in options is replaced by a random one.
  GroupChunks(std::span<const proto::TaskSpec> tasks, const GroupOptions& options);

  const Id& group() const { return group_; }
  const std::string& idempotency_key() const { return key_; }
  size_t count() const { return content_.size(); }
  size_t first_task(size_t chunk) const { return std::min(tasks_.size(), chunk * chunk_tasks_); }  // offset
  size_t tasks_in(size_t chunk) const { return std::min(tasks_.size(), first_task(chunk) + chunk_tasks_) - first_task(chunk); }
  proto::Submit chunk(size_t index) const;

 private:
  std::span<const proto::TaskSpec> tasks_;
  Id group_;
  std::string key_;
  uint32_t parallel_ = 0;
  size_t chunk_tasks_ = 1;
  std::vector<proto::TaskSpec> callbacks_;
  uint64_t budget_tokens_ = 0, budget_run_ms_ = 0;
  std::vector<Id> content_;  // per chunk: the fingerprint of its tasks
  Id fingerprint_;           // of the whole group
};

struct GroupReceipt {
  Id group;
  std::vector<Id> tasks;  // in submission order
  bool duplicate = false;  // every chunk was answered from the idempotency key
  std::string idempotency_key;  // the caller's, or the one made up for this submission
  // The router's event log holds the group's events up to here (the highest of its chunks'
  // acknowledgements): a follower of the log that has applied this sequence number shows
  // every task of the group and the group itself (read your writes).
  uint64_t seq = 0;
  std::vector<Id> callbacks;  // GroupOptions::callbacks, in order
};

struct SubmitReceipt {
  Id task;
  bool duplicate = false;
  std::string idempotency_key;
  uint64_t seq = 0;  // as GroupReceipt::seq, for the task's events
  // The task's unique key was held (TaskSpec::on_duplicate = existing): `task` is the holder,
  // and no task was made.
  bool existing = false;
};

class Client {
 public:
  // Connects (lazily, as ZeroMQ does); fails only on a malformed endpoint.
  static Result<std::unique_ptr<Client>> connect(ClientOptions options,
                                                 zmq::context_t* context = nullptr);
  ~Client();

  Result<Id> submit(const proto::TaskSpec& task);
  Result<SubmitReceipt> submit(const proto::TaskSpec& task, const std::string& idempotency_key);
  // Pipelined: chunk_tasks per message (GroupChunks), `window` messages outstanding. The
  // router seals the group once every chunk is present, so it reads ready only after every
  // task was accepted. After kOutcomeUnknown (or a refusal part-way), repeating the call with
  // the receipt's key and the same tasks completes exactly the missing chunks.
  Result<GroupReceipt> submit_group(std::span<const proto::TaskSpec> tasks,
                                    const GroupOptions& options = {});
  Result<proto::TaskRecord> status(const Id& task);
  Result<proto::GroupRecord> group(const Id& group);
  // Returns when every task is terminal, or at `timeout` with the states they have then.
  Result<std::vector<proto::TaskRecord>> wait(std::span<const Id> tasks,
                                              std::chrono::milliseconds timeout);
  // Control operations (router/router.h says what each does). Arguments are checked before
  // anything is sent (proto::check_control); reads (ping, inspect.*) that time out are
  // kUnavailable, changes kOutcomeUnknown.
  Result<proto::PingReply> ping();
  Result<proto::InspectActiveReply> inspect_active();
  Result<proto::TaskListReply> inspect_reserved();
  Result<proto::TaskListReply> inspect_scheduled();
  Result<proto::InspectStatsReply> inspect_stats();
  Result<proto::InspectRegisteredReply> inspect_registered();
  Result<proto::InspectQueuesReply> inspect_queues();
  Result<proto::InspectFailedReply> inspect_failed(const proto::InspectFailedArgs& args = {});
  Result<proto::PurgeReply> purge(std::optional<std::string> queue = std::nullopt);  // none: every queue
  Result<proto::RevokeReply> revoke(const Id& task, bool terminate = false);
  // Every task of the group that has not ended (running ones too with terminate).
  Result<proto::RevokeGroupReply> revoke_group(const Id& group, bool terminate = false);
  Result<proto::RetryReply> retry(const Id& task);
  Result<proto::RetryFailedReply> retry_failed(const proto::RetryFailedArgs& args = {});
  Result<proto::WorkerCommandReply> worker_shutdown(const std::string& worker);
  Result<proto::WorkerCommandReply> worker_pool(const std::string& worker, int32_t delta);
  // Any of them by its name: `args` must be what proto::default_control_args(op) holds.
  Result<proto::ControlResult> control(proto::ControlOp op, proto::ControlArgs args);
  // The event log after `after_seq` (the store's replay), and confirmation of applied events.
  Result<proto::EventPage> replay(uint64_t after_seq, uint32_t max_events);
  Status confirm(uint64_t seq);

  bool eager() const;

 private:
  struct Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace zb
