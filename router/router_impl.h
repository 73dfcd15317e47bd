// The router's state and the functions that change it (internal to router/).
//
// Split by concept: router.cc wires sockets, timers and the turn's transaction (no policy);
// intake.cc applies client messages (submit, status, wait, replay); dispatch.cc owns workers,
// leases, results and dispatch by credit; control.cc answers ping/inspect/purge.
#pragma once

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <queue>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <zmq.hpp>

#include "common/protocol.h"
#include "common/wire.h"
#include "router/ledger.h"
#include "router/ready_queue.h"
#include "router/router.h"
#include "router/zap.h"

namespace zb {

namespace router {

struct WorkerSession {
  std::string routing_id;
  Id session;
  std::string name;
  std::string hostname;
  uint32_t pid = 0;
  std::vector<size_t> queues;  // indices into Impl::queues, served in priority order
  std::vector<std::string> kinds;
  std::vector<std::string> test_profiles;  // as announced in READY, listed by inspect.registered
  std::vector<std::string> mcp_servers;
  uint32_t concurrency = 0;
  uint32_t capacity = 0;
  std::unordered_set<Id, IdHash> leased;
  uint64_t expiry_ms = 0;       // steady clock
  uint64_t last_seen_unix_ms = 0;
  uint64_t online_unix_ms = 0;
  uint64_t processed = 0;
  uint64_t failed = 0;
  uint32_t busy = 0;
  bool draining = false;  // sent Bye: no more tasks
  std::vector<proto::Assignment> outgoing;  // this turn's Tasks message
  std::vector<proto::Claim> acks;           // this turn's ResultsAck message
};

// A task in flight. `routing_id` empty = orphan: leased before a router restart, waiting for
// its worker to re-claim it until `grace_deadline_ms`.
struct LeaseState {
  std::string routing_id;
  uint32_t attempt = 0;
  Id group;
  size_t queue = 0;
  uint64_t key = 0;  // order key, to requeue at the original position
  uint64_t grace_deadline_ms = 0;
  // The worker said it runs on a slot (Started); until then the task is reserved: in the
  // worker's prefetch buffer.
  uint64_t started_unix_ms = 0;
  // The worker session (process) that holds it: only that session's results, start notices
  // and re-claims count for it, whatever routing id it reconnects with.
  Id session;
};

// Who ran a task whose lease was requeued (its worker was lost): that session's late result,
// or its re-claim in READY, still counts while the task waits in its queue.
struct PreviousHolder {
  Id session;
  uint32_t attempt = 0;
};

// A group with unfinished tasks. Its record is written back once per turn when dirty.
struct GroupState {
  proto::GroupRecord record;
  uint32_t admitted = 0;  // tasks in a ready queue or leased (bounded by record.parallel)
  std::map<uint64_t, std::pair<size_t, Id>> held;  // key → (queue, task): waiting for room
  bool dirty = false;
};

struct ScheduledTask {
  uint64_t eta_ms;
  uint64_t key;
  size_t queue;
  Id task;
  Id group;
  bool operator>(const ScheduledTask& o) const { return eta_ms > o.eta_ms; }
};

struct Waiter {
  std::string routing_id;
  uint64_t corr = 0;
  std::vector<Id> tasks;
  size_t pending = 0;
  uint64_t deadline_ms = 0;  // steady clock
};

// An event about a task, carrying the task's identity (id, group, queue, kind, caller's id,
// attempt, worker); callers add what is particular to the change.
inline proto::Event task_event(const proto::TaskRecord& rec, proto::EventType type, TaskState state) {
  proto::Event ev;
  ev.type = type;
  ev.state = state;
  ev.task = rec.id;
  ev.group = rec.group;
  ev.queue = rec.queue;
  ev.kind = rec.kind;
  ev.ref = rec.ref;
  ev.attempt = rec.attempt;
  ev.priority = rec.priority;
  ev.worker = rec.worker;
  return ev;
}

// A token bucket per rate-limited queue: `rate` tasks/s, at most `burst` saved up.
struct RateBucket {
  double rate = 0;  // 0 = unlimited
  double burst = 1;
  double tokens = 0;
  uint64_t refilled_ms = 0;  // steady clock
  void refill(uint64_t now) {
    if (rate <= 0) return;
    tokens = std::min(burst, tokens + (now - refilled_ms) * rate / 1000.0);
    refilled_ms = now;
  }
  bool open() const { return rate <= 0 || tokens >= 1.0; }
  uint64_t ms_until_open(uint64_t now) const {
    if (rate <= 0) return 0;
    const double have = tokens + (now - refilled_ms) * rate / 1000.0;
    return have >= 1.0 ? 0 : static_cast<uint64_t>((1.0 - have) * 1000.0 / rate) + 1;
  }
};

// The retry delay before retry number `retries` + 1 (see QueueConfig).
uint64_t retry_delay_ms(const QueueConfig& queue, uint32_t retries, uint64_t random);
// The class of an error text: the identifier before the first ':' ("TimeoutError: x" →
// "TimeoutError"); empty when the text does not start with one.
std::string_view error_class(std::string_view error);
// True when a failure with this error is retried by the queue's retry_on list.
bool retry_matches(const QueueConfig& queue, std::string_view error);

struct Outgoing {
  bool backend;
  std::string routing_id;
  proto::Message message;
};

// The room the data folder has (storage.cc). Submissions are refused (storage_full) while
// the map cannot grow, while the filesystem has less than the reserve free, and for a while
// after a commit failed.
struct Storage {
  uint64_t reserve_bytes = 0;  // RouterOptions::min_free_bytes
  uint64_t free_bytes = 0;     // free to unprivileged writers (statvfs f_bavail), last check
  uint64_t next_check_ms = 0;  // steady clock
  bool map_full = false;
  bool disk_low = false;
  // A commit failed: refused until free space grew by max(reserve, 1 MiB) from
  // `failed_free_bytes` or `hold_until_ms` passed (then a probe; the hold doubles per failure).
  bool write_failed = false;
  uint64_t failed_free_bytes = 0;
  uint64_t hold_until_ms = 0;
  uint32_t consecutive_failures = 0;
  uint64_t failed_commits = 0;  // turns rolled back, for inspect.stats
  std::string failure;          // the error of the last failed commit
  // After a rollback the backend is not read until then: workers re-register after the pause
  // instead of meeting the same full disk at once.
  uint64_t backend_resume_ms = 0;
  std::string refusal;  // why submissions are refused now (empty: accepted)
};

}  // namespace router

struct Router::Impl {
  RouterOptions options;
  wire::ContextRef context;
  std::unique_ptr<router::ZapHandler> zap;  // CURVE on: who may connect (closed before the context)
  std::optional<zmq::socket_t> frontend, backend, events;
  int lock_fd = -1;
  std::optional<router::Ledger> ledger;
  std::atomic<bool> stopping{false};
  uint64_t started_steady_ms = 0;

  // Queues by index (the order of options.queues); names resolve through queue_index.
  std::vector<router::ReadyQueue> ready;
  std::unordered_map<std::string, size_t> queue_index;
  std::vector<uint64_t> queue_running;  // leased tasks per queue
  std::vector<router::RateBucket> rates;  // per queue
  std::vector<size_t> open_queues;        // scratch: a worker's queues with rate tokens
  uint64_t random_state = 0;              // retry jitter (splitmix64)

  std::unordered_map<Id, router::LeaseState, IdHash> leases;
  std::unordered_map<Id, router::PreviousHolder, IdHash> requeued_from;
  std::unordered_map<Id, router::GroupState, IdHash> groups;
  std::priority_queue<router::ScheduledTask, std::vector<router::ScheduledTask>,
                      std::greater<router::ScheduledTask>> scheduled;
  std::unordered_map<std::string, router::WorkerSession> workers;  // by routing id
  std::vector<std::string> worker_order;  // dispatch rotation
  size_t rotation = 0;

  std::unordered_map<uint64_t, router::Waiter> waiters;
  std::unordered_multimap<Id, uint64_t, IdHash> waiters_by_task;
  uint64_t next_waiter = 1;

  // The turn.
  bool dirty = false;               // the write transaction has changes to commit
  bool storage_full = false;        // refuse Submits (storage.refusal says why)
  router::Storage storage;
  // What a rolled-back turn must undo beyond LMDB: counters, and waiters it answered.
  struct TurnStart {
    uint64_t submitted = 0, succeeded = 0, failed = 0;
  } turn_start;
  std::vector<router::Waiter> answered_waiters;
  std::vector<router::Outgoing> outbox;
  std::vector<proto::Event> turn_events;
  std::vector<Id> dirty_groups;
  std::vector<std::string> unreachable;  // workers a send failed to reach
  uint64_t last_publish_ms = 0;
  uint64_t next_heartbeat_ms = 0;
  uint64_t next_housekeeping_ms = 0;
  uint64_t orphan_deadline_ms = 0;  // earliest grace deadline of an orphan lease

  // Counters for inspect.stats.
  uint64_t submitted_total = 0, succeeded_total = 0, failed_total = 0, bad_frames = 0;
  uint64_t late_requests = 0;  // submissions and control operations refused past their deadline
  // Messages refused for who sent them (all logged): a role that may not do this; a worker's
  // result, start notice or claim for a lease it does not hold; a count out of bounds.
  struct Refused {
    uint64_t forbidden = 0, foreign_results = 0, foreign_claims = 0, foreign_started = 0, bad_counts = 0;
  } refused;
  // Logs a refusal, at most a few lines a second whatever a peer sends.
  void log_refusal(const std::string& what);
  uint64_t refusal_log_window_ms = 0;
  int refusals_logged = 0;

  // router.cc
  Status open();
  Status recover();
  lmdb::EnvOptions env_options;
  Status run_loop();
  Status turn(bool frontend_ready, bool backend_ready);
  void flush();
  uint64_t poll_timeout_ms(uint64_t now) const;

  // intake.cc
  void on_frontend(const std::string& rid, Result<proto::Message> message, std::optional<curve::Role> role);
  void on_submit(const std::string& rid, proto::Submit& submit);
  void on_get_task(const std::string& rid, const proto::GetTask& get);
  void on_get_group(const std::string& rid, const proto::GetGroup& get);
  void on_wait(const std::string& rid, const proto::WaitTasks& wait);
  void on_replay(const std::string& rid, const proto::Replay& replay);
  void reply_error(const std::string& rid, uint64_t corr, const Status& status);
  Result<std::optional<proto::TaskRecord>> current_task(const Id& id);
  void task_finished(const Id& task);  // wakes waiters
  void expire_waiters(uint64_t now);
  void release_scheduled(uint64_t now_unix);

  // dispatch.cc
  void on_backend(const std::string& rid, Result<proto::Message> message, std::optional<curve::Role> role);
  void on_ready(const std::string& rid, const proto::Ready& hello);
  void on_results(router::WorkerSession& worker, const proto::Results& results);
  void on_started(router::WorkerSession& worker, const proto::Started& started);
  void apply_outcome(router::WorkerSession* worker, const proto::Outcome& outcome);
  void worker_lost(const std::string& rid, std::string_view reason);
  void requeue_lease(const Id& task, const router::LeaseState& lease, std::string_view why);
  // Ends a task that is not running any more as succeeded or failed: record, event, counters,
  // group, dead letter, expiry, waiters. `admitted`: it held a place in its group's allowance.
  void finish_task(proto::TaskRecord& rec, bool ok, std::string result, std::string error,
                   router::WorkerSession* worker, uint64_t runtime_us, bool admitted);
  // Puts a task that failed an attempt into its retry backoff (or straight back in its queue).
  void schedule_retry(proto::TaskRecord& rec, size_t queue, std::string error, bool admitted);
  uint64_t next_random();
  void requeue_orphans(uint64_t now);
  void expire_workers(uint64_t now);
  void dispatch();
  bool dispatch_one(router::WorkerSession& worker);
  void enqueue(size_t queue, uint64_t key, const Id& task, const Id& group);
  void admit_held(router::GroupState& group);
  router::GroupState* load_group(const Id& id);
  void mark_group(router::GroupState& group);
  void write_groups();

  // control.cc
  void on_control(const std::string& rid, const proto::Control& control);
  Result<std::string> control_json(const std::string& op, const std::string& args);
  Result<std::string> revoke(const Id& task, bool terminate);
  Result<std::string> retry(const Id& task);
  Result<std::string> inspect_failed(const std::string& queue, size_t limit, const Id& after);
  Result<std::string> retry_failed(const std::string& queue, size_t limit);
  // Deletes finished tasks, groups and idempotency keys older than the result TTL.
  void expire_results(uint64_t now_unix);
  // Ends a task that is not running any more as revoked; `admitted` says it held a place in
  // its group's `parallel` allowance (it was in a ready queue or leased).
  Status finish_revoked(proto::TaskRecord& rec, bool admitted, const std::string& reason);
  std::unordered_set<Id, IdHash> revoked_scheduled;  // revoked while in the ETA heap

  // storage.cc
  // Measures the folder's free space (at most every 100 ms) and the map; sets storage_full.
  void check_storage(uint64_t now);
  // A turn whose transaction failed: rolled back, the in-memory state rebuilt from what is on
  // disk (as at a start), workers asked to register again, requests of the turn answered with
  // storage_full. Not fatal unless the data folder cannot even be read back.
  Status roll_back_turn(const Status& cause);
  void commit_succeeded();

  // Shared helpers.
  void emit(proto::Event event);
  void fail_turn(const Status& status);  // an LMDB error inside the turn
  Status turn_status;                    // first LMDB error of the turn
};

}  // namespace zb
