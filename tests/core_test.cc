// The router's core without a socket: messages in, effects out, on a real LMDB folder.
#include <algorithm>
#include <filesystem>
#include <map>

#include <gtest/gtest.h>

#include "common/clock.h"
#include <nlohmann/json.hpp>
#include "router/core.h"
#include "tests/support/harness.h"

namespace zb::router {
namespace {

using proto::EventType;
using S = TaskState;

class CoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("zbatch-core-" + Id::random().to_string());
    QueueConfig q;
    q.name = "default";
    q.retry_backoff_ms = 60'000;  // a retry with a backoff waits in the ETA heap
    q.retry_backoff_max_ms = 60'000;
    q.retry_jitter = false;
    q.retry_on = {"Transient"};
    QueueConfig once = q;
    once.name = "once";
    once.acks_late = false;
    options_.queues = {q, once};
    options_.result_ttl_ms = 0;
    lmdb::EnvOptions env;
    env.sync = false;
    auto ledger = Ledger::open(dir_.string(), env);
    ASSERT_TRUE(ledger) << ledger.status().to_string();
    ledger_.emplace(std::move(*ledger));
    core_.emplace(options_, *ledger_, stats_);
    ASSERT_TRUE(core_->recover());
  }
  void TearDown() override {
    core_.reset();
    ledger_.reset();
    std::filesystem::remove_all(dir_);
  }

  // One turn around `fn`: its effects, as the router would send them after the commit.
  template <typename F>
  Effects turn(F&& fn) {
    EXPECT_TRUE(ledger_->begin());
    core_->begin_turn();
    fn();
    EXPECT_TRUE(core_->end_turn());
    EXPECT_TRUE(ledger_->commit());
    Effects out = std::move(core_->effects());
    core_->effects().clear();
    return out;
  }
  Effects frontend(proto::Message m) {
    return turn([&] { core_->on_frontend("client", std::move(m), std::nullopt); });
  }
  Effects backend(const std::string& rid, proto::Message m) {
    return turn([&] {
      core_->on_backend(rid, std::move(m), std::nullopt);
      core_->dispatch();
    });
  }

  std::vector<Id> submit(size_t n, Id group = Id(), uint32_t parallel = 0, std::string queue = "default",
                         uint64_t countdown_ms = 0) {
    proto::Submit s;
    s.corr = 7;
    s.group = group;
    s.parallel = parallel;
    for (size_t i = 0; i < n; ++i) {
      proto::TaskSpec t;
      t.queue = queue;
      t.kind = "echo";
      t.payload = "{}";
      t.ref = "t" + std::to_string(i);
      t.countdown_ms = countdown_ms;
      s.tasks.push_back(std::move(t));
    }
    Effects out = frontend(std::move(s));
    for (auto& m : out.messages)
      if (auto* ack = std::get_if<proto::SubmitAck>(&m.message)) return ack->tasks;
    ADD_FAILURE() << "no SubmitAck";
    return {};
  }
  // A worker session serving every queue with `capacity` credit; its Welcome's effects.
  Effects ready(const std::string& rid, uint32_t capacity, Id session = Id::random()) {
    proto::Ready r;
    r.name = rid;
    r.session = session;
    r.hostname = "host";
    r.concurrency = capacity;
    r.capacity = capacity;
    return backend(rid, std::move(r));
  }
  static proto::Ready hello(const std::string& rid, uint32_t slots, uint32_t capacity,
                            std::vector<proto::Claim> running = {}) {
    proto::Ready r;
    r.name = rid;
    r.session = Id::random();
    r.hostname = "host";
    r.concurrency = slots;
    r.capacity = capacity;
    r.running = std::move(running);
    return r;
  }
  static std::optional<proto::Recall> recall_to(const Effects& e, const std::string& rid) {
    for (const auto& m : e.messages)
      if (auto* r = std::get_if<proto::Recall>(&m.message); r && m.backend && m.routing_id == rid) return *r;
    return std::nullopt;
  }
  // Turns of dispatch alone (time passing) until one recalls tasks from `rid`, for at most 2 s.
  std::optional<proto::Recall> await_recall(const std::string& rid) {
    std::optional<proto::Recall> got;
    testing::wait_until([&] {
      got = recall_to(turn([&] { core_->dispatch(); }), rid);
      return got.has_value();
    }, std::chrono::seconds(2));
    return got;
  }
  proto::TaskRecord record(const Id& id) {
    EXPECT_TRUE(ledger_->begin());
    auto rec = ledger_->get_task(id);
    ledger_->abort();
    EXPECT_TRUE(rec && rec->has_value());
    return rec && rec->has_value() ? **rec : proto::TaskRecord{};
  }
  static std::vector<proto::Assignment> assigned(const Effects& e, const std::string& rid) {
    auto it = e.workers.find(rid);
    if (it == e.workers.end()) return {};
    auto out = it->second.tasks;  // sent once committed, then those sent once durable
    out.insert(out.end(), it->second.durable_tasks.begin(), it->second.durable_tasks.end());
    return out;
  }
  static size_t count(const Effects& e, EventType type) {
    size_t n = 0;
    for (const auto& ev : e.events.decode()) n += ev.type == type;
    return n;
  }
  static proto::Outcome outcome(const proto::Assignment& a, proto::OutcomeStatus status, std::string error = {}) {
    return {a.task, a.attempt, status, "{\"ok\":true}", std::move(error), 1500};
  }

  std::filesystem::path dir_;
  RouterOptions options_;
  Stats stats_;
  std::optional<Ledger> ledger_;
  std::optional<Core> core_;
};

// Every pair the life cycle does not allow is refused before anything changes: no record
// written, no event, the task nowhere new.
TEST_F(CoreTest, EveryTransitionOutsideTheLifeCycleIsRefusedAndChangesNothing) {
  const Id id = submit(1)[0];
  for (int f = 0; f < kTaskStateCount; ++f)
    for (int t = 0; t < kTaskStateCount; ++t) {
      const auto from = static_cast<S>(f), to = static_cast<S>(t);
      if (can_transition(from, to)) continue;
      proto::TaskRecord rec = record(id);
      const size_t queued = core_->tasks().ready(0).size();
      Status result;
      Effects out = turn([&] { result = core_->transition(rec, from, Core::Change(to)); });
      EXPECT_EQ(result.code(), Code::kInternal) << state_name(from) << " -> " << state_name(to);
      EXPECT_TRUE(out.events.empty()) << state_name(from) << " -> " << state_name(to);
      EXPECT_EQ(record(id).state, S::kQueued) << state_name(from) << " -> " << state_name(to);
      EXPECT_EQ(core_->tasks().ready(0).size(), queued);
    }
}

// Every pair it allows is carried out: the record holds the new state (a start is its lease,
// written by the caller), the event names the new state and the one left, and the task is
// where its new state says.
TEST_F(CoreTest, EveryTransitionOfTheLifeCycleWritesPlacesAndEmits) {
  for (int f = 0; f < kTaskStateCount; ++f)
    for (int t = 0; t < kTaskStateCount; ++t) {
      const auto from = static_cast<S>(f), to = static_cast<S>(t);
      if (!can_transition(from, to)) continue;
      const std::string pair = std::string(state_name(from)) + " -> " + std::string(state_name(to));
      // Scheduled an hour ahead: in no ready queue. Its record is then put in `from`.
      const Id id = submit(1, Id(), 0, "default", 3'600'000)[0];
      proto::TaskRecord rec = record(id);
      turn([&] {
        rec.state = from;
        if (from == S::kFailed) {
          ASSERT_TRUE(ledger_->put_dead(id));
        }
        ASSERT_TRUE(ledger_->put_task(rec));
      });
      const size_t queued = core_->tasks().ready(0).size();
      const size_t scheduled = core_->tasks().scheduled_size();
      rec.eta_ms = to == S::kRetrying ? now_unix_ms() + 60'000 : 0;
      Status result;
      Effects out = turn([&] {
        result = core_->transition(rec, from, Core::Change(to).delay(to == S::kRetrying ? 60'000 : 0));
      });
      ASSERT_TRUE(result) << pair << ": " << result.to_string();
      ASSERT_FALSE(out.events.empty()) << pair;
      EXPECT_EQ(out.events.decode()[0].state, to) << pair;
      EXPECT_EQ(out.events.decode()[0].from, from) << pair;
      const proto::TaskRecord now = record(id);
      EXPECT_EQ(now.state, to == S::kStarted ? from : to) << pair;
      EXPECT_EQ(core_->tasks().ready(0).size(), queued + (to == S::kQueued ? 1 : 0)) << pair;
      EXPECT_EQ(core_->tasks().scheduled_size(), scheduled + (to == S::kRetrying ? 1 : 0)) << pair;
      EXPECT_EQ(now.finished_ms != 0, is_terminal(to)) << pair;
      EXPECT_TRUE(ledger_->begin());
      bool dead = false;
      EXPECT_TRUE(ledger_->for_each_dead(Id(), [&](const Id& d) { dead |= d == id; return true; }));
      ledger_->abort();
      EXPECT_EQ(dead, to == S::kFailed) << pair << ": a dead letter exactly while failed";
    }
}

TEST_F(CoreTest, ARetryWithoutBackoffIsRetriedThenQueuedInOneChange) {
  const Id id = submit(1)[0];
  proto::TaskRecord rec = record(id);
  rec.retries = 1;
  Effects out = turn([&] { ASSERT_TRUE(core_->transition(rec, S::kStarted, Core::Change(S::kRetrying))); });
  ASSERT_EQ(out.events.size(), 2u);
  EXPECT_EQ(out.events.decode()[0].type, EventType::kTaskRetried);
  EXPECT_EQ(out.events.decode()[0].retries, 1u);
  EXPECT_EQ(out.events.decode()[1].type, EventType::kTaskQueued);
  EXPECT_EQ(out.events.decode()[1].from, S::kRetrying);
  EXPECT_EQ(record(id).state, S::kQueued);
}

TEST_F(CoreTest, SubmitDispatchResultGoesThroughTheLifeCycleWithItsEffects) {
  const std::vector<Id> ids = submit(3);
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(core_->tasks().ready(0).size(), 3u);
  Effects welcome = ready("w1", 2);
  ASSERT_FALSE(welcome.messages.empty());
  EXPECT_TRUE(std::holds_alternative<proto::Welcome>(welcome.messages.back().message));
  auto tasks = assigned(welcome, "w1");
  ASSERT_EQ(tasks.size(), 2u) << "credit 2: two tasks";
  EXPECT_EQ(tasks[0].task, ids[0]) << "FIFO";
  EXPECT_EQ(tasks[0].attempt, 1u);
  EXPECT_EQ(count(welcome, EventType::kTaskStarted), 2u);
  EXPECT_EQ(core_->tasks().leases().size(), 2u);

  Effects done = backend("w1", proto::Results{{outcome(tasks[0], proto::OutcomeStatus::kSucceeded)}});
  ASSERT_EQ(done.workers["w1"].acks.size(), 1u);
  EXPECT_EQ(done.workers["w1"].acks[0].task, ids[0]);
  EXPECT_EQ(count(done, EventType::kTaskSucceeded), 1u);
  EXPECT_EQ(assigned(done, "w1").size(), 1u) << "the freed credit takes the third task";
  const proto::TaskRecord rec = record(ids[0]);
  EXPECT_EQ(rec.state, S::kSucceeded);
  EXPECT_EQ(rec.result, "{\"ok\":true}");
  EXPECT_EQ(stats_.succeeded, 1u);
  for (const auto& ev : done.events.decode()) {
    if (ev.type == EventType::kTaskSucceeded) {
      EXPECT_EQ(ev.runtime_us, 1500u);
    }
  }

  // The same result again (a resend): acknowledged, nothing changes.
  Effects again = backend("w1", proto::Results{{outcome(tasks[0], proto::OutcomeStatus::kSucceeded)}});
  EXPECT_EQ(again.workers["w1"].acks.size(), 1u);
  EXPECT_EQ(count(again, EventType::kTaskSucceeded), 0u);
  EXPECT_EQ(stats_.succeeded, 1u);
}

TEST_F(CoreTest, AResultFromAnotherSessionIsRefused) {
  const Id id = submit(1)[0];
  auto tasks = assigned(ready("w1", 1), "w1");
  ASSERT_EQ(tasks.size(), 1u);
  ready("w2", 1);
  Effects out = backend("w2", proto::Results{{outcome(tasks[0], proto::OutcomeStatus::kSucceeded)}});
  EXPECT_EQ(count(out, EventType::kTaskSucceeded), 0u);
  EXPECT_EQ(stats_.foreign_results, 1u);
  EXPECT_NE(record(id).state, S::kSucceeded);
}

TEST_F(CoreTest, ALostWorkersTaskIsRequeuedAndItsLateResultStillCompletesIt) {
  const Id id = submit(1)[0];
  const Id session = Id::random();
  auto tasks = assigned(ready("w1", 1, session), "w1");
  ASSERT_EQ(tasks.size(), 1u);
  Effects lost = turn([&] { core_->worker_unreachable("w1"); });
  EXPECT_EQ(count(lost, EventType::kTaskQueued), 1u);
  EXPECT_EQ(count(lost, EventType::kWorkerOffline), 1u);
  EXPECT_EQ(core_->tasks().ready(0).size(), 1u);
  EXPECT_TRUE(core_->tasks().leases().empty());
  // The same process comes back (a new socket) before anyone else took the task: its result counts.
  proto::Ready r;
  r.name = "w1";
  r.session = session;
  r.capacity = 0;  // no credit wanted beyond the minimum
  r.concurrency = 1;
  turn([&] { core_->on_backend("w1b", proto::Message(r), std::nullopt); });
  Effects done = turn([&] {
    core_->on_backend("w1b", proto::Message(proto::Results{{outcome(tasks[0], proto::OutcomeStatus::kSucceeded)}}),
                      std::nullopt);
  });
  EXPECT_EQ(count(done, EventType::kTaskSucceeded), 1u);
  EXPECT_EQ(record(id).state, S::kSucceeded);
  EXPECT_TRUE(core_->tasks().ready(0).empty()) << "it ran once: not run again";
}

TEST_F(CoreTest, AtMostOnceQueueFailsALostTaskInsteadOfRunningItAgain) {
  const Id id = submit(1, Id(), 0, "once")[0];
  ASSERT_EQ(assigned(ready("w1", 1), "w1").size(), 1u);
  Effects lost = turn([&] { core_->worker_unreachable("w1"); });
  EXPECT_EQ(count(lost, EventType::kTaskFailed), 1u);
  const proto::TaskRecord rec = record(id);
  EXPECT_EQ(rec.state, S::kFailed);
  EXPECT_EQ(rec.error.rfind("WorkerLostError", 0), 0u) << rec.error;
}

TEST_F(CoreTest, GroupCountersAndParallelAdmissionLiveInTheGroupTable) {
  const Id group = Id::random();
  const std::vector<Id> ids = submit(4, group, 2);
  EXPECT_EQ(core_->tasks().ready(0).size(), 2u) << "parallel = 2: two admitted, two held";
  ASSERT_NE(core_->groups().active(group), nullptr);
  EXPECT_EQ(core_->groups().active(group)->held.size(), 2u);

  auto tasks = assigned(ready("w1", 10), "w1");
  ASSERT_EQ(tasks.size(), 2u);
  EXPECT_EQ(core_->groups().active(group)->record.running, 2u);

  Effects one = backend("w1", proto::Results{{outcome(tasks[0], proto::OutcomeStatus::kSucceeded)}});
  EXPECT_EQ(assigned(one, "w1").size(), 1u) << "a finished task lets one held task in";
  ASSERT_EQ(count(one, EventType::kGroupUpdated), 1u) << "the changed group once per turn";
  for (const auto& ev : one.events.decode()) {
    if (ev.type != EventType::kGroupUpdated) continue;
    {
      ASSERT_EQ(ev.group_record.size(), 1u);
      EXPECT_EQ(ev.group_record[0].succeeded, 1u);
      EXPECT_EQ(ev.group_record[0].running, 2u);
      EXPECT_EQ(ev.group_record[0].total, 4u);
    }
  }

  // Revoke the held task: the group counts it, the allowance is not touched.
  ASSERT_EQ(core_->groups().active(group)->held.size(), 1u);
  frontend(proto::Control::make(proto::ControlOp::kRevoke, proto::TaskArgs{ids[3], false}));
  EXPECT_EQ(record(ids[3]).state, S::kRevoked);
  EXPECT_EQ(core_->groups().active(group)->record.revoked, 1u);
  EXPECT_EQ(core_->groups().active(group)->admitted, 2u);

  auto rest = assigned(one, "w1");
  Effects fail = backend("w1", proto::Results{{outcome(tasks[1], proto::OutcomeStatus::kFailed, "Fatal: no"),
                                               outcome(rest[0], proto::OutcomeStatus::kSucceeded)}});
  EXPECT_EQ(count(fail, EventType::kTaskFailed), 1u);
  EXPECT_EQ(core_->groups().active(group), nullptr) << "a finished group leaves the table";
  EXPECT_TRUE(ledger_->begin());
  auto g = ledger_->get_group(group);
  ledger_->abort();
  ASSERT_TRUE(g && g->has_value());
  EXPECT_EQ((*g)->succeeded, 2u);
  EXPECT_EQ((*g)->failed, 1u);
  EXPECT_EQ((*g)->revoked, 1u);
  EXPECT_EQ((*g)->running, 0u);
  EXPECT_TRUE((*g)->ready());
  EXPECT_NE((*g)->finished_ms, 0u);
}

TEST_F(CoreTest, ATransientFailureWaitsOutItsBackoffAndFreesItsGroupPlace) {
  const Id group = Id::random();
  const std::vector<Id> ids = submit(2, group, 1);
  auto tasks = assigned(ready("w1", 10), "w1");
  ASSERT_EQ(tasks.size(), 1u);
  Effects retried = backend("w1", proto::Results{{outcome(tasks[0], proto::OutcomeStatus::kFailed, "Transient: x")}});
  EXPECT_EQ(count(retried, EventType::kTaskRetried), 1u);
  for (const auto& ev : retried.events.decode()) {
    if (ev.type != EventType::kTaskRetried) continue;
    EXPECT_EQ(ev.delay_ms, 60'000u);
    EXPECT_EQ(ev.retries, 1u);
    EXPECT_EQ(ev.from, S::kStarted);
  }
  EXPECT_EQ(record(ids[0]).state, S::kRetrying);
  EXPECT_EQ(core_->tasks().scheduled_size(), 1u);
  EXPECT_EQ(assigned(retried, "w1").size(), 1u) << "the backoff gives its place to the held task";
}

TEST_F(CoreTest, AnExplicitRetryOfADeadLetterReopensItsGroup) {
  const Id group = Id::random();
  const Id id = submit(1, group)[0];
  auto tasks = assigned(ready("w1", 1), "w1");
  backend("w1", proto::Results{{outcome(tasks[0], proto::OutcomeStatus::kFailed, "Fatal: no")}});
  ASSERT_EQ(record(id).state, S::kFailed);
  Effects out = frontend(proto::Control::make(proto::ControlOp::kRetry, proto::TaskArgs{id, false}));
  ASSERT_EQ(count(out, EventType::kTaskQueued), 1u);
  for (const auto& ev : out.events.decode()) {
    if (ev.type == EventType::kTaskQueued) {
      EXPECT_EQ(ev.from, S::kFailed);
    }
    if (ev.type == EventType::kGroupUpdated) {
      EXPECT_EQ(ev.group_record[0].failed, 0u);
      EXPECT_EQ(ev.group_record[0].finished_ms, 0u) << "not finished any more";
    }
  }
  EXPECT_EQ(record(id).state, S::kQueued);
  EXPECT_EQ(record(id).retries, 0u);
}

TEST_F(CoreTest, AWaitIsAnsweredInTheTurnItsTaskEnds) {
  const Id id = submit(1)[0];
  auto tasks = assigned(ready("w1", 1), "w1");
  Effects waiting = frontend(proto::WaitTasks{3, {id}, 60'000});
  EXPECT_TRUE(waiting.messages.empty()) << "unfinished: no answer yet";
  Effects done = backend("w1", proto::Results{{outcome(tasks[0], proto::OutcomeStatus::kSucceeded)}});
  bool answered = false;
  for (const auto& m : done.messages) {
    auto* info = std::get_if<proto::TaskInfo>(&m.message);
    if (!info) continue;
    answered = info->corr == 3 && info->tasks.size() == 1 && info->tasks[0].state == S::kSucceeded;
    EXPECT_EQ(m.routing_id, "client");
  }
  EXPECT_TRUE(answered);
  EXPECT_EQ(done.answered_waiters.size(), 1u);
}

TEST_F(CoreTest, RecoveryPutsLeasesAsideAsOrphansAndQueuesTheRest) {
  const std::vector<Id> ids = submit(3);
  ASSERT_EQ(assigned(ready("w1", 1), "w1").size(), 1u);
  Core fresh(options_, *ledger_, stats_);
  ASSERT_TRUE(fresh.recover());
  EXPECT_EQ(fresh.tasks().ready(0).size(), 2u);
  ASSERT_EQ(fresh.tasks().leases().size(), 1u);
  EXPECT_TRUE(fresh.tasks().leases().begin()->second.routing_id.empty()) << "an orphan until re-claimed";
  EXPECT_NE(fresh.tasks().orphan_deadline_ms(), 0u);
}

TEST_F(CoreTest, ASubmissionRefusedForStorageChangesNothing) {
  core_->health.storage_full = true;
  core_->health.storage_refusal = "storage full: test";
  proto::Submit s;
  s.corr = 9;
  s.tasks.emplace_back();
  Effects out = frontend(std::move(s));
  ASSERT_EQ(out.messages.size(), 1u);
  auto* err = std::get_if<proto::Error>(&out.messages[0].message);
  ASSERT_NE(err, nullptr);
  EXPECT_EQ(err->code, static_cast<int32_t>(Code::kStorageFull));
  EXPECT_TRUE(out.events.empty());
  EXPECT_TRUE(core_->tasks().ready(0).empty());
}

// After an OS crash the router may come back without a lease it had sent before the turn's
// commit was synced: the task is queued again with its durable attempt. The worker it went to
// claims exactly the next attempt: the claim is adopted (the task is not run a second time);
// a claim with any other attempt is still rejected.
TEST_F(CoreTest, AClaimOfTheNextAttemptOfAQueuedTaskIsAdoptedAndOtherAttemptsAreRejected) {
  const std::vector<Id> ids = submit(3);
  ASSERT_EQ(record(ids[0]).attempt, 0u);
  Effects welcome = turn([&] {
    core_->on_backend("w1", proto::Message(hello("w1", 4, 4, {{ids[0], 1}, {ids[1], 2}, {ids[2], 0}})), std::nullopt);
  });
  ASSERT_EQ(welcome.messages.size(), 1u);
  auto* w = std::get_if<proto::Welcome>(&welcome.messages[0].message);
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->rejected, (std::vector<proto::Claim>{{ids[1], 2}, {ids[2], 0}}));
  EXPECT_EQ(count(welcome, EventType::kTaskStarted), 1u);
  ASSERT_EQ(core_->tasks().leases().count(ids[0]), 1u);
  EXPECT_EQ(core_->tasks().leases().at(ids[0]).attempt, 1u);
  EXPECT_EQ(core_->tasks().leases().at(ids[0]).routing_id, "w1");
  EXPECT_EQ(core_->tasks().ready(0).size(), 2u) << "the adopted task left its queue; the others wait";
  // The adoption is durable: a restart finds the lease.
  {
    Core fresh(options_, *ledger_, stats_);
    ASSERT_TRUE(fresh.recover());
    ASSERT_EQ(fresh.tasks().leases().count(ids[0]), 1u);
    EXPECT_EQ(fresh.tasks().leases().at(ids[0]).attempt, 1u);
  }
  // Its result completes it, as the first and only attempt.
  Effects done = backend("w1", proto::Results{{{ids[0], 1, proto::OutcomeStatus::kSucceeded, "1", "", 10}}});
  EXPECT_EQ(count(done, EventType::kTaskSucceeded), 1u);
  EXPECT_EQ(record(ids[0]).state, S::kSucceeded);
  EXPECT_EQ(record(ids[0]).attempt, 1u);
  EXPECT_EQ(stats_.foreign_results, 0u);
}

// A group's budget: each outcome's tokens count (retries included); the outcome that spends it
// stops the group in its own turn — nothing more starts, unstarted tasks end revoked with the
// budget named — and what was spent survives a restart.
TEST_F(CoreTest, AGroupStopsOnceItsTasksHaveSpentItsTokenBudget) {
  const Id group = Id::random();
  proto::Submit s;
  s.corr = 3;
  s.group = group;
  s.parallel = 1;
  s.budget_tokens = 250;
  for (int i = 0; i < 5; ++i) {
    proto::TaskSpec t;
    t.kind = "echo";
    t.ref = "t" + std::to_string(i);
    s.tasks.push_back(t);
  }
  frontend(std::move(s));
  auto first = assigned(ready("w1", 4), "w1");
  ASSERT_EQ(first.size(), 1u) << "parallel 1";
  auto group_record = [&] {
    EXPECT_TRUE(ledger_->begin());
    auto g = ledger_->get_group(group);
    ledger_->abort();
    EXPECT_TRUE(g && g->has_value());
    return g && g->has_value() ? **g : proto::GroupRecord{};
  };
  auto spend = [&](const proto::Assignment& a, uint64_t tokens) {
    proto::Outcome o = outcome(a, proto::OutcomeStatus::kSucceeded);
    o.tokens = tokens;
    return assigned(backend("w1", proto::Results{{o}}), "w1");
  };
  auto second = spend(first[0], 100);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(group_record().spent_tokens, 100u);  // spent so far is in the group's durable record
  EXPECT_EQ(group_record().budget_tokens, 250u);
  auto third = spend(second[0], 100);
  ASSERT_EQ(third.size(), 1u);
  EXPECT_TRUE(spend(third[0], 100).empty()) << "300 of 250: nothing more starts";
  const proto::GroupRecord g = group_record();
  EXPECT_EQ(g.spent_tokens, 300u);
  EXPECT_NE(g.budget_spent_ms, 0u);
  EXPECT_TRUE(g.ready());
  EXPECT_EQ(g.succeeded, 3u);
  EXPECT_EQ(g.revoked, 2u);
  EXPECT_EQ(record(third[0].task).state, S::kSucceeded);
}

TEST(CreditWindow, CoversOneRoundTripOfTheSlotsWithinTheAnnouncedCap) {
  EXPECT_EQ(credit_window(2, 512, 0, 0), 4u) << "nothing measured yet: two per slot";
  EXPECT_EQ(credit_window(2, 512, 800, 0), 4u);
  EXPECT_EQ(credit_window(2, 3, 0, 0), 3u) << "never past what the worker announced";
  EXPECT_EQ(credit_window(2, 512, 1000, 2), 512u) << "no-op tasks, 1 ms round trip: the whole cap";
  EXPECT_EQ(credit_window(2, 512, 1000, 100), 42u) << "2 slots + twice 2 x 10 tasks per round trip";
  EXPECT_EQ(credit_window(4, 1024, 1000, 1e6), 5u) << "1 s tasks: one more than the slots";
  EXPECT_EQ(credit_window(4, 1024, 1000, 1e9), 5u);
  EXPECT_EQ(credit_window(1, 1, 1000, 2), 1u) << "--prefetch-multiplier 1 stays one per slot";
  EXPECT_EQ(credit_window(0, 8, 0, 0), 2u) << "a worker announcing no slots counts as one";
  EXPECT_EQ(credit_window(1024, 1'000'000, 1e7, 0.5), 1'000'000u) << "no overflow";
}

TEST(CreditWindow, AReservedTaskIsOverdueOnlyPastItsPlaceInLine) {
  EXPECT_FALSE(overdue(4'000, 0, 1, 1)) << "under 5 ms nothing is taken back";
  EXPECT_TRUE(overdue(6'000, 0, 1, 1));
  EXPECT_TRUE(overdue(6'000, 0, 1, 0)) << "no task time measured yet";
  // Ten 1 ms tasks ahead of it on one slot: expected after 10 ms, overdue after twice that.
  EXPECT_FALSE(overdue(19'000, 9, 1, 1'000));
  EXPECT_TRUE(overdue(21'000, 9, 1, 1'000));
  EXPECT_FALSE(overdue(21'000, 9, 2, 4'000)) << "two slots of 4 ms each: 40 ms";
  EXPECT_EQ(us_until_overdue(4'000, 0, 1, 1), 1'001u);
  EXPECT_EQ(us_until_overdue(6'000, 0, 1, 1), 0u);
  // Tasks in the order they were sent (older first, more ahead of each later one): once one
  // is not overdue, no later one is.
  for (double task_us : {0.0, 10.0, 1'000.0, 50'000.0}) {
    bool seen_waiting = false;
    for (size_t ahead = 0; ahead < 200; ++ahead) {
      const uint64_t reserved = 200'000 - ahead * 700;
      const bool late = overdue(reserved, ahead, 2, task_us);
      if (seen_waiting) {
        EXPECT_FALSE(late) << task_us << " " << ahead;
      }
      seen_waiting = seen_waiting || !late;
    }
  }
}

// Work stealing: w1's only slot is busy and a second task waits behind it; w2 is idle with
// nothing queued. Once that task has waited past its place in line it is recalled from w1,
// and when w1 hands it back it goes to w2 as the next attempt, no retry counted.
TEST_F(CoreTest, AnIdleWorkerTakesOverATaskReservedBehindABusySlot) {
  const std::vector<Id> ids = submit(3);
  auto to_w1 = assigned(backend("w1", hello("w1", 1, 4)), "w1");
  ASSERT_EQ(to_w1.size(), 2u) << "two per slot before anything is measured";
  backend("w1", proto::Started{{{to_w1[0].task, to_w1[0].attempt}}});
  auto to_w2 = assigned(backend("w2", hello("w2", 1, 4)), "w2");
  ASSERT_EQ(to_w2.size(), 1u);
  Effects done = backend("w2", proto::Results{{outcome(to_w2[0], proto::OutcomeStatus::kSucceeded)}});
  EXPECT_TRUE(assigned(done, "w2").empty()) << "nothing queued";

  auto recall = await_recall("w1");
  ASSERT_TRUE(recall) << "the task waiting behind w1's busy slot is recalled";
  EXPECT_EQ(recall->claims, (std::vector<proto::Claim>{{to_w1[1].task, 1}}));
  EXPECT_FALSE(recall_to(turn([&] { core_->dispatch(); }), "w1")) << "one recall per task at a time";

  Effects back = backend("w1", proto::Results{{outcome(to_w1[1], proto::OutcomeStatus::kReturned, "recalled")}});
  auto stolen = assigned(back, "w2");
  ASSERT_EQ(stolen.size(), 1u);
  EXPECT_EQ(stolen[0].task, to_w1[1].task);
  EXPECT_EQ(stolen[0].attempt, 2u);
  EXPECT_TRUE(assigned(back, "w1").empty());
  EXPECT_EQ(count(back, EventType::kTaskQueued), 1u);
  EXPECT_EQ(count(back, EventType::kTaskStarted), 1u);
  EXPECT_EQ(record(to_w1[1].task).retries, 0u) << "handed back is not a failed attempt";
  EXPECT_EQ(core_->tasks().leases().at(to_w1[1].task).routing_id, "w2");
}

// A recalled task that started before the recall reached its worker just runs there: its
// result counts once, for the attempt w1 holds, and nothing goes to the idle worker.
TEST_F(CoreTest, ARecalledTaskThatStartedMeanwhileRunsWhereItIs) {
  const std::vector<Id> ids = submit(3);
  auto to_w1 = assigned(backend("w1", hello("w1", 1, 4)), "w1");
  ASSERT_EQ(to_w1.size(), 2u);
  backend("w1", proto::Started{{{to_w1[0].task, 1}}});
  auto to_w2 = assigned(backend("w2", hello("w2", 1, 4)), "w2");
  ASSERT_EQ(to_w2.size(), 1u);
  backend("w2", proto::Results{{outcome(to_w2[0], proto::OutcomeStatus::kSucceeded)}});
  ASSERT_TRUE(await_recall("w1"));

  // The recall crossed the first task's end: the second one started instead of coming back.
  Effects ran = backend("w1", proto::Results{{outcome(to_w1[0], proto::OutcomeStatus::kSucceeded)}});
  backend("w1", proto::Started{{{to_w1[1].task, 1}}});
  Effects second = backend("w1", proto::Results{{outcome(to_w1[1], proto::OutcomeStatus::kSucceeded)}});
  EXPECT_EQ(count(second, EventType::kTaskSucceeded), 1u);
  EXPECT_TRUE(assigned(ran, "w2").empty());
  EXPECT_TRUE(assigned(second, "w2").empty());
  const proto::TaskRecord rec = record(to_w1[1].task);
  EXPECT_EQ(rec.state, S::kSucceeded);
  EXPECT_EQ(rec.attempt, 1u) << "run once, by the worker that held it";
  EXPECT_EQ(rec.worker, "w1");
  EXPECT_TRUE(core_->tasks().leases().empty());
  EXPECT_FALSE(recall_to(turn([&] { core_->dispatch(); }), "w1"));
}

// --- unique keys and trace contexts ----------------------------------------------------------

proto::TaskSpec keyed(std::string key, proto::UniquePolicy policy = proto::UniquePolicy::kRefuse,
                      std::string queue = "default") {
  proto::TaskSpec t;
  t.queue = std::move(queue);
  t.kind = "echo";
  t.payload = "{}";
  t.unique_key = std::move(key);
  t.on_duplicate = static_cast<uint8_t>(policy);
  return t;
}

// The answer to one Submit: its ack, or the error it was refused with.
struct Answer {
  std::optional<proto::SubmitAck> ack;
  std::optional<proto::Error> error;
  size_t received = 0;  // task-received events of the turn
};

class UniqueTest : public CoreTest {
 protected:
  // `callbacks`: a chord's (docs/WORKFLOWS.md).
  Answer send(std::vector<proto::TaskSpec> tasks, Id group = Id(), std::vector<proto::TaskSpec> callbacks = {}) {
    proto::Submit s;
    s.corr = 9;
    s.group = group;
    s.tasks = std::move(tasks);
    s.callbacks = std::move(callbacks);
    Effects out = frontend(std::move(s));
    Answer a;
    for (auto& m : out.messages) {
      if (auto* ack = std::get_if<proto::SubmitAck>(&m.message)) a.ack = *ack;
      if (auto* err = std::get_if<proto::Error>(&m.message)) a.error = *err;
    }
    a.received = count(out, EventType::kTaskReceived);
    return a;
  }
  bool holds(const std::string& queue, const std::string& key, const Id& task) {
    EXPECT_TRUE(ledger_->begin());
    auto held = ledger_->get_unique(queue, key);
    ledger_->abort();
    return held && held->has_value() && **held == task;
  }
  bool unheld(const std::string& queue, const std::string& key) {
    EXPECT_TRUE(ledger_->begin());
    auto held = ledger_->get_unique(queue, key);
    ledger_->abort();
    return held && !held->has_value();
  }
};

TEST_F(UniqueTest, ASecondTaskWithTheKeyIsRefusedWhileTheFirstIsQueuedOrRunningAndAcceptedOnceItEnds) {
  Answer first = send({keyed("lint:a.py")});
  ASSERT_TRUE(first.ack);
  const Id id = first.ack->tasks[0];
  EXPECT_TRUE(holds("default", "lint:a.py", id));

  Answer queued = send({keyed("lint:a.py")});
  ASSERT_TRUE(queued.error) << "refused while queued";
  EXPECT_EQ(queued.error->code, static_cast<int32_t>(Code::kConflict));
  EXPECT_NE(queued.error->message.find(id.to_string()), std::string::npos) << "the holder is named: " << queued.error->message;
  EXPECT_EQ(queued.received, 0u) << "nothing made";

  EXPECT_TRUE(send({keyed("lint:a.py", proto::UniquePolicy::kRefuse, "once")}).ack) << "keys are per queue";
  EXPECT_TRUE(send({keyed("lint:b.py")}).ack) << "another key";

  auto tasks = assigned(ready("w1", 1), "w1");
  ASSERT_EQ(tasks.size(), 1u);
  ASSERT_EQ(tasks[0].task, id);
  EXPECT_TRUE(send({keyed("lint:a.py")}).error) << "refused while running";

  backend("w1", proto::Results{{outcome(tasks[0], proto::OutcomeStatus::kSucceeded)}});
  EXPECT_TRUE(unheld("default", "lint:a.py")) << "released when it ended";
  Answer again = send({keyed("lint:a.py")});
  ASSERT_TRUE(again.ack) << "accepted once the first has ended";
  EXPECT_NE(again.ack->tasks[0], id);
}

TEST_F(UniqueTest, ExistingPolicyAnswersWithTheHolderAndMakesNoTask) {
  const Id id = send({keyed("k")}).ack->tasks[0];
  Answer dup = send({keyed("k", proto::UniquePolicy::kExisting), keyed("other", proto::UniquePolicy::kExisting)});
  ASSERT_TRUE(dup.ack);
  ASSERT_EQ(dup.ack->tasks.size(), 2u);
  EXPECT_EQ(dup.ack->tasks[0], id) << "answered with the task that holds the key";
  EXPECT_EQ(dup.ack->existing, std::vector<uint32_t>{0});
  EXPECT_EQ(dup.received, 1u) << "only the second task was made";
  EXPECT_EQ(core_->tasks().ready(0).size(), 2u);

  // Twice in one submission: the second is the first.
  Answer twice = send({keyed("pair", proto::UniquePolicy::kExisting), keyed("pair", proto::UniquePolicy::kExisting)});
  ASSERT_TRUE(twice.ack);
  EXPECT_EQ(twice.ack->tasks[0], twice.ack->tasks[1]);
  EXPECT_EQ(twice.ack->existing, std::vector<uint32_t>{1});
  EXPECT_EQ(twice.received, 1u);
  Answer refused = send({keyed("pair2"), keyed("pair2")});
  ASSERT_TRUE(refused.error) << "the default policy refuses the pair whole";
  EXPECT_EQ(refused.received, 0u);
  EXPECT_TRUE(unheld("default", "pair2"));
}

TEST_F(UniqueTest, AGroupWithATakenOrRepeatedKeyIsRefusedWholeWhateverThePolicy) {
  send({keyed("g")});
  Answer taken = send({keyed("g", proto::UniquePolicy::kExisting), keyed("h")}, Id::random());
  ASSERT_TRUE(taken.error);
  EXPECT_EQ(taken.error->code, static_cast<int32_t>(Code::kConflict));
  EXPECT_NE(taken.error->message.find("group"), std::string::npos) << taken.error->message;
  EXPECT_EQ(taken.received, 0u);
  EXPECT_TRUE(unheld("default", "h")) << "nothing of the refused group holds a key";
  EXPECT_TRUE(send({keyed("x", proto::UniquePolicy::kExisting), keyed("x", proto::UniquePolicy::kExisting)}, Id::random()).error);
  Answer fine = send({keyed("y"), keyed("z")}, Id::random());
  ASSERT_TRUE(fine.ack);
  EXPECT_TRUE(holds("default", "y", fine.ack->tasks[0]));
}

TEST_F(UniqueTest, AKeyIsHeldAcrossARestartAndReleasedByRevokeAndPurge) {
  const Id a = send({keyed("a")}).ack->tasks[0];
  const Id b = send({keyed("b")}).ack->tasks[0];
  core_.emplace(options_, *ledger_, stats_);  // a restart on the same LMDB
  ASSERT_TRUE(core_->recover());
  EXPECT_TRUE(send({keyed("a")}).error) << "the key survived the restart";
  frontend(proto::Control::make(proto::ControlOp::kRevoke, proto::TaskArgs{a, false}));
  EXPECT_TRUE(unheld("default", "a"));
  frontend(proto::Control::make(proto::ControlOp::kPurge, proto::PurgeArgs{std::string("default")}));
  EXPECT_EQ(record(b).state, S::kRevoked);
  EXPECT_TRUE(unheld("default", "b"));
  EXPECT_TRUE(send({keyed("a"), keyed("b")}).ack);
}

TEST_F(UniqueTest, ARetriedDeadLetterTakesItsKeyBackUnlessANewerTaskHoldsIt) {
  const Id first = send({keyed("k")}).ack->tasks[0];
  auto tasks = assigned(ready("w1", 1), "w1");
  backend("w1", proto::Results{{outcome(tasks[0], proto::OutcomeStatus::kFailed, "Fatal: no")}});
  ASSERT_EQ(record(first).state, S::kFailed);
  const Id second = send({keyed("k")}).ack->tasks[0];
  Effects refused = frontend(proto::Control::make(proto::ControlOp::kRetry, proto::TaskArgs{first, false}));
  EXPECT_EQ(count(refused, EventType::kTaskQueued), 0u) << "a newer task holds the key";
  EXPECT_EQ(record(first).state, S::kFailed);
  EXPECT_TRUE(holds("default", "k", second));

  frontend(proto::Control::make(proto::ControlOp::kRevoke, proto::TaskArgs{second, false}));
  Effects retried = frontend(proto::Control::make(proto::ControlOp::kRetry, proto::TaskArgs{first, false}));
  EXPECT_EQ(count(retried, EventType::kTaskQueued), 1u);
  EXPECT_TRUE(holds("default", "k", first)) << "the retried task holds its key again";
}

TEST_F(UniqueTest, ABadKeyOrPolicyOrTraceIsRefused) {
  EXPECT_TRUE(send({keyed(std::string(proto::kMaxUniqueKeyBytes + 1, 'k'))}).error);
  proto::TaskSpec policy = keyed("p");
  policy.on_duplicate = 7;
  EXPECT_TRUE(send({policy}).error);
  for (const char* bad : {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", "banana",
                          "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                          "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                          "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                          "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                          "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"}) {
    proto::TaskSpec t = keyed("");
    t.trace = bad;
    Answer a = send({t});
    EXPECT_TRUE(a.error) << bad;
    EXPECT_EQ(a.received, 0u);
  }
}

TEST_F(CoreTest, ATraceTravelsFromTheSubmissionToTheRecordTheEventAndTheAssignment) {
  const std::string trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  proto::Submit s;
  s.corr = 3;
  proto::TaskSpec t;
  t.kind = "echo";
  t.payload = "{}";
  t.trace = trace;
  s.tasks = {t};
  Effects out = frontend(std::move(s));
  Id id;
  for (auto& m : out.messages)
    if (auto* ack = std::get_if<proto::SubmitAck>(&m.message)) id = ack->tasks[0];
  ASSERT_FALSE(id.is_nil());
  bool seen = false;
  for (const auto& ev : out.events.decode())
    if (ev.type == EventType::kTaskReceived) seen = ev.trace == trace;
  EXPECT_TRUE(seen) << "task-received carries the trace";
  EXPECT_EQ(record(id).trace, trace);
  auto tasks = assigned(ready("w1", 1), "w1");
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0].trace, trace);
  // A later W3C version may carry more fields after the flags.
  EXPECT_TRUE(proto::valid_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes"));
  EXPECT_TRUE(proto::valid_traceparent(trace));
}


// --- dependencies: chains, chords, DAGs (docs/WORKFLOWS.md) -----------------------------------

proto::TaskSpec step(std::string ref, std::vector<uint32_t> after_index = {}, std::vector<Id> after = {},
                     proto::Trigger when = proto::Trigger::kSuccess) {
  proto::TaskSpec t;
  t.kind = "echo";
  t.payload = "{}";
  t.ref = std::move(ref);
  t.after_index = std::move(after_index);
  t.after = std::move(after);
  t.when = static_cast<uint8_t>(when);
  return t;
}

class WorkflowTest : public UniqueTest {
 protected:
  // Results for these assignments (succeeded with {"n": index} unless failed), and the tasks
  // the same turn hands to `rid`.
  std::vector<proto::Assignment> finish(const std::string& rid, const std::vector<proto::Assignment>& done,
                                        proto::OutcomeStatus status = proto::OutcomeStatus::kSucceeded) {
    proto::Results r;
    for (size_t i = 0; i < done.size(); ++i) {
      r.outcomes.push_back(outcome(done[i], status, status == proto::OutcomeStatus::kSucceeded ? "" : "Fatal: broke"));
      r.outcomes.back().result = "{\"ref\":\"" + done[i].ref + "\"}";
    }
    return assigned(backend(rid, std::move(r)), rid);
  }
  static nlohmann::json inputs(const proto::Assignment& a) { return nlohmann::json::parse(a.inputs); }
};

TEST_F(WorkflowTest, AChainRunsInOrderAndEachStepReceivesThePreviousResult) {
  const Id chain = Id::random();
  Answer a = send({step("fetch"), step("build", {0}), step("test", {1})}, chain);
  ASSERT_TRUE(a.ack) << a.error->message;
  EXPECT_EQ(record(a.ack->tasks[1]).state, S::kWaiting);
  auto got = assigned(ready("w1", 3), "w1");
  ASSERT_EQ(got.size(), 1u) << "only the first step is runnable";
  EXPECT_EQ(got[0].ref, "fetch");
  EXPECT_TRUE(got[0].inputs.empty());
  got = finish("w1", got);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].ref, "build") << "released in the turn its dependency ended";
  auto in = inputs(got[0]);
  ASSERT_EQ(in["tasks"].size(), 1u);
  EXPECT_EQ(in["tasks"][0]["id"], a.ack->tasks[0].to_string());
  EXPECT_EQ(in["tasks"][0]["state"], "succeeded");
  EXPECT_EQ(in["tasks"][0]["result"]["ref"], "fetch");
  got = finish("w1", got);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(inputs(got[0])["tasks"][0]["result"]["ref"], "build");
  finish("w1", got);
  EXPECT_EQ(record(a.ack->tasks[2]).state, S::kSucceeded);
  EXPECT_TRUE(core_->groups().active(chain) == nullptr || core_->groups().active(chain)->record.ready());
}

TEST_F(WorkflowTest, AFailureStopsTheChainAndEveryLaterStepFailsWithTheReason) {
  Answer a = send({step("a"), step("b", {0}), step("c", {1}), step("d", {2})}, Id::random());
  ASSERT_TRUE(a.ack);
  auto got = assigned(ready("w1", 4), "w1");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(finish("w1", got, proto::OutcomeStatus::kFailed).empty()) << "nothing after a failure runs";
  for (size_t i = 1; i < 4; ++i) {
    const auto rec = record(a.ack->tasks[i]);
    EXPECT_EQ(rec.state, S::kFailed) << i;
    EXPECT_EQ(rec.error.rfind("DependencyFailed: task ", 0), 0u) << rec.error;
    EXPECT_NE(rec.error.find(a.ack->tasks[i - 1].to_string()), std::string::npos) << "names the step before";
  }
  EXPECT_NE(record(a.ack->tasks[1]).error.find("Fatal: broke"), std::string::npos) << "carries the first error";
}

TEST_F(WorkflowTest, ADiamondWaitsForBothBranchesAndATaskOfAnEarlierSubmissionCanBeNamed) {
  Answer a = send({step("root"), step("left", {0}), step("right", {0}), step("join", {1, 2})});
  ASSERT_TRUE(a.ack);
  auto got = assigned(ready("w1", 4), "w1");
  ASSERT_EQ(got.size(), 1u);
  got = finish("w1", got);
  ASSERT_EQ(got.size(), 2u) << "both branches run at once";
  auto last = finish("w1", {got[0]});
  EXPECT_TRUE(last.empty()) << "the join waits for the other branch";
  EXPECT_EQ(record(a.ack->tasks[3]).state, S::kWaiting);
  last = finish("w1", {got[1]});
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0].ref, "join");
  EXPECT_EQ(inputs(last[0])["tasks"].size(), 2u);
  finish("w1", last);
  // A later submission names a task that has succeeded already: it runs at once, with it.
  Answer later = send({step("after", {}, {a.ack->tasks[3]})});
  ASSERT_TRUE(later.ack);
  EXPECT_EQ(record(later.ack->tasks[0]).state, S::kQueued);
  EXPECT_EQ(nlohmann::json::parse(record(later.ack->tasks[0]).inputs)["tasks"][0]["result"]["ref"], "join");
}

TEST_F(WorkflowTest, CyclesSelfDependenciesAndUnknownTasksAreRefusedWhole) {
  Answer cycle = send({step("a", {2}), step("b", {0}), step("c", {1}), step("d")});
  ASSERT_TRUE(cycle.error);
  EXPECT_EQ(cycle.error->code, static_cast<int32_t>(Code::kBadRequest));
  EXPECT_NE(cycle.error->message.find("cycle"), std::string::npos) << cycle.error->message;
  EXPECT_EQ(cycle.received, 0u);
  EXPECT_TRUE(send({step("self", {0})}).error);
  EXPECT_TRUE(send({step("out", {5})}).error);
  Answer unknown = send({step("x", {}, {Id::random()})});
  ASSERT_TRUE(unknown.error);
  EXPECT_EQ(unknown.error->code, static_cast<int32_t>(Code::kUnprocessable));
  proto::TaskSpec bad_when = step("w", {}, {});
  bad_when.when = 1;
  EXPECT_TRUE(send({bad_when}).error) << "a trigger without dependencies";
  proto::TaskSpec no_group = step("g");
  no_group.after_group = Id::random();
  EXPECT_TRUE(send({no_group}).error) << "an unknown group";
  const Id own = Id::random();
  proto::TaskSpec own_group = step("o");
  own_group.after_group = own;
  EXPECT_TRUE(send({step("m"), own_group}, own).error) << "a member that waits for its own group";
  EXPECT_TRUE(send({step("m")}, Id(), {step("cb")}).error) << "callbacks without a group";
  EXPECT_TRUE(core_->tasks().ready(0).empty()) << "nothing of the refused submissions was made";
}

TEST_F(WorkflowTest, AChordsCallbacksRunOnceWithTheGroupsResultsEvenAcrossARestart) {
  const Id group = Id::random();
  std::vector<proto::TaskSpec> members;
  for (int i = 0; i < 5; ++i) members.push_back(step("m" + std::to_string(i)));
  proto::TaskSpec on_success = step("summary");
  proto::TaskSpec always = step("cleanup");
  always.when = static_cast<uint8_t>(proto::Trigger::kAlways);
  proto::TaskSpec on_failure = step("alert");
  on_failure.when = static_cast<uint8_t>(proto::Trigger::kFailure);
  Answer a = send(members, group, {on_success, always, on_failure});
  ASSERT_TRUE(a.ack) << a.error->message;
  ASSERT_EQ(a.ack->callbacks.size(), 3u);
  EXPECT_EQ(a.received, 8u);
  const Id session = Id::random();
  auto got = assigned(ready("w1", 5, session), "w1");
  ASSERT_EQ(got.size(), 5u) << "callbacks wait";
  EXPECT_TRUE(finish("w1", {got[0], got[1], got[2]}).empty());

  // The router restarts with two members still running; their worker claims them back.
  core_.emplace(options_, *ledger_, stats_);
  ASSERT_TRUE(core_->recover());
  EXPECT_EQ(record(a.ack->callbacks[0]).state, S::kWaiting);
  proto::Ready again = hello("w1", 5, 5, {{got[3].task, got[3].attempt}, {got[4].task, got[4].attempt}});
  again.session = session;  // the same worker, reconnecting
  backend("w1", std::move(again));
  auto callbacks = finish("w1", {got[3], got[4]});
  ASSERT_EQ(callbacks.size(), 2u) << "the success and always callbacks run, the failure one does not";
  const auto alert = record(a.ack->callbacks[2]);
  EXPECT_EQ(alert.state, S::kRevoked);
  EXPECT_EQ(alert.error.rfind("skipped", 0), 0u) << alert.error;
  for (const auto& cb : callbacks) {
    auto in = inputs(cb)["group"];
    EXPECT_EQ(in["id"], group.to_string());
    EXPECT_EQ(in["succeeded"], 5);
    ASSERT_EQ(in["results"].size(), 5u);
    EXPECT_EQ(in["results"][0]["result"]["ref"], "m0") << "in submission order";
    EXPECT_EQ(in["results"][4]["result"]["ref"], "m4");
  }
  EXPECT_TRUE(finish("w1", callbacks).empty()) << "each callback ran once";
  EXPECT_EQ(record(a.ack->callbacks[0]).state, S::kSucceeded);
  // A repeat of the submission (same key) answers the same callbacks, and a restart now
  // fires nothing again.
  core_.emplace(options_, *ledger_, stats_);
  ASSERT_TRUE(core_->recover());
  EXPECT_TRUE(assigned(ready("w2", 5), "w2").empty());
}

TEST_F(WorkflowTest, AFailedMemberFailsTheSuccessCallbackAndRunsTheFailureOne) {
  const Id group = Id::random();
  proto::TaskSpec on_failure = step("alert");
  on_failure.when = static_cast<uint8_t>(proto::Trigger::kFailure);
  Answer a = send({step("m0"), step("m1")}, group, {step("summary"), on_failure});
  ASSERT_TRUE(a.ack);
  auto got = assigned(ready("w1", 2), "w1");
  ASSERT_EQ(got.size(), 2u);
  finish("w1", {got[0]});
  auto cbs = finish("w1", {got[1]}, proto::OutcomeStatus::kFailed);
  ASSERT_EQ(cbs.size(), 1u);
  EXPECT_EQ(cbs[0].ref, "alert");
  EXPECT_EQ(inputs(cbs[0])["group"]["failed"], 1);
  const auto summary = record(a.ack->callbacks[0]);
  EXPECT_EQ(summary.state, S::kFailed);
  EXPECT_NE(summary.error.find("1 failed"), std::string::npos) << summary.error;
}

TEST_F(WorkflowTest, RevokingAGroupRevokesItsWaitingTasksAndRetryWaitsForTheDependencyAgain) {
  const Id group = Id::random();
  Answer a = send({step("a"), step("b", {0})}, group);
  ASSERT_TRUE(a.ack);
  frontend(proto::Control::make(proto::ControlOp::kRevokeGroup, proto::GroupArgs{group, false}));
  EXPECT_EQ(record(a.ack->tasks[1]).state, S::kRevoked) << "a waiting task is in no queue, and still revoked";

  Answer chain = send({step("p"), step("c", {0})});
  ASSERT_TRUE(chain.ack);
  auto got = assigned(ready("w1", 2), "w1");
  ASSERT_EQ(got.size(), 1u);
  finish("w1", got, proto::OutcomeStatus::kFailed);
  ASSERT_EQ(record(chain.ack->tasks[1]).state, S::kFailed);
  // Retry the dependant first: it waits again, and fails again while its dependency has failed.
  frontend(proto::Control::make(proto::ControlOp::kRetry, proto::TaskArgs{chain.ack->tasks[1], false}));
  EXPECT_EQ(record(chain.ack->tasks[1]).state, S::kFailed);
  // Retry the dependency, then the dependant: it waits for the new outcome.
  got = assigned(frontend(proto::Control::make(proto::ControlOp::kRetry, proto::TaskArgs{chain.ack->tasks[0], false})), "w1");
  frontend(proto::Control::make(proto::ControlOp::kRetry, proto::TaskArgs{chain.ack->tasks[1], false}));
  EXPECT_EQ(record(chain.ack->tasks[1]).state, S::kWaiting);
  got = assigned(turn([&] { core_->dispatch(); }), "w1");
  ASSERT_EQ(got.size(), 1u);
  got = finish("w1", got);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].task, chain.ack->tasks[1]);
  EXPECT_EQ(inputs(got[0])["tasks"][0]["state"], "succeeded");
  // Revoking a waiting task alone.
  Answer w = send({step("slow"), step("never", {0})});
  EXPECT_TRUE(frontend(proto::Control::make(proto::ControlOp::kRevoke, proto::TaskArgs{w.ack->tasks[1], false})).messages.size());
  EXPECT_EQ(record(w.ack->tasks[1]).state, S::kRevoked);
}

TEST_F(WorkflowTest, WaitingTasksSurviveARestartAndRunWhenTheirDependencyEndsAfterIt) {
  Answer a = send({step("a"), step("b", {0})});
  ASSERT_TRUE(a.ack);
  core_.emplace(options_, *ledger_, stats_);
  ASSERT_TRUE(core_->recover());
  EXPECT_EQ(record(a.ack->tasks[1]).state, S::kWaiting);
  auto got = assigned(ready("w1", 2), "w1");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].ref, "a");
  got = finish("w1", got);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].ref, "b");
}

// Model pools (docs/kinds/agent.md, "Model pools"): the queue "default" runs on the pool
// "coder" of two servers with two places each, and its groups take turns.
class PoolTest : public CoreTest {
 protected:
  void SetUp() override {
    CoreTest::SetUp();
    options_.queues[0].pool = "coder";
    options_.queues[0].fair = true;
    options_.pools = {{"coder", "m", {"http://a:1", "http://b:1"}, 2}};
    core_.emplace(options_, *ledger_, stats_);
    ASSERT_TRUE(core_->recover());
  }
  std::vector<proto::PoolHostStats> hosts() const { return core_->tasks().pool_stats(now_steady_ms())[0].hosts; }
  Effects dispatch_turn() { return turn([&] { core_->dispatch(); }); }
};

TEST_F(PoolTest, EachServersPlacesAreCountedAcrossAllWorkers) {
  submit(10);
  auto first = assigned(ready("w1", 8), "w1");
  ASSERT_EQ(first.size(), 4u) << "two servers with two places each, whatever the slots";
  std::map<std::string, int> per_host;
  for (const auto& a : first) {
    ++per_host[a.endpoint];
    EXPECT_EQ(a.model, "m");
  }
  EXPECT_EQ(per_host, (std::map<std::string, int>{{"http://a:1", 2}, {"http://b:1", 2}}));
  EXPECT_TRUE(assigned(ready("w2", 8), "w2").empty()) << "the pool is full";
  // One ends: its place, on the same server, goes to the next task.
  Effects after = backend("w1", proto::Results{{outcome(first[0], proto::OutcomeStatus::kSucceeded)}});
  auto given = assigned(after, "w1");
  for (auto& a : assigned(after, "w2")) given.push_back(a);
  ASSERT_EQ(given.size(), 1u);
  EXPECT_EQ(given[0].endpoint, first[0].endpoint);
  for (const auto& h : hosts()) EXPECT_EQ(h.running, 2u) << h.host;
}

TEST_F(PoolTest, APooledTaskGoesOnlyToAFreeSlotNotIntoAPrefetchBuffer) {
  submit(4);
  EXPECT_EQ(assigned(backend("w1", hello("w1", 1, 8)), "w1").size(), 1u) << "one slot: one task, the rest wait";
  EXPECT_EQ(core_->tasks().ready(0).size(), 3u);
}

TEST_F(PoolTest, ARefusingServerCoolsDownAndItsTaskMovesOnWithoutSpendingARetry) {
  submit(3);
  auto got = assigned(ready("w1", 8), "w1");
  ASSERT_EQ(got.size(), 3u);
  auto on_a = std::find_if(got.begin(), got.end(), [](const proto::Assignment& a) { return a.endpoint == "http://a:1"; });
  ASSERT_NE(on_a, got.end());
  proto::Outcome refused = outcome(*on_a, proto::OutcomeStatus::kRetry, "OllamaServerError: HTTP 503: busy");
  refused.host_cooldown_ms = 60'000;
  auto again = assigned(backend("w1", proto::Results{{refused}}), "w1");
  ASSERT_EQ(again.size(), 1u) << "b had a free place";
  EXPECT_EQ(again[0].task, on_a->task);
  EXPECT_EQ(again[0].endpoint, "http://b:1");
  EXPECT_EQ(again[0].attempt, 2u);
  EXPECT_EQ(record(on_a->task).retries, 0u) << "no retry spent";
  submit(2);
  EXPECT_TRUE(assigned(dispatch_turn(), "w1").empty()) << "a cools down, b is full";
  EXPECT_GT(hosts()[0].cooling_ms, 50'000u);
  EXPECT_EQ(hosts()[1].running, 2u);
}

TEST_F(PoolTest, AfterTwentyRefusalsATaskSpendsItsRetriesAgain) {
  submit(1);
  auto got = assigned(ready("w1", 8), "w1");
  ASSERT_EQ(got.size(), 1u);
  proto::Assignment current = got[0];
  uint32_t moved = 0;
  while (moved < 2 * kMaxPoolRefusals) {
    proto::Outcome refused = outcome(current, proto::OutcomeStatus::kRetry, "OllamaUnavailable: refused");
    refused.host_cooldown_ms = 1;
    auto next = assigned(backend("w1", proto::Results{{refused}}), "w1");
    if (record(current.task).state == S::kRetrying) break;  // a retry spent: its backoff in the ETA heap
    // Both servers may still cool down for their millisecond: the task waits for one.
    testing::wait_until([&] { return !next.empty() || !(next = assigned(dispatch_turn(), "w1")).empty(); },
                        std::chrono::seconds(2));
    ASSERT_EQ(next.size(), 1u);
    current = next[0];
    ++moved;
  }
  EXPECT_EQ(moved, kMaxPoolRefusals);
  EXPECT_EQ(record(current.task).retries, 1u);
}

TEST_F(PoolTest, ARestartedRouterCountsThePlacesItsLeasesStillHold) {
  submit(6);
  ASSERT_EQ(assigned(ready("w1", 8), "w1").size(), 4u);
  core_.emplace(options_, *ledger_, stats_);  // a restart on the same LMDB
  ASSERT_TRUE(core_->recover());
  for (const auto& h : hosts()) EXPECT_EQ(h.running, 2u) << h.host;
  EXPECT_TRUE(assigned(ready("w2", 8), "w2").empty()) << "the leases waiting to be re-claimed keep their places";
}

TEST_F(PoolTest, ASmallBatchTakesTurnsWithABigOneSubmittedBeforeIt) {
  const Id big = Id::random(), small = Id::random();
  const std::vector<Id> big_ids = submit(20, big);
  auto running = assigned(ready("w1", 8), "w1");
  ASSERT_EQ(running.size(), 4u);
  const std::vector<Id> small_ids = submit(2, small);
  std::vector<Id> started;
  for (int i = 0; i < 4; ++i) {
    Effects e = backend("w1", proto::Results{{outcome(running[0], proto::OutcomeStatus::kSucceeded)}});
    running.erase(running.begin());
    auto next = assigned(e, "w1");
    ASSERT_EQ(next.size(), 1u);
    started.push_back(next[0].task);
    running.push_back(next[0]);
  }
  // FIFO would start 16 more of the big batch first; in turns, big and small alternate.
  EXPECT_EQ(std::count_if(started.begin(), started.end(),
                          [&](const Id& t) { return std::find(small_ids.begin(), small_ids.end(), t) != small_ids.end(); }),
            2);
  EXPECT_EQ(started[0], big_ids[4]);
}

}  // namespace
}  // namespace zb::router
