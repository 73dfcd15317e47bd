// Client messages on the frontend: submissions, status, waits, event replay.
#include <algorithm>
#include <unordered_map>

#include "common/clock.h"
#include "common/log.h"
#include "router/core.h"

namespace zb::router {
namespace {

constexpr size_t kMaxTasksPerSubmit = 100000;
constexpr size_t kMaxPayloadBytes = 16u << 20;
constexpr size_t kMaxReplayEvents = 10000;
constexpr uint64_t kMaxWaitMs = 3600'000;
constexpr uint64_t kMaxCountdownMs = 10ull * 366 * 86400 * 1000;
// Bounds a numbered group's record: its chunk bitmap is at most 12.5 KB.
constexpr uint32_t kMaxChunksPerGroup = 100000;

std::string too_long(const std::string& s) { return s.size() > 64 ? s.substr(0, 64) + "..." : s; }

// The chunk fields of a numbered Submit, checked alone (before any state is read).
Status check_chunk_fields(const proto::Submit& submit) {
  if (!submit.chunks) return Status::ok();
  if (submit.group.is_nil()) return Status(Code::kBadRequest, "a numbered chunk needs a group id");
  if (submit.chunks > kMaxChunksPerGroup)
    return Status(Code::kTooLarge, "a group is sent in at most " + std::to_string(kMaxChunksPerGroup) +
                                       " chunks, got " + std::to_string(submit.chunks));
  if (submit.chunk >= submit.chunks)
    return Status(Code::kBadRequest, "chunk " + std::to_string(submit.chunk) + " of " +
                                         std::to_string(submit.chunks) + " does not exist");
  if (submit.tasks.size() > submit.group_tasks)
    return Status(Code::kBadRequest, "a chunk of " + std::to_string(submit.tasks.size()) +
                                         " tasks is larger than its group of " + std::to_string(submit.group_tasks));
  return Status::ok();
}

// Whether a numbered chunk that its idempotency key does not know fits the group as recorded
// (nullptr: the group is new). A chunk already present came under another key (or its key
// expired): accepting it again would run its tasks twice.
Status check_chunk_fits(const proto::GroupRecord* group, const proto::Submit& submit) {
  const std::string name = "group " + submit.group.to_string();
  const std::string which = "chunk " + std::to_string(submit.chunk) + " of " + name;
  uint32_t received = 0;
  bool last_missing = submit.chunks == 1;
  if (group) {
    if (!group->chunks)
      return Status(Code::kConflict, name + " was not sent in numbered chunks: it cannot take chunk " +
                                         std::to_string(submit.chunk));
    if (group->chunks != submit.chunks || group->total != submit.group_tasks || group->parallel != submit.parallel ||
        (!group->fingerprint.is_nil() && !submit.group_fingerprint.is_nil() && group->fingerprint != submit.group_fingerprint))
      return Status(Code::kConflict, which + " belongs to a different request than the chunks the group already holds");
    if (group->has_chunk(submit.chunk))
      return Status(Code::kConflict, which + " was already accepted under another idempotency key (or its key expired)");
    received = group->received;
    last_missing = group->chunks_received() + 1 == group->chunks;
  }
  const uint64_t after = uint64_t{received} + submit.tasks.size();
  if (after > submit.group_tasks || (last_missing && after != submit.group_tasks))
    return Status(Code::kBadRequest, "the chunks of " + name + " hold " + std::to_string(after) +
                                         (last_missing ? "" : " or more") + " tasks, but the group declares " +
                                         std::to_string(submit.group_tasks));
  return Status::ok();
}

// What a role may not do with this message (nullptr: allowed).
const char* frontend_permission(const proto::Message& m, curve::Role role) {
  if (std::holds_alternative<proto::Submit>(m)) return curve::may_submit(role) ? nullptr : "may not submit";
  if (std::holds_alternative<proto::Replay>(m) || std::holds_alternative<proto::Confirm>(m))
    return curve::may_replay(role) ? nullptr : "may not replay or confirm events (the store's key does)";
  if (auto* c = std::get_if<proto::Control>(&m)) {
    const auto op = proto::parse_control_op(c->op);
    const bool read = op ? proto::control_op_reads(*op) : c->op == "ping" || c->op.rfind("inspect.", 0) == 0;
    if (read) return curve::may_read(role) ? nullptr : "may not read";
    return curve::may_administer(role) ? nullptr : "may not purge, revoke, retry, command workers or change schedules (admin)";
  }
  return curve::may_read(role) ? nullptr : "may not read";
}

}  // namespace

void Core::reply_error(const std::string& rid, uint64_t corr, const Status& status) {
  reply(rid, proto::Error{corr, static_cast<int32_t>(status.code()), status.message()});
}

void Core::on_frontend(const std::string& rid, Result<proto::Message> message, std::optional<curve::Role> role) {
  if (!message) {
    ++stats_.bad_frames;
    spdlog::debug("router frontend bad message reason=\"{}\"", message.status().message());
    reply_error(rid, 0, message.status());
    return;
  }
  // A peer without a role did not authenticate: plaintext sockets (loopback, or the operator's
  // explicit --insecure-plaintext) and inproc peers in this process are trusted as before.
  if (role) {
    if (const char* denied = frontend_permission(*message, *role)) {
      ++stats_.forbidden;
      log_refusal(std::string("role=") + std::string(curve::role_name(*role)) + " command=" +
                  std::string(proto::command_name(proto::command_of(*message))) + " reason=\"" + denied + "\"");
      return reply_error(rid, std::visit([](const auto& m) -> uint64_t {
                                           if constexpr (requires { m.corr; }) return m.corr;
                                           else return 0;
                                         }, *message),
                         Status(Code::kForbidden, std::string("role ") + std::string(curve::role_name(*role)) + " " + denied));
    }
  }
  std::visit(
      [&](auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, proto::Submit>) on_submit(rid, m);
        else if constexpr (std::is_same_v<T, proto::GetTask>) on_get_task(rid, m);
        else if constexpr (std::is_same_v<T, proto::GetGroup>) on_get_group(rid, m);
        else if constexpr (std::is_same_v<T, proto::WaitTasks>) on_wait(rid, m);
        else if constexpr (std::is_same_v<T, proto::Control>) on_control(rid, m);
        else if constexpr (std::is_same_v<T, proto::Replay>) on_replay(rid, m);
        else if constexpr (std::is_same_v<T, proto::Confirm>) on_confirm(m);
        else {
          ++stats_.bad_frames;
          reply_error(rid, 0, Status(Code::kBadRequest, std::string(proto::command_name(T::kCommand)) +
                                                            " is not a frontend command"));
        }
      },
      *message);
}

void Core::on_submit(const std::string& rid, proto::Submit& submit) {
  // The client stopped waiting at its deadline and reported the submission as not answered:
  // it must not run now. (Clocks of client and router hosts are assumed in sync to well
  // within a client's timeout; see docs/EXECUTION.md.)
  if (submit.deadline_ms) {
    const uint64_t now = now_unix_ms();
    if (now > submit.deadline_ms) {
      ++stats_.late_requests;
      spdlog::warn("router refused late submission tasks={} late_ms={}", submit.tasks.size(), now - submit.deadline_ms);
      return reply_error(rid, submit.corr, Status(Code::kTimeout, "the submission reached the router " +
                                                     std::to_string(now - submit.deadline_ms) +
                                                     " ms after its deadline: not accepted, nothing runs"));
    }
  }
  if (health.storage_full) return reply_error(rid, submit.corr, Status(Code::kStorageFull, health.storage_refusal));
  if (submit.tasks.size() > kMaxTasksPerSubmit)
    return reply_error(rid, submit.corr, Status(Code::kTooLarge, "a submission holds at most " +
                                                    std::to_string(kMaxTasksPerSubmit) + " tasks, got " +
                                                    std::to_string(submit.tasks.size())));
  if (submit.tasks.empty() && submit.group.is_nil())
    return reply_error(rid, submit.corr, Status(Code::kBadRequest, "a submission without a group needs at least one task"));
  // Validate everything before writing anything: a submission is accepted or refused whole.
  if (submit.idem_key.size() > 256)
    return reply_error(rid, submit.corr, Status(Code::kBadRequest, "idempotency key is longer than 256 bytes"));
  std::vector<size_t> queue_of(submit.tasks.size()), callback_queue_of(submit.callbacks.size());
  for (size_t i = 0; i < submit.tasks.size(); ++i)
    if (Status s = check_spec(submit.tasks[i], queue_of[i]); !s) return reply_error(rid, submit.corr, s);
  for (size_t i = 0; i < submit.callbacks.size(); ++i)
    if (Status s = check_spec(submit.callbacks[i], callback_queue_of[i]); !s) return reply_error(rid, submit.corr, s);
  if (Status s = check_chunk_fields(submit); !s) return reply_error(rid, submit.corr, s);
  if (!submit.idem_key.empty()) {
    auto prior = ledger_.get_idem(submit.idem_key);
    if (!prior) return fail_turn(prior.status());
    if (prior->has_value()) {
      IdemRecord& first = **prior;
      if (!first.fingerprint.is_nil() && !submit.fingerprint.is_nil() && first.fingerprint != submit.fingerprint)
        return reply_error(rid, submit.corr, Status(Code::kConflict, "idempotency key '" + too_long(submit.idem_key) +
                                                        "' was already used for a different request"));
      return reply(rid, proto::SubmitAck{submit.corr, first.group, std::move(first.tasks), true, 0, {},
                                         std::move(first.callbacks)});
    }
  }
  // Unique keys, before anything is written: which tasks an existing one answers.
  std::vector<Duplicate> existing;
  if (Status s = check_unique(submit, existing); !s)
    return s.code() == Code::kConflict ? reply_error(rid, submit.corr, s) : fail_turn(s);
  if (Status s = check_dependencies(submit); !s)
    return s.code() == Code::kIo ? fail_turn(s) : reply_error(rid, submit.corr, s);
  GroupState* group = nullptr;
  const uint64_t now = now_unix_ms();
  if (!submit.group.is_nil()) {
    auto found = groups_.find(ledger_, submit.group);
    if (!found) return fail_turn(found.status());
    group = *found;
    if (group && group->record.revoked_ms) {
      return reply_error(rid, submit.corr, Status(Code::kConflict, "group " + submit.group.to_string() +
                                                      " was revoked: it takes no more tasks"));
    }
    if (submit.chunks) {
      if (Status s = check_chunk_fits(group ? &group->record : nullptr, submit); !s)
        return reply_error(rid, submit.corr, s);
    } else if (group && group->record.sealed) {
      return reply_error(rid, submit.corr, Status(Code::kConflict, "group " + submit.group.to_string() + " is sealed"));
    } else if (group && group->record.chunks) {
      return reply_error(rid, submit.corr, Status(Code::kConflict, "group " + submit.group.to_string() +
                                                      " is sent in numbered chunks: an unnumbered submission cannot extend it"));
    }
    if (!group) {
      proto::GroupRecord fresh;
      fresh.id = submit.group;
      fresh.parallel = submit.parallel;
      fresh.created_ms = now;
      fresh.indexed = !submit.callbacks.empty();
      fresh.budget_tokens = submit.budget_tokens;
      fresh.budget_run_ms = submit.budget_run_ms;
      if (submit.chunks) {
        fresh.chunks = submit.chunks;
        fresh.total = submit.group_tasks;
        fresh.fingerprint = submit.group_fingerprint;
        fresh.sealed = false;
      }
      group = &groups_.create(std::move(fresh));
    }
    groups_.add_tasks(*group, submit, now);
    if (submit.tasks.empty()) note_sealed(*group);  // an empty last chunk may complete it
  }

  proto::SubmitAck ack{submit.corr, submit.group, {}, false, 0, {}, {}};
  ack.tasks.reserve(submit.tasks.size());
  // Ids first: a task may depend on a later one of the same submission (after_index).
  std::vector<Id> ids(submit.tasks.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!existing.empty() && existing[i].answered) {
      // Answered by the live task that holds its unique key (UniquePolicy::kExisting), or by
      // the earlier task of this submission with that key.
      ids[i] = existing[i].first < i ? ids[existing[i].first] : existing[i].task;
      ack.existing.push_back(static_cast<uint32_t>(i));
    } else {
      ids[i] = Id::time_ordered();
    }
  }
  proto::TaskRecord rec;
  size_t made = 0;
  for (size_t i = 0; i < submit.tasks.size(); ++i) {
    ack.tasks.push_back(ids[i]);
    if (!existing.empty() && existing[i].answered) continue;
    if (!make_task(rec, submit.tasks[i], queue_of[i], ids[i], group, submit.group, ids, now)) return;
    ++made;
  }
  for (size_t i = 0; i < submit.callbacks.size(); ++i) {
    // A chord's callback: outside the group, waiting for all of it.
    if (!make_task(rec, submit.callbacks[i], callback_queue_of[i], Id::time_ordered(), nullptr, submit.group, ids, now))
      return;
    ack.callbacks.push_back(rec.id);
    ++made;
  }
  stats_.submitted += made;
  if (!submit.idem_key.empty()) {
    if (Status s = ledger_.put_idem(submit.idem_key, {0, ack.group, ack.tasks, false, submit.fingerprint, ack.callbacks}); !s)
      return fail_turn(s);
    if (options_.result_ttl_ms)
      if (Status s = ledger_.put_expiry(now, Ledger::Expiring::kIdem, submit.idem_key); !s) return fail_turn(s);
  }
  dirty_ = true;
  reply(rid, std::move(ack));
}

bool Core::make_task(proto::TaskRecord& rec, proto::TaskSpec& t, size_t queue, const Id& id, GroupState* group,
                     const Id& group_id, const std::vector<Id>& ids, uint64_t now) {
  const auto& qc = tasks_.config(queue);
  const bool callback = !group && !group_id.is_nil();
  rec.id = id;
  rec.group = callback ? Id() : group_id;
  rec.ref = std::move(t.ref);
  rec.queue = std::move(t.queue);
  rec.kind = t.kind.empty() ? qc.default_kind : std::move(t.kind);
  rec.payload = std::move(t.payload);
  rec.priority = static_cast<uint8_t>(t.priority < 0 ? qc.priority : t.priority);
  rec.eta_ms = t.countdown_ms ? now + t.countdown_ms : t.eta_ms > now ? t.eta_ms : 0;
  rec.state = rec.eta_ms ? TaskState::kScheduled : TaskState::kQueued;
  rec.max_retries = t.max_retries < 0 ? qc.max_retries : static_cast<uint32_t>(t.max_retries);
  rec.soft_limit_ms = t.soft_limit_ms ? t.soft_limit_ms : qc.soft_time_limit_ms;
  rec.hard_limit_ms = t.hard_limit_ms ? t.hard_limit_ms : qc.time_limit_ms;
  rec.seq = ++ledger_.meta().task_seq;
  rec.created_ms = now;
  rec.trace = std::move(t.trace);
  rec.unique_key = std::move(t.unique_key);
  rec.deps.clear();
  rec.inputs.clear();
  const Id awaited_group = callback ? group_id : t.after_group;
  if (!t.after.empty() || !t.after_index.empty() || !awaited_group.is_nil())
    wait_for(rec, t, ids, awaited_group);  // waiting; an ETA counts once it is released
  // A task's creation, not a transition: it starts waiting, scheduled or queued.
  if (Status s = ledger_.put_task(rec); !s) return fail_turn(s), false;
  if (!rec.unique_key.empty())
    if (Status s = ledger_.put_unique(rec.queue, rec.unique_key, rec.id); !s) return fail_turn(s), false;
  if (group && group->record.indexed)
    if (Status s = ledger_.put_member(group_id, rec.seq, rec.id); !s) return fail_turn(s), false;
  proto::Event ev = task_event(rec, proto::EventType::kTaskReceived, rec.state);
  ev.payload = rec.payload;
  ev.eta_ms = rec.eta_ms;
  ev.trace = rec.trace;
  ev.unique_key = rec.unique_key;
  ev.deps = rec.deps;
  emit(std::move(ev));
  const uint64_t key = order_key(rec.priority, rec.seq);
  if (rec.state == TaskState::kWaiting) return true;
  if (rec.eta_ms) tasks_.schedule({rec.eta_ms, key, queue, rec.id, rec.group});
  else if (group) groups_.enqueue(*group, queue, key, rec.id);
  else tasks_.ready(queue).push(key, rec.id, rec.group);
  return true;
}

Status Core::check_spec(proto::TaskSpec& t, size_t& queue) {
  if (t.queue.empty()) t.queue = std::string(kDefaultQueue);
  auto q = tasks_.find_queue(t.queue);
  if (!q) return Status(Code::kUnprocessable, "unknown queue '" + too_long(t.queue) + "'");
  queue = *q;
  if (t.priority < -1 || t.priority > 255)
    return Status(Code::kBadRequest, "priority must be 0..255, got " + std::to_string(t.priority));
  if (t.payload.size() > kMaxPayloadBytes)
    return Status(Code::kTooLarge, "payload of " + std::to_string(t.payload.size()) + " bytes exceeds " +
                                       std::to_string(kMaxPayloadBytes));
  if (t.countdown_ms && t.eta_ms) return Status(Code::kBadRequest, "give a countdown or an eta, not both");
  if (t.countdown_ms > kMaxCountdownMs) return Status(Code::kBadRequest, "countdown must be at most 10 years");
  if (t.max_retries < -1) return Status(Code::kBadRequest, "max_retries must be >= 0");
  if (t.hard_limit_ms && t.soft_limit_ms > t.hard_limit_ms)
    return Status(Code::kBadRequest, "soft time limit must not exceed the hard time limit");
  if (!t.trace.empty() && !proto::valid_traceparent(t.trace))
    return Status(Code::kBadRequest, "trace must be a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>), got '" +
                                         too_long(t.trace) + "'");
  if (t.unique_key.size() > proto::kMaxUniqueKeyBytes)
    return Status(Code::kBadRequest, "unique key is longer than " + std::to_string(proto::kMaxUniqueKeyBytes) + " bytes");
  if (t.on_duplicate > static_cast<uint8_t>(proto::UniquePolicy::kExisting))
    return Status(Code::kBadRequest, "on_duplicate must be refuse (0) or existing (1)");
  return Status::ok();
}

Status Core::check_unique(const proto::Submit& submit, std::vector<Duplicate>& out) {
  std::unordered_map<std::string, size_t> seen;  // queue + 0 + key → its first task here
  for (size_t i = 0; i < submit.tasks.size(); ++i) {
    const auto& t = submit.tasks[i];
    if (t.unique_key.empty()) continue;
    if (out.empty()) out.resize(submit.tasks.size());
    const bool answer = t.on_duplicate == static_cast<uint8_t>(proto::UniquePolicy::kExisting) && submit.group.is_nil();
    // Words for a refusal, made only when there is one.
    auto what = [&] {
      return "unique key '" + too_long(t.unique_key) + "' of queue '" + too_long(t.queue) + "'" +
             (submit.group.is_nil() ? "" : " (a group's tasks are its own: a duplicate in a group is refused)");
    };
    auto [first, fresh] = seen.emplace(t.queue + '\0' + t.unique_key, i);
    if (!fresh) {
      if (!answer)
        return Status(Code::kConflict, "tasks " + std::to_string(first->second) + " and " + std::to_string(i) +
                                           " of this submission have the same " + what());
      out[i] = {true, first->second, {}};
      continue;
    }
    auto held = ledger_.get_unique(t.queue, t.unique_key);
    if (!held) return Status(Code::kIo, held.status().message());
    if (!held->has_value()) continue;
    if (!answer)
      return Status(Code::kConflict, what() + ": it is held by task " + (*held)->to_string() + ", which has not finished");
    out[i] = {true, SIZE_MAX, **held};
  }
  return Status::ok();
}

void Core::on_confirm(const proto::Confirm& confirm) {
  auto& meta = ledger_.meta();
  if (confirm.seq > meta.confirmed && confirm.seq <= meta.seq) {
    meta.confirmed = confirm.seq;
    dirty_ = true;
  }
}

// The record as a client should see it: a leased task is "started" with its lease's attempt.
Result<std::optional<proto::TaskRecord>> Core::current_task(const Id& id) {
  auto rec = ledger_.get_task(id);
  if (!rec || !rec->has_value()) return rec;
  auto& r = **rec;
  if (const LeaseState* l = tasks_.lease(id)) {
    r.state = TaskState::kStarted;
    r.attempt = l->attempt;
    r.started_ms = l->started_unix_ms;
    if (const WorkerSession* w = workers_.find(l->routing_id)) r.worker = w->name;
  }
  return rec;
}

void Core::on_get_task(const std::string& rid, const proto::GetTask& get) {
  auto rec = current_task(get.task);
  if (!rec) return fail_turn(rec.status());
  if (!rec->has_value()) return reply_error(rid, get.corr, Status(Code::kNotFound, "no task " + get.task.to_string()));
  reply(rid, proto::TaskInfo{get.corr, {std::move(**rec)}});
}

void Core::on_get_group(const std::string& rid, const proto::GetGroup& get) {
  if (const GroupState* g = groups_.active(get.group)) return reply(rid, proto::GroupInfo{get.corr, g->record});
  auto rec = ledger_.get_group(get.group);
  if (!rec) return fail_turn(rec.status());
  if (!rec->has_value()) return reply_error(rid, get.corr, Status(Code::kNotFound, "no group " + get.group.to_string()));
  reply(rid, proto::GroupInfo{get.corr, std::move(**rec)});
}

void Core::on_wait(const std::string& rid, const proto::WaitTasks& wait) {
  Waiter waiter{rid, wait.corr, wait.tasks, 0, now_steady_ms() + std::min<uint64_t>(wait.timeout_ms, kMaxWaitMs)};
  std::vector<proto::TaskRecord> records;
  for (const Id& id : wait.tasks) {
    auto rec = current_task(id);
    if (!rec) return fail_turn(rec.status());
    if (!rec->has_value()) return reply_error(rid, wait.corr, Status(Code::kNotFound, "no task " + id.to_string()));
    if (!is_terminal((*rec)->state)) ++waiter.pending;
    records.push_back(std::move(**rec));
  }
  if (waiter.pending == 0 || wait.timeout_ms == 0) return reply(rid, proto::TaskInfo{wait.corr, std::move(records)});
  const uint64_t wid = next_waiter_++;
  for (const auto& r : records)
    if (!is_terminal(r.state)) waiters_by_task_.emplace(r.id, wid);
  waiters_.emplace(wid, std::move(waiter));
}

void Core::wake_waiters(const Id& task) {
  auto [begin, end] = waiters_by_task_.equal_range(task);
  std::vector<uint64_t> done;
  for (auto it = begin; it != end; ++it) {
    auto w = waiters_.find(it->second);
    if (w != waiters_.end() && --w->second.pending == 0) done.push_back(it->second);
  }
  waiters_by_task_.erase(begin, end);
  for (uint64_t wid : done) {
    auto w = waiters_.find(wid);
    proto::TaskInfo info{w->second.corr, {}};
    for (const Id& id : w->second.tasks) {
      auto rec = current_task(id);
      if (rec && rec->has_value()) info.tasks.push_back(std::move(**rec));
    }
    reply(w->second.routing_id, std::move(info));
    effects_.answered_waiters.push_back(std::move(w->second));
    waiters_.erase(w);
  }
}

void Core::expire_waiters(uint64_t now) {
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    if (it->second.deadline_ms > now) {
      ++it;
      continue;
    }
    proto::TaskInfo info{it->second.corr, {}};
    for (const Id& id : it->second.tasks) {
      auto rec = current_task(id);
      if (rec && rec->has_value()) info.tasks.push_back(std::move(**rec));
      auto [b, e] = waiters_by_task_.equal_range(id);
      for (auto w = b; w != e;) w = w->second == it->first ? waiters_by_task_.erase(w) : std::next(w);
    }
    reply(it->second.routing_id, std::move(info));
    effects_.answered_waiters.push_back(std::move(it->second));
    it = waiters_.erase(it);
  }
}

// Tasks whose ETA, countdown or retry backoff has passed go to their queues.
void Core::release_scheduled(uint64_t now_unix) {
  while (auto due = tasks_.pop_due(now_unix)) {
    auto rec = ledger_.get_task(due->task);
    if (!rec) return fail_turn(rec.status());
    if (!rec->has_value()) continue;
    proto::TaskRecord& r = **rec;
    if (r.state != TaskState::kScheduled && r.state != TaskState::kRetrying) continue;  // revoked meanwhile
    (void)transition(r, r.state, Change(TaskState::kQueued));  // a refusal is logged
  }
}

void Core::on_replay(const std::string& rid, const proto::Replay& replay) {
  const size_t max = std::clamp<size_t>(replay.max_events, 1, kMaxReplayEvents);
  auto events = ledger_.read_events(replay.after_seq, max);
  if (!events) return reply_error(rid, replay.corr, events.status());
  const auto& meta = ledger_.meta();
  reply(rid, proto::EventPage{replay.corr, meta.log_id, meta.first_seq, meta.seq, std::move(events.value())});
}

}  // namespace zb::router
