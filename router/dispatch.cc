// Workers, leases and results: Paranoid Pirate sessions, dispatch by credit (each worker's
// window, router/workers.h), work stealing, requeue of tasks whose worker is lost, results
// fenced by (task, attempt).
#include <algorithm>
#include <chrono>

#include "common/clock.h"
#include "common/log.h"
#include "common/text.h"
#include "router/core.h"

namespace zb::router {
namespace {

// Bounds on what a worker announces (READY, HEARTBEAT): beyond them the message is refused.
constexpr uint32_t kMaxCapacity = 1'000'000;
// Live output one worker may forward: 1 MiB/s, in bursts of up to 4 MiB.
constexpr double kOutputBytesPerSecond = 1 << 20;
constexpr double kOutputBurstBytes = 4 << 20;
constexpr uint32_t kMaxSlots = 1024;

// The credit window's clock: round trips of a fraction of a millisecond are measured.
uint64_t now_steady_us() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(SteadyClock::now().time_since_epoch()).count());
}

// What a worker says is passed on in events, replies and HTTP answers: UTF-8 from here on,
// whatever bytes a child process printed.
void make_valid(proto::Message& message) {
  if (auto* r = std::get_if<proto::Results>(&message)) {
    for (auto& o : r->outcomes) {
      make_valid_utf8(o.error);
      make_valid_utf8(o.result);
    }
  }
  if (auto* hello = std::get_if<proto::Ready>(&message)) {
    make_valid_utf8(hello->name);
    make_valid_utf8(hello->hostname);
    for (auto* list : {&hello->queues, &hello->kinds, &hello->test_profiles, &hello->mcp_servers})
      for (auto& s : *list) make_valid_utf8(s);
  }
}

}  // namespace

void Core::on_backend(const std::string& rid, Result<proto::Message> message, std::optional<curve::Role> role) {
  WorkerSession* w = workers_.find(rid);
  if (!message) {
    ++stats_.bad_frames;
    spdlog::warn("router backend bad message known_worker={} reason=\"{}\"", w != nullptr, message.status().message());
    return;
  }
  if (role && *role != curve::Role::kWorker) {  // the ZAP handler admits only worker keys here
    ++stats_.forbidden;
    log_refusal("backend message from role=" + std::string(curve::role_name(*role)));
    return;
  }
  make_valid(*message);
  if (auto* hello = std::get_if<proto::Ready>(&*message)) return on_ready(rid, *hello);
  if (!w) {
    // Paranoid Pirate: a peer we do not know (we restarted, or it expired) must re-register.
    return to_worker(rid, proto::Disconnect{"unknown worker: send READY"});
  }
  w->expiry_ms = now_steady_ms() + uint64_t{options_.heartbeat_ms} * options_.liveness;
  w->last_seen_unix_ms = now_unix_ms();
  std::visit(
      [&](auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, proto::Results>) on_results(*w, m);
        else if constexpr (std::is_same_v<T, proto::Started>) on_started(*w, m);
        else if constexpr (std::is_same_v<T, proto::Heartbeat>) on_heartbeat(*w, m);
        else if constexpr (std::is_same_v<T, proto::Output>) on_output(*w, m);
        else if constexpr (std::is_same_v<T, proto::Bye>) {
          w->draining = true;
          spdlog::info("router worker={} draining reason=\"{}\"", w->name, m.reason.substr(0, 200));
        } else if constexpr (std::is_same_v<T, proto::Disconnect>) {
          // The worker's goodbye at the end of its shutdown: whatever it still holds is requeued.
          worker_lost(rid, "stopped");
        } else {
          ++stats_.bad_frames;
          spdlog::warn("router worker={} sent unexpected {}", w->name, proto::command_name(T::kCommand));
        }
      },
      *message);
}

void Core::on_heartbeat(WorkerSession& w, const proto::Heartbeat& beat) {
  w.busy = std::min<uint32_t>(beat.busy, w.concurrency);
  if (beat.capacity > kMaxCapacity || beat.slots > kMaxSlots) {
    ++stats_.bad_counts;
    log_refusal("heartbeat of worker=" + w.name + " capacity=" + std::to_string(beat.capacity) + " slots=" +
                std::to_string(beat.slots) + " (at most " + std::to_string(kMaxCapacity) + " and " +
                std::to_string(kMaxSlots) + ")");
    return;
  }
  if (beat.capacity) w.capacity = beat.capacity;  // autoscale, resize
  if (beat.slots) w.concurrency = beat.slots;
  if (beat.rss_kb) w.rss_kb = beat.rss_kb;
  if (beat.load_milli || beat.rss_kb) w.load_milli = beat.load_milli;
  w.update_window();
}

// Live output (docs/STREAMING.md): only of a task this session holds, for the attempt it
// holds, cut to size and made valid UTF-8, within the session's byte budget; forwarded on
// the events PUB in this turn's flush. What is refused is counted, never fatal.
void Core::on_output(WorkerSession& w, proto::Output& output) {
  const uint64_t now = now_steady_ms();
  w.output_budget = std::min(kOutputBurstBytes, w.output_budget + static_cast<double>(now - w.output_filled_ms) *
                                                                      kOutputBytesPerSecond / 1000.0);
  w.output_filled_ms = now;
  if (output.chunks.size() > proto::kMaxOutputChunks) {
    stats_.output_dropped += output.chunks.size() - proto::kMaxOutputChunks;
    output.chunks.resize(proto::kMaxOutputChunks);
  }
  for (auto& c : output.chunks) {
    const LeaseState* lease = tasks_.lease(c.task);
    if (!lease || lease->attempt != c.attempt || c.type >= proto::kOutputTypeCount) {
      ++stats_.output_dropped;  // finished meanwhile, or not a task it runs
      continue;
    }
    if (lease->routing_id != w.routing_id) {
      ++stats_.output_dropped;
      log_refusal("output of worker=" + w.name + " task=" + c.task.to_string() + ": not its lease");
      continue;
    }
    if (c.text.size() > proto::kMaxOutputChunkBytes) c.text.resize(proto::kMaxOutputChunkBytes);  // a cut character is replaced
    make_valid_utf8(c.text);
    if (static_cast<double>(c.text.size()) > w.output_budget) {
      ++stats_.output_dropped;  // past its rate: the reader sees a jump in seq
      continue;
    }
    w.output_budget -= static_cast<double>(c.text.size());
    stats_.output_bytes += c.text.size();
    effects_.output.push_back(std::move(c));
  }
}

void Core::on_ready(const std::string& rid, const proto::Ready& hello) {
  if (WorkerSession* old = workers_.find(rid)) {
    // A second READY in one session is a protocol error; a new session replaces the old one.
    const bool same = old->session == hello.session;
    worker_lost(rid, same ? "duplicate READY" : "replaced by a new session");
    if (same) return to_worker(rid, proto::Disconnect{"duplicate READY"});
  }
  if (hello.capacity > kMaxCapacity || hello.concurrency > kMaxSlots || hello.running.size() > kMaxCapacity ||
      hello.session.is_nil()) {
    ++stats_.bad_counts;
    log_refusal("READY name=" + hello.name.substr(0, 64) + " capacity=" + std::to_string(hello.capacity) +
                " concurrency=" + std::to_string(hello.concurrency) + " claims=" + std::to_string(hello.running.size()));
    return to_worker(rid, proto::Disconnect{"READY refused: capacity must be 1.." + std::to_string(kMaxCapacity) +
                                            ", concurrency at most " + std::to_string(kMaxSlots) +
                                            ", and a session id is needed"});
  }
  // The same worker process back with a new socket (its reconnect after a silence): its old
  // session's leases are its own, not lost; those it does not claim again are requeued below.
  std::vector<Id> previous_leases;
  if (WorkerSession* old = workers_.find_session(hello.session)) {
    for (const Id& task : old->leased)
      if (LeaseState* l = tasks_.lease(task)) {
        l->routing_id.clear();  // an orphan of this session
        previous_leases.push_back(task);
      }
    old->leased.clear();
    const std::string old_rid = old->routing_id;
    worker_lost(old_rid, "reconnected with a new socket");
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
  w.update_window();
  for (const auto& name : hello.queues) {
    if (auto q = tasks_.find_queue(name)) w.queues.push_back(*q);
    else spdlog::warn("router worker={} asks for undeclared queue={}", w.name, name.substr(0, 64));
  }
  if (hello.queues.empty())
    for (size_t i = 0; i < tasks_.queue_count(); ++i) w.queues.push_back(i);
  w.expiry_ms = now_steady_ms() + uint64_t{options_.heartbeat_ms} * options_.liveness;
  w.online_unix_ms = w.last_seen_unix_ms = now_unix_ms();

  proto::Welcome welcome{options_.heartbeat_ms, options_.liveness, {}};
  reclaim(w, hello, welcome);
  if (!turn_status_) return;
  size_t unclaimed = 0;
  for (const Id& task : previous_leases) {
    if (w.leased.count(task)) continue;
    if (auto lost = tasks_.end_lease(task)) {
      requeue_lease(task, *lost, "not re-claimed by its worker after a reconnect");
      ++unclaimed;
    }
  }
  if (unclaimed) spdlog::info("router worker reconnected name={} requeued={} (not re-claimed)", w.name, unclaimed);
  for (const Id& id : w.leased) {
    // The lease now names this session: a later restart must know who holds it.
    const LeaseState& l = *tasks_.lease(id);
    if (Status s = ledger_.put_lease(id, Lease{l.attempt, hello.session}); !s) return fail_turn(s);
    dirty_ = true;
  }
  proto::Event ev;
  ev.type = proto::EventType::kWorkerOnline;
  ev.worker = w.name;
  ev.worker_note.push_back({w.hostname, w.pid, w.concurrency, w.capacity, {}});
  emit(std::move(ev));
  spdlog::info("router worker online name={} host={} pid={} capacity={} reclaimed={} rejected={}", w.name, w.hostname,
               w.pid, w.capacity, w.leased.size(), welcome.rejected.size());
  to_worker(rid, std::move(welcome));
  workers_.add(std::move(w));
}

// Re-claims: tasks this worker process still runs (after our restart, or its reconnect).
// Only its own: a lease its session holds, or a task requeued from its session and not yet
// given to anyone else. The others are named in the Welcome as rejected.
void Core::reclaim(WorkerSession& w, const proto::Ready& hello, proto::Welcome& welcome) {
  for (const auto& claim : hello.running) {
    if (LeaseState* l = tasks_.lease(claim.task)) {
      const bool orphan = l->routing_id.empty() || !workers_.find(l->routing_id);
      if (orphan && l->session == hello.session && l->attempt == claim.attempt) {
        l->routing_id = w.routing_id;
        l->grace_deadline_ms = 0;
        l->dispatched_us = now_steady_us();
        l->to_free_slot = false;
        l->recall_for.clear();
        w.leased.insert(claim.task);
        continue;
      }
      if (l->session != hello.session) {
        ++stats_.foreign_claims;
        log_refusal("claim of worker=" + w.name + " task=" + claim.task.to_string() + ": another worker holds it");
      }
      welcome.rejected.push_back(claim);
      continue;
    }
    // Requeued (its worker seemed lost, or the grace after our restart ran out) but not yet
    // dispatched again: give it back to its runner. Or leased just before a crash that lost
    // the lease (tasks go out before their turn's commit is synced): queued again with the
    // durable attempt, and claimed with exactly the next one by the worker it went to. No
    // other worker holds or held it since (no previous holder: that is in memory only), so
    // adopting the claim runs it once.
    const PreviousHolder* from = tasks_.previous_holder(claim.task);
    const bool requeued_from_it = from && from->session == hello.session && from->attempt == claim.attempt;
    if (from && !requeued_from_it) {
      welcome.rejected.push_back(claim);  // requeued from another worker
      continue;
    }
    auto rec = ledger_.get_task(claim.task);
    if (!rec) return fail_turn(rec.status());
    auto q = rec->has_value() ? tasks_.find_queue((*rec)->queue) : std::nullopt;
    const uint64_t key = rec->has_value() ? order_key((*rec)->priority, (*rec)->seq) : 0;
    const uint32_t expected = rec->has_value() ? (*rec)->attempt + (requeued_from_it ? 0 : 1) : 0;
    if (!q || (*rec)->state != TaskState::kQueued || claim.attempt != expected || !tasks_.ready(*q).erase(key)) {
      welcome.rejected.push_back(claim);  // done, revoked, held, or never this worker's
      continue;
    }
    proto::TaskRecord& r = **rec;
    if (!requeued_from_it)
      spdlog::info("router adopted claim worker={} task={} attempt={} (lease not durable before a restart)", w.name,
                   claim.task.to_string(), claim.attempt);
    r.attempt = claim.attempt;
    LeaseState lease{w.routing_id, claim.attempt, r.group, *q, key, 0, 0, hello.session};
    lease.dispatched_us = now_steady_us();
    // A claim names no server: a pooled one is counted on the least loaded server of its pool.
    lease.slot = tasks_.take_slot(*q).value_or(-1);
    tasks_.add_lease(claim.task, std::move(lease));
    tasks_.forget_previous_holder(claim.task);
    w.leased.insert(claim.task);
    r.worker = w.name;
    if (!transition(r, TaskState::kQueued, Change(TaskState::kStarted))) return;
  }
}

// Only the session holding a lease, for the leased attempt, can say its task started.
void Core::on_started(WorkerSession& worker, const proto::Started& started) {
  const uint64_t now = now_unix_ms();
  for (const auto& claim : started.claims) {
    LeaseState* lease = tasks_.lease(claim.task);
    if (!lease || lease->attempt != claim.attempt) continue;  // finished meanwhile
    if (lease->routing_id != worker.routing_id) {
      ++stats_.foreign_started;
      log_refusal("start notice of worker=" + worker.name + " task=" + claim.task.to_string() + ": not its lease");
      continue;
    }
    if (lease->started_unix_ms) continue;
    lease->started_unix_ms = now;
    if (lease->to_free_slot) {
      // Sent to a free slot: from dispatch to this notice is one round trip (commit, both
      // ways on the wire, the worker's turn), what the window must cover.
      worker.note_round_trip(static_cast<double>(std::max<uint64_t>(1, now_steady_us() - lease->dispatched_us)));
    }
  }
}

void Core::on_results(WorkerSession& worker, const proto::Results& results) {
  // While it holds a task for every slot, its results come at the pace its slots go through
  // tasks, overheads included: what a reserved task's place in line predicts (`overdue`).
  // That pace also sizes its window (update_window): the tasks it can go through in a round
  // trip, as fast as the whole path delivers them, not only as its handler runs them. A gap of
  // more than eight times the pace is an idle spell, not a measure.
  const uint64_t now = now_steady_us();
  if (worker.last_results_us && !results.outcomes.empty() && worker.leased.size() >= worker.concurrency) {
    const double sample = static_cast<double>(now - worker.last_results_us) * worker.concurrency /
                          static_cast<double>(results.outcomes.size());
    if (worker.service_us <= 0 || sample <= 8 * worker.service_us) {
      smooth(worker.service_us, sample);
      worker.update_window();
    }
  }
  worker.last_results_us = now;
  auto& acks = effects_.workers[worker.routing_id].acks;
  for (const auto& outcome : results.outcomes) {
    apply_outcome(worker, outcome);
    acks.push_back({outcome.task, outcome.attempt});
  }
}

// Records one result. Fenced by (task, attempt): a result for an older attempt than the one
// leased now is acknowledged and dropped; a result for a task requeued but not yet
// re-dispatched completes it.
void Core::apply_outcome(WorkerSession& worker, const proto::Outcome& outcome) {
  LeaseState* lease = tasks_.lease(outcome.task);
  if (lease && lease->attempt != outcome.attempt) {
    spdlog::debug("router stale result task={} attempt={} current={}", outcome.task.to_string(), outcome.attempt,
                  lease->attempt);
    return;
  }
  // Only the session holding the lease (or, for a task requeued from it and not yet given to
  // anyone else, the session that ran it) can end a task.
  const PreviousHolder* from = tasks_.previous_holder(outcome.task);
  // An orphaned lease of this very session (its worker process ran it and did not claim it
  // again) is its own too.
  const bool holder = lease ? lease->routing_id == worker.routing_id ||
                                  (lease->session == worker.session && !workers_.find(lease->routing_id))
                            : from && from->session == worker.session && from->attempt == outcome.attempt;
  if (!holder || outcome.attempt == 0) {
    if (lease || from || outcome.attempt == 0) {
      ++stats_.foreign_results;
      log_refusal("result of worker=" + worker.name + " task=" + outcome.task.to_string() + " attempt=" +
                  std::to_string(outcome.attempt) + ": not its lease");
    }
    return;  // a duplicate of a result already recorded, or not this worker's to give
  }
  auto found = ledger_.get_task(outcome.task);
  if (!found) return fail_turn(found.status());
  if (!found->has_value()) return;
  proto::TaskRecord rec = std::move(**found);
  auto q = tasks_.find_queue(rec.queue);
  if (!q) return;
  TaskState state;
  std::string thief;  // a recalled task, handed back: the worker it was recalled for
  int32_t pool_slot = -1;  // the model pool server the lease held a place on
  if (lease) {
    thief = std::move(lease->recall_for);
    if (outcome.status != proto::OutcomeStatus::kReturned) {
      smooth(worker.task_us, static_cast<double>(std::max<uint64_t>(1, outcome.runtime_us)));
      worker.update_window();
    }
    worker.leased.erase(outcome.task);
    const auto ended = tasks_.end_lease(outcome.task);
    if (Status s = ledger_.del_lease(outcome.task); !s) return fail_turn(s);
    state = TaskState::kStarted;
    pool_slot = ended->slot;
  } else if (rec.state == TaskState::kQueued && rec.attempt == outcome.attempt &&
             tasks_.ready(*q).erase(order_key(rec.priority, rec.seq))) {
    // The late result of a requeued task: it ran after all.
    tasks_.forget_previous_holder(outcome.task);
    state = TaskState::kQueued;
  } else {
    return;  // a duplicate of a result already recorded, or a task no longer waiting
  }
  rec.attempt = outcome.attempt;
  rec.worker = worker.name;
  const QueueConfig& qc = tasks_.config(*q);
  if (!rec.group.is_nil() && outcome.status != proto::OutcomeStatus::kReturned) spend(rec.group, outcome);

  using proto::OutcomeStatus;
  if (outcome.status == OutcomeStatus::kReturned) {
    // Not run (warm shutdown): back to its place, no retry counted.
    rec.error = outcome.error;
    if (state == TaskState::kQueued) {
      tasks_.ready(*q).push(order_key(rec.priority, rec.seq), rec.id, rec.group);  // still where it was
      return;
    }
    // A refusal is logged; the turn's error fails it.
    if (transition(rec, state, Change(TaskState::kQueued)) && !thief.empty())
      hand_over(thief, *q, {outcome.task, outcome.attempt}, rec);
    return;
  }
  const bool wants_retry = outcome.status == OutcomeStatus::kRetry ||
                           (outcome.status == OutcomeStatus::kFailed && retry_matches(qc, outcome.error));
  if (outcome.status == OutcomeStatus::kRetry && outcome.host_cooldown_ms && pool_slot >= 0) {
    // Its pool's server refused it: that server cools down, and the task takes its place in
    // line again at once for another server of the pool (or this one once it has cooled
    // down), spending no retry — up to kMaxPoolRefusals times, then retries count again.
    const PoolSlot& slot = tasks_.slot(pool_slot);
    const uint64_t cool_ms = std::min(outcome.host_cooldown_ms, kMaxRetryAfterMs);
    tasks_.cool(pool_slot, cool_ms, now_steady_ms());
    spdlog::info("router pool host={} model={} cools down {} ms: {}", slot.host, slot.model, cool_ms,
                 valid_utf8(std::string_view(outcome.error).substr(0, 200)));
    if (rec.attempt - std::min(rec.attempt, rec.retries) <= kMaxPoolRefusals) {
      ++worker.failed;
      rec.error = outcome.error;
      rec.eta_ms = 0;
      (void)transition(rec, state, Change(TaskState::kRetrying));
      return;
    }
  }
  if (wants_retry && rec.retries < rec.max_retries) {
    ++worker.failed;
    // A delay the failed service asked for wins over the backoff, within a bound of our own.
    const uint64_t delay = outcome.status == OutcomeStatus::kRetry && outcome.retry_after_ms
                               ? std::min(outcome.retry_after_ms, kMaxRetryAfterMs)
                               : retry_delay_ms(qc, rec.retries, next_random());
    ++rec.retries;
    rec.error = outcome.error;
    rec.eta_ms = delay ? now_unix_ms() + delay : 0;
    (void)transition(rec, state, Change(TaskState::kRetrying).delay(delay));
    return;
  }
  const bool ok = outcome.status == OutcomeStatus::kSucceeded;
  rec.result = outcome.result;
  rec.error = ok ? std::string() : outcome.error;
  (ok ? worker.processed : worker.failed)++;
  (void)transition(rec, state, Change(ok ? TaskState::kSucceeded : TaskState::kFailed).runtime(outcome.runtime_us));
}

// What an attempt spent counts against its group's budget; a group that has spent it is
// stopped by enforce_budgets() in this turn.
void Core::spend(const Id& group, const proto::Outcome& outcome) {
  auto found = groups_.find(ledger_, group);
  if (!found) return fail_turn(found.status());
  GroupState* g = *found;
  if (!g || (!g->record.budget_tokens && !g->record.budget_run_ms)) return;
  g->record.spent_tokens += outcome.tokens;
  g->record.spent_run_ms += outcome.runtime_us / 1000;
  groups_.mark(*g);
  if (!g->record.budget_spent_ms && over_budget(g->record)) over_budget_.push_back(group);
}

// A group whose budget is spent: revoked as revoke.group without terminate — running tasks
// finish, nothing else starts — its tasks ending "BudgetExceeded: batch ...".
void Core::enforce_budgets() {
  while (turn_status_ && !over_budget_.empty()) {
    const Id id = over_budget_.back();
    over_budget_.pop_back();
    auto found = groups_.find(ledger_, id);
    if (!found) return fail_turn(found.status());
    GroupState* g = *found;
    if (!g || g->record.budget_spent_ms || g->record.ready()) continue;
    g->record.budget_spent_ms = now_unix_ms();
    groups_.mark(*g);
    auto reply = revoke_whole_group(*g, false);
    if (!reply) return fail_turn(reply.status());
    spdlog::info("router group={} budget spent: {} (revoked={} running={})", id.to_string(), revoked_error(g->record),
                 reply->revoked, reply->running);
  }
}

// Puts a task whose lease ended without a result back at its original position; the next
// dispatch is attempt + 1. The caller has taken the lease out of the table.
void Core::requeue_lease(const Id& task, const LeaseState& lease, std::string_view why) {
  auto found = ledger_.get_task(task);
  if (!found) return fail_turn(found.status());
  if (Status s = ledger_.del_lease(task); !s) return fail_turn(s);
  if (!found->has_value()) return;
  proto::TaskRecord& rec = **found;
  rec.attempt = lease.attempt;
  if (!tasks_.config(lease.queue).acks_late) {
    // At-most-once: the attempt may have run; it does not run again.
    rec.error = "WorkerLostError: " + std::string(why) + " (acks_late = false: not run again)";
    (void)transition(rec, TaskState::kStarted, Change(TaskState::kFailed));
    return;
  }
  rec.error = std::string(why);
  if (!transition(rec, TaskState::kStarted, Change(TaskState::kQueued).event_error(rec.error))) return;
  tasks_.note_requeued(task, {lease.session, lease.attempt});
}

void Core::worker_lost(const std::string& rid, std::string_view reason) {
  WorkerSession* w = workers_.find(rid);
  if (!w) return;
  for (const Id& task : w->leased)
    if (auto lease = tasks_.end_lease(task)) requeue_lease(task, *lease, "worker lost: " + std::string(reason));
  proto::Event ev;
  ev.type = proto::EventType::kWorkerOffline;
  ev.worker = w->name;
  ev.worker_note.push_back({w->hostname, w->pid, w->concurrency, w->capacity, std::string(reason)});
  emit(std::move(ev));
  spdlog::info("router worker offline name={} reason=\"{}\" requeued={}", w->name, reason, w->leased.size());
  effects_.workers.erase(rid);  // nothing more is sent to this session
  workers_.remove(rid);
}

void Core::worker_unreachable(const std::string& rid) { worker_lost(rid, "unreachable"); }

void Core::expire_workers(uint64_t now) {
  for (const auto& rid : workers_.expired(now)) worker_lost(rid, "missed heartbeats");
}

// After a restart: leases nobody re-claimed within the grace period are requeued.
void Core::requeue_orphans(uint64_t now) {
  uint64_t next_deadline = 0;
  std::vector<Id> expired;
  for (const auto& [id, l] : tasks_.leases()) {
    if (!l.routing_id.empty()) continue;
    if (l.grace_deadline_ms <= now) expired.push_back(id);
    else next_deadline = next_deadline ? std::min(next_deadline, l.grace_deadline_ms) : l.grace_deadline_ms;
  }
  tasks_.set_orphan_deadline_ms(next_deadline);
  for (const Id& id : expired)
    if (auto lease = tasks_.end_lease(id)) requeue_lease(id, *lease, "not re-claimed after router restart");
  if (!expired.empty()) spdlog::info("router requeued unclaimed in_flight={}", expired.size());
}

// Hands queued tasks to workers with credit in their window, one task per worker per round,
// so that tasks spread over workers instead of filling the first one; then lets workers with
// a free slot and nothing to take steal what waits elsewhere.
void Core::dispatch() {
  enforce_budgets();  // a group whose budget ran out this turn starts nothing more
  settle();  // tasks whose dependencies ended this turn are queued before workers are served
  next_steal_ms_ = 0;
  if (workers_.empty()) return;
  for (auto& [rid, w] : workers_.all()) {
    // Recalled tasks on their way to this worker: those still reserved by their holder, not
    // yet handed back.
    std::erase_if(w.incoming, [&, &id = rid](const proto::Claim& c) {
      const LeaseState* l = tasks_.lease(c.task);
      return !l || l->attempt != c.attempt || l->recall_for != id || l->started_unix_ms != 0;
    });
  }
  tasks_.refill_rates(now_steady_ms());
  bool progress = true;
  while (progress && turn_status_) {
    progress = false;
    workers_.for_each_in_rotation([&](WorkerSession& w) {
      if (w.has_credit() && dispatch_one(w)) progress = true;
    });
  }
  workers_.rotate();
  if (turn_status_) steal();
}

// Work stealing. A worker with a free slot, after dispatch found nothing it could take (its
// queues are empty or rate-limited), may take over tasks reserved by a worker whose slots
// are all busy and that have waited there longer than their place in line explains
// (`overdue`, router/workers.h). The holder is asked to give them back (Recall); it returns
// each one not started yet (an outcome kReturned: no attempt counted), and hand_over() leases
// it to the worker it was recalled for. One recall per lease at most; one that started
// meanwhile just runs where it is. At a steady flow no worker is idle with work queued, so
// nothing is recalled.
void Core::steal() {
  std::vector<WorkerSession*> thieves;
  for (auto& [rid, w] : workers_.all())
    if (w.has_credit() && w.leased.size() + w.incoming.size() < w.concurrency) thieves.push_back(&w);
  if (thieves.empty()) return;
  const uint64_t now = now_steady_us();
  uint64_t next_us = 0;
  struct Reserved {
    uint64_t dispatched_us;
    uint64_t key;
    Id task;
  };
  std::vector<Reserved> reserved;
  for (auto& [rid, holder] : workers_.all()) {
    if (holder.leased.size() <= holder.concurrency) continue;  // no more than one per slot: none waits
    reserved.clear();
    uint32_t running = 0;
    for (const Id& id : holder.leased) {
      const LeaseState* l = tasks_.lease(id);
      if (!l) continue;
      if (l->started_unix_ms) ++running;
      else reserved.push_back({l->dispatched_us, l->key, id});
    }
    if (running < holder.concurrency || reserved.empty()) continue;  // a slot is free: they start
    // The order they were sent in is the order the worker starts them.
    std::sort(reserved.begin(), reserved.end(), [](const Reserved& a, const Reserved& b) {
      return a.dispatched_us != b.dispatched_us ? a.dispatched_us < b.dispatched_us : a.key < b.key;
    });
    proto::Recall recall;
    const double pace = holder.pace_us();
    for (size_t ahead = 0; ahead < reserved.size(); ++ahead) {
      LeaseState* l = tasks_.lease(reserved[ahead].task);
      const uint64_t age = now > l->dispatched_us ? now - l->dispatched_us : 0;
      if (!overdue(age, ahead, holder.concurrency, pace)) {
        const uint64_t wait = us_until_overdue(age, ahead, holder.concurrency, pace);
        next_us = next_us ? std::min(next_us, wait) : wait;
        break;  // the later ones are younger with more ahead of them
      }
      if (!l->recall_for.empty()) continue;  // recalled already
      auto thief = std::find_if(thieves.begin(), thieves.end(), [&](const WorkerSession* t) {
        return t != &holder && t->has_credit() && t->serves(l->queue);
      });
      if (thief == thieves.end()) continue;
      l->recall_for = (*thief)->routing_id;
      (*thief)->incoming.push_back({reserved[ahead].task, l->attempt});
      recall.claims.push_back({reserved[ahead].task, l->attempt});
    }
    if (!recall.claims.empty()) {
      spdlog::debug("router recall worker={} tasks={}", holder.name, recall.claims.size());
      to_worker(holder.routing_id, std::move(recall));
    }
  }
  if (next_us) next_steal_ms_ = now_steady_ms() + (next_us + 999) / 1000;
}

// A recalled task came back (kReturned) and is queued again: it goes to the worker it was
// recalled for, if that one still has room, else it waits its turn in its queue.
void Core::hand_over(const std::string& rid, size_t queue, const proto::Claim& returned, proto::TaskRecord& rec) {
  WorkerSession* thief = workers_.find(rid);
  if (!thief) return;
  std::erase(thief->incoming, returned);
  const uint64_t key = order_key(rec.priority, rec.seq);
  if (!thief->has_credit() || !thief->serves(queue)) return;
  if (tasks_.pooled(queue) && (!thief->has_free_slot() || !tasks_.pool_open(queue))) return;
  if (!tasks_.ready(queue).erase(key)) return;
  lease_to(*thief, queue, key, returned.task, rec);
}

bool Core::dispatch_one(WorkerSession& w) {
  auto q = tasks_.pick(w.queues, w.has_free_slot());
  if (!q) return false;
  const uint64_t key = tasks_.ready(*q).front_key();
  const Id task = tasks_.ready(*q).pop();
  auto found = ledger_.get_task(task);
  if (!found) {
    fail_turn(found.status());
    return false;
  }
  if (!found->has_value()) return true;
  auto group = group_of(**found);
  if (!group) {
    fail_turn(group.status());
    return false;
  }
  if (*group && (*group)->record.revoked_ms) {
    // Queued before its group was revoked, and not swept yet.
    (*found)->error = "revoked: its group was revoked";
    (void)transition(**found, TaskState::kQueued, Change(TaskState::kRevoked));
    return true;
  }
  return lease_to(w, *q, key, task, **found);
}

// Leases a task taken out of its ready queue to a worker, as its next attempt.
bool Core::lease_to(WorkerSession& w, size_t q, uint64_t key, const Id& task, proto::TaskRecord& rec) {
  const uint32_t attempt = rec.attempt + 1;
  // A pooled queue: a place on one of its servers (pick() saw one open).
  const std::optional<int32_t> slot = tasks_.take_slot(q);
  if (tasks_.pooled(q) && !slot) {
    tasks_.ready(q).push(key, task, rec.group);
    return false;
  }
  Lease stored{attempt, w.session};
  if (slot) stored.host = tasks_.slot(*slot).host, stored.model = tasks_.slot(*slot).model;
  if (Status s = ledger_.put_lease(task, stored); !s) {
    fail_turn(s);
    return false;
  }
  LeaseState lease{w.routing_id, attempt, rec.group, q, key, 0, 0, w.session};
  lease.slot = slot.value_or(-1);
  lease.dispatched_us = now_steady_us();
  lease.to_free_slot = w.leased.size() < w.concurrency;
  tasks_.add_lease(task, std::move(lease));
  tasks_.forget_previous_holder(task);
  w.leased.insert(task);
  rec.attempt = attempt;
  rec.worker = w.name;
  if (!transition(rec, TaskState::kQueued, Change(TaskState::kStarted))) return false;
  auto& mail = effects_.workers[w.routing_id];
  (tasks_.config(q).acks_late ? mail.tasks : mail.durable_tasks).push_back({task, attempt, rec.group, std::move(rec.ref), std::move(rec.queue),
                                                  std::move(rec.kind), std::move(rec.payload), rec.soft_limit_ms,
                                                  rec.hard_limit_ms, std::move(rec.trace), std::move(rec.inputs),
                                                  std::move(stored.host), std::move(stored.model)});
  return true;
}

}  // namespace zb::router
