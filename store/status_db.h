// The store's own LMDB: task, group and counter status built from the router's events
// (internal to store/). A projection: each event says what the router decided (a task's new
// state, a group's whole record), and the store applies it; it never re-derives a count the
// router keeps.
//
// Layout:
//   tasks        task id → msgpack TaskStatus
//   group_tasks  group id (16 B) + seq (8 B BE) → task id: a group's tasks in submission order
//   groups       group id → msgpack GroupStatus: the record of the group's last group-updated
//                event, which the router writes once per turn for each group that changed
//   timeline     task id + seq (8 B BE) → msgpack TimelineEntry: the task's events, in order
//   group_times  created ms (8 B BE) + group id → empty: groups newest last
//   expiry       finished ms (8 B BE) + kind (0 task, 1 group) + id → empty: deleted when the
//                router's results-expired event passes that time (a group's finish time is
//                its record's)
//   stream_log   seq (8 B BE) → msgpack StreamEntry: the last stream_retention() events as
//                /api/v1/events sends them, for streams behind the in-memory ring
//   series       unix second (8 B BE) → msgpack SeriesPoint: per-second history (store/series.h)
//   workers      worker name → msgpack WorkerTotals
//   meta         "log_id" → the router's log id; "applied" → last applied event seq;
//                "counts" → msgpack Counters
// Every event is applied in the same transaction that advances "applied", so a store killed
// at any point resumes exactly where its last commit left it.
#pragma once

#include <atomic>
#include <map>
#include <optional>
#include <unordered_map>
#include <string>
#include <vector>

#include "common/lmdb.h"
#include "common/protocol.h"
#include "store/series.h"
#include "store/sse.h"

namespace zb::store {

struct TaskStatus {
  Id id;
  Id group;
  std::string ref;
  std::string queue;
  std::string kind;
  TaskState state = TaskState::kQueued;
  uint32_t attempt = 0;
  std::string worker;
  std::string payload;
  std::string result;
  std::string error;
  uint64_t created_ms = 0;
  uint64_t started_ms = 0;
  uint64_t finished_ms = 0;
  uint64_t runtime_us = 0;
  std::string trace;       // the W3C traceparent it was submitted with
  std::string unique_key;
  std::string deps;  // packed proto::Dependencies (task-received): what it waits for
  MSGPACK_DEFINE(id, group, ref, queue, kind, state, attempt, worker, payload, result, error, created_ms,
                 started_ms, finished_ms, runtime_us, trace, unique_key, deps);
};

// A group's counters: the record the router keeps, as its last group-updated event carried it
// (without the chunk bitmap).
using GroupStatus = proto::GroupRecord;

// Outcomes of one queue's (or one kind's) tasks, by life-cycle event.
struct QueueCounts {
  uint64_t received = 0, succeeded = 0, failed = 0, retried = 0, revoked = 0, started = 0;
  MSGPACK_DEFINE(received, succeeded, failed, retried, revoked, started);
};

// Totals for /metrics and the dashboard.
struct Counters {
  uint64_t received = 0, started = 0, succeeded = 0, failed = 0, retried = 0, revoked = 0;
  // Runtime histogram of finished tasks: bucket i counts runtimes <= kRuntimeBucketsMs[i].
  std::vector<uint64_t> runtime_buckets;
  uint64_t runtime_sum_us = 0;
  std::map<std::string, QueueCounts> queues;
  // Queue wait of first attempts (submitted → started), for the dashboard's latency chart.
  uint64_t wait_sum_us = 0, waits = 0;
  // Events skipped as undecodable (see StatusDb::apply).
  uint64_t skipped = 0;
  // The same outcomes by task kind.
  std::map<std::string, QueueCounts> kinds;
  // Queue wait histogram of first attempts: bucket i counts waits <= kWaitBucketsMs[i].
  std::vector<uint64_t> wait_buckets;
  MSGPACK_DEFINE(received, started, succeeded, failed, retried, revoked, runtime_buckets, runtime_sum_us, queues,
                 wait_sum_us, waits, skipped, kinds, wait_buckets);
  // Sizes the histograms to the bucket tables, as stored by any earlier version.
  void normalize();
};

// A worker's work over every session it had, by name: what the router's per-session
// counters forget when the worker or the router restarts.
struct WorkerTotals {
  uint64_t succeeded = 0, failed = 0;  // results of its handlers
  uint64_t first_ms = 0, last_ms = 0;  // its first and latest task event
  std::map<std::string, uint64_t> started;  // attempts it started, by queue
  MSGPACK_DEFINE(succeeded, failed, first_ms, last_ms, started);
  void add(const WorkerTotals& o);
};

// One event of a task's history.
struct TimelineEntry {
  uint64_t seq = 0;
  uint64_t ts_ms = 0;
  proto::EventType type = proto::EventType::kTaskReceived;
  TaskState state = TaskState::kQueued;
  uint32_t attempt = 0;
  std::string worker;
  std::string error;
  MSGPACK_DEFINE(seq, ts_ms, type, state, attempt, worker, error);
};

// What GET /api/v1/tasks filters on; empty fields match everything.
struct TaskFilter {
  std::optional<TaskState> state;
  std::string queue, kind, text;  // text: a substring of the id, the caller's id or the error
  Id group;
  uint64_t since_ms = 0, until_ms = 0;  // created within [since, until]
  Id before;                            // paging: tasks older than this id
  size_t limit = 50;
  size_t max_scan = 200000;             // records examined at most per call
};
// Histogram buckets (ms), from sub-millisecond built-ins to tasks of hours. The runtime table
// once ended at 300000; Counters::normalize() moves the +Inf count of such a record to the
// new +Inf bucket (its tasks ran longer than 5 min, how much longer it does not know).
inline constexpr double kRuntimeBucketsMs[] = {0.1,  0.5,   1,     5,      10,     50,      100,     500,
                                               1000, 5000,  30000, 300000, 900000, 1800000, 3600000, 7200000};
inline constexpr size_t kRuntimeBucketsBefore = 12;  // the table's size before it reached hours
inline constexpr double kWaitBucketsMs[] = {1,    5,     10,    50,     100,    500,     1000,    5000,
                                            10000, 30000, 60000, 300000, 900000, 1800000, 3600000, 7200000};

class StatusDb {
 public:
  static Result<StatusDb> open(const std::string& dir, const lmdb::EnvOptions& options = {});

  const Id& log_id() const { return log_id_; }
  // Thread-safe: HTTP threads read it while the follower applies.
  uint64_t applied() const { return std::atomic_ref<uint64_t>(const_cast<uint64_t&>(applied_)).load(); }
  // Events skipped as undecodable since the log began (also Counters::skipped). Thread-safe.
  uint64_t skipped() const { return std::atomic_ref<uint64_t>(const_cast<uint64_t&>(skipped_)).load(); }

  // Applies events in one transaction. Events at or below applied() are passed over; the first
  // later one may be anywhere above it (the router trimmed its log), and from there on they
  // must be consecutive: apply stops at a gap, and applied() says where to replay from.
  //
  // No event can fail the batch or end the process by its content: one whose fields do not
  // make sense (an unknown type, a state its type contradicts or outside the enum, a missing
  // id, a group-updated without exactly one record, or whose record names another group or
  // counts more tasks completed or running than it holds, a results-expired without its
  // instant) is logged, counted in skipped() and passed over, and applied() moves past it. Only LMDB errors (and running out
  // of memory) fail the batch, which then changes nothing.
  //
  // Each event applied (skipped ones too) is also written to the stream log as its
  // StreamEntry, and appended to *entries when given; the log keeps the last
  // stream_retention() sequence numbers, older entries are deleted as new ones come.
  Status apply(const Id& log_id, const std::vector<proto::Event>& events,
               std::vector<StreamEntry>* entries = nullptr);
  // Entries of the stream log with seq > after, in order: at most max_events, and no more
  // once max_bytes of frames are reached (at least one). Thread-safe.
  Result<std::vector<StreamEntry>> stream_since(uint64_t after, size_t max_events, size_t max_bytes);
  void set_stream_retention(uint64_t events) { stream_retention_ = events; }
  uint64_t stream_retention() const { return stream_retention_; }
  // Forgets every task, group and count (the router's log is a new one); keeps the per-second
  // history and the worker totals, which say what happened when, whatever the log.
  Status reset(const Id& log_id);
  // How many times reset() forgot a log, since open(): sequence numbers of different resets
  // belong to different logs. Thread-safe.
  uint64_t resets() const { return std::atomic_ref<uint64_t>(const_cast<uint64_t&>(resets_)).load(); }

  Result<std::optional<TaskStatus>> task(const Id& id);
  Result<std::optional<GroupStatus>> group(const Id& id);
  // A group's tasks in submission order, from `offset`, at most `limit`.
  Result<std::vector<TaskStatus>> group_tasks(const Id& id, size_t offset, size_t limit);
  // A page of a group's tasks in submission order: those whose submission seq is above
  // *after_seq, at most `limit`, read in one short read transaction; *after_seq is moved to
  // the last one listed. Walking a group of any size this way costs one page of memory and no
  // rescan (the exports of store/export_routes.cc).
  Result<std::vector<TaskStatus>> group_tasks_after(const Id& id, uint64_t* after_seq, size_t limit);
  Result<Counters> counters();
  // Newest first; `scanned_all` is false when max_scan stopped the search early.
  Result<std::vector<TaskStatus>> list_tasks(const TaskFilter& filter, bool* scanned_all);
  Result<std::vector<TimelineEntry>> timeline(const Id& task);
  // Groups newest first (created before `before_ms`, 0 = now), at most `limit`; running_only
  // skips finished ones.
  Result<std::vector<GroupStatus>> list_groups(size_t limit, bool running_only, uint64_t before_ms);
  // Every worker's totals by name (at most `limit` names, in name order). Thread-safe.
  Result<std::map<std::string, WorkerTotals>> worker_totals(size_t limit);
  // The per-second history between two unix seconds (store/series.h). Thread-safe.
  Result<SeriesRange> series(uint64_t from_s, uint64_t until_s, uint64_t step_s);

 private:
  explicit StatusDb(lmdb::Env env) : env_(std::move(env)) {}
  // Groups touched by one apply() batch: read once, written once at the end.
  using GroupCache = std::unordered_map<Id, GroupStatus, IdHash>;
  Result<GroupStatus*> cached_group(lmdb::Txn& txn, GroupCache& cache, const Id& id);
  Status apply_checked(lmdb::Txn& txn, const proto::Event& ev, Counters& counts, GroupCache& groups);
  // kBadRequest: the event is undecodable (skipped by apply); other errors fail the batch.
  Status apply_one(lmdb::Txn& txn, const proto::Event& ev, Counters& counts, GroupCache& groups);
  Status put_expiry(lmdb::Txn& txn, uint64_t at_ms, uint8_t kind, const Id& id);
  Status del_prefix(lmdb::Txn& txn, lmdb::Dbi dbi, std::string_view prefix);
  Status expire(lmdb::Txn& txn, uint64_t before_ms, GroupCache& groups);
  Status trim_stream_log(lmdb::Txn& txn, uint64_t applied, size_t max_deletes);

  lmdb::Env env_;
  lmdb::Dbi tasks_ = 0, group_tasks_ = 0, groups_ = 0, meta_ = 0, expiry_ = 0, timeline_ = 0, group_times_ = 0,
             stream_log_ = 0, series_ = 0, workers_ = 0;
  SeriesBatch series_batch_;  // the events of the apply() under way, by second
  std::map<std::string, WorkerTotals> worker_batch_;  // and by worker
  Status merge_workers(lmdb::Txn& txn);
  uint64_t stream_retention_ = 200000;
  Id log_id_;
  alignas(std::atomic_ref<uint64_t>::required_alignment) uint64_t applied_ = 0;  // via atomic_ref
  alignas(std::atomic_ref<uint64_t>::required_alignment) uint64_t skipped_ = 0;  // via atomic_ref
  alignas(std::atomic_ref<uint64_t>::required_alignment) uint64_t resets_ = 0;   // via atomic_ref
};

}  // namespace zb::store
