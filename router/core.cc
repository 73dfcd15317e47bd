// The core's turn steps, recovery and the one transition function.
#include "router/core.h"

#include <algorithm>
#include <random>

#include "common/clock.h"
#include "common/log.h"

namespace zb::router {
namespace {

constexpr size_t kTrimPerSecond = 200000;

proto::EventType event_for(TaskState to) {
  switch (to) {
    case TaskState::kScheduled: return proto::EventType::kTaskScheduled;
    case TaskState::kQueued: return proto::EventType::kTaskQueued;
    case TaskState::kWaiting: return proto::EventType::kTaskQueued;  // not reached: a retry to waiting is queued's event
    case TaskState::kStarted: return proto::EventType::kTaskStarted;
    case TaskState::kRetrying: return proto::EventType::kTaskRetried;
    case TaskState::kSucceeded: return proto::EventType::kTaskSucceeded;
    case TaskState::kFailed: return proto::EventType::kTaskFailed;
    case TaskState::kRevoked: return proto::EventType::kTaskRevoked;
  }
  return proto::EventType::kTaskQueued;
}

}  // namespace

proto::Event task_event(const proto::TaskRecord& rec, proto::EventType type, TaskState state) {
  proto::Event ev;
  ev.type = type;
  ev.state = state;
  ev.from = state;
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

Core::Core(const RouterOptions& options, Ledger& ledger, Stats& stats)
    : options_(options), ledger_(ledger), stats_(stats), tasks_(options.queues, options.pools, now_steady_ms()), groups_(tasks_) {
  random_state_ = (uint64_t{std::random_device{}()} << 32) ^ std::random_device{}();
}

Status Core::recover() {
  const uint64_t grace = now_steady_ms() + options_.reclaim_grace_ms;
  std::unordered_map<Id, Lease, IdHash> persisted;
  if (Status s = ledger_.for_each_lease([&](const Id& id, const Lease& l) { persisted[id] = l; }); !s) return s;
  if (Status s = ledger_.begin(); !s) return s;
  size_t queued = 0, orphaned = 0, waiting = 0;
  std::vector<proto::TaskRecord> live;
  Status scan = ledger_.for_each_task([&](const proto::TaskRecord& rec) {
    if (!is_terminal(rec.state)) live.push_back(rec);
  });
  if (!scan) {
    ledger_.abort();
    return scan;
  }
  for (auto& rec : live) {
    auto q = tasks_.find_queue(rec.queue);
    if (!q) {
      // A queue removed from the configuration: the task stays in LMDB, visible to status,
      // and runs again once the queue is declared.
      spdlog::warn("router task={} queue={} reason=queue-not-declared", rec.id.to_string(), rec.queue);
      continue;
    }
    const uint64_t key = order_key(rec.priority, rec.seq);
    auto group = group_of(rec);
    if (!group) {
      ledger_.abort();
      return group.status();
    }
    if (auto l = persisted.find(rec.id); l != persisted.end()) {
      LeaseState lease{"", l->second.attempt, rec.group, *q, key, grace, 0, l->second.session};
      // Its place on a model pool's server, still held (nowhere when the pools changed).
      if (!l->second.host.empty()) lease.slot = tasks_.find_slot(l->second.host, l->second.model).value_or(-1);
      tasks_.add_lease(rec.id, std::move(lease));
      if (*group) groups_.recovered_lease(**group);
      tasks_.set_orphan_deadline_ms(grace);
      ++orphaned;
    } else if (rec.state == TaskState::kWaiting) {
      waiting_[rec.id] = rec.group;  // in no queue until what it waits for has ended
      ++waiting;
    } else if (rec.state == TaskState::kScheduled || rec.state == TaskState::kRetrying) {
      // Due or not, through the heap: the first turn queues those that are due.
      tasks_.schedule({rec.eta_ms, key, *q, rec.id, rec.group});
      ++waiting;
    } else if (*group) {
      groups_.enqueue(**group, *q, key, rec.id);
      ++queued;
    } else {
      tasks_.ready(*q).push(key, rec.id, rec.group);
      ++queued;
    }
  }
  groups_.recount_running(tasks_.leases());
  // A group revoked before the restart: its queued tasks are swept again.
  groups_.for_each([&](GroupState& g) {
    if (g.record.revoked_ms && !g.record.ready()) sweeping_.insert(g.record.id);
  });
  if (Status s = recover_dependencies(); !s) {
    ledger_.abort();
    return s;
  }
  if (Status s = load_schedules(); !s) {
    ledger_.abort();
    return s;
  }
  ledger_.abort();
  spdlog::info("router recovered queued={} in_flight={} scheduled={} groups={} seq={}", queued, orphaned, waiting,
               groups_.size(), ledger_.meta().seq);
  return Status::ok();
}

void Core::begin_turn() {
  turn_status_ = Status::ok();
  dirty_ = false;
}

void Core::tick(uint64_t now_steady, uint64_t now_unix) {
  (void)sweep_revoked_groups();
  if (!schedules_declared_) declare_schedules(now_unix);
  fire_schedules(now_unix);
  release_scheduled(now_unix);
  expire_workers(now_steady);
  if (tasks_.orphan_deadline_ms() && now_steady >= tasks_.orphan_deadline_ms()) requeue_orphans(now_steady);
  expire_waiters(now_steady);
}

void Core::housekeep(uint64_t now_unix) {
  const auto& meta = ledger_.meta();
  const uint64_t by_retention = meta.seq > options_.event_retention ? meta.seq - options_.event_retention : 0;
  const uint64_t upto = std::max(std::min(meta.confirmed, meta.seq), by_retention);
  if (upto >= meta.first_seq) {
    if (Status s = ledger_.trim_events(upto, kTrimPerSecond); !s) fail_turn(s);
    dirty_ = true;
  }
  expire_results(now_unix);
}

Status Core::end_turn() {
  enforce_budgets();
  settle();
  if (turn_status_)
    if (Status s = groups_.write(ledger_, options_.result_ttl_ms != 0, [&](proto::Event ev) { emit(std::move(ev)); }); !s)
      fail_turn(s);
  return turn_status_;
}

uint64_t Core::poll_timeout_ms(uint64_t now, uint64_t next_heartbeat_ms) const {
  uint64_t next = now + 100;  // stop() is noticed within this bound
  next = std::min(next, next_heartbeat_ms);
  if (!waiters_.empty()) next = std::min(next, now + 10);
  if (!sweeping_.empty()) return 0;  // a revoked group's queued tasks are still being swept
  if (next_steal_ms_) next = std::min(next, std::max(now, next_steal_ms_));
  if (auto ms = tasks_.ms_until_rate_opens(now)) next = std::min(next, now + *ms);
  for (auto due : {tasks_.next_due_ms(), next_schedule_ms()}) {
    if (!due) continue;
    const uint64_t unix_now = now_unix_ms();
    next = std::min(next, now + (*due > unix_now ? *due - unix_now : 0));
  }
  return next > now ? next - now : 0;
}

std::vector<Waiter> Core::take_waiters() {
  std::vector<Waiter> out;
  for (auto& [wid, w] : waiters_) out.push_back(std::move(w));
  for (auto& w : effects_.answered_waiters) out.push_back(std::move(w));
  waiters_.clear();
  waiters_by_task_.clear();
  effects_.answered_waiters.clear();
  return out;
}

void Core::adopt_waiters(std::vector<Waiter> waiters) {
  if (Status s = ledger_.begin(); !s) return;
  for (auto& w : waiters) {
    const uint64_t wid = next_waiter_++;
    w.pending = 0;
    for (const Id& id : w.tasks) {
      auto rec = current_task(id);
      if (rec && rec->has_value() && !is_terminal((*rec)->state)) {
        ++w.pending;
        waiters_by_task_.emplace(id, wid);
      }
    }
    if (w.pending == 0) w.deadline_ms = 0;  // answered next turn
    waiters_.emplace(wid, std::move(w));
  }
  ledger_.abort();
}

std::vector<std::string> Core::worker_ids() const {
  std::vector<std::string> out;
  for (const auto& [rid, w] : workers_.all()) out.push_back(rid);
  return out;
}

Result<GroupState*> Core::group_of(const proto::TaskRecord& rec) {
  if (rec.group.is_nil()) return static_cast<GroupState*>(nullptr);
  return groups_.find(ledger_, rec.group);
}

Status Core::transition(proto::TaskRecord& rec, TaskState from, Change change) {
  auto found = group_of(rec);
  if (!found) return failed(found.status());
  GroupState* group = *found;
  if (group && group->record.revoked_ms && !is_terminal(from) &&
      (change.to == TaskState::kQueued || change.to == TaskState::kRetrying || change.to == TaskState::kScheduled ||
       change.to == TaskState::kWaiting)) {
    // A task of a revoked group never waits or queues again: requeued from a lost worker,
    // returned, due after its ETA or failed with retries left, it ends revoked.
    change = Change(TaskState::kRevoked).from_held(change.held);
    rec.error = revoked_error(group->record);
  }
  const TaskState to = change.to;
  if (!can_transition(from, to)) {
    Status refused(Code::kInternal, "task " + rec.id.to_string() + " cannot go from " + std::string(state_name(from)) +
                                        " to " + std::string(state_name(to)));
    spdlog::error("router {}", refused.message());
    return refused;
  }
  auto q = tasks_.find_queue(rec.queue);
  if (!q) return Status(Code::kUnprocessable, "unknown queue '" + rec.queue + "'");
  if (!rec.unique_key.empty() && (to == TaskState::kQueued || to == TaskState::kWaiting) && is_terminal(from)) {
    // Run again: it takes its unique key back, unless a newer task holds it now.
    auto held = ledger_.get_unique(rec.queue, rec.unique_key);
    if (!held) return failed(held.status());
    if (held->has_value() && **held != rec.id)
      return Status(Code::kConflict, "task " + rec.id.to_string() + " cannot run again: its unique key is held by task " +
                                         (*held)->to_string() + ", which has not finished");
    if (Status s = ledger_.put_unique(rec.queue, rec.unique_key, rec.id); !s) return failed(s);
  }
  const uint64_t key = order_key(rec.priority, rec.seq);
  const uint64_t now = now_unix_ms();
  // Admitted: in a ready queue or leased, holding a place in its group's allowance.
  const bool admitted = from == TaskState::kStarted || (from == TaskState::kQueued && !change.held);
  // Queued again: straight into its ready queue when it kept its place, through its group's
  // admission otherwise.
  auto place = [&] {
    if (admitted || !group) tasks_.ready(*q).push(key, rec.id, rec.group);
    else groups_.enqueue(*group, *q, key, rec.id);
  };
  if (from == TaskState::kStarted && group) groups_.stopped(*group);

  if (from == TaskState::kWaiting) waiting_.erase(rec.id);
  rec.state = to;
  proto::Event ev = task_event(rec, event_for(to), to);
  ev.from = from;
  std::optional<proto::Event> then_queued;
  switch (to) {
    case TaskState::kScheduled:
      break;
    case TaskState::kStarted:
      // The lease is the durable record of a start (the caller writes it): no record write.
      if (group) groups_.started(*group);
      emit(std::move(ev));
      dirty_ = true;
      return Status::ok();
    case TaskState::kWaiting:  // an explicit retry of a task with dependencies
    case TaskState::kQueued:
      ev.error = std::move(change.error);
      if (is_terminal(from)) {
        // An explicit retry: a new round of automatic retries; attempts keep counting.
        rec.result.clear();
        rec.finished_ms = 0;
        rec.eta_ms = 0;
        rec.retries = 0;
        if (from == TaskState::kFailed)
          if (Status s = ledger_.del_dead(rec.id); !s) return failed(s);
        if (group) groups_.reopened(*group, from);
      }
      if (to == TaskState::kWaiting) {
        wait_again(rec);
        ev.deps = rec.deps;
      } else {
        place();
      }
      break;
    case TaskState::kRetrying:
      ev.error = rec.error;
      ev.eta_ms = rec.eta_ms;
      ev.retries = rec.retries;
      ev.max_retries = rec.max_retries;
      ev.delay_ms = change.delay_ms;
      if (change.delay_ms == 0) {
        // No backoff: queued again at once, in the same change.
        rec.state = TaskState::kQueued;
        then_queued = task_event(rec, proto::EventType::kTaskQueued, TaskState::kQueued);
        then_queued->from = TaskState::kRetrying;
        place();
      } else {
        // Waiting out the backoff does not hold a place in the group's `parallel` allowance.
        tasks_.schedule({rec.eta_ms, key, *q, rec.id, rec.group});
        if (group) groups_.backing_off(*group, admitted);
      }
      break;
    case TaskState::kSucceeded:
    case TaskState::kFailed:
    case TaskState::kRevoked:
      rec.finished_ms = now;
      tasks_.forget_previous_holder(rec.id);
      if (to != TaskState::kRevoked) {
        ev.result = rec.result;
        ev.runtime_us = change.runtime_us;
        ev.retries = rec.retries;
      }
      ev.error = rec.error;
      if (to == TaskState::kFailed)
        if (Status s = ledger_.put_dead(rec.id); !s) return failed(s);
      if (!rec.unique_key.empty())
        if (Status s = ledger_.del_unique(rec.queue, rec.unique_key, rec.id); !s) return failed(s);
      if (options_.result_ttl_ms)
        if (Status s = ledger_.put_expiry(now, Ledger::Expiring::kTask, rec.id.bytes()); !s) return failed(s);
      if (to == TaskState::kSucceeded) ++stats_.succeeded;
      if (to == TaskState::kFailed) ++stats_.failed;
      if (group) groups_.ended(*group, to, admitted, now);
      break;
  }
  if (Status s = ledger_.put_task(rec); !s) return failed(s);
  emit(std::move(ev));
  if (then_queued) emit(std::move(*then_queued));
  dirty_ = true;
  if (is_terminal(to)) {
    wake_waiters(rec.id);
    note_ended(rec, group);
  }
  return Status::ok();
}

void Core::emit(proto::Event event) {
  event.ts_ms = now_unix_ms();
  if (Status s = ledger_.append_event(event, effects_.events); !s) return fail_turn(s);
  dirty_ = true;
}

void Core::fail_turn(const Status& status) {
  if (turn_status_) turn_status_ = status;
}

Status Core::failed(Status status) {
  fail_turn(status);
  return status;
}

void Core::log_refusal(const std::string& what) {
  const uint64_t now = now_steady_ms();
  if (now - stats_.refusal_log_window_ms >= 1000) {
    stats_.refusal_log_window_ms = now;
    stats_.refusals_logged = 0;
  }
  if (++stats_.refusals_logged <= 5) spdlog::warn("router refused {}", what);
}

uint64_t Core::next_random() {
  // splitmix64: jitter needs spread, not secrecy.
  uint64_t z = (random_state_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace zb::router
