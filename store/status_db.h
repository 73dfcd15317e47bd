// The store's own LMDB: task, group and counter status built from the router's events
// (internal to store/).
//
// Layout:
//   tasks        task id → msgpack TaskStatus
//   group_tasks  group id (16 B) + seq (8 B BE) → task id: a group's tasks in submission order
//   groups       group id → msgpack GroupStatus, counters updated per event (O(1) status)
//   expiry       finished ms (8 B BE) + kind (0 task, 1 group) + id → empty: deleted when the
//                router's results-expired event passes that time
//   meta         "log_id" → the router's log id; "applied" → last applied event seq;
//                "counts" → msgpack Counters
// Every event is applied in the same transaction that advances "applied", so a store killed
// at any point resumes exactly where its last commit left it.
#pragma once

#include <atomic>
#include <optional>
#include <unordered_map>
#include <string>
#include <vector>

#include "common/lmdb.h"
#include "common/protocol.h"

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
  MSGPACK_DEFINE(id, group, ref, queue, kind, state, attempt, worker, payload, result, error, created_ms,
                 started_ms, finished_ms, runtime_us);
};

// A group's counters: the same record the router keeps.
using GroupStatus = proto::GroupRecord;

// Totals for /metrics.
struct Counters {
  uint64_t received = 0, started = 0, succeeded = 0, failed = 0, retried = 0, revoked = 0;
  // Runtime histogram of finished tasks: bucket i counts runtimes <= kRuntimeBucketsMs[i].
  std::vector<uint64_t> runtime_buckets;
  uint64_t runtime_sum_us = 0;
  MSGPACK_DEFINE(received, started, succeeded, failed, retried, revoked, runtime_buckets, runtime_sum_us);
};
inline constexpr double kRuntimeBucketsMs[] = {0.1, 0.5, 1, 5, 10, 50, 100, 500, 1000, 5000, 30000, 300000};

class StatusDb {
 public:
  static Result<StatusDb> open(const std::string& dir);

  const Id& log_id() const { return log_id_; }
  // Thread-safe: HTTP threads read it while the follower applies.
  uint64_t applied() const { return std::atomic_ref<uint64_t>(const_cast<uint64_t&>(applied_)).load(); }

  // Applies events in one transaction. Events at or below applied() are skipped; the caller
  // guarantees the rest are consecutive.
  Status apply(const Id& log_id, const std::vector<proto::Event>& events);
  // Forgets everything (the router's log is a new one).
  Status reset(const Id& log_id);

  Result<std::optional<TaskStatus>> task(const Id& id);
  Result<std::optional<GroupStatus>> group(const Id& id);
  // A group's tasks in submission order, from `offset`, at most `limit`.
  Result<std::vector<TaskStatus>> group_tasks(const Id& id, size_t offset, size_t limit);
  Result<Counters> counters();

 private:
  explicit StatusDb(lmdb::Env env) : env_(std::move(env)) {}
  // Groups touched by one apply() batch: read once, written once at the end.
  using GroupCache = std::unordered_map<Id, GroupStatus, IdHash>;
  Result<GroupStatus*> cached_group(lmdb::Txn& txn, GroupCache& cache, const Id& id);
  Status apply_one(lmdb::Txn& txn, const proto::Event& ev, Counters& counts, GroupCache& groups);
  Status put_expiry(lmdb::Txn& txn, uint64_t at_ms, uint8_t kind, const Id& id);
  Status expire(lmdb::Txn& txn, uint64_t before_ms, GroupCache& groups);

  lmdb::Env env_;
  lmdb::Dbi tasks_ = 0, group_tasks_ = 0, groups_ = 0, meta_ = 0, expiry_ = 0;
  Id log_id_;
  alignas(std::atomic_ref<uint64_t>::required_alignment) uint64_t applied_ = 0;  // via atomic_ref
};

}  // namespace zb::store
