// The zbatch wire protocol, version 1: every message on every socket, and its codec.
//
// A message is two frames after any ROUTER routing-id frame:
//   F0  header, 4 bytes: 'Z' 'B' <version=1> <command>
//   F1  body: one msgpack array holding the message's fields in declaration order
// Fields are only ever appended; a decoder accepts a longer array (newer peer, fields it does
// not know) and a shorter one (older peer, missing fields keep their defaults).
//
// Sockets and who sends what (see docs/ARCHITECTURE.md for the full table):
//   frontend ROUTER (clients, store): Submit, GetTask, GetGroup, WaitTasks, Control, Replay,
//                                     Confirm  →  SubmitAck, TaskInfo, GroupInfo, ControlReply,
//                                     EventPage, Error
//   backend ROUTER (workers):         Ready, Started, Results, Heartbeat, Bye, Disconnect  →  Welcome, Tasks,
//                                     ResultsAck, Heartbeat, Disconnect, Revoke,
//                                     WorkerCommand, Recall
//   events PUB:                       EventBatch, Hugz
//
// decode() never throws and never asserts: truncated, oversize, wrong-type, unknown-command and
// wrong-version input all come back as a Status with a reason. msgpack unpack limits are always
// set, so a hostile length prefix cannot make the decoder allocate gigabytes.
#pragma once

#include <array>
#include <bit>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include <msgpack.hpp>

#include "common/id.h"
#include "common/status.h"
#include "common/task.h"

namespace zb::proto {

inline constexpr uint8_t kVersion = 1;
inline constexpr size_t kHeaderSize = 4;
// Largest body a decoder accepts; sockets set ZMQ_MAXMSGSIZE to the same figure.
inline constexpr size_t kMaxBodyBytes = 64u << 20;
// Most tasks, events or results one message may carry.
inline constexpr size_t kMaxItems = 1u << 20;

enum class Command : uint8_t {
  // frontend: client → router
  kSubmit = 0x01,
  kGetTask = 0x02,
  kGetGroup = 0x03,
  kWaitTasks = 0x04,
  kControl = 0x05,
  kReplay = 0x06,
  kConfirm = 0x07,
  // frontend: router → client
  kSubmitAck = 0x41,
  kTaskInfo = 0x42,
  kGroupInfo = 0x43,
  kControlReply = 0x45,
  kEventPage = 0x46,
  kError = 0x7f,
  // backend: worker ↔ router
  kReady = 0x81,
  kWelcome = 0x82,
  kTasks = 0x83,
  kResults = 0x84,
  kResultsAck = 0x85,
  kHeartbeat = 0x86,
  kDisconnect = 0x87,
  kBye = 0x88,
  kRevoke = 0x89,
  kWorkerCommand = 0x8a,
  kStarted = 0x8b,
  kRecall = 0x8c,
  kOutput = 0x8d,  // worker → router; also router → store on the events PUB
  // events PUB
  kEventBatch = 0xc1,
  kHugz = 0xc2,
};
std::string_view command_name(Command command);

// ---------------------------------------------------------------------------------------------
// Shared records

// What a client asks to run.
struct TaskSpec {
  std::string queue;         // empty → "default"
  std::string kind;          // empty → the queue's default kind
  std::string payload;       // JSON text, opaque to the router
  int32_t priority = -1;     // -1 → the queue's priority; else 0..255, higher first
  uint64_t eta_ms = 0;       // unix ms; 0 or past → now
  std::string ref;           // the caller's own name for the task (the seed's "id")
  int32_t max_retries = -1;  // -1 → the queue's default
  uint32_t soft_limit_ms = 0;  // 0 → the queue's soft time limit
  uint32_t hard_limit_ms = 0;  // 0 → the queue's hard time limit
  // Relative delay (Celery's countdown), counted by the router from when it accepts the task;
  // unlike an absolute eta it makes the same request look the same when it is repeated.
  uint64_t countdown_ms = 0;
  // A W3C trace context (`traceparent`, validated by valid_traceparent) that the task carries
  // to its worker and handler; empty: none.
  std::string trace;
  // A uniqueness key within the task's queue: while a task with this key is queued, scheduled
  // or running, another is refused (kRefuse) or answered with that task's id (kExisting, for
  // submissions without a group). Empty: not unique.
  std::string unique_key;
  uint8_t on_duplicate = 0;  // UniquePolicy
  // Dependencies (docs/WORKFLOWS.md): the task waits until these have ended, then runs when
  // `when` (Trigger) holds, receiving their results as its inputs. `after`: tasks that exist
  // already; `after_index`: tasks of the same submission, by position (a cycle is refused);
  // `after_group`: a whole group (a chord's callback). None of them: runnable at once.
  std::vector<Id> after;
  std::vector<uint32_t> after_index;
  Id after_group;
  uint8_t when = 0;  // Trigger
  MSGPACK_DEFINE(queue, kind, payload, priority, eta_ms, ref, max_retries, soft_limit_ms,
                 hard_limit_ms, countdown_ms, trace, unique_key, on_duplicate, after, after_index,
                 after_group, when);
};
enum class UniquePolicy : uint8_t { kRefuse = 0, kExisting = 1 };
// When a task with dependencies runs once they have all ended: kSuccess, only if every one
// succeeded (a failed or revoked one fails it with DependencyFailed, at once); kFailure, only
// if one of them did not succeed (else it is revoked as skipped: an error callback); kAlways,
// either way.
enum class Trigger : uint8_t { kSuccess = 0, kFailure = 1, kAlways = 2 };
std::string_view trigger_name(Trigger trigger);
std::optional<Trigger> parse_trigger(std::string_view name);
inline constexpr size_t kMaxDependencies = 10000;  // per task

// A waiting task's dependencies as its record keeps them (TaskRecord::deps, packed):
// `tasks` every task it waits for (ids, those of its own submission resolved), `group` the
// group it waits for (nil: none), and how many of them have not ended / did not succeed.
struct Dependencies {
  std::vector<Id> tasks;
  Id group;
  uint8_t when = 0;  // Trigger
  uint32_t pending = 0;
  uint32_t failed = 0;
  MSGPACK_DEFINE(tasks, group, when, pending, failed);
};
std::string pack_dependencies(const Dependencies& deps);
// Empty bytes: none (nullopt only for bytes that do not decode).
std::optional<Dependencies> unpack_dependencies(std::string_view bytes);
// 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>, lower case, ids not all zero, version
// not ff (W3C Trace Context, level 1; a later version's longer header is kept to its first 55).
bool valid_traceparent(std::string_view header);
inline constexpr size_t kMaxUniqueKeyBytes = 256;

// Everything the router knows about one task.
struct TaskRecord {
  Id id;
  Id group;
  std::string ref;
  std::string queue;
  std::string kind;
  std::string payload;
  uint8_t priority = 0;
  TaskState state = TaskState::kQueued;
  uint32_t attempt = 0;  // 1 for the first run; 0 before any dispatch
  uint32_t max_retries = 0;
  uint64_t seq = 0;      // FIFO order, unique per router data folder
  uint64_t created_ms = 0;
  uint64_t eta_ms = 0;
  uint64_t started_ms = 0;
  uint64_t finished_ms = 0;
  std::string worker;    // name of the worker of the latest attempt
  std::string result;    // JSON text
  std::string error;
  uint32_t retries = 0;        // failed attempts retried so far (lost workers do not count)
  uint32_t soft_limit_ms = 0;  // 0 = none
  uint32_t hard_limit_ms = 0;
  std::string trace;       // TaskSpec::trace
  std::string unique_key;  // TaskSpec::unique_key: held in the router's `unique` index until terminal
  std::string deps;        // packed Dependencies; empty: the task depends on nothing
  // What its dependencies gave it, made when it stopped waiting (JSON text, docs/WORKFLOWS.md);
  // sent to its worker with the task. Empty: no dependencies.
  std::string inputs;
  MSGPACK_DEFINE(id, group, ref, queue, kind, payload, priority, state, attempt, max_retries, seq,
                 created_ms, eta_ms, started_ms, finished_ms, worker, result, error, retries,
                 soft_limit_ms, hard_limit_ms, trace, unique_key, deps, inputs);
};

struct GroupRecord {
  Id id;
  uint32_t total = 0;
  uint32_t succeeded = 0;
  uint32_t failed = 0;
  uint32_t revoked = 0;
  uint32_t running = 0;
  uint32_t parallel = 0;  // at most this many tasks of the group run at once; 0 = no cap
  bool sealed = true;     // false while more Submit messages may add tasks
  uint64_t created_ms = 0;
  uint64_t finished_ms = 0;
  // A group sent in numbered chunks (Submit::chunks > 0): `total` is the size it declared
  // from its first chunk, `received` the tasks present, and bit i of `chunks_present` (byte
  // i / 8, bit i % 8) says chunk i is durable. It is sealed when every chunk is present.
  // Unnumbered groups (chunks == 0, and records written before these fields) grow `total`
  // with each Submit and are sealed by Submit::seal.
  uint32_t chunks = 0;
  std::string chunks_present;
  uint32_t received = 0;
  Id fingerprint;  // of the whole group's content, from its first chunk; nil: not compared
  // When the whole group was revoked (revoke.group); 0: it was not. A revoked group takes no
  // more tasks, and none of its tasks starts any more.
  uint64_t revoked_ms = 0;
  // The group was made with callbacks (Submit::callbacks): the router indexes its members, so
  // that their results can be handed to the callbacks when it completes.
  bool indexed = false;
  // Its budget (Submit::budget_*; 0 = none), what its tasks' outcomes have spent of it, and
  // when it ran out (0: it has not). A group whose budget ran out is revoked (revoked_ms) with
  // its unstarted tasks ending "BudgetExceeded: batch ...".
  uint64_t budget_tokens = 0, budget_run_ms = 0, spent_tokens = 0, spent_run_ms = 0, budget_spent_ms = 0;
  MSGPACK_DEFINE(id, total, succeeded, failed, revoked, running, parallel, sealed, created_ms,
                 finished_ms, chunks, chunks_present, received, fingerprint, revoked_ms, indexed, budget_tokens,
                 budget_run_ms, spent_tokens, spent_run_ms, budget_spent_ms);

  uint32_t completed() const { return succeeded + failed + revoked; }
  // Every task has ended. A revoked group takes no more: the tasks it holds are all it has,
  // even when chunks of it never arrived.
  bool ready() const {
    if (revoked_ms) return completed() >= (chunks ? received : total);
    return sealed && completed() >= total;
  }
  bool has_chunk(uint32_t i) const {
    return i / 8 < chunks_present.size() && (static_cast<uint8_t>(chunks_present[i / 8]) >> (i % 8)) & 1u;
  }
  void add_chunk(uint32_t i) {
    if (chunks_present.size() <= i / 8) chunks_present.resize(i / 8 + 1, '\0');
    chunks_present[i / 8] = static_cast<char>(static_cast<uint8_t>(chunks_present[i / 8]) | (1u << (i % 8)));
  }
  uint32_t chunks_received() const {
    uint32_t n = 0;
    for (char c : chunks_present) n += static_cast<uint32_t>(std::popcount(static_cast<uint8_t>(c)));
    return n;
  }
};

// A task a worker holds, named with its attempt: the fencing token of results.
struct Claim {
  Id task;
  uint32_t attempt = 0;
  MSGPACK_DEFINE(task, attempt);
  friend bool operator==(const Claim&, const Claim&) = default;
};

enum class EventType : uint8_t {
  kTaskReceived = 0,   // accepted and durable; carries payload, queue, kind, ref, group
  kTaskScheduled = 1,  // waiting for eta_ms
  kTaskQueued = 2,     // ready to run (after ETA, requeue or retry)
  kTaskStarted = 3,
  kTaskSucceeded = 4,  // carries result
  kTaskFailed = 5,     // carries error
  kTaskRetried = 6,    // an attempt failed; another follows
  kTaskRevoked = 7,
  kGroupUpdated = 8,   // a group changed this turn: group_record holds it as the router has it
  kWorkerOnline = 9,   // worker_note: host, pid, slots, credit
  kWorkerOffline = 10,    // worker_note.reason
  kWorkerHeartbeat = 11,  // not sent (kept for the numbering)
  kQueuePurged = 12,      // count: tasks purged
  kResultsExpired = 13,   // finished tasks and groups up to before_ms were deleted
};
inline constexpr int kEventTypeCount = 14;
std::string_view event_type_name(EventType type);

// What a worker-online event says about the worker, or why a worker-offline one left.
struct WorkerNote {
  std::string hostname;
  uint32_t pid = 0;
  uint32_t concurrency = 0;
  uint32_t capacity = 0;
  std::string reason;  // worker-offline
  MSGPACK_DEFINE(hostname, pid, concurrency, capacity, reason);
};

// One state change, with a gap-free sequence number. Task events carry the task's new state
// and the one it left; the router writes each changed group's record once per turn
// (group-updated), so a follower applies what the router decided instead of deriving it.
struct Event {
  uint64_t seq = 0;
  uint64_t ts_ms = 0;
  EventType type = EventType::kTaskReceived;
  Id task;
  Id group;
  std::string queue;
  std::string kind;
  std::string ref;
  TaskState state = TaskState::kQueued;
  uint32_t attempt = 0;
  uint8_t priority = 0;
  std::string worker;
  std::string payload;
  std::string result;
  std::string error;
  std::string unused_detail;  // JSON text once; no longer written (kept for the fields' positions)
  uint64_t eta_ms = 0;
  // Task events: the state the task left (task-received: the state it starts in).
  TaskState from = TaskState::kQueued;
  uint32_t retries = 0;      // task-retried, -succeeded, -failed: automatic retries so far
  uint32_t max_retries = 0;  // task-retried
  uint64_t delay_ms = 0;     // task-retried: the backoff before the next attempt (0: queued at once)
  uint64_t runtime_us = 0;   // task-succeeded, -failed: the handler's run time
  uint64_t count = 0;        // queue-purged: the tasks purged
  uint64_t before_ms = 0;    // results-expired: what finished before this instant was deleted
  std::vector<WorkerNote> worker_note;    // worker-online, -offline: one entry
  std::vector<GroupRecord> group_record;  // group-updated: the record (no chunk bitmap), one entry
  std::string trace;       // task-received: TaskSpec::trace
  std::string unique_key;  // task-received: TaskSpec::unique_key
  std::string deps;        // task-received: TaskRecord::deps (packed Dependencies)
  MSGPACK_DEFINE(seq, ts_ms, type, task, group, queue, kind, ref, state, attempt, priority, worker,
                 payload, result, error, unused_detail, eta_ms, from, retries, max_retries, delay_ms,
                 runtime_us, count, before_ms, worker_note, group_record, trace, unique_key, deps);
};

// ---------------------------------------------------------------------------------------------
// Frontend: client → router. Every request carries a caller-chosen correlation id `corr` that
// the reply repeats, so clients may pipeline.

// Submits one or more tasks, accepted or refused as a whole. With a non-nil group the tasks
// join that group (created on first use); seal=false leaves it open for more Submits.
// deadline_ms (unix ms, 0 = none): a Submit that reaches the router later is refused — the
// client has given up on it, so it must never run. A repeat with the same idem_key answers
// the first SubmitAck; with another fingerprint (the request's content) it is a conflict.
struct Submit {
  static constexpr Command kCommand = Command::kSubmit;
  uint64_t corr = 0;
  Id group;
  uint32_t parallel = 0;
  bool seal = true;
  std::string idem_key;
  std::vector<TaskSpec> tasks;
  uint64_t deadline_ms = 0;
  Id fingerprint;  // nil: not compared
  // A numbered chunk (chunks > 0): chunk `chunk` of `chunks`, of a group of `group_tasks`
  // tasks whose whole content has `group_fingerprint`. The router seals the group once every
  // chunk is present, in whatever order they came; `seal` is then ignored. chunks == 0: an
  // unnumbered submission (and every message from older clients), sealed by `seal`.
  uint32_t chunk = 0;
  uint32_t chunks = 0;
  uint32_t group_tasks = 0;
  Id group_fingerprint;
  // A chord: tasks made with the group, outside it, that wait for the whole group
  // (TaskSpec::after_group is implied). Only in the Submit that makes the group, unnumbered
  // or a group of one chunk.
  std::vector<TaskSpec> callbacks;
  // The group's budget (docs/kinds/agent.md, Budgets): once its tasks' outcomes have reported
  // this many tokens, or this much run time, no more of them starts. 0 = none. Read from the
  // Submit that makes the group.
  uint64_t budget_tokens = 0;
  uint64_t budget_run_ms = 0;
  MSGPACK_DEFINE(corr, group, parallel, seal, idem_key, tasks, deadline_ms, fingerprint, chunk, chunks,
                 group_tasks, group_fingerprint, callbacks, budget_tokens, budget_run_ms);
};

struct GetTask {
  static constexpr Command kCommand = Command::kGetTask;
  uint64_t corr = 0;
  Id task;
  MSGPACK_DEFINE(corr, task);
};

struct GetGroup {
  static constexpr Command kCommand = Command::kGetGroup;
  uint64_t corr = 0;
  Id group;
  MSGPACK_DEFINE(corr, group);
};

// Answers (TaskInfo) once every task is terminal, or at timeout_ms with their current states.
struct WaitTasks {
  static constexpr Command kCommand = Command::kWaitTasks;
  uint64_t corr = 0;
  std::vector<Id> tasks;
  uint32_t timeout_ms = 0;
  MSGPACK_DEFINE(corr, tasks, timeout_ms);
};

// ---------------------------------------------------------------------------------------------
// Control operations: what Control asks and ControlReply answers, one typed struct per
// operation. On the wire both carry the operation's name (`op`) and a msgpack array of the
// operation's own struct, decoded by that name; decode() checks the arguments' values
// (check_control) and refuses an unknown operation. router/router.h lists what each one does.

enum class ControlOp : uint8_t {
  kPing,
  kInspectActive,
  kInspectReserved,
  kInspectScheduled,
  kInspectStats,
  kInspectRegistered,
  kInspectQueues,
  kInspectFailed,
  kPurge,
  kRevoke,
  kRetry,
  kRetryFailed,
  kWorkerShutdown,
  kWorkerPool,
  kRevokeGroup,
  kScheduleList,
  kScheduleCreate,
  kSchedulePause,
  kScheduleResume,
  kScheduleDelete,
  kScheduleRun,
};
inline constexpr int kControlOpCount = 21;
// "ping", "inspect.active", ..., "worker.pool": Control::op on the wire.
std::string_view control_op_name(ControlOp op);
std::optional<ControlOp> parse_control_op(std::string_view name);
// ping, inspect.* and schedule.list: they change nothing (a read role may ask them).
bool control_op_reads(ControlOp op);

// Most tasks inspect.failed lists, and retry.failed re-queues, in one operation.
inline constexpr uint32_t kMaxControlLimit = 100'000;
// The largest change of a worker's pool size that worker.pool asks at once.
inline constexpr int32_t kMaxPoolDelta = 1024;

// The arguments of the operations that take some. Unset queue: every queue.
struct InspectFailedArgs {
  std::optional<std::string> queue;
  uint32_t limit = 100;  // 1..kMaxControlLimit; the router lists at most 1000
  Id after;              // list after this task id; nil: from the oldest
  MSGPACK_DEFINE(queue, limit, after);
};
struct RetryFailedArgs {
  std::optional<std::string> queue;
  uint32_t limit = kMaxControlLimit;  // 1..kMaxControlLimit
  MSGPACK_DEFINE(queue, limit);
};
struct PurgeArgs {
  std::optional<std::string> queue;
  MSGPACK_DEFINE(queue);
};
// revoke (terminate: stop it if it runs) and retry (terminate unused, false).
struct TaskArgs {
  Id task;
  bool terminate = false;
  MSGPACK_DEFINE(task, terminate);
};
// worker.shutdown (delta unused, 0) and worker.pool (delta: non-zero, ±kMaxPoolDelta).
struct WorkerArgs {
  std::string worker;  // the worker's name, as its Ready said
  int32_t delta = 0;
  MSGPACK_DEFINE(worker, delta);
};
inline constexpr size_t kMaxScheduleName = 128;
inline constexpr size_t kMaxSchedulePayload = 1u << 20;
inline constexpr uint64_t kMinScheduleIntervalMs = 1000;
inline constexpr uint64_t kMaxScheduleIntervalMs = 366ull * 86400 * 1000;
// A periodic task (docs/SCHEDULES.md): when it fires (a 5-field cron expression in a time
// zone, or a fixed interval), what a firing after downtime does, whether a firing waits for
// the previous one, and the task each firing submits. schedule.create takes one.
struct ScheduleSpec {
  std::string name;            // 1..128 bytes of [A-Za-z0-9_.:-]
  std::string cron;            // "m h dom mon dow" or @hourly...; empty: every_ms
  std::string timezone = "UTC";  // an IANA zone name (cron only)
  uint64_t every_ms = 0;       // a fixed interval, >= 1000 (without cron)
  std::string catch_up = "one";  // one | all | none: the slots missed while the router was down
  std::string overlap = "allow"; // allow | skip: skip a slot while the previous firing's task is unfinished
  TaskSpec task;               // eta_ms and countdown_ms unused
  MSGPACK_DEFINE(name, cron, timezone, every_ms, catch_up, overlap, task);
};
// schedule.list (empty name: every schedule), .pause, .resume, .delete, .run. schedule.list
// of one schedule with `firings` (1..kMaxFiringsListed) lists that many of its firings in
// `recent` instead of the newest 20: the newest ones whose slot is before `before_ms` (0: the
// newest of all), newest first. Pages go on with the last slot listed as `before_ms`.
inline constexpr uint32_t kMaxFiringsListed = 1000;
struct ScheduleArgs {
  std::string name;
  uint32_t firings = 0;
  uint64_t before_ms = 0;
  MSGPACK_DEFINE(name, firings, before_ms);
};
// revoke.group: every task of the group that has not ended; terminate: running ones too.
struct GroupArgs {
  Id group;
  bool terminate = false;
  MSGPACK_DEFINE(group, terminate);
};
// monostate: the operations without arguments (ping, inspect.* but failed).
using ControlArgs = std::variant<std::monostate, InspectFailedArgs, RetryFailedArgs, PurgeArgs, TaskArgs, WorkerArgs,
                                 ScheduleSpec, ScheduleArgs, GroupArgs>;
// The arguments `op` takes, with their defaults.
ControlArgs default_control_args(ControlOp op);

// One task in a control reply's list. inspect.active, .reserved and .scheduled fill its
// identity, eta, created and worker (active: the start too); inspect.failed its identity,
// error, retries and finish. `worker` is the worker holding it (active, reserved), else the
// worker of its latest attempt.
struct TaskRow {
  Id id;
  std::string ref;
  std::string queue;
  std::string kind;
  TaskState state = TaskState::kQueued;
  uint32_t attempt = 0;
  uint8_t priority = 0;
  Id group;  // nil: none
  uint64_t eta_ms = 0;
  uint64_t created_ms = 0;
  std::string worker;
  uint64_t started_ms = 0;
  std::string error;
  uint32_t retries = 0;
  uint64_t finished_ms = 0;
  MSGPACK_DEFINE(id, ref, queue, kind, state, attempt, priority, group, eta_ms, created_ms, worker, started_ms,
                 error, retries, finished_ms);
};

struct PingReply {
  Id log_id;
  uint64_t head_seq = 0;
  uint64_t workers = 0;
  uint64_t uptime_ms = 0;
  MSGPACK_DEFINE(log_id, head_seq, workers, uptime_ms);
};
// Lists hold at most 1000 tasks; `total` is exact.
struct WorkerTasks {
  std::string name;
  Id session;
  std::vector<TaskRow> tasks;
  MSGPACK_DEFINE(name, session, tasks);
};
struct InspectActiveReply {  // tasks running on a slot now, per worker
  std::vector<WorkerTasks> workers;
  uint64_t total = 0;
  MSGPACK_DEFINE(workers, total);
};
struct TaskListReply {  // inspect.reserved (leased, not started) and inspect.scheduled (ETA, backoff)
  std::vector<TaskRow> tasks;
  uint64_t total = 0;
  MSGPACK_DEFINE(tasks, total);
};
struct Refusals {  // messages refused for who sent them (router/router.h, Trust)
  uint64_t forbidden = 0, foreign_results = 0, foreign_claims = 0, foreign_started = 0, bad_counts = 0,
           unknown_keys = 0;
  MSGPACK_DEFINE(forbidden, foreign_results, foreign_claims, foreign_started, bad_counts, unknown_keys);
};
// Durations counted in fixed buckets: buckets[i] counts those <= kDurationBoundsUs[i] (not
// cumulative), the last one those beyond every bound. Empty: nothing measured.
inline constexpr std::array<uint64_t, 12> kDurationBoundsUs = {50,    100,   250,    500,    1000,   2500,
                                                               5000,  10000, 25000,  100000, 250000, 1000000};
struct DurationHistogram {
  std::vector<uint64_t> buckets;
  uint64_t sum_us = 0;
  MSGPACK_DEFINE(buckets, sum_us);
  void add(uint64_t us) {
    if (buckets.empty()) buckets.resize(kDurationBoundsUs.size() + 1);
    size_t i = 0;
    while (i < kDurationBoundsUs.size() && us > kDurationBoundsUs[i]) ++i;
    ++buckets[i];
    sum_us += us;
  }
};

struct RouterStats {
  uint64_t uptime_ms = 0, submitted = 0, succeeded = 0, failed = 0, in_flight = 0, scheduled = 0,
           groups_active = 0, bad_frames = 0, late_requests = 0;
  Refusals refused;
  uint64_t event_seq = 0, event_first_seq = 0, event_confirmed = 0;
  uint64_t db_used_bytes = 0, db_map_bytes = 0;
  bool storage_full = false;
  uint64_t storage_free_bytes = 0, storage_reserve_bytes = 0, storage_failed_commits = 0;
  std::string durability;  // "fsync" | "nosync"
  // Since start: LMDB commits (about one per loop turn that changed something), records they
  // wrote, and syncs that made them durable (several commits per sync under load; nosync: 0).
  uint64_t commits = 0, records_written = 0, syncs = 0;
  // Since start: how long the loop's turns that committed took (reading the messages to the
  // commit), and how long each sync (fdatasync and the durable record) took.
  DurationHistogram turn_time, sync_time;
  MSGPACK_DEFINE(uptime_ms, submitted, succeeded, failed, in_flight, scheduled, groups_active, bad_frames,
                 late_requests, refused, event_seq, event_first_seq, event_confirmed, db_used_bytes, db_map_bytes,
                 storage_full, storage_free_bytes, storage_reserve_bytes, storage_failed_commits, durability, commits,
                 records_written, syncs, turn_time, sync_time);
};
struct WorkerStats {
  std::string name;
  Id session;
  std::string hostname;
  uint32_t pid = 0, concurrency = 0, capacity = 0;
  uint64_t in_flight = 0;
  uint32_t busy = 0;
  uint64_t processed = 0, failed = 0, last_heartbeat_ms = 0, online_ms = 0;
  bool draining = false;
  std::vector<std::string> queues;
  // The credit window the router allows it now and what sizes it (router/workers.h): the
  // smoothed round trip and time per task per slot, in µs (0: not measured yet).
  uint32_t window = 0;
  uint64_t round_trip_us = 0, task_pace_us = 0;
  // As its heartbeats last reported them (0: not yet).
  uint32_t rss_kb = 0, load_milli = 0;
  MSGPACK_DEFINE(name, session, hostname, pid, concurrency, capacity, in_flight, busy, processed, failed,
                 last_heartbeat_ms, online_ms, draining, queues, window, round_trip_us, task_pace_us, rss_kb,
                 load_milli);
};
struct InspectStatsReply {
  RouterStats router;
  std::vector<WorkerStats> workers;
  MSGPACK_DEFINE(router, workers);
};
struct WorkerRegistration {
  std::string name;
  std::vector<std::string> kinds, test_profiles, mcp_servers;
  MSGPACK_DEFINE(name, kinds, test_profiles, mcp_servers);
};
struct InspectRegisteredReply {
  std::vector<WorkerRegistration> workers;
  MSGPACK_DEFINE(workers);
};
struct QueueStats {
  std::string name;
  uint8_t priority = 0;
  std::string default_kind;
  uint64_t depth = 0, scheduled = 0, reserved = 0, running = 0;
  // Round-robin between its groups (QueueConfig::fair), and the model pool its tasks run on.
  bool fair = false;
  std::string pool = {};
  MSGPACK_DEFINE(name, priority, default_kind, depth, scheduled, reserved, running, fair, pool);
};
// One server of a model pool: its places, how many are taken, and how long it still cools
// down (0: it takes tasks).
struct PoolHostStats {
  std::string host;
  uint32_t parallel = 0, running = 0;
  uint64_t cooling_ms = 0;
  MSGPACK_DEFINE(host, parallel, running, cooling_ms);
};
struct PoolStats {
  std::string name;
  std::string model;
  std::vector<PoolHostStats> hosts;
  MSGPACK_DEFINE(name, model, hosts);
};
struct InspectQueuesReply {
  std::vector<QueueStats> queues;
  std::vector<PoolStats> pools = {};
  MSGPACK_DEFINE(queues, pools);
};
struct InspectFailedReply {  // dead letters in submission order
  uint64_t total = 0;        // every dead letter, of every queue
  std::vector<TaskRow> tasks;
  Id next;  // the last task listed when the list reached its limit (the next page's `after`); nil: none
  MSGPACK_DEFINE(total, tasks, next);
};
struct PurgeReply {
  uint64_t purged = 0;
  MSGPACK_DEFINE(purged);
};
struct RevokeReply {
  Id revoked;
  std::string was;  // queued | held | scheduled | terminated
  MSGPACK_DEFINE(revoked, was);
};
struct RetryReply {
  Id retried;
  uint32_t attempts_so_far = 0;
  MSGPACK_DEFINE(retried, attempts_so_far);
};
struct RetryFailedReply {
  uint64_t retried = 0;
  uint64_t left = 0;  // dead letters still there
  MSGPACK_DEFINE(retried, left);
};
// revoke.group: what it stopped at once. Queued tasks of the group beyond the first turn's
// sweep are revoked as the router comes to them (within a few turns).
struct RevokeGroupReply {
  Id group;
  uint64_t revoked = 0;     // tasks revoked now: held, scheduled, reserved, running, queued
  uint64_t terminated = 0;  // of those, running ones stopped (terminate)
  uint64_t running = 0;     // running tasks left to finish (without terminate)
  bool again = false;       // the group had been revoked before
  MSGPACK_DEFINE(group, revoked, terminated, running, again);
};
struct WorkerCommandReply {  // worker.shutdown, worker.pool: the command was sent
  std::string worker;
  std::string sent;  // the operation's name
  MSGPACK_DEFINE(worker, sent);
};
// One firing of a schedule: its slot (the instant it was due, unix ms), when it fired, the
// task it submitted (nil: none) and how: "slot", "catch_up", "run_now", or "skipped" (overlap
// skip: the previous task was unfinished).
struct ScheduleFiring {
  uint64_t slot_ms = 0;
  uint64_t fired_ms = 0;
  Id task;
  std::string how;
  MSGPACK_DEFINE(slot_ms, fired_ms, task, how);
};
struct ScheduleRow {
  ScheduleSpec spec;
  std::string source;  // "config" (declared in the config file) | "api"
  bool paused = false;
  uint64_t created_ms = 0;
  uint64_t last_slot_ms = 0;  // the newest slot fired (or skipped); later slots only fire
  uint64_t next_slot_ms = 0;  // the next slot due (0: paused or none)
  uint64_t fired = 0;         // tasks submitted so far
  Id last_task;               // nil: none yet
  std::vector<ScheduleFiring> recent;  // newest first, at most 20 (or ScheduleArgs::firings)
  MSGPACK_DEFINE(spec, source, paused, created_ms, last_slot_ms, next_slot_ms, fired, last_task, recent);
};
struct ScheduleListReply {
  std::vector<ScheduleRow> schedules;
  MSGPACK_DEFINE(schedules);
};
// schedule.create, .pause, .resume, .delete (the row as it was), .run (task: what it submitted).
struct ScheduleReply {
  ScheduleRow schedule;
  Id task;
  MSGPACK_DEFINE(schedule, task);
};
using ControlResult =
    std::variant<std::monostate, PingReply, InspectActiveReply, TaskListReply, InspectStatsReply,
                 InspectRegisteredReply, InspectQueuesReply, InspectFailedReply, PurgeReply, RevokeReply,
                 RetryReply, RetryFailedReply, WorkerCommandReply, ScheduleListReply, ScheduleReply,
                 RevokeGroupReply>;
// The reply `op` answers, empty.
ControlResult default_control_result(ControlOp op);

// deadline_ms as for Submit: an operation arriving later is refused, not carried out.
// Wire fields: corr, op, (JSON arguments once; now kTypedControlMarker, ignored), deadline_ms,
// args (decoded by op). An operation that takes arguments and comes without them (a peer
// older than typed arguments) is refused rather than run with defaults: a purge of one queue
// must not become a purge of every queue. The marker is not JSON, so a router that still
// reads JSON arguments refuses a newer peer's request for the same reason.
inline constexpr std::string_view kTypedControlMarker = "typed";
struct Control {
  static constexpr Command kCommand = Command::kControl;
  uint64_t corr = 0;
  std::string op;
  uint64_t deadline_ms = 0;
  ControlArgs args;

  // A request for `op` with `args` (which must be what default_control_args(op) holds).
  static Control make(ControlOp op, ControlArgs args = {});
};

// Wire fields: corr, (a JSON text once; ignored), op, reply (decoded by op).
struct ControlReply {
  static constexpr Command kCommand = Command::kControlReply;
  uint64_t corr = 0;
  std::string op;
  ControlResult reply;
};

// What decode() checks of a Control beyond its types: a known operation whose arguments are
// the ones it takes, limits within 1..kMaxControlLimit, a worker name, a pool delta within
// ±kMaxPoolDelta and not 0 (kBadRequest naming the operation and the field). The client
// checks with it before sending. A ControlReply must name a known operation with its reply.
Status check_control(const Control& control);
Status check_control_reply(const ControlReply& reply);
// A schedule's name, and its whole spec (cron syntax, interval bounds, policies, task limits;
// the time zone's existence is the router's to check).
Status check_schedule_name(const std::string& name);
Status check_schedule_spec(const ScheduleSpec& spec);

// Events with seq > after_seq, at most max_events of them (the Clone pattern's snapshot).
struct Replay {
  static constexpr Command kCommand = Command::kReplay;
  uint64_t corr = 0;
  uint64_t after_seq = 0;
  uint32_t max_events = 0;
  MSGPACK_DEFINE(corr, after_seq, max_events);
};

// The sender has applied every event up to seq; the router may trim its log below it.
struct Confirm {
  static constexpr Command kCommand = Command::kConfirm;
  uint64_t seq = 0;
  MSGPACK_DEFINE(seq);
};

// ---------------------------------------------------------------------------------------------
// Frontend: router → client

struct SubmitAck {
  static constexpr Command kCommand = Command::kSubmitAck;
  uint64_t corr = 0;
  Id group;
  std::vector<Id> tasks;  // in the order of Submit::tasks
  bool duplicate = false; // answered from the idempotency key
  // The event log holds this submission's events up to here: a follower that has applied
  // this sequence number shows the tasks and their group.
  uint64_t seq = 0;
  // Positions in `tasks` answered with an earlier task of the same unique key
  // (UniquePolicy::kExisting): no task was made for them.
  std::vector<uint32_t> existing;
  std::vector<Id> callbacks;  // in the order of Submit::callbacks
  MSGPACK_DEFINE(corr, group, tasks, duplicate, seq, existing, callbacks);
};

struct TaskInfo {
  static constexpr Command kCommand = Command::kTaskInfo;
  uint64_t corr = 0;
  std::vector<TaskRecord> tasks;
  MSGPACK_DEFINE(corr, tasks);
};

struct GroupInfo {
  static constexpr Command kCommand = Command::kGroupInfo;
  uint64_t corr = 0;
  GroupRecord group;
  MSGPACK_DEFINE(corr, group);
};

struct EventPage {
  static constexpr Command kCommand = Command::kEventPage;
  uint64_t corr = 0;
  Id log_id;                 // changes when the router's data folder is new
  uint64_t first_seq = 0;    // oldest event still in the log
  uint64_t head_seq = 0;     // newest event written
  std::vector<Event> events;
  MSGPACK_DEFINE(corr, log_id, first_seq, head_seq, events);
};

struct Error {
  static constexpr Command kCommand = Command::kError;
  uint64_t corr = 0;
  int32_t code = 0;  // zb::Code
  std::string message;
  MSGPACK_DEFINE(corr, code, message);
};

// ---------------------------------------------------------------------------------------------
// Backend: worker ↔ router (Paranoid Pirate: any message counts as a heartbeat)

// First message of a worker session. `running` re-claims tasks still running after a router
// restart or reconnect.
struct Ready {
  static constexpr Command kCommand = Command::kReady;
  std::string name;        // "worker1@host"
  Id session;              // new for every process start
  std::string hostname;
  uint32_t pid = 0;
  std::vector<std::string> queues;  // empty = every queue the router declares
  std::vector<std::string> kinds;
  uint32_t concurrency = 0;
  uint32_t capacity = 0;   // most tasks it may hold at once (concurrency × prefetch multiplier): the
                           // router's credit window for it never exceeds this
  std::vector<Claim> running;
  // The names of the worker's test profiles and MCP servers, so that the store can refuse a
  // task naming one no worker has. An older worker sends neither: both stay empty. (The
  // initialisers let aggregate initialisations that predate them leave them out.)
  std::vector<std::string> test_profiles = {};
  std::vector<std::string> mcp_servers = {};
  MSGPACK_DEFINE(name, session, hostname, pid, queues, kinds, concurrency, capacity, running, test_profiles,
                 mcp_servers);
};

struct Welcome {
  static constexpr Command kCommand = Command::kWelcome;
  uint32_t heartbeat_ms = 0;
  uint32_t liveness = 0;
  std::vector<Claim> rejected;  // claims the router does not grant (task done, revoked, newer)
  MSGPACK_DEFINE(heartbeat_ms, liveness, rejected);
};

struct Assignment {
  Id task;
  uint32_t attempt = 0;
  Id group;
  std::string ref;
  std::string queue;
  std::string kind;
  std::string payload;
  uint32_t soft_limit_ms = 0;  // 0 = none
  uint32_t hard_limit_ms = 0;
  std::string trace;  // TaskSpec::trace
  std::string inputs;  // TaskRecord::inputs
  // A task of a queue with a model pool (router/router.h PoolConfig): the server the router
  // gave it a place on, and the pool's model; empty: none (the worker's own [ollama] config).
  std::string endpoint = {};
  std::string model = {};
  MSGPACK_DEFINE(task, attempt, group, ref, queue, kind, payload, soft_limit_ms, hard_limit_ms, trace, inputs,
                 endpoint, model);
};

struct Tasks {
  static constexpr Command kCommand = Command::kTasks;
  std::vector<Assignment> tasks;
  MSGPACK_DEFINE(tasks);
};

enum class OutcomeStatus : uint8_t {
  kSucceeded = 0,
  kFailed = 1,    // permanent: no retry
  kRetry = 2,     // transient: retry if attempts remain
  kReturned = 3,  // not run (warm shutdown, or recalled); requeue without counting an attempt
};

struct Outcome {
  Id task;
  uint32_t attempt = 0;
  OutcomeStatus status = OutcomeStatus::kSucceeded;
  std::string result;  // JSON text
  std::string error;
  uint64_t runtime_us = 0;
  // kRetry: the delay the failed service asked for (an HTTP Retry-After), used instead of the
  // queue's backoff; 0 = none. Last, so an outcome without it (an older worker) decodes as 0.
  uint64_t retry_after_ms = 0;
  // What the attempt spent of a model's tokens (prompt + completion; the agent kind reports
  // it), counted against its group's budget. 0 = none or not known.
  uint64_t tokens = 0;
  // kRetry of a pooled task (Assignment::endpoint): its server refused it (no connection, or
  // 429/503 before any reply); the router takes that server out of the pool for this long and
  // gives the task to another one. 0 = the server is not at fault.
  uint64_t host_cooldown_ms = 0;
  MSGPACK_DEFINE(task, attempt, status, result, error, runtime_us, retry_after_ms, tokens, host_cooldown_ms);
};

// Worker → router: these tasks left the worker's prefetch buffer and began to run on a slot
// (sent once per loop turn for the tasks started since; again for every running task after a
// Welcome, so a restarted router knows what runs). A task leased but not started is reserved.
struct Started {
  static constexpr Command kCommand = Command::kStarted;
  std::vector<Claim> claims;
  MSGPACK_DEFINE(claims);
};

struct Results {
  static constexpr Command kCommand = Command::kResults;
  std::vector<Outcome> outcomes;
  MSGPACK_DEFINE(outcomes);
};

struct ResultsAck {
  static constexpr Command kCommand = Command::kResultsAck;
  std::vector<Claim> claims;
  MSGPACK_DEFINE(claims);
};

struct Heartbeat {
  static constexpr Command kCommand = Command::kHeartbeat;
  uint32_t busy = 0;      // worker → router: slots running a task
  uint32_t capacity = 0;  // worker → router: new credit (autoscale); 0 = unchanged
  uint32_t slots = 0;     // worker → router: slots now (autoscale, pool resize); 0 = unchanged
  // worker → router, every few seconds: the worker process's resident memory and its host's
  // 1-minute load average × 1000 (0: not sampled in this beat).
  uint32_t rss_kb = 0;
  uint32_t load_milli = 0;
  MSGPACK_DEFINE(busy, capacity, slots, rss_kb, load_milli);
};

// Router → worker: "I do not know you": close the socket, reconnect, send Ready.
struct Disconnect {
  static constexpr Command kCommand = Command::kDisconnect;
  std::string reason;
  MSGPACK_DEFINE(reason);
};

// Worker → router: warm shutdown; the worker takes no more tasks.
struct Bye {
  static constexpr Command kCommand = Command::kBye;
  std::string reason;
  MSGPACK_DEFINE(reason);
};

// Router → worker: stop these tasks (revoked with terminate); their results will be ignored.
struct Revoke {
  static constexpr Command kCommand = Command::kRevoke;
  std::vector<Claim> claims;
  MSGPACK_DEFINE(claims);
};

// Router → worker: an operator's request. op "shutdown": warm shutdown; op "pool": change the
// number of slots by `delta` (at least 1 stays).
struct WorkerCommand {
  static constexpr Command kCommand = Command::kWorkerCommand;
  std::string op;
  int32_t delta = 0;
  MSGPACK_DEFINE(op, delta);
};

// Router → worker: give these reserved tasks back (work stealing: another worker has a free
// slot while they wait behind busy ones). The worker returns each claim it has not started as
// an Outcome with status kReturned; a claim already running, or unknown, is ignored.
struct Recall {
  static constexpr Command kCommand = Command::kRecall;
  std::vector<Claim> claims;
  MSGPACK_DEFINE(claims);
};

// ---------------------------------------------------------------------------------------------
// Events PUB

struct EventBatch {
  static constexpr Command kCommand = Command::kEventBatch;
  Id log_id;
  std::vector<Event> events;  // consecutive seqs
  MSGPACK_DEFINE(log_id, events);
};

// What a running task writes as it goes (docs/STREAMING.md): an agent's tokens and tool steps,
// a process handler's stderr. Worker → router, and the router forwards it on the events PUB.
// Best effort and not durable: it is not in the event log, a message lost on the way shows as
// a jump in `seq`, and what a task keeps is in its result.
enum class OutputType : uint8_t {
  kText = 0,  // model tokens, as they arrive
  kStep = 1,  // one JSON object: a tool call, its outcome, a check
  kLog = 2,   // a process handler's stderr
};
inline constexpr uint8_t kOutputTypeCount = 3;
std::string_view output_type_name(OutputType type);
inline constexpr size_t kMaxOutputChunkBytes = 16 * 1024;  // the router cuts a longer text
inline constexpr size_t kMaxOutputChunks = 256;            // per message; the router drops the rest
struct OutputChunk {
  Id task;
  uint32_t attempt = 0;
  uint32_t seq = 0;  // per attempt, from 1
  uint8_t type = 0;  // OutputType
  std::string text;
  uint64_t ts_ms = 0;  // unix ms, when the worker took it
  MSGPACK_DEFINE(task, attempt, seq, type, text, ts_ms);
};
struct Output {
  static constexpr Command kCommand = Command::kOutput;
  std::vector<OutputChunk> chunks;
  MSGPACK_DEFINE(chunks);
};

// Sent once a second when idle so subscribers notice lost tail events and a dead router.
struct Hugz {
  static constexpr Command kCommand = Command::kHugz;
  Id log_id;
  uint64_t head_seq = 0;
  MSGPACK_DEFINE(log_id, head_seq);
};

using Message =
    std::variant<Submit, GetTask, GetGroup, WaitTasks, Control, Replay, Confirm, SubmitAck,
                 TaskInfo, GroupInfo, ControlReply, EventPage, Error, Ready, Welcome, Tasks,
                 Results, ResultsAck, Heartbeat, Disconnect, Bye, Revoke, WorkerCommand, Started, EventBatch,
                 Hugz, Recall, Output>;

Command command_of(const Message& message);

// The two frames of a message.
struct Frames {
  std::string header;
  std::string body;
};

Frames encode(const Message& message);
// Decodes F0 and F1. Never throws.
Result<Message> decode(std::string_view header, std::string_view body);

}  // namespace zb::proto

// msgpack adaptors for the domain types: Id is a 16-byte bin; enums are range-checked bytes.
namespace msgpack {
MSGPACK_API_VERSION_NAMESPACE(MSGPACK_DEFAULT_API_NS) {
namespace adaptor {

// An operation without arguments (or without a reply body) travels as nil.
template <typename Stream, typename T>
void pack_alternative(packer<Stream>& o, const T& value) {
  if constexpr (std::is_same_v<T, std::monostate>) o.pack_nil();
  else o.pack(value);
}

template <>
struct convert<zb::Id> {
  const msgpack::object& operator()(const msgpack::object& o, zb::Id& v) const;
};
template <>
struct pack<zb::Id> {
  template <typename Stream>
  packer<Stream>& operator()(packer<Stream>& o, const zb::Id& v) const {
    o.pack_bin(zb::Id::kSize);
    o.pack_bin_body(v.bytes().data(), zb::Id::kSize);
    return o;
  }
};

template <>
struct convert<zb::TaskState> {
  const msgpack::object& operator()(const msgpack::object& o, zb::TaskState& v) const;
};
template <>
struct pack<zb::TaskState> {
  template <typename Stream>
  packer<Stream>& operator()(packer<Stream>& o, const zb::TaskState& v) const {
    return o.pack_uint8(static_cast<uint8_t>(v));
  }
};

template <>
struct convert<zb::proto::EventType> {
  const msgpack::object& operator()(const msgpack::object& o, zb::proto::EventType& v) const;
};
template <>
struct pack<zb::proto::EventType> {
  template <typename Stream>
  packer<Stream>& operator()(packer<Stream>& o, const zb::proto::EventType& v) const {
    return o.pack_uint8(static_cast<uint8_t>(v));
  }
};

template <>
struct convert<zb::proto::OutcomeStatus> {
  const msgpack::object& operator()(const msgpack::object& o, zb::proto::OutcomeStatus& v) const;
};
template <>
struct pack<zb::proto::OutcomeStatus> {
  template <typename Stream>
  packer<Stream>& operator()(packer<Stream>& o, const zb::proto::OutcomeStatus& v) const {
    return o.pack_uint8(static_cast<uint8_t>(v));
  }
};

// Control and ControlReply: the args or reply is converted as the struct `op` names.
template <>
struct convert<zb::proto::Control> {
  const msgpack::object& operator()(const msgpack::object& o, zb::proto::Control& v) const;
};
template <>
struct pack<zb::proto::Control> {
  template <typename Stream>
  packer<Stream>& operator()(packer<Stream>& o, const zb::proto::Control& v) const {
    o.pack_array(5);
    o.pack(v.corr);
    o.pack(v.op);
    o.pack(std::string_view(zb::proto::kTypedControlMarker));
    o.pack(v.deadline_ms);
    std::visit([&](const auto& a) { pack_alternative(o, a); }, v.args);
    return o;
  }
};
template <>
struct convert<zb::proto::ControlReply> {
  const msgpack::object& operator()(const msgpack::object& o, zb::proto::ControlReply& v) const;
};
template <>
struct pack<zb::proto::ControlReply> {
  template <typename Stream>
  packer<Stream>& operator()(packer<Stream>& o, const zb::proto::ControlReply& v) const {
    o.pack_array(4);
    o.pack(v.corr);
    o.pack(std::string_view());
    o.pack(v.op);
    std::visit([&](const auto& r) { pack_alternative(o, r); }, v.reply);
    return o;
  }
};

}  // namespace adaptor
}  // MSGPACK_API_VERSION_NAMESPACE
}  // namespace msgpack
