// The router's core: everything it decides, without a socket.
//
// A turn feeds the core the messages that arrived (on_frontend, on_backend), lets time pass
// (tick, housekeep), dispatches, and ends (end_turn). The core applies each message to the
// in-memory tables and to the turn's LMDB write transaction, and collects what must be sent
// as Effects: replies to clients, tasks and result acknowledgements for workers, and the
// turn's events. router.cc commits the transaction and only then sends the effects.
//
// The concepts have their own types: TaskTable (ready queues, ETA heap, leases, rates),
// GroupTable (group counters and admission; the only place counters change), WorkerRegistry
// (sessions). Every change of a task's state goes through transition(), which checks the life
// cycle (common/task.h), writes the record, moves the task between the tables, updates its
// group and emits the event.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/cron.h"
#include "common/curve.h"
#include "common/protocol.h"
#include "router/groups.h"
#include "router/ledger.h"
#include "router/router.h"
#include "router/task_table.h"
#include "router/workers.h"

namespace zb::router {

struct Outgoing {
  bool backend;
  std::string routing_id;
  proto::Message message;
};

// A WaitTasks request not answered yet.
struct Waiter {
  std::string routing_id;
  uint64_t corr = 0;
  std::vector<Id> tasks;
  size_t pending = 0;
  uint64_t deadline_ms = 0;  // steady clock
};

// What a turn produced, to be sent once its transaction has committed (tasks) or is durable
// (everything else: router.cc holds it until then).
struct Effects {
  std::vector<Outgoing> messages;  // replies, and commands to workers, in order
  struct WorkerMail {
    std::vector<proto::Claim> acks;          // ResultsAck: results recorded durably
    std::vector<proto::Assignment> tasks;    // Tasks, sent once the turn has committed
    // Tasks of at-most-once queues (acks_late = false): sent only once their lease is durable,
    // so that a router crash cannot leave a task running that the restarted router runs again.
    std::vector<proto::Assignment> durable_tasks;
  };
  std::unordered_map<std::string, WorkerMail> workers;  // by routing id
  PackedEvents events;                                  // already in the LMDB log
  std::vector<Waiter> answered_waiters;                 // waits this turn answered
  std::vector<proto::OutputChunk> output;               // live output, forwarded at once (not durable)

  void clear() {
    output.clear();
    messages.clear();
    workers.clear();
    events.clear();
    answered_waiters.clear();
  }
};

// Counters that outlive a core (a rolled-back turn rebuilds the core from LMDB).
struct Stats {
  uint64_t started_steady_ms = 0;
  uint64_t submitted = 0, succeeded = 0, failed = 0, bad_frames = 0;
  uint64_t late_requests = 0;  // submissions and control operations refused past their deadline
  // Messages refused for who sent them (all logged): a role that may not do this; a worker's
  // result, start notice or claim for a lease it does not hold; a count out of bounds.
  uint64_t forbidden = 0, foreign_results = 0, foreign_claims = 0, foreign_started = 0, bad_counts = 0;
  // Live output forwarded (bytes), and chunks dropped: not of a lease held, past the rate.
  uint64_t output_bytes = 0, output_dropped = 0;
  uint64_t refusal_log_window_ms = 0;
  int refusals_logged = 0;
  proto::DurationHistogram turn_time;  // turns that committed, from their start to the commit
};

// What the router around the core knows: the room on disk and the CURVE refusals, for
// submissions (refused while storage is short) and inspect.stats.
struct Health {
  bool storage_full = false;
  std::string storage_refusal;
  uint64_t storage_free_bytes = 0, storage_reserve_bytes = 0, storage_failed_commits = 0;
  uint64_t db_used_bytes = 0, db_map_bytes = 0;
  uint64_t unknown_keys = 0;
};

class Core {
 public:
  Core(const RouterOptions& options, Ledger& ledger, Stats& stats);
  Core(const Core&) = delete;
  Core& operator=(const Core&) = delete;

  // Rebuilds the tables from LMDB, as at a start: leases become orphans waiting to be
  // re-claimed, unfinished tasks go back to their queues or the ETA heap, groups reload.
  Status recover();

  // The turn, inside the ledger's write transaction.
  void begin_turn();
  void on_frontend(const std::string& rid, Result<proto::Message> message, std::optional<curve::Role> role);
  void on_backend(const std::string& rid, Result<proto::Message> message, std::optional<curve::Role> role);
  // A send to this worker failed last turn: it is lost.
  void worker_unreachable(const std::string& rid);
  // Time passes: due ETA tasks are queued, silent workers lost, unclaimed orphans requeued,
  // waits past their deadline answered.
  void tick(uint64_t now_steady_ms, uint64_t now_unix_ms);
  // Once a second: the event log trimmed below what the store confirmed (or beyond the
  // retention), results past their TTL deleted.
  void housekeep(uint64_t now_unix_ms);
  // Hands queued tasks to workers with free credit.
  void dispatch();
  // Writes the groups the turn changed; the turn's first LMDB error, if any.
  Status end_turn();
  // True when the transaction holds something to commit.
  bool changed() const { return dirty_ || !effects_.events.empty(); }
  Effects& effects() { return effects_; }
  // How long the loop may sleep before the core has something to do.
  uint64_t poll_timeout_ms(uint64_t now_steady_ms, uint64_t next_heartbeat_ms) const;

  // A rolled-back turn: the waits outlive the core, and the workers are told to register again.
  std::vector<Waiter> take_waiters();
  // Waits taken from an earlier core: they count again what is unfinished on disk.
  void adopt_waiters(std::vector<Waiter> waiters);
  std::vector<std::string> worker_ids() const;
  // The tables, read-only (inspection and tests).
  const WorkerRegistry& workers() const { return workers_; }
  const TaskTable& tasks() const { return tasks_; }
  const GroupTable& groups() const { return groups_; }

  Health health;

  // One change of a task's state (see transition()).
  struct Change {
    explicit Change(TaskState state) : to(state) {}
    Change& event_error(std::string text) { error = std::move(text); return *this; }
    Change& runtime(uint64_t us) { runtime_us = us; return *this; }
    Change& delay(uint64_t ms) { delay_ms = ms; return *this; }
    Change& from_held(bool yes) { held = yes; return *this; }

    TaskState to;
    std::string error;         // queued: the event's error text (why it was requeued)
    uint64_t runtime_us = 0;   // succeeded, failed
    uint64_t delay_ms = 0;     // retrying: the backoff (0: queued again at once)
    bool held = false;         // from queued: the task held no place in its group's allowance
  };
  // The one place a task's state changes. Refuses (kInternal, nothing changed) a change the
  // life cycle does not allow from `from` (the task's real state: started when leased, queued
  // when in a ready queue or held). Otherwise: the record is written (a start is written as
  // its lease, by the caller) — with the dead-letter and expiry entries of an end; the task
  // goes where its new state says (its ready queue or its group's held list, the ETA heap);
  // its group's counters follow; waiters on an end are answered; the event is emitted with
  // the new state and the one left.
  Status transition(proto::TaskRecord& rec, TaskState from, Change change);

 private:
  // intake.cc
  void on_submit(const std::string& rid, proto::Submit& submit);
  // A task of a submission answered by another with its unique key (UniquePolicy::kExisting):
  // the task `first` of the same submission (first < its own index), else `task`.
  struct Duplicate {
    bool answered = false;
    size_t first = SIZE_MAX;
    Id task;
  };
  // Refuses (kConflict) a submission whose unique keys are taken, unless each such task may
  // be answered by the holder; fills `out` (empty when no task has a key).
  Status check_unique(const proto::Submit& submit, std::vector<Duplicate>& out);
  // One task spec checked alone (its queue found: `queue`); the queue name defaulted.
  Status check_spec(proto::TaskSpec& t, size_t& queue);
  // Writes a new task (a member of `group`, or with a nil group but a group id a chord's
  // callback), its event, and puts it where its state says; false after an LMDB error.
  bool make_task(proto::TaskRecord& rec, proto::TaskSpec& t, size_t queue, const Id& id, GroupState* group,
                 const Id& group_id, const std::vector<Id>& ids, uint64_t now);
  // A group sealed by a submission without tasks may be complete: its callbacks run.
  void note_sealed(const GroupState& group) {
    if (!awaited_groups_.empty() && awaited_groups_.count(group.record.id) && group.record.ready())
      resolve_groups_.push_back(group.record.id);
  }
  void on_get_task(const std::string& rid, const proto::GetTask& get);
  void on_get_group(const std::string& rid, const proto::GetGroup& get);
  void on_wait(const std::string& rid, const proto::WaitTasks& wait);
  void on_replay(const std::string& rid, const proto::Replay& replay);
  void on_confirm(const proto::Confirm& confirm);
  void reply(const std::string& rid, proto::Message message) { effects_.messages.push_back({false, rid, std::move(message)}); }
  void reply_error(const std::string& rid, uint64_t corr, const Status& status);
  Result<std::optional<proto::TaskRecord>> current_task(const Id& id);
  void wake_waiters(const Id& task);
  void expire_waiters(uint64_t now_steady_ms);
  void release_scheduled(uint64_t now_unix_ms);

  // dispatch.cc
  void on_ready(const std::string& rid, const proto::Ready& hello);
  void reclaim(WorkerSession& w, const proto::Ready& hello, proto::Welcome& welcome);
  void on_results(WorkerSession& worker, const proto::Results& results);
  void on_started(WorkerSession& worker, const proto::Started& started);
  void on_heartbeat(WorkerSession& worker, const proto::Heartbeat& beat);
  void on_output(WorkerSession& worker, proto::Output& output);
  void apply_outcome(WorkerSession& worker, const proto::Outcome& outcome);
  void worker_lost(const std::string& rid, std::string_view reason);
  void requeue_lease(const Id& task, const LeaseState& lease, std::string_view why);
  void requeue_orphans(uint64_t now_steady_ms);
  void expire_workers(uint64_t now_steady_ms);
  bool dispatch_one(WorkerSession& worker);
  bool lease_to(WorkerSession& worker, size_t queue, uint64_t key, const Id& task, proto::TaskRecord& rec);
  void steal();
  void hand_over(const std::string& thief, size_t queue, const proto::Claim& returned, proto::TaskRecord& rec);
  void to_worker(const std::string& rid, proto::Message message) { effects_.messages.push_back({true, rid, std::move(message)}); }
  uint64_t next_random();

  // control.cc
  void on_control(const std::string& rid, const proto::Control& control);
  Result<proto::ControlResult> run_control(proto::ControlOp op, const proto::ControlArgs& args);
  proto::TaskRow task_row(const Id& id);
  proto::ControlResult inspect_leases(bool started);
  proto::TaskListReply inspect_scheduled();
  proto::InspectStatsReply inspect_stats();
  proto::InspectRegisteredReply inspect_registered() const;
  proto::InspectQueuesReply inspect_queues() const;
  Result<proto::WorkerCommandReply> command_worker(proto::ControlOp op, const proto::WorkerArgs& args);
  Result<proto::PurgeReply> purge(const std::optional<std::string>& queue);
  Result<proto::RevokeReply> revoke(const Id& task, bool terminate);
  Result<proto::RevokeGroupReply> revoke_group(const proto::GroupArgs& args);
  Result<proto::RevokeGroupReply> revoke_whole_group(GroupState& g, bool terminate);
  // Batch budgets (docs/kinds/agent.md): an outcome's tokens and run time spent against its
  // group's budget, and the groups found over it stopped before this turn dispatches more.
  void spend(const Id& group, const proto::Outcome& outcome);
  void enforce_budgets();
  // Revokes queued tasks of the groups in sweeping_, a bounded number per turn: how many.
  size_t sweep_revoked_groups();
  Result<proto::RetryReply> retry(const Id& task);
  Result<proto::InspectFailedReply> inspect_failed(const proto::InspectFailedArgs& args);
  Result<proto::RetryFailedReply> retry_failed(const proto::RetryFailedArgs& args);

  // schedules.cc: periodic tasks (docs/SCHEDULES.md).
  struct ScheduleState {
    proto::ScheduleRow row;          // as in LMDB (next_slot_ms filled when listed)
    std::optional<cron::Expression> expr;  // cron schedules
    cron::Zone zone = cron::Zone::utc();
    uint64_t next_slot_ms = 0;       // the first slot after row.last_slot_ms (0: none)
  };
  // Reads the schedules from LMDB (recover(), inside its transaction).
  Status load_schedules();
  // Once per core, in its first turn: the config file's schedules declared (new ones made,
  // changed ones updated, those gone from the config deleted).
  void declare_schedules(uint64_t now_unix_ms);
  // Slots due by now fire (or are skipped, or caught up, by the schedule's policies).
  void fire_schedules(uint64_t now_unix_ms);
  Result<ScheduleState> schedule_state(proto::ScheduleRow row) const;
  uint64_t next_slot_after(const ScheduleState& s, uint64_t after_ms) const;
  // Submits the schedule's task for `slot_ms` (how: slot, catch_up, run_now) or records the
  // slot skipped (overlap skip); the firing is written in this turn's transaction. The task.
  Result<Id> fire(ScheduleState& s, uint64_t slot_ms, uint64_t now_unix_ms, const std::string& how);
  Status save_schedule(ScheduleState& s);
  Result<proto::ControlResult> schedule_control(proto::ControlOp op, const proto::ControlArgs& args);
  proto::ScheduleRow schedule_row(const ScheduleState& s) const;
  std::optional<uint64_t> next_schedule_ms() const;

  // workflows.cc: dependencies (docs/WORKFLOWS.md).
  // Refuses a submission whose dependencies name what does not exist, form a cycle, or are
  // malformed; nothing is written.
  Status check_dependencies(proto::Submit& submit);
  // Makes a new task (or one retried) wait: its Dependencies from the spec (`ids`: the
  // submission's task ids, for after_index) or, with spec nullptr, from its record; the waits
  // entries; anything awaited that has ended already is resolved this turn.
  void wait_for(proto::TaskRecord& rec, const proto::TaskSpec& spec, const std::vector<Id>& ids, const Id& group);
  void wait_again(proto::TaskRecord& rec);
  // transition(): a task ended; something may wait for it, or for its group.
  void note_ended(const proto::TaskRecord& rec, const GroupState* group);
  // Resolves the waits of everything that ended this turn (and of what that ended in turn).
  void settle();
  void resolve(bool is_group, const Id& awaited, bool succeeded, const std::string& why);
  void release_waiting(proto::TaskRecord& rec, const proto::Dependencies& deps);
  // Revokes the group's waiting tasks (revoke.group): how many.
  size_t revoke_waiting(const Id& group, const std::string& error);
  Status recover_dependencies();

  // expiry.cc: deletes finished tasks, groups and idempotency keys older than the result TTL.
  void expire_results(uint64_t now_unix_ms);

  // core.cc
  Result<GroupState*> group_of(const proto::TaskRecord& rec);
  void emit(proto::Event event);
  void fail_turn(const Status& status);  // an LMDB error inside the turn
  Status failed(Status status);          // fail_turn, and the status back
  void log_refusal(const std::string& what);

  const RouterOptions& options_;
  Ledger& ledger_;
  Stats& stats_;
  TaskTable tasks_;
  GroupTable groups_;
  WorkerRegistry workers_;
  std::unordered_map<uint64_t, Waiter> waiters_;
  std::unordered_multimap<Id, uint64_t, IdHash> waiters_by_task_;
  uint64_t next_waiter_ = 1;
  uint64_t random_state_ = 0;  // retry jitter (splitmix64)
  uint64_t next_housekeeping_ms_ = 0;
  uint64_t next_steal_ms_ = 0;  // when a reserved task becomes overdue for an idle worker (0: none)
  // Revoked groups whose queued tasks are still being looked for (sweep_revoked_groups): the
  // sweep goes once through every ready queue, from (sweep_queue_, sweep_key_) on, and once
  // through the ETA heap, after the latest revoke.group.
  std::unordered_set<Id, IdHash> sweeping_;
  std::vector<Id> over_budget_;  // groups whose budget this turn's outcomes spent
  size_t sweep_queue_ = 0;
  uint64_t sweep_key_ = 0;
  bool sweep_scheduled_ = false;

  // Dependencies: what something waits for, what ended this turn and has waiters, and each
  // waiting task's group (revoke.group reaches them; they are in no queue).
  std::unordered_set<Id, IdHash> awaited_tasks_, awaited_groups_;
  std::vector<Id> resolve_tasks_, resolve_groups_;
  std::unordered_map<Id, Id, IdHash> waiting_;

  std::map<std::string, ScheduleState> schedules_;
  bool schedules_declared_ = false;

  Effects effects_;
  bool dirty_ = false;         // the write transaction has changes to commit
  Status turn_status_;         // first LMDB error of the turn
};

// An event about a task, carrying the task's identity (id, group, queue, kind, caller's id,
// attempt, worker); transition() adds what is particular to the change.
proto::Event task_event(const proto::TaskRecord& rec, proto::EventType type, TaskState state);

}  // namespace zb::router
