// Where the router's tasks are, in memory: ready to run (per queue, in dispatch order),
// waiting for a time (the ETA heap: countdowns, ETAs, retry backoffs) or leased to a worker
// session; and each queue's policy (rate limits, retry delays). Only ids, order and leases
// live here: records stay in LMDB (ledger.h), read when a task is dispatched or changes.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <queue>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/id.h"
#include "router/ready_queue.h"
#include "router/router.h"

namespace zb::router {

// A task in flight. `routing_id` empty = orphan: leased before a router restart (or by a
// session that reconnected), waiting for its worker to re-claim it until `grace_deadline_ms`.
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
  // When it was handed out (steady µs), and whether its worker had a free slot then: its
  // start notice then measures the round trip (the credit window).
  uint64_t dispatched_us = 0;
  bool to_free_slot = false;
  // Work stealing: the worker a Recall was sent for (at most one outstanding per lease).
  std::string recall_for = {};
  // The model pool server (TaskTable::slot) it holds a place on; -1: none.
  int32_t slot = -1;
};

// One server of the model pools, keyed by (host, model): its places and who holds them.
struct PoolSlot {
  std::string host, model;
  uint32_t parallel = 0;  // the largest `parallel` of the pools naming it
  uint32_t running = 0;   // leases holding a place
  uint64_t cool_until_ms = 0;  // steady clock: refused a task; takes none before
  bool open(uint64_t now) const { return running < parallel && cool_until_ms <= now; }
};

// Who ran a task whose lease was requeued (its worker was lost): that session's late result,
// or its re-claim in READY, still counts while the task waits in its queue.
struct PreviousHolder {
  Id session;
  uint32_t attempt = 0;
};

struct ScheduledTask {
  uint64_t eta_ms;
  uint64_t key;
  size_t queue;
  Id task;
  Id group;
  bool operator>(const ScheduledTask& o) const { return eta_ms > o.eta_ms; }
};

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
// A worker's outcome may instead carry the delay a service asked for (proto::Outcome::
// retry_after_ms); the router honours it up to this bound.
inline constexpr uint64_t kMaxRetryAfterMs = 3600 * 1000;
// How many times a pooled task may be refused by its pool's servers (Outcome::host_cooldown_ms)
// and go to another without spending a retry.
inline constexpr uint32_t kMaxPoolRefusals = 20;
uint64_t retry_delay_ms(const QueueConfig& queue, uint32_t retries, uint64_t random);
// The class of an error text: the identifier before the first ':' ("TimeoutError: x" →
// "TimeoutError"); empty when the text does not start with one.
std::string_view error_class(std::string_view error);
// True when a failure with this error is retried by the queue's retry_on list.
bool retry_matches(const QueueConfig& queue, std::string_view error);

class TaskTable {
 public:
  // `queues` are checked already (check_queue_configs): names unique, policies in range.
  TaskTable(const std::vector<QueueConfig>& queues, const std::vector<PoolConfig>& pools, uint64_t now_steady_ms);

  size_t queue_count() const { return configs_->size(); }
  const QueueConfig& config(size_t q) const { return (*configs_)[q]; }
  std::optional<size_t> find_queue(std::string_view name) const;

  // Ready queues.
  ReadyQueue& ready(size_t q) { return ready_[q]; }
  const ReadyQueue& ready(size_t q) const { return ready_[q]; }
  // The queue a worker serving `served` takes its next task from: the head that comes first
  // among those with a rate token and, for a pooled queue, a free place on one of its
  // servers — offered only to a worker with a free slot (`free_slot`), so that no place is
  // held by a task waiting in a prefetch buffer. Takes the rate token. nullopt: nothing may
  // run now.
  std::optional<size_t> pick(std::span<const size_t> served, bool free_slot);
  // Also the clock pick() and take_slot() read.
  void refill_rates(uint64_t now_steady_ms);
  // Milliseconds until a rate-limited queue holding tasks may start one, or a pooled one whose
  // servers all cool down (nullopt: none waits for time).
  std::optional<uint64_t> ms_until_rate_opens(uint64_t now_steady_ms) const;

  // Model pools. The server a task of pooled queue `q` takes a place on now: the open one
  // with the most places free (relatively), ties in turn. nullopt: none (or no pool). The
  // place is taken by add_lease() with the lease's slot, given back by end_lease().
  std::optional<int32_t> take_slot(size_t q);
  bool pooled(size_t q) const { return queue_pool_[q] >= 0; }
  bool pool_open(size_t q) const;
  std::optional<int32_t> find_slot(std::string_view host, std::string_view model) const;
  const PoolSlot& slot(int32_t s) const { return slots_[static_cast<size_t>(s)]; }
  // The server refused a task: no task goes to it for `ms` from `now_steady_ms`.
  void cool(int32_t s, uint64_t ms, uint64_t now_steady_ms);
  std::vector<proto::PoolStats> pool_stats(uint64_t now_steady_ms) const;

  // The ETA heap. A task revoked while in it stays in the heap, skipped when due.
  void schedule(const ScheduledTask& t) { scheduled_.push(t); }
  std::optional<ScheduledTask> pop_due(uint64_t now_unix_ms);
  std::optional<uint64_t> next_due_ms() const;
  void revoke_scheduled(const Id& task) { revoked_scheduled_.insert(task); }
  // Visits the live entries in ETA order (inspect).
  template <typename F>
  void for_each_scheduled(F&& fn) const {
    for (auto copy = scheduled_; !copy.empty(); copy.pop())
      if (!revoked_scheduled_.count(copy.top().task)) fn(copy.top());
  }
  size_t scheduled_size() const { return scheduled_.size(); }

  // Leases: `running(q)` counts them per queue.
  LeaseState* lease(const Id& task);
  void add_lease(const Id& task, LeaseState lease);
  std::optional<LeaseState> end_lease(const Id& task);
  const std::unordered_map<Id, LeaseState, IdHash>& leases() const { return leases_; }
  uint64_t running(size_t q) const { return running_[q]; }
  // The earliest grace deadline of an orphan lease (0: none).
  uint64_t orphan_deadline_ms() const { return orphan_deadline_ms_; }
  void set_orphan_deadline_ms(uint64_t ms) { orphan_deadline_ms_ = ms; }

  // The session that held a task before it was requeued.
  void note_requeued(const Id& task, PreviousHolder who) { requeued_from_[task] = who; }
  const PreviousHolder* previous_holder(const Id& task) const;
  void forget_previous_holder(const Id& task) { requeued_from_.erase(task); }

 private:
  const std::vector<QueueConfig>* configs_;
  const std::vector<PoolConfig>* pools_;
  std::vector<PoolSlot> slots_;
  std::vector<std::vector<int32_t>> pool_slots_;  // per pool, its servers
  std::vector<size_t> pool_turn_;                 // per pool, where ties start
  std::vector<int32_t> queue_pool_;               // per queue, its pool (-1: none)
  uint64_t now_ms_ = 0;
  struct NameHash {
    using is_transparent = void;
    size_t operator()(std::string_view name) const { return std::hash<std::string_view>{}(name); }
  };
  std::unordered_map<std::string, size_t, NameHash, std::equal_to<>> index_;
  std::vector<ReadyQueue> ready_;
  std::vector<RateBucket> rates_;
  std::vector<uint64_t> running_;
  std::vector<size_t> open_;  // scratch for pick()
  std::priority_queue<ScheduledTask, std::vector<ScheduledTask>, std::greater<ScheduledTask>> scheduled_;
  std::unordered_set<Id, IdHash> revoked_scheduled_;
  std::unordered_map<Id, LeaseState, IdHash> leases_;
  std::unordered_map<Id, PreviousHolder, IdHash> requeued_from_;
  uint64_t orphan_deadline_ms_ = 0;
};

}  // namespace zb::router
