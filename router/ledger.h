// The router's durable state in LMDB, and the one write transaction of a loop turn.
//
// Layout (named databases; integers big-endian so memcmp order is numeric order):
//   tasks   task id (16 B, time-ordered)   → msgpack TaskRecord. Written at submit and at each
//                                             change of state but a start (its lease is that).
//   leases  task id                         → msgpack Lease: the task is running (or was, when
//                                             the router stopped) on that worker session.
//   groups  group id                        → msgpack GroupRecord, counters kept per result.
//   events  seq (8 B)                       → msgpack Event, gap-free, trimmed from the front.
//   idem    idempotency key                 → msgpack IdemRecord: the first submission's
//                                             SubmitAck and its request's fingerprint.
//   dead    task id                         → empty: the task failed for good (dead letter).
//   expiry  finished ms (8 B) + kind (1 B) + key → empty: what to delete once the result TTL
//           has passed (kind 0 task id, 1 group id, 2 idempotency key).
//   schedules  schedule name                → msgpack ScheduleRow (its spec and state; the
//                                             row's next_slot_ms is not stored).
//   firings    name + 0 + slot ms (8 B)      → msgpack ScheduleFiring: every firing, written in
//           the transaction that submits its task (router/schedules.cc).
//   unique  queue + 0 + unique key          → task id: the live (not yet terminal) task that
//                                             holds the key; deleted when it ends.
//   waits   'T' | 'G' (1 B) + what is awaited: a task or group id + the waiting task's id →
//           empty: a dependency not yet resolved (router/workflows.cc). Deleted when resolved.
//   members group id + task seq (8 B)       → task id: the members of a group made with
//                                             callbacks (GroupRecord::indexed), in order.
//   meta    "log_id" → Id; "seq" → last event seq; "task_seq" → last task seq;
//           "confirmed" → highest seq the store confirmed.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "common/lmdb.h"
#include "common/protocol.h"
#include "router/durability.h"

namespace zb::router {

// A run of events with consecutive seqs, each as its msgpack bytes in the log: the body of an
// EventBatch is these bytes behind an array header (encode_batch), so a turn's events are
// packed once, for the log, and not again for the PUB socket.
// A task record from its bytes in the `tasks` database: a reader of the layout this build
// writes, with msgpack's generic conversion for any other (older records, corrupt bytes: a
// Status). tests/router_test.cc checks both against each other.
Result<proto::TaskRecord> decode_task_record(std::string_view bytes);

class PackedEvents {
 public:
  void append(std::string_view packed) {
    bytes_.append(packed);
    ++count_;
  }
  size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  void clear() {
    bytes_.clear();
    count_ = 0;
  }
  // The EventBatch message of these events (what the store decodes as proto::EventBatch).
  proto::Frames encode_batch(const Id& log_id) const;
  // The events as structs (tests and diagnostics; the loop never needs them).
  std::vector<proto::Event> decode() const;

 private:
  std::string bytes_;
  size_t count_ = 0;
};

// The answer to an idempotency key: SubmitAck's fields (records written before fingerprints
// existed decode with a nil one), then the fingerprint of the request it answered.
struct IdemRecord {
  uint64_t corr = 0;
  Id group;
  std::vector<Id> tasks;
  bool duplicate = false;
  Id fingerprint;
  std::vector<Id> callbacks;  // SubmitAck::callbacks
  MSGPACK_DEFINE(corr, group, tasks, duplicate, fingerprint, callbacks);
};

// A lease as written: the attempt and the worker session holding it. (Leases written by
// earlier versions also carry the worker's name and the lease time; they decode, unread.)
struct Lease {
  uint32_t attempt = 0;
  Id session;
  // The model pool's server and model the lease holds a place on (empty: none), so that a
  // restarted router counts it again. Last: an older record decodes without them.
  std::string host = {};
  std::string model = {};
  MSGPACK_DEFINE(attempt, session, host, model);
};

struct Meta {
  Id log_id;
  uint64_t seq = 0;        // last event seq written
  uint64_t task_seq = 0;   // last task seq assigned
  uint64_t confirmed = 0;  // highest event seq the store confirmed
  uint64_t first_seq = 1;  // oldest event still in the log
};

// With EnvOptions::sync, LMDB does not sync a commit itself: a Durability thread
// (router/durability.h) makes commits durable in rounds, and durable() says how far it got.
// Without it, durable() is the last commit (what the page cache has is all there is).
class Ledger {
 public:
  static Result<Ledger> open(const std::string& dir, const lmdb::EnvOptions& options);

  lmdb::Env& env() { return env_; }
  const Meta& meta() const { return meta_; }
  Meta& meta() { return meta_; }

  // The turn's write transaction: begin, many operations, commit (persisting meta). A failed
  // commit leaves LMDB as it was before begin(); meta() then still holds the turn's changes
  // until reload_meta() reads it back from the database.
  Status begin();
  Status commit();
  void abort();
  Status reload_meta();
  bool in_turn() const { return txn_.has_value(); }

  // The LMDB transaction id of the last successful commit, and of the newest durable one.
  uint64_t last_commit() const { return last_commit_; }
  uint64_t durable() const { return durability_ ? durability_->durable() : last_commit_; }
  // Readable when durable() advanced (-1 without a sync thread); drain_durable() empties it.
  int durable_fd() const { return durability_ ? durability_->wake_fd() : -1; }
  void drain_durable() {
    if (durability_) durability_->drain();
  }
  // Why commits stopped becoming durable (the router must stop); ok otherwise.
  Status durability_error() const { return durability_ ? durability_->error() : Status::ok(); }
  bool wait_durable(uint64_t txn, int timeout_ms) { return !durability_ || durability_->wait(txn, timeout_ms); }
  // What a start-up after an OS crash restored (router/durability.h).
  const RestoreReport& restored() const { return restored_; }
  struct Counters {
    uint64_t commits = 0, records = 0, syncs = 0;
  };
  proto::DurationHistogram sync_time() const { return durability_ ? durability_->sync_time() : proto::DurationHistogram{}; }
  Counters counters() const {
    return {commits_, records_, durability_ ? durability_->syncs() : 0};  // nosync: none
  }

  Result<std::optional<proto::TaskRecord>> get_task(const Id& id);
  Status put_task(const proto::TaskRecord& task);
  Status put_lease(const Id& id, const Lease& lease);
  Status del_lease(const Id& id);
  Result<std::optional<proto::GroupRecord>> get_group(const Id& id);
  Status put_group(const proto::GroupRecord& group);
  Result<std::optional<IdemRecord>> get_idem(const std::string& key);
  Status put_idem(const std::string& key, const IdemRecord& record);
  Status del_task(const Id& id);
  Status del_group(const Id& id);
  Status del_idem(const std::string& key);
  // Unique keys: the live task holding (queue, key). del_unique deletes only task's own entry.
  Result<std::optional<Id>> get_unique(std::string_view queue, std::string_view key);
  Status put_unique(std::string_view queue, std::string_view key, const Id& task);
  Status del_unique(std::string_view queue, std::string_view key, const Id& task);

  // Dependencies (router/workflows.cc): `waiter` waits for the task or group `awaited`.
  Status put_wait(bool group, const Id& awaited, const Id& waiter);
  Status del_wait(bool group, const Id& awaited, const Id& waiter);
  // The tasks waiting for `awaited`, in id order.
  Status waiters_of(bool group, const Id& awaited, std::vector<Id>& out);
  // Every unresolved dependency (startup recovery).
  Status for_each_wait(const std::function<void(bool group, const Id& awaited, const Id& waiter)>& fn);
  // Members of an indexed group, in submission order; fn returns false to stop.
  Status put_member(const Id& group, uint64_t seq, const Id& task);
  Status for_each_member(const Id& group, const std::function<bool(const Id&)>& fn);
  Status del_members(const Id& group);

  // Dead letters: tasks that failed for good.
  Status put_dead(const Id& id);
  Status del_dead(const Id& id);
  Result<uint64_t> count_dead();
  // Visits dead letters in id order from the first id > after (nil = from the start) until fn
  // returns false.
  Status for_each_dead(const Id& after, const std::function<bool(const Id&)>& fn);

  // Result expiry. `at_ms` is when the thing finished; sweep_expired visits (and deletes)
  // entries with at_ms <= upto_ms, oldest first, at most max of them.
  enum class Expiring : uint8_t { kTask = 0, kGroup = 1, kIdem = 2 };
  Status put_expiry(uint64_t at_ms, Expiring kind, std::string_view key);
  Result<size_t> sweep_expired(uint64_t upto_ms, size_t max,
                               const std::function<Status(Expiring, std::string_view, uint64_t)>& fn);

  // Assigns the next seq and appends. The event's msgpack bytes (what the log holds) are added
  // to `out`, so that the turn's EventBatch is sent without packing its events again.
  Status append_event(proto::Event& event, PackedEvents& out);
  // Events with seq > after, at most max of them.
  Result<std::vector<proto::Event>> read_events(uint64_t after, size_t max);
  // Deletes events with seq <= upto, at most max of them; advances meta.first_seq.
  Status trim_events(uint64_t upto, size_t max);

  // Periodic schedules (router/schedules.cc). Firings of a name are visited oldest slot first.
  Status put_schedule(const proto::ScheduleRow& row);
  Status del_schedule(const std::string& name);  // and its firings
  Status for_each_schedule(const std::function<void(proto::ScheduleRow&&)>& fn);
  Status put_firing(const std::string& name, const proto::ScheduleFiring& firing);
  Result<bool> has_firing(const std::string& name, uint64_t slot_ms);
  Status for_each_firing(const std::string& name, const std::function<bool(const proto::ScheduleFiring&)>& fn);
  // At most `limit` firings of `name` whose slot is before `before_ms` (0: any), newest first.
  Result<std::vector<proto::ScheduleFiring>> firings_before(const std::string& name, uint64_t before_ms, size_t limit);
  // Deletes the oldest firings of `name` beyond the newest `keep`.
  Status trim_firings(const std::string& name, size_t keep);

  // Visits every task record (startup recovery), in id order, in a read transaction.
  Status for_each_task(const std::function<void(const proto::TaskRecord&)>& fn);
  Status for_each_lease(const std::function<void(const Id&, const Lease&)>& fn);

 private:
  Ledger(lmdb::Env env) : env_(std::move(env)) {}
  Status load_meta();
  lmdb::Txn& txn() { return *txn_; }

  lmdb::Env env_;
  std::unique_ptr<Durability> durability_;  // declared after env_: stopped before it closes
  RestoreReport restored_;
  uint64_t last_commit_ = 0;
  uint64_t commits_ = 0, records_ = 0;
  std::optional<lmdb::Txn> txn_;
  lmdb::Dbi tasks_ = 0, leases_ = 0, groups_ = 0, events_ = 0, idem_ = 0, meta_db_ = 0, dead_ = 0,
            expiry_ = 0, schedules_ = 0, firings_ = 0, unique_ = 0, waits_ = 0, members_ = 0;
  Meta meta_;
  msgpack::sbuffer buffer_;  // reused for every encode
};

}  // namespace zb::router
