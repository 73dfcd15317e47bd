// The router: zbatch's dispatcher and system of record.
//
// One thread runs one event loop (zmq::poll + a timer heap) that owns three sockets:
//   frontend ROUTER  clients and the store: Submit, GetTask, GetGroup, WaitTasks, Control,
//                    Replay, Confirm (common/protocol.h)
//   backend ROUTER   workers: Ready, Results, Heartbeat, Bye (Paranoid Pirate heartbeats)
//   events PUB       EventBatch per loop turn, Hugz once a second when idle
//
// Contracts:
// - Acknowledged means durable: a SubmitAck is sent only after the LMDB write transaction
//   holding the tasks has committed (fsync unless options.fsync is false). Everything read in
//   one loop turn shares one transaction (group commit).
// - Every state change is one event with a gap-free sequence number, written to the LMDB
//   event log in the same transaction as the change, and published after the commit.
// - Delivery is at-least-once: a task leaves the in-flight table only when its result is
//   recorded. A worker silent for heartbeat_ms × liveness is dead; its tasks are requeued
//   (attempt + 1). After a restart, in-flight tasks wait reclaim_grace_ms for their workers to
//   re-claim them (Ready.running) before they are requeued.
// - A full disk stops nothing: below options.min_free_bytes free (or after a commit failed
//   for want of room) submissions are refused with storage_full; a turn whose commit fails is
//   rolled back, its in-memory state rebuilt from LMDB, its results left unacknowledged (the
//   workers send them again) and its requests answered storage_full. Submissions are accepted
//   again by themselves once space returns.
// - Dispatch by credit: a worker never holds more than Ready.capacity tasks.
// - Queues: strict priority across the queues a worker serves, FIFO within a priority;
//   ETA tasks wait in a timer heap. Group `parallel` caps how many tasks of a group run at once.
// - Bad input never crashes the router: it answers Error (frontend), Disconnect (backend) or
//   drops and logs.
// - Trust: with CURVE, a peer connects only with an allow-listed key, and each message is
//   checked against its key's role (common/curve.h): a worker key speaks only the backend, a
//   read key may not submit, and so on (Error 403). Whatever the role, a worker's results,
//   start notices and claims count only for leases its own session holds; counts it announces
//   are bounded. Every refusal is counted (inspect.stats "refused") and logged.
//
// Control operations: proto::Control.op names one, its arguments and reply are the typed
// structs of common/protocol.h (their JSON view, what the HTTP API and `--json` show, is
// common/control_json.h). decode() has checked the arguments' ranges; the router checks what
// only it knows (a declared queue, a task's state, a worker online).
//   op                  arguments               reply
//   ping                 -                      PingReply: log_id, head_seq, workers online, uptime_ms
//   inspect.active       -                      InspectActiveReply: per worker, the tasks running on a slot now
//   inspect.reserved     -                      TaskListReply: taken by a worker, not started (prefetched)
//   inspect.scheduled    -                      TaskListReply: waiting for an ETA, countdown or retry backoff
//                        (lists hold at most 1000 TaskRows; totals are exact)
//   inspect.stats        -                      InspectStatsReply: RouterStats (counters, refusals, event log,
//                                               storage, durability) and per worker WorkerStats
//   inspect.registered   -                      InspectRegisteredReply: per worker kinds, test profiles, MCP servers
//   inspect.queues       -                      InspectQueuesReply: per queue priority, default kind, depth,
//                                               scheduled, reserved, running
//   inspect.failed       InspectFailedArgs      InspectFailedReply: dead letters (tasks failed for good) after
//                        (queue, limit, after)  `after`, at most min(limit, 1000), `next` when the list is full
//   purge                PurgeArgs (queue)      PurgeReply: queued tasks of the queue (all queues when unset)
//                                               are revoked
//   revoke               TaskArgs (task,        RevokeReply: was queued | held | scheduled | terminated (a
//                        terminate)             running task only with terminate)
//   retry                TaskArgs (task)        RetryReply: a failed or revoked task runs again (new attempt)
//   retry.failed         RetryFailedArgs        RetryFailedReply: dead letters re-queued, and those left
//                        (queue, limit)
//   worker.shutdown      WorkerArgs (worker)    WorkerCommandReply: the worker is told to shut down warm
//   worker.pool          WorkerArgs (worker,    WorkerCommandReply: the worker is told to change its slots
//                        delta)
//   revoke.group         GroupArgs (group,      RevokeGroupReply: every unfinished task of the group is
//                        terminate)             revoked (queued ones within a few turns, running ones only
//                                               with terminate); the group takes no more tasks
// Errors: 400 (refused on decode), 404 (no such task or worker), 409 (not in a state for it),
// 422 (unknown queue), 504 (timeout) after the request's deadline: not carried out.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "common/protocol.h"
#include "common/status.h"

namespace zb {

// A queue's policy. Every field is a key of a [[queue]] table in zbatch.toml.
struct QueueConfig {
  std::string name;
  uint8_t priority = 5;
  std::string default_kind = "echo";  // kind (handler) of tasks submitted without one
  // Retries: a failed attempt is retried while retries < max_retries when the worker asked for
  // it (outcome "retry") or the error's class (the text before the first ':') is in retry_on
  // ("*" = any failure). The delay is min(retry_backoff_max_ms, retry_backoff_ms × 2^retries),
  // drawn uniformly from [delay/2, delay] when retry_jitter is on.
  uint32_t max_retries = 3;
  uint32_t retry_backoff_ms = 1000;
  uint32_t retry_backoff_max_ms = 600'000;
  bool retry_jitter = true;
  std::vector<std::string> retry_on;
  // Time limits of one attempt (0 = none): at the soft limit the handler is told (cancel flag,
  // SIGTERM to a child's process group); at the hard limit a child is killed (SIGKILL).
  uint32_t soft_time_limit_ms = 3'300'000;
  uint32_t time_limit_ms = 3'600'000;
  // Tasks per second started from this queue across the whole cluster (0 = no limit); bursts
  // up to a tenth of a second's worth (at least one task).
  double rate_limit = 0;
  // true: at-least-once (a task whose worker is lost runs again). false: at-most-once (the
  // task fails with "WorkerLostError" instead of running twice).
  bool acks_late = true;
  // true: its groups take turns (round-robin between batches, within a priority), so a big
  // batch does not hold back a small one queued after it; false: FIFO within a priority.
  bool fair = false;
  // The model pool (PoolConfig::name) its tasks take a place on; empty: none.
  std::string pool;
};

// A model pool: Ollama servers that serve one model, each `parallel` requests at once (its
// OLLAMA_NUM_PARALLEL). The router counts the places cluster-wide, keyed by (host, model)
// — two pools naming the same server and model share its places —, starts a task of a pooled
// queue only when a server has one free, and tells the worker which server and model to use.
// A server that refuses a task (no connection, 429 or 503) cools down (docs/kinds/agent.md).
struct PoolConfig {
  std::string name;
  std::string model;
  std::vector<std::string> hosts;  // Ollama addresses, normalized (ollama_address)
  uint32_t parallel = 1;           // per server, 1..1024
};

// The seed's seven queues (common/task.h) with their priorities.
std::vector<QueueConfig> default_queue_configs();

// Whether the router can run queue `q`: a name, rate_limit within 0..1e9 tasks/s,
// soft_time_limit no more than time_limit (when there is one), retry_backoff_max no less than
// retry_backoff. kBadRequest naming the queue and the first problem otherwise. The
// configuration file and Router::create both check with it (router/queue_config.cc).
Status check_queue_config(const QueueConfig& q);
// The same for every queue of `queues`, whose names must also be unique.
Status check_queue_configs(const std::vector<QueueConfig>& queues);
// Pools with unique names, a model, 1..64 distinct servers and parallel 1..1024; every
// queue's pool declared.
Status check_pools(const std::vector<PoolConfig>& pools, const std::vector<QueueConfig>& queues);

struct RouterOptions {
  std::string data_dir = "zbatch-data/router";
  std::string frontend = "tcp://127.0.0.1:5555";
  std::string backend = "tcp://127.0.0.1:5556";
  std::string events = "tcp://127.0.0.1:5557";
  bool fsync = true;                  // --durability fsync|nosync
  uint32_t heartbeat_ms = 1000;
  uint32_t liveness = 3;
  uint32_t reclaim_grace_ms = 5000;   // after a restart, before unclaimed leases are requeued
  uint64_t event_retention = 1'000'000;  // events kept beyond what the store confirmed
  int events_hwm = 100000;  // EVENT_BATCH messages queued per subscriber before the PUB drops
  uint64_t max_map_bytes = 64ull << 30;
  // Free space the data folder's filesystem keeps: below it, submissions are refused with
  // storage_full (507) while results, status and control go on. 0 = refuse only after a
  // write failed.
  uint64_t min_free_bytes = 64ull << 20;
  // Finished tasks (and their groups and idempotency keys) are deleted this long after they
  // finish; LMDB reuses the pages. 0 = keep forever.
  uint64_t result_ttl_ms = 86'400'000;
  std::vector<QueueConfig> queues = default_queue_configs();
  std::vector<PoolConfig> pools;
  // CURVE on every socket (docs/SECURITY.md): the router's secret certificate and the
  // allow-list of peers' public keys with their roles (router/zap.h has its format; it is
  // read again when it changes). Without them the sockets are plaintext, which is refused on
  // any endpoint off loopback unless insecure_plaintext says so.
  std::string curve_secret_file;
  std::string curve_allow_file;
  bool insecure_plaintext = false;
  // Periodic tasks declared in the config file ([[schedule]] tables, docs/SCHEDULES.md):
  // declared again at each start; those made over the API live in LMDB alone.
  std::vector<proto::ScheduleSpec> schedules;
};

class Router {
 public:
  // Opens (or creates) the LMDB data folder, rebuilds the queues from it, binds the sockets.
  // `context` may be shared with other components of the process (inproc endpoints need that);
  // nullptr makes a private one.
  static Result<std::unique_ptr<Router>> create(RouterOptions options,
                                                zmq::context_t* context = nullptr);
  ~Router();

  // Runs the loop until stop(). Returns the error that ended it, if any.
  Status run();
  // Thread-safe and async-signal-safe: the loop ends within one poll interval (≤ 100 ms).
  void stop();

 private:
  struct Impl;
  explicit Router(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace zb
