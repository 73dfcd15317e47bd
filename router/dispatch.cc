// Workers, leases and results: Paranoid Pirate sessions, dispatch by credit, requeue of
// tasks whose worker is lost, results fenced by (task, attempt), group admission.
#include <algorithm>
#include <cctype>

#include "common/text.h"
#include "common/clock.h"
#include "common/log.h"
#include "router/router_impl.h"

namespace zb {

using router::GroupState;
using router::LeaseState;
using router::WorkerSession;

namespace {

// Bounds on what a worker announces (READY, HEARTBEAT): beyond them the message is refused.
constexpr uint32_t kMaxCapacity = 1'000'000;
constexpr uint32_t kMaxSlots = 1024;

}  // namespace

void Router::Impl::on_backend(const std::string& rid, Result<proto::Message> message, std::optional<curve::Role> role) {
  auto known = workers.find(rid);
  if (!message) {
    ++bad_frames;
    spdlog::warn("router backend bad message known_worker={} reason=\"{}\"", known != workers.end(),
                 message.status().message());
    return;
  }
  if (role && *role != curve::Role::kWorker) {  // the ZAP handler admits only worker keys here
    ++refused.forbidden;
    log_refusal("backend message from role=" + std::string(curve::role_name(*role)));
    return;
  }
  // What a worker says is passed on in events, replies and HTTP answers: UTF-8 from here on,
  // whatever bytes a child process printed.
  if (auto* r = std::get_if<proto::Results>(&*message)) {
    for (auto& o : r->outcomes) {
      make_valid_utf8(o.error);
      make_valid_utf8(o.result);
    }
  }
  if (auto* hello = std::get_if<proto::Ready>(&*message)) {
    make_valid_utf8(hello->name);
    make_valid_utf8(hello->hostname);
    for (auto* list : {&hello->queues, &hello->kinds, &hello->test_profiles, &hello->mcp_servers})
      for (auto& s : *list) make_valid_utf8(s);
    return on_ready(rid, *hello);
  }
  if (known == workers.end()) {
    // Paranoid Pirate: a peer we do not know (we restarted, or it expired) must re-register.
    outbox.push_back({true, rid, proto::Disconnect{"unknown worker: send READY"}});
    return;
  }
  WorkerSession& w = known->second;
  w.expiry_ms = now_steady_ms() + uint64_t{options.heartbeat_ms} * options.liveness;
  w.last_seen_unix_ms = now_unix_ms();
  std::visit(
      [&](auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, proto::Results>) on_results(w, m);
        else if constexpr (std::is_same_v<T, proto::Started>) on_started(w, m);
        else if constexpr (std::is_same_v<T, proto::Heartbeat>) {
          w.busy = std::min<uint32_t>(m.busy, w.concurrency);
          if (m.capacity > kMaxCapacity || m.slots > kMaxSlots) {
            ++refused.bad_counts;
            log_refusal("heartbeat of worker=" + w.name + " capacity=" + std::to_string(m.capacity) +
                        " slots=" + std::to_string(m.slots) + " (at most " + std::to_string(kMaxCapacity) + " and " +
                        std::to_string(kMaxSlots) + ")");
            return;
          }
          if (m.capacity) w.capacity = m.capacity;  // autoscale, resize
          if (m.slots) w.concurrency = m.slots;
        }
        else if constexpr (std::is_same_v<T, proto::Bye>) {
          w.draining = true;
          spdlog::info("router worker={} draining reason=\"{}\"", w.name, m.reason.substr(0, 200));
        } else if constexpr (std::is_same_v<T, proto::Disconnect>) {
          // The worker's goodbye at the end of its shutdown: whatever it still holds is requeued.
          worker_lost(rid, "stopped");
        } else {
          ++bad_frames;
          spdlog::warn("router worker={} sent unexpected {}", w.name, proto::command_name(T::kCommand));
        }
      },
      *message);
}

void Router::Impl::on_ready(const std::string& rid, const proto::Ready& hello) {
  if (auto old = workers.find(rid); old != workers.end()) {
    // A second READY in one session is a protocol error; a new session replaces the old one.
    const bool same = old->second.session == hello.session;
    worker_lost(rid, same ? "duplicate READY" : "replaced by a new session");
    if (same) {
      outbox.push_back({true, rid, proto::Disconnect{"duplicate READY"}});
      return;
    }
  }
  if (hello.capacity > kMaxCapacity || hello.concurrency > kMaxSlots || hello.running.size() > kMaxCapacity ||
      hello.session.is_nil()) {
    ++refused.bad_counts;
    log_refusal("READY name=" + hello.name.substr(0, 64) + " capacity=" + std::to_string(hello.capacity) +
                " concurrency=" + std::to_string(hello.concurrency) + " claims=" + std::to_string(hello.running.size()));
    outbox.push_back({true, rid, proto::Disconnect{"READY refused: capacity must be 1.." + std::to_string(kMaxCapacity) +
                                                   ", concurrency at most " + std::to_string(kMaxSlots) +
                                                   ", and a session id is needed"}});
    return;
  }
  // The same worker process back with a new socket (its reconnect after a silence): its old
  // session's leases are its own, not lost; those it does not claim again are requeued below.
  std::vector<Id> previous_leases;
  for (auto it = workers.begin(); it != workers.end(); ++it) {
    if (it->second.session != hello.session) continue;
    WorkerSession& old = it->second;
    for (const Id& task : old.leased)
      if (auto l = leases.find(task); l != leases.end()) {
        l->second.routing_id.clear();  // an orphan of this session
        previous_leases.push_back(task);
      }
    old.leased.clear();
    worker_lost(it->first, "reconnected with a new socket");
    break;
  }
  WorkerSession w;
  w.routing_id = rid;
  w.session = hello.session;
  w.name = hello.name.empty() ? "worker" : hello.name.substr(0, 255);
  w.hostname = hello.hostname.substr(0, 255);
  w.pid = hello.pid;
  w.kinds = hello.kinds;
  w.test_profiles = hello.test_profiles;
  w.mcp_servers = hello.mcp_servers;
  w.concurrency = hello.concurrency;
  w.capacity = std::max<uint32_t>(1, hello.capacity);
  const auto& names = hello.queues.empty() ? std::vector<std::string>{} : hello.queues;
  for (const auto& name : names) {
    if (auto q = queue_index.find(name); q != queue_index.end()) w.queues.push_back(q->second);
    else spdlog::warn("router worker={} asks for undeclared queue={}", w.name, name.substr(0, 64));
  }
  if (hello.queues.empty())
    for (size_t i = 0; i < options.queues.size(); ++i) w.queues.push_back(i);
  w.expiry_ms = now_steady_ms() + uint64_t{options.heartbeat_ms} * options.liveness;
  w.online_unix_ms = w.last_seen_unix_ms = now_unix_ms();

  // Re-claims: tasks this worker process still runs (after our restart, or its reconnect).
  // Only its own: a lease its session holds, or a task requeued from its session and not yet
  // given to anyone else.
  proto::Welcome welcome{options.heartbeat_ms, options.liveness, {}};
  for (const auto& claim : hello.running) {
    auto lease = leases.find(claim.task);
    if (lease != leases.end()) {
      LeaseState& l = lease->second;
      const bool orphan = l.routing_id.empty() || !workers.count(l.routing_id);
      if (orphan && l.session == hello.session && l.attempt == claim.attempt) {
        l.routing_id = rid;
        l.grace_deadline_ms = 0;
        w.leased.insert(claim.task);
        continue;
      }
      if (l.session != hello.session) {
        ++refused.foreign_claims;
        log_refusal("claim of worker=" + w.name + " task=" + claim.task.to_string() + ": another worker holds it");
      }
      welcome.rejected.push_back(claim);
      continue;
    }
    auto from = requeued_from.find(claim.task);
    if (from == requeued_from.end() || from->second.session != hello.session || from->second.attempt != claim.attempt) {
      welcome.rejected.push_back(claim);  // done, revoked, or never this worker's
      continue;
    }
    // Requeued (its worker seemed lost, or the grace after our restart ran out) but not yet
    // dispatched again: give it back to its runner.
    auto rec = ledger->get_task(claim.task);
    if (!rec) return fail_turn(rec.status());
    if (rec->has_value() && (*rec)->state == TaskState::kQueued && (*rec)->attempt == claim.attempt) {
      auto q = queue_index.find((*rec)->queue);
      const uint64_t key = router::order_key((*rec)->priority, (*rec)->seq);
      if (q != queue_index.end() && ready[q->second].erase(key)) {
        leases[claim.task] = {rid, claim.attempt, (*rec)->group, q->second, key, 0, 0, hello.session};
        requeued_from.erase(from);
        ++queue_running[q->second];
        router::Lease persisted{claim.attempt, hello.session, w.name, now_unix_ms()};
        if (Status s = ledger->put_lease(claim.task, persisted); !s) return fail_turn(s);
        if (auto* g = (*rec)->group.is_nil() ? nullptr : load_group((*rec)->group)) {
          ++g->record.running;
          mark_group(*g);
        }
        w.leased.insert(claim.task);
        dirty = true;
        continue;
      }
    }
    welcome.rejected.push_back(claim);
  }
  for (const Id& task : previous_leases) {
    if (w.leased.count(task)) continue;
    auto l = leases.find(task);
    if (l == leases.end()) continue;
    LeaseState lost = l->second;
    leases.erase(l);
    requeue_lease(task, lost, "not re-claimed by its worker after a reconnect");
  }
  for (const auto& id : w.leased) {
    // The lease now names this session: a later restart must know who holds it.
    const auto& l = leases[id];
    router::Lease persisted{l.attempt, hello.session, w.name, now_unix_ms()};
    if (Status s = ledger->put_lease(id, persisted); !s) return fail_turn(s);
    dirty = true;
  }
  proto::Event ev;
  ev.type = proto::EventType::kWorkerOnline;
  ev.worker = w.name;
  ev.worker_note.push_back({w.hostname, w.pid, w.concurrency, w.capacity, {}});
  emit(std::move(ev));
  spdlog::info("router worker online name={} host={} pid={} capacity={} reclaimed={} rejected={}",
               w.name, w.hostname, w.pid, w.capacity, w.leased.size(), welcome.rejected.size());
  outbox.push_back({true, rid, std::move(welcome)});
  worker_order.push_back(rid);
  workers.emplace(rid, std::move(w));
}

// Only the session holding a lease, for the leased attempt, can say its task started.
void Router::Impl::on_started(WorkerSession& worker, const proto::Started& started) {
  const uint64_t now = now_unix_ms();
  for (const auto& claim : started.claims) {
    auto lease = leases.find(claim.task);
    if (lease == leases.end() || lease->second.attempt != claim.attempt) continue;  // finished meanwhile
    if (lease->second.routing_id != worker.routing_id) {
      ++refused.foreign_started;
      log_refusal("start notice of worker=" + worker.name + " task=" + claim.task.to_string() + ": not its lease");
      continue;
    }
    if (!lease->second.started_unix_ms) lease->second.started_unix_ms = now;
  }
}

void Router::Impl::on_results(WorkerSession& worker, const proto::Results& results) {
  for (const auto& outcome : results.outcomes) {
    apply_outcome(&worker, outcome);
    worker.acks.push_back({outcome.task, outcome.attempt});
  }
}

// Records one result. Fenced by (task, attempt): a result for an older attempt than the one
// leased now is acknowledged and dropped; a result for a task requeued but not yet
// re-dispatched completes it.
void Router::Impl::apply_outcome(WorkerSession* worker, const proto::Outcome& outcome) {
  auto lease = leases.find(outcome.task);
  if (lease != leases.end() && lease->second.attempt != outcome.attempt) {
    spdlog::debug("router stale result task={} attempt={} current={}", outcome.task.to_string(),
                  outcome.attempt, lease->second.attempt);
    return;
  }
  // Only the session holding the lease (or, for a task requeued from it and not yet given to
  // anyone else, the session that ran it) can end a task.
  auto from = requeued_from.find(outcome.task);
  const bool holder = lease != leases.end()
                          ? worker && lease->second.routing_id == worker->routing_id
                          : worker && from != requeued_from.end() && from->second.session == worker->session &&
                                from->second.attempt == outcome.attempt;
  if (!holder || outcome.attempt == 0) {
    const bool finished_or_unknown = lease == leases.end() && from == requeued_from.end();
    if (!finished_or_unknown || outcome.attempt == 0) {
      ++refused.foreign_results;
      log_refusal("result of worker=" + (worker ? worker->name : std::string("?")) + " task=" +
                  outcome.task.to_string() + " attempt=" + std::to_string(outcome.attempt) + ": not its lease");
    }
    return;  // a duplicate of a result already recorded, or not this worker's to give
  }
  auto found = ledger->get_task(outcome.task);
  if (!found) return fail_turn(found.status());
  if (!found->has_value()) return;
  proto::TaskRecord rec = std::move(**found);
  auto q = queue_index.find(rec.queue);
  if (q == queue_index.end()) return;
  const uint64_t key = router::order_key(rec.priority, rec.seq);
  const bool was_leased = lease != leases.end();
  if (was_leased) {
    if (auto w = workers.find(lease->second.routing_id); w != workers.end()) w->second.leased.erase(outcome.task);
    --queue_running[lease->second.queue];
    leases.erase(lease);
    if (Status s = ledger->del_lease(outcome.task); !s) return fail_turn(s);
  } else if (rec.state == TaskState::kQueued && rec.attempt == outcome.attempt &&
             ready[q->second].erase(key)) {
    // The late result of a requeued task: it ran after all.
    requeued_from.erase(outcome.task);
  } else {
    return;  // a duplicate of a result already recorded, or a task no longer waiting
  }
  GroupState* group = rec.group.is_nil() ? nullptr : load_group(rec.group);
  if (group && was_leased && group->record.running > 0) --group->record.running;

  rec.attempt = outcome.attempt;
  if (worker) rec.worker = worker->name;
  const QueueConfig& qc = options.queues[q->second];

  using proto::OutcomeStatus;
  if (outcome.status == OutcomeStatus::kReturned) {
    // Not run (warm shutdown): back to its place, no retry counted.
    rec.state = TaskState::kQueued;
    rec.error = outcome.error;
    if (Status s = ledger->put_task(rec); !s) return fail_turn(s);
    emit(router::task_event(rec, proto::EventType::kTaskQueued, TaskState::kQueued));
    ready[q->second].push(key, rec.id);
    if (group) mark_group(*group);
    return;
  }
  const bool wants_retry = outcome.status == OutcomeStatus::kRetry ||
                           (outcome.status == OutcomeStatus::kFailed && router::retry_matches(qc, outcome.error));
  if (wants_retry && rec.retries < rec.max_retries) {
    if (worker) ++worker->failed;
    return schedule_retry(rec, q->second, outcome.error, true);
  }
  const bool ok = outcome.status == OutcomeStatus::kSucceeded;
  finish_task(rec, ok, outcome.result, ok ? std::string() : outcome.error, worker, outcome.runtime_us, true);
}

void Router::Impl::schedule_retry(proto::TaskRecord& rec, size_t queue, std::string error, bool admitted) {
  const QueueConfig& qc = options.queues[queue];
  const uint64_t delay = router::retry_delay_ms(qc, rec.retries, next_random());
  ++rec.retries;
  rec.error = std::move(error);
  const uint64_t now = now_unix_ms();
  rec.state = delay ? TaskState::kRetrying : TaskState::kQueued;
  rec.eta_ms = delay ? now + delay : 0;
  if (Status s = ledger->put_task(rec); !s) return fail_turn(s);
  proto::Event ev = router::task_event(rec, proto::EventType::kTaskRetried, TaskState::kRetrying);
  ev.error = rec.error;
  ev.eta_ms = rec.eta_ms;
  ev.retries = rec.retries;
  ev.max_retries = rec.max_retries;
  ev.delay_ms = delay;
  emit(std::move(ev));
  const uint64_t key = router::order_key(rec.priority, rec.seq);
  GroupState* group = rec.group.is_nil() ? nullptr : load_group(rec.group);
  if (delay == 0) {
    emit(router::task_event(rec, proto::EventType::kTaskQueued, TaskState::kQueued));
    if (admitted) ready[queue].push(key, rec.id);
    else enqueue(queue, key, rec.id, rec.group);
  } else {
    // Waiting out the backoff does not hold a place in the group's `parallel` allowance.
    scheduled.push({rec.eta_ms, key, queue, rec.id, rec.group});
    if (group && admitted) {
      if (group->admitted > 0) --group->admitted;
      admit_held(*group);
    }
  }
  if (group) mark_group(*group);
}

void Router::Impl::finish_task(proto::TaskRecord& rec, bool ok, std::string result, std::string error,
                               WorkerSession* worker, uint64_t runtime_us, bool admitted) {
  const uint64_t now = now_unix_ms();
  requeued_from.erase(rec.id);
  rec.state = ok ? TaskState::kSucceeded : TaskState::kFailed;
  rec.result = std::move(result);
  rec.error = std::move(error);
  rec.finished_ms = now;
  if (Status s = ledger->put_task(rec); !s) return fail_turn(s);
  if (!ok)
    if (Status s = ledger->put_dead(rec.id); !s) return fail_turn(s);
  if (options.result_ttl_ms)
    if (Status s = ledger->put_expiry(now, router::Ledger::Expiring::kTask, rec.id.bytes()); !s) return fail_turn(s);
  proto::Event ev = router::task_event(rec, ok ? proto::EventType::kTaskSucceeded : proto::EventType::kTaskFailed, rec.state);
  ev.result = rec.result;
  ev.error = rec.error;
  ev.runtime_us = runtime_us;
  ev.retries = rec.retries;
  emit(std::move(ev));
  if (worker) (ok ? worker->processed : worker->failed)++;
  (ok ? succeeded_total : failed_total)++;
  if (GroupState* group = rec.group.is_nil() ? nullptr : load_group(rec.group)) {
    (ok ? group->record.succeeded : group->record.failed)++;
    if (admitted && group->admitted > 0) --group->admitted;
    if (group->record.ready() && !group->record.finished_ms) group->record.finished_ms = now;
    mark_group(*group);
    admit_held(*group);
  }
  dirty = true;
  task_finished(rec.id);
}

uint64_t Router::Impl::next_random() {
  // splitmix64: jitter needs spread, not secrecy.
  uint64_t z = (random_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t router::retry_delay_ms(const QueueConfig& queue, uint32_t retries, uint64_t random) {
  uint64_t delay = queue.retry_backoff_ms;
  for (uint32_t i = 0; i < retries && delay < queue.retry_backoff_max_ms; ++i) delay *= 2;
  delay = std::min<uint64_t>(delay, queue.retry_backoff_max_ms);
  if (queue.retry_jitter && delay > 1) delay = delay / 2 + random % (delay - delay / 2 + 1);
  return delay;
}

std::string_view router::error_class(std::string_view error) {
  size_t i = 0;
  while (i < error.size() && (std::isalnum(static_cast<unsigned char>(error[i])) || error[i] == '_' || error[i] == '.')) ++i;
  if (i == 0 || i >= error.size() || error[i] != ':' || std::isdigit(static_cast<unsigned char>(error[0]))) return {};
  return error.substr(0, i);
}

bool router::retry_matches(const QueueConfig& queue, std::string_view error) {
  if (queue.retry_on.empty()) return false;
  const std::string_view cls = error_class(error);
  for (const auto& name : queue.retry_on)
    if (name == "*" || (!cls.empty() && name == cls)) return true;
  return false;
}

// Puts a leased task back at its original position; the next dispatch is attempt + 1.
void Router::Impl::requeue_lease(const Id& task, const LeaseState& lease, std::string_view why) {
  auto found = ledger->get_task(task);
  if (!found) return fail_turn(found.status());
  if (Status s = ledger->del_lease(task); !s) return fail_turn(s);
  --queue_running[lease.queue];
  if (!found->has_value()) return;
  proto::TaskRecord& rec = **found;
  rec.attempt = lease.attempt;
  if (!options.queues[lease.queue].acks_late) {
    // At-most-once: the attempt may have run; it does not run again.
    if (GroupState* g = rec.group.is_nil() ? nullptr : load_group(rec.group))
      if (g->record.running > 0) --g->record.running;
    finish_task(rec, false, {}, "WorkerLostError: " + std::string(why) + " (acks_late = false: not run again)",
                nullptr, 0, true);
    return;
  }
  rec.state = TaskState::kQueued;
  rec.error = std::string(why);
  if (Status s = ledger->put_task(rec); !s) return fail_turn(s);
  proto::Event ev = router::task_event(rec, proto::EventType::kTaskQueued, TaskState::kQueued);
  ev.error = rec.error;
  emit(std::move(ev));
  ready[lease.queue].push(lease.key, task);
  requeued_from[task] = {lease.session, lease.attempt};
  if (GroupState* g = rec.group.is_nil() ? nullptr : load_group(rec.group)) {
    if (g->record.running > 0) --g->record.running;
    mark_group(*g);
  }
}

void Router::Impl::worker_lost(const std::string& rid, std::string_view reason) {
  auto it = workers.find(rid);
  if (it == workers.end()) return;
  WorkerSession& w = it->second;
  for (const Id& task : w.leased) {
    auto lease = leases.find(task);
    if (lease == leases.end()) continue;
    LeaseState l = lease->second;
    leases.erase(lease);
    requeue_lease(task, l, "worker lost: " + std::string(reason));
  }
  proto::Event ev;
  ev.type = proto::EventType::kWorkerOffline;
  ev.worker = w.name;
  ev.worker_note.push_back({w.hostname, w.pid, w.concurrency, w.capacity, std::string(reason)});
  emit(std::move(ev));
  spdlog::info("router worker offline name={} reason=\"{}\" requeued={}", w.name, reason, w.leased.size());
  workers.erase(it);
  worker_order.erase(std::remove(worker_order.begin(), worker_order.end(), rid), worker_order.end());
}

void Router::Impl::expire_workers(uint64_t now) {
  std::vector<std::string> dead;
  for (auto& [rid, w] : workers)
    if (w.expiry_ms <= now) dead.push_back(rid);
  for (const auto& rid : dead) worker_lost(rid, "missed heartbeats");
}

// After a restart: leases nobody re-claimed within the grace period are requeued.
void Router::Impl::requeue_orphans(uint64_t now) {
  orphan_deadline_ms = 0;
  std::vector<Id> expired;
  for (auto& [id, l] : leases) {
    if (!l.routing_id.empty()) continue;
    if (l.grace_deadline_ms <= now) expired.push_back(id);
    else orphan_deadline_ms = orphan_deadline_ms ? std::min(orphan_deadline_ms, l.grace_deadline_ms) : l.grace_deadline_ms;
  }
  for (const Id& id : expired) {
    LeaseState l = leases[id];
    leases.erase(id);
    requeue_lease(id, l, "not re-claimed after router restart");
  }
  if (!expired.empty()) spdlog::info("router requeued unclaimed in_flight={}", expired.size());
}

GroupState* Router::Impl::load_group(const Id& id) {
  if (auto g = groups.find(id); g != groups.end()) return &g->second;
  auto rec = ledger->get_group(id);
  if (!rec) {
    fail_turn(rec.status());
    return nullptr;
  }
  if (!rec->has_value()) return nullptr;
  GroupState state;
  state.record = std::move(**rec);
  return &groups.emplace(id, std::move(state)).first->second;
}

void Router::Impl::mark_group(GroupState& group) {
  if (!group.dirty) {
    group.dirty = true;
    dirty_groups.push_back(group.record.id);
  }
}

// Writes each group changed this turn once, and forgets groups that are done.
void Router::Impl::write_groups() {
  for (const Id& id : dirty_groups) {
    auto g = groups.find(id);
    if (g == groups.end()) continue;
    g->second.dirty = false;
    if (Status s = ledger->put_group(g->second.record); !s) return fail_turn(s);
    // Followers get the record as it is now: they apply it instead of counting for themselves.
    proto::Event ev;
    ev.type = proto::EventType::kGroupUpdated;
    ev.group = id;
    proto::GroupRecord shown = g->second.record;
    shown.chunks_present.clear();
    ev.group_record.push_back(std::move(shown));
    emit(std::move(ev));
    if (options.result_ttl_ms && g->second.record.ready() && g->second.record.finished_ms)
      if (Status s = ledger->put_expiry(g->second.record.finished_ms, router::Ledger::Expiring::kGroup, id.bytes()); !s)
        return fail_turn(s);
    dirty = true;
    if (g->second.record.ready() && g->second.held.empty() && g->second.admitted == 0) groups.erase(g);
  }
  dirty_groups.clear();
}

// Queues a task, unless its group already has `parallel` tasks admitted: then it is held
// until one of them finishes.
void Router::Impl::enqueue(size_t queue, uint64_t key, const Id& task, const Id& group_id) {
  if (!group_id.is_nil()) {
    if (GroupState* g = load_group(group_id)) {
      if (g->record.parallel > 0 && g->admitted >= g->record.parallel) {
        g->held.emplace(key, std::make_pair(queue, task));
        return;
      }
      ++g->admitted;
    }
  }
  ready[queue].push(key, task);
}

void Router::Impl::admit_held(GroupState& group) {
  while (!group.held.empty() && (group.record.parallel == 0 || group.admitted < group.record.parallel)) {
    auto it = group.held.begin();
    ready[it->second.first].push(it->first, it->second.second);
    ++group.admitted;
    group.held.erase(it);
  }
}

// Hands queued tasks to workers with free credit, one task per worker per round, so that
// tasks spread over workers instead of filling the first one.
void Router::Impl::dispatch() {
  if (workers.empty()) return;
  const uint64_t now = now_steady_ms();
  for (auto& r : rates) r.refill(now);
  bool progress = true;
  while (progress && turn_status) {
    progress = false;
    for (size_t i = 0; i < worker_order.size(); ++i) {
      auto& w = workers[worker_order[(rotation + i) % worker_order.size()]];
      if (!w.draining && w.leased.size() < w.capacity && dispatch_one(w)) progress = true;
    }
  }
  rotation = worker_order.empty() ? 0 : (rotation + 1) % worker_order.size();
}

bool Router::Impl::dispatch_one(WorkerSession& w) {
  open_queues.clear();
  for (size_t i : w.queues)
    if (rates[i].open()) open_queues.push_back(i);
  auto q = router::best_queue(ready, open_queues);
  if (!q) return false;
  if (rates[*q].rate > 0) rates[*q].tokens -= 1.0;
  const uint64_t key = ready[*q].front_key();
  const Id task = ready[*q].pop();
  auto found = ledger->get_task(task);
  if (!found) {
    fail_turn(found.status());
    return false;
  }
  if (!found->has_value()) return true;
  proto::TaskRecord& rec = **found;
  const uint32_t attempt = rec.attempt + 1;
  router::Lease persisted{attempt, w.session, w.name, now_unix_ms()};
  if (Status s = ledger->put_lease(task, persisted); !s) {
    fail_turn(s);
    return false;
  }
  leases[task] = {w.routing_id, attempt, rec.group, *q, key, 0, 0, w.session};
  requeued_from.erase(task);
  ++queue_running[*q];
  w.leased.insert(task);
  if (GroupState* g = rec.group.is_nil() ? nullptr : load_group(rec.group)) {
    ++g->record.running;
    mark_group(*g);
  }
  proto::Event ev = router::task_event(rec, proto::EventType::kTaskStarted, TaskState::kStarted);
  ev.attempt = attempt;
  ev.worker = w.name;
  emit(std::move(ev));
  w.outgoing.push_back({task, attempt, rec.group, std::move(rec.ref), std::move(rec.queue),
                        std::move(rec.kind), std::move(rec.payload), rec.soft_limit_ms, rec.hard_limit_ms});
  return true;
}

}  // namespace zb
