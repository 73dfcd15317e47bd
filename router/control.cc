// Control operations on the frontend: ping, inspect.*, purge, revoke (of a task or a whole
// group), retry, dead letters and worker commands. Arguments arrive decoded and checked
// (proto::check_control); the replies are the operations' typed structs (common/protocol.h).
#include <algorithm>

#include "common/clock.h"
#include "common/log.h"
#include "router/core.h"

namespace zb::router {
namespace {

constexpr size_t kInspectLimit = 1000;

proto::TaskRow row_of(const proto::TaskRecord& r) {
  proto::TaskRow t;
  t.id = r.id;
  t.ref = r.ref;
  t.queue = r.queue;
  t.kind = r.kind;
  t.state = r.state;
  t.attempt = r.attempt;
  t.priority = r.priority;
  t.group = r.group;
  t.eta_ms = r.eta_ms;
  t.created_ms = r.created_ms;
  t.worker = r.worker;
  t.started_ms = r.started_ms;
  t.error = r.error;
  t.retries = r.retries;
  t.finished_ms = r.finished_ms;
  return t;
}

}  // namespace

void Core::on_control(const std::string& rid, const proto::Control& control) {
  if (control.deadline_ms && now_unix_ms() > control.deadline_ms) {
    ++stats_.late_requests;
    spdlog::warn("router refused late control op={} late_ms={}", control.op.substr(0, 64),
                 now_unix_ms() - control.deadline_ms);
    return reply_error(rid, control.corr, Status(Code::kTimeout, "'" + control.op.substr(0, 64) +
                                                     "' reached the router after its deadline: not carried out"));
  }
  // decode() checked the operation and its arguments (proto::check_control).
  auto answer = run_control(*proto::parse_control_op(control.op), control.args);
  if (!answer) return reply_error(rid, control.corr, answer.status());
  reply(rid, proto::ControlReply{control.corr, control.op, std::move(answer.value())});
}

Result<proto::ControlResult> Core::run_control(proto::ControlOp op, const proto::ControlArgs& args) {
  using proto::ControlOp;
  switch (op) {
    case ControlOp::kPing: {
      proto::PingReply r;
      r.log_id = ledger_.meta().log_id;
      r.head_seq = ledger_.meta().seq;
      r.workers = workers_.size();
      r.uptime_ms = now_steady_ms() - stats_.started_steady_ms;
      return proto::ControlResult(r);
    }
    case ControlOp::kInspectActive: return inspect_leases(true);
    case ControlOp::kInspectReserved: return inspect_leases(false);
    case ControlOp::kInspectScheduled: return proto::ControlResult(inspect_scheduled());
    case ControlOp::kInspectStats: return proto::ControlResult(inspect_stats());
    case ControlOp::kInspectRegistered: return proto::ControlResult(inspect_registered());
    case ControlOp::kInspectQueues: return proto::ControlResult(inspect_queues());
    case ControlOp::kInspectFailed: {
      auto r = inspect_failed(std::get<proto::InspectFailedArgs>(args));
      if (!r) return r.status();
      return proto::ControlResult(std::move(r.value()));
    }
    case ControlOp::kRetryFailed: {
      auto r = retry_failed(std::get<proto::RetryFailedArgs>(args));
      if (!r) return r.status();
      return proto::ControlResult(*r);
    }
    case ControlOp::kPurge: {
      auto r = purge(std::get<proto::PurgeArgs>(args).queue);
      if (!r) return r.status();
      return proto::ControlResult(*r);
    }
    case ControlOp::kRevoke: {
      const auto& a = std::get<proto::TaskArgs>(args);
      auto r = revoke(a.task, a.terminate);
      if (!r) return r.status();
      return proto::ControlResult(std::move(r.value()));
    }
    case ControlOp::kRevokeGroup: {
      auto r = revoke_group(std::get<proto::GroupArgs>(args));
      if (!r) return r.status();
      return proto::ControlResult(*r);
    }
    case ControlOp::kRetry: {
      auto r = retry(std::get<proto::TaskArgs>(args).task);
      if (!r) return r.status();
      return proto::ControlResult(*r);
    }
    case ControlOp::kWorkerShutdown:
    case ControlOp::kWorkerPool: {
      auto r = command_worker(op, std::get<proto::WorkerArgs>(args));
      if (!r) return r.status();
      return proto::ControlResult(std::move(r.value()));
    }
    case ControlOp::kScheduleList:
    case ControlOp::kScheduleCreate:
    case ControlOp::kSchedulePause:
    case ControlOp::kScheduleResume:
    case ControlOp::kScheduleDelete:
    case ControlOp::kScheduleRun: return schedule_control(op, args);
  }
  return Status(Code::kBadRequest, "unknown control operation");
}

// A task as inspect lists show it; only its id when the router cannot read its record.
proto::TaskRow Core::task_row(const Id& id) {
  auto rec = current_task(id);
  if (!rec || !rec->has_value()) {
    proto::TaskRow t;
    t.id = id;
    return t;
  }
  return row_of(**rec);
}

// Celery's meanings: active = running on a slot now; reserved = taken by a worker (leased)
// and not started; scheduled = waiting for its ETA, countdown or retry backoff. Each gives
// the exact total beside a list of at most kInspectLimit tasks.
proto::ControlResult Core::inspect_leases(bool started) {
  proto::InspectActiveReply active;
  proto::TaskListReply reserved;
  size_t listed = 0;
  for (const auto& rid : workers_.order()) {
    const auto& w = *workers_.find(rid);
    proto::WorkerTasks tasks{w.name, w.session, {}};
    for (const Id& id : w.leased) {
      const LeaseState* l = tasks_.lease(id);
      if (!l || (l->started_unix_ms != 0) != started) continue;
      ++(started ? active.total : reserved.total);
      if (listed >= kInspectLimit) continue;
      ++listed;
      proto::TaskRow t = task_row(id);
      t.worker = w.name;
      if (started) t.started_ms = l->started_unix_ms;
      (started ? tasks.tasks : reserved.tasks).push_back(std::move(t));
    }
    if (started) active.workers.push_back(std::move(tasks));
  }
  if (started) return active;
  return reserved;
}

proto::TaskListReply Core::inspect_scheduled() {
  proto::TaskListReply out;
  tasks_.for_each_scheduled([&](const ScheduledTask& t) {
    ++out.total;
    if (out.tasks.size() < kInspectLimit) out.tasks.push_back(task_row(t.task));
  });
  return out;
}

proto::InspectStatsReply Core::inspect_stats() {
  proto::InspectStatsReply out;
  for (const auto& rid : workers_.order()) {
    const auto& w = *workers_.find(rid);
    proto::WorkerStats s;
    s.name = w.name;
    s.session = w.session;
    s.hostname = w.hostname;
    s.pid = w.pid;
    s.concurrency = w.concurrency;
    s.capacity = w.capacity;
    s.in_flight = w.leased.size();
    s.busy = w.busy;
    s.processed = w.processed;
    s.failed = w.failed;
    s.last_heartbeat_ms = w.last_seen_unix_ms;
    s.online_ms = w.online_unix_ms;
    s.draining = w.draining;
    s.window = w.window;
    s.round_trip_us = static_cast<uint64_t>(w.rtt_us);
    s.task_pace_us = static_cast<uint64_t>(w.pace_us());
    s.rss_kb = w.rss_kb;
    s.load_milli = w.load_milli;
    for (size_t q : w.queues) s.queues.push_back(tasks_.config(q).name);
    out.workers.push_back(std::move(s));
  }
  const auto& meta = ledger_.meta();
  proto::RouterStats& r = out.router;
  r.uptime_ms = now_steady_ms() - stats_.started_steady_ms;
  r.submitted = stats_.submitted;
  r.succeeded = stats_.succeeded;
  r.failed = stats_.failed;
  r.in_flight = tasks_.leases().size();
  r.scheduled = tasks_.scheduled_size();
  r.groups_active = groups_.size();
  r.bad_frames = stats_.bad_frames;
  r.late_requests = stats_.late_requests;
  r.refused = {stats_.forbidden,   stats_.foreign_results, stats_.foreign_claims,
               stats_.foreign_started, stats_.bad_counts, health.unknown_keys};
  r.event_seq = meta.seq;
  r.event_first_seq = meta.first_seq;
  r.event_confirmed = meta.confirmed;
  r.db_used_bytes = health.db_used_bytes;
  r.db_map_bytes = health.db_map_bytes;
  r.storage_full = health.storage_full;
  r.storage_free_bytes = health.storage_free_bytes;
  r.storage_reserve_bytes = health.storage_reserve_bytes;
  r.storage_failed_commits = health.storage_failed_commits;
  r.durability = options_.fsync ? "fsync" : "nosync";
  const Ledger::Counters counters = ledger_.counters();
  r.commits = counters.commits;
  r.records_written = counters.records;
  r.syncs = options_.fsync ? counters.syncs : 0;
  r.turn_time = stats_.turn_time;
  r.sync_time = ledger_.sync_time();
  return out;
}

proto::InspectRegisteredReply Core::inspect_registered() const {
  proto::InspectRegisteredReply out;
  for (const auto& rid : workers_.order()) {
    const auto& w = *workers_.find(rid);
    out.workers.push_back({w.name, w.kinds, w.test_profiles, w.mcp_servers});
  }
  return out;
}

proto::InspectQueuesReply Core::inspect_queues() const {
  std::vector<size_t> scheduled_per_queue(tasks_.queue_count(), 0);
  tasks_.for_each_scheduled([&](const ScheduledTask& t) { ++scheduled_per_queue[t.queue]; });
  std::vector<size_t> started_per_queue(tasks_.queue_count(), 0);
  for (const auto& [id, l] : tasks_.leases())
    if (l.started_unix_ms) ++started_per_queue[l.queue];
  const std::vector<size_t> held_per_queue = groups_.held_per_queue();
  proto::InspectQueuesReply out;
  for (size_t i = 0; i < tasks_.queue_count(); ++i) {
    const auto& q = tasks_.config(i);
    const uint64_t running = tasks_.running(i);
    out.queues.push_back({q.name, q.priority, q.default_kind, tasks_.ready(i).size() + held_per_queue[i],
                          scheduled_per_queue[i], running - std::min<uint64_t>(running, started_per_queue[i]),
                          started_per_queue[i], q.fair, q.pool});
  }
  out.pools = tasks_.pool_stats(now_steady_ms());
  return out;
}

// worker.shutdown and worker.pool: the command goes to the worker; it acts on it by itself.
Result<proto::WorkerCommandReply> Core::command_worker(proto::ControlOp op, const proto::WorkerArgs& args) {
  const WorkerSession* w = workers_.find_name(args.worker);
  if (!w) return Status(Code::kNotFound, "no worker named '" + args.worker.substr(0, 255) + "' is online");
  const bool shutdown = op == proto::ControlOp::kWorkerShutdown;
  to_worker(w->routing_id, proto::WorkerCommand{shutdown ? "shutdown" : "pool", shutdown ? 0 : args.delta});
  const std::string name(proto::control_op_name(op));
  spdlog::info("router worker={} command={} delta={}", args.worker, name, args.delta);
  return proto::WorkerCommandReply{args.worker, name};
}

// Queued tasks (of one queue, or all) never run: each is revoked.
Result<proto::PurgeReply> Core::purge(const std::optional<std::string>& queue) {
  std::vector<size_t> targets;
  if (queue) {
    auto q = tasks_.find_queue(*queue);
    if (!q) return Status(Code::kUnprocessable, "unknown queue '" + *queue + "'");
    targets.push_back(*q);
  } else {
    for (size_t i = 0; i < tasks_.queue_count(); ++i) targets.push_back(i);
  }
  std::vector<std::pair<Id, bool>> victims;  // task, held by its group (not in a ready queue)
  for (size_t q : targets)
    for (auto& [key, id] : tasks_.ready(q).take_all()) victims.emplace_back(id, false);
  for (const Id& id : groups_.unhold_queues(targets)) victims.emplace_back(id, true);
  for (const auto& [id, held] : victims) {
    auto found = ledger_.get_task(id);
    if (!found) return found.status();
    if (!found->has_value()) continue;
    proto::TaskRecord& rec = **found;
    rec.error = "purged";
    if (Status s = transition(rec, TaskState::kQueued, Change(TaskState::kRevoked).from_held(held)); !s) return s;
  }
  const std::string name = targets.size() == 1 ? tasks_.config(targets[0]).name : std::string();
  proto::Event ev;
  ev.type = proto::EventType::kQueuePurged;
  ev.queue = name;
  ev.count = victims.size();
  emit(std::move(ev));
  dirty_ = true;
  spdlog::info("router purged tasks={} queue={}", victims.size(), name.empty() ? "*" : name);
  return proto::PurgeReply{victims.size()};
}

// A queued or scheduled task never runs; a running one is stopped only with `terminate`.
// The revocation is the task's record, so it survives a router restart.
Result<proto::RevokeReply> Core::revoke(const Id& task, bool terminate) {
  auto found = ledger_.get_task(task);
  if (!found) return found.status();
  if (!found->has_value()) return Status(Code::kNotFound, "no task " + task.to_string());
  proto::TaskRecord& rec = **found;
  if (is_terminal(rec.state))
    return Status(Code::kConflict, "task " + task.to_string() + " already " + std::string(state_name(rec.state)));
  auto group = group_of(rec);
  if (!group) return group.status();
  const uint64_t key = order_key(rec.priority, rec.seq);
  auto q = tasks_.find_queue(rec.queue);
  TaskState from = rec.state;
  bool held = false;
  std::string was = "queued";
  if (tasks_.lease(task)) {
    if (!terminate)
      return Status(Code::kConflict, "task " + task.to_string() + " is running; revoke it with terminate to stop it");
    const LeaseState l = *tasks_.end_lease(task);
    if (WorkerSession* w = workers_.find(l.routing_id)) {
      w->leased.erase(task);
      to_worker(l.routing_id, proto::Revoke{{{task, l.attempt}}});
    }
    if (Status s = ledger_.del_lease(task); !s) return s;
    rec.attempt = l.attempt;
    from = TaskState::kStarted;
    was = "terminated";
  } else if (rec.state == TaskState::kWaiting) {
    was = "waiting";  // in no queue: it waits for its dependencies
  } else if (q && tasks_.ready(*q).erase(key)) {
    from = TaskState::kQueued;
  } else if (*group && groups_.unhold(**group, key)) {
    from = TaskState::kQueued;
    held = true;
    was = "held";
  } else if (rec.state == TaskState::kScheduled || rec.state == TaskState::kRetrying) {
    tasks_.revoke_scheduled(task);
    was = "scheduled";
  } else {
    held = true;  // queued in no ready queue (its queue is not declared): it holds no place
  }
  rec.error = terminate ? "revoked (terminated)" : "revoked";
  if (Status s = transition(rec, from, Change(TaskState::kRevoked).from_held(held)); !s) return s;
  spdlog::info("router revoked task={} was={}", task.to_string(), was);
  return proto::RevokeReply{task, was};
}

namespace {
constexpr size_t kSweepPerTurn = 4096;  // queued tasks looked at per turn for revoked groups
}  // namespace

// Every task of the group that has not ended is revoked. At once: the tasks its `parallel`
// cap holds back, those waiting for an ETA or a retry backoff, those a worker holds and has
// not started, and running ones with `terminate` (else they finish, and only their outcome
// still counts). Queued tasks follow as sweep_revoked_groups() or dispatch comes to them,
// within a few turns. The mark is in the group's record: it survives a restart, the group
// takes no more tasks, and none of its tasks is queued again (transition()).
Result<proto::RevokeGroupReply> Core::revoke_group(const proto::GroupArgs& args) {
  auto found = groups_.find(ledger_, args.group);
  if (!found) return found.status();
  GroupState* g = *found;
  if (!g) return Status(Code::kNotFound, "no group " + args.group.to_string());
  if (g->record.ready())
    return Status(Code::kConflict, "group " + args.group.to_string() + " has finished: nothing to revoke");
  auto reply = revoke_whole_group(*g, args.terminate);
  if (reply)
    spdlog::info("router revoked group={} revoked={} terminated={} running={} again={}", args.group.to_string(),
                 reply->revoked, reply->terminated, reply->running, reply->again);
  return reply;
}

Result<proto::RevokeGroupReply> Core::revoke_whole_group(GroupState& group, bool terminate) {
  GroupState* g = &group;
  const proto::GroupArgs args{group.record.id, terminate};
  proto::RevokeGroupReply reply;
  reply.group = args.group;
  reply.again = g->record.revoked_ms != 0;
  auto end_one = [&](const Id& id, TaskState from, bool held) -> Status {
    auto rec = ledger_.get_task(id);
    if (!rec) return rec.status();
    if (!rec->has_value() || is_terminal((*rec)->state)) return Status::ok();
    (*rec)->error = revoked_error(g->record);
    if (Status s = transition(**rec, from, Change(TaskState::kRevoked).from_held(held)); !s) return s;
    ++reply.revoked;
    return Status::ok();
  };
  for (const Id& id : groups_.revoke(*g, now_unix_ms()))
    if (Status s = end_one(id, TaskState::kQueued, true); !s) return s;
  std::vector<Id> leased;
  for (const auto& [id, lease] : tasks_.leases())
    if (lease.group == args.group) leased.push_back(id);
  for (const Id& id : leased) {
    const LeaseState* l = tasks_.lease(id);
    if (l->started_unix_ms && !args.terminate) {
      ++reply.running;
      continue;
    }
    const bool running = l->started_unix_ms != 0;
    const LeaseState lease = *tasks_.end_lease(id);
    if (WorkerSession* w = workers_.find(lease.routing_id)) {
      w->leased.erase(id);
      to_worker(lease.routing_id, proto::Revoke{{{id, lease.attempt}}});
    }
    if (Status s = ledger_.del_lease(id); !s) return s;
    auto rec = ledger_.get_task(id);
    if (!rec) return rec.status();
    if (!rec->has_value()) continue;
    (*rec)->attempt = lease.attempt;
    (*rec)->error = running ? revoked_error(g->record) + " (terminated)" : revoked_error(g->record);
    if (Status s = transition(**rec, TaskState::kStarted, Change(TaskState::kRevoked)); !s) return s;
    ++reply.revoked;
    if (running) ++reply.terminated;
  }
  reply.revoked += revoke_waiting(args.group, revoked_error(g->record));
  sweeping_.insert(args.group);
  sweep_queue_ = 0;
  sweep_key_ = 0;
  sweep_scheduled_ = false;
  reply.revoked += sweep_revoked_groups();
  return reply;
}

size_t Core::sweep_revoked_groups() {
  size_t revoked = 0;
  if (sweeping_.empty() || !turn_status_) return revoked;
  auto error_of = [&](const Id& group) {  // the group's words: revoked, or its budget ran out
    auto g = groups_.find(ledger_, group);
    return g && *g ? revoked_error((*g)->record) : revoked_error({});
  };
  if (!sweep_scheduled_) {
    // The ETA heap carries each task's group: only the revoked groups' tasks are read.
    std::vector<Id> due;
    tasks_.for_each_scheduled([&](const ScheduledTask& t) {
      if (sweeping_.count(t.group)) due.push_back(t.task);
    });
    for (const Id& id : due) {
      auto rec = ledger_.get_task(id);
      if (!rec) {
        fail_turn(rec.status());
        return revoked;
      }
      if (!rec->has_value()) continue;
      proto::TaskRecord& r = **rec;
      if (r.state != TaskState::kScheduled && r.state != TaskState::kRetrying) continue;
      tasks_.revoke_scheduled(id);
      r.error = error_of(r.group);
      if (Status s = transition(r, r.state, Change(TaskState::kRevoked)); !s) return revoked;
      ++revoked;
    }
    sweep_scheduled_ = true;
  }
  size_t budget = kSweepPerTurn;
  while (budget && sweep_queue_ < tasks_.queue_count()) {
    ReadyQueue& ready = tasks_.ready(sweep_queue_);
    auto batch = ready.from(sweep_key_, budget);
    if (batch.empty()) {
      ++sweep_queue_;
      sweep_key_ = 0;
      continue;
    }
    budget -= batch.size();
    sweep_key_ = batch.back().first + 1;
    for (const auto& [key, id] : batch) {
      auto rec = ledger_.get_task(id);
      if (!rec) {
        fail_turn(rec.status());
        return revoked;
      }
      if (!rec->has_value() || !sweeping_.count((*rec)->group)) continue;
      ready.erase(key);
      (*rec)->error = error_of((*rec)->group);
      if (Status s = transition(**rec, TaskState::kQueued, Change(TaskState::kRevoked)); !s) return revoked;
      ++revoked;
    }
  }
  if (sweep_queue_ >= tasks_.queue_count()) sweeping_.clear();
  return revoked;
}

// Runs a failed (or revoked) task again: back to its queue, attempt + 1 on dispatch.
Result<proto::RetryReply> Core::retry(const Id& task) {
  auto found = ledger_.get_task(task);
  if (!found) return found.status();
  if (!found->has_value()) return Status(Code::kNotFound, "no task " + task.to_string());
  proto::TaskRecord& rec = **found;
  if (rec.state != TaskState::kFailed && rec.state != TaskState::kRevoked)
    return Status(Code::kConflict, "only a failed or revoked task can be retried; task " + task.to_string() +
                                       " is " + std::string(state_name(rec.state)));
  if (!tasks_.find_queue(rec.queue)) return Status(Code::kUnprocessable, "unknown queue '" + rec.queue + "'");
  auto group = group_of(rec);
  if (!group) return group.status();
  if (*group && (*group)->record.revoked_ms)
    return Status(Code::kConflict, "task " + task.to_string() + " belongs to group " + rec.group.to_string() +
                                       ", which was revoked");
  // A task with dependencies that never ran (one failed, or its trigger was not met) waits for
  // them again: their outcome now decides. One that ran keeps the inputs it had.
  auto deps = proto::unpack_dependencies(rec.deps);
  const bool waits = deps && (!deps->tasks.empty() || !deps->group.is_nil());
  const TaskState again = waits && rec.inputs.empty() ? TaskState::kWaiting : TaskState::kQueued;
  if (Status s = transition(rec, rec.state, Change(again)); !s) return s;
  return proto::RetryReply{task, rec.attempt};
}

// Dead letters in id (= submission) order, with their last error.
Result<proto::InspectFailedReply> Core::inspect_failed(const proto::InspectFailedArgs& args) {
  if (args.queue && !tasks_.find_queue(*args.queue))
    return Status(Code::kUnprocessable, "inspect.failed: unknown queue '" + args.queue->substr(0, 64) + "'");
  const size_t limit = std::min<size_t>(args.limit, kInspectLimit);
  auto total = ledger_.count_dead();
  if (!total) return total.status();
  proto::InspectFailedReply out;
  out.total = *total;
  Status inner = Status::ok();
  Status walk = ledger_.for_each_dead(args.after, [&](const Id& id) {
    auto rec = ledger_.get_task(id);
    if (!rec) {
      inner = rec.status();
      return false;
    }
    if (!rec->has_value() || (args.queue && (*rec)->queue != *args.queue)) return true;
    out.tasks.push_back(row_of(**rec));
    return out.tasks.size() < limit;
  });
  if (!walk) return walk;
  if (!inner) return inner;
  if (out.tasks.size() == limit) out.next = out.tasks.back().id;
  return out;
}

// Re-queues dead letters (of one queue, or all), oldest first.
Result<proto::RetryFailedReply> Core::retry_failed(const proto::RetryFailedArgs& args) {
  if (args.queue && !tasks_.find_queue(*args.queue))
    return Status(Code::kUnprocessable, "retry.failed: unknown queue '" + args.queue->substr(0, 64) + "'");
  std::vector<Id> picked;
  Status inner = Status::ok();
  Status walk = ledger_.for_each_dead(Id(), [&](const Id& id) {
    if (args.queue) {
      auto rec = ledger_.get_task(id);
      if (!rec) {
        inner = rec.status();
        return false;
      }
      if (!rec->has_value() || (*rec)->queue != *args.queue) return true;
    }
    picked.push_back(id);
    return picked.size() < args.limit;
  });
  if (!walk) return walk;
  if (!inner) return inner;
  size_t retried = 0;
  for (const Id& id : picked) {
    auto r = retry(id);
    if (r) ++retried;
    else if (r.status().code() != Code::kConflict && r.status().code() != Code::kNotFound) return r.status();
  }
  auto left = ledger_.count_dead();
  if (!left) return left.status();
  spdlog::info("router retried dead letters={} queue={}", retried, args.queue.value_or("*"));
  return proto::RetryFailedReply{retried, *left};
}

}  // namespace zb::router
