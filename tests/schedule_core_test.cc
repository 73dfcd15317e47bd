// Periodic schedules in the router's core (router/schedules.cc) on a real LMDB folder: slots
// fire once, a restart catches up by policy, a clock that goes back fires nothing twice, a
// rolled-back turn loses its firing and its task together, overlap skip, and the control
// operations. Time is what each turn's tick is told (Core::tick takes the wall clock).
#include <filesystem>

#include <gtest/gtest.h>

#include "common/clock.h"
#include "router/core.h"

namespace zb::router {
namespace {

constexpr uint64_t kSecond = 1000;
// A whole multiple of every interval used: slots are multiples of the interval since 1970.
constexpr uint64_t kT0 = 1'800'000'000'000;

class ScheduleCoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("zbatch-sched-" + Id::random().to_string());
    QueueConfig q;
    q.name = "default";
    options_.queues = {q};
    options_.result_ttl_ms = 0;
    open();
  }
  void TearDown() override {
    core_.reset();
    ledger_.reset();
    std::filesystem::remove_all(dir_);
  }
  // As a (re)start: the ledger and core from the folder.
  void open() {
    core_.reset();
    ledger_.reset();
    lmdb::EnvOptions env;
    env.sync = false;
    auto ledger = Ledger::open(dir_.string(), env);
    ASSERT_TRUE(ledger) << ledger.status().to_string();
    ledger_.emplace(std::move(*ledger));
    core_.emplace(options_, *ledger_, stats_);
    ASSERT_TRUE(core_->recover());
  }
  static proto::ScheduleSpec every(const std::string& name, uint64_t ms, const std::string& catch_up = "one") {
    proto::ScheduleSpec s;
    s.name = name;
    s.every_ms = ms;
    s.catch_up = catch_up;
    s.task.kind = "echo";
    s.task.payload = "{\"n\":1}";
    return s;
  }
  // One turn whose tick says the wall clock is `unix_ms`; commit (or roll back).
  Effects tick(uint64_t unix_ms, bool commit = true) {
    EXPECT_TRUE(ledger_->begin());
    core_->begin_turn();
    core_->tick(now_steady_ms(), unix_ms);
    EXPECT_TRUE(core_->end_turn());
    if (commit) EXPECT_TRUE(ledger_->commit());
    else ledger_->abort();
    Effects out = std::move(core_->effects());
    core_->effects().clear();
    return out;
  }
  Result<proto::ControlResult> control(proto::ControlOp op, proto::ControlArgs args) {
    EXPECT_TRUE(ledger_->begin());
    core_->begin_turn();
    core_->on_frontend("client", proto::Message(proto::Control{7, std::string(proto::control_op_name(op)), 0, std::move(args)}),
                       std::nullopt);
    EXPECT_TRUE(core_->end_turn());
    EXPECT_TRUE(ledger_->commit());
    Effects out = std::move(core_->effects());
    core_->effects().clear();
    for (auto& m : out.messages) {
      if (auto* r = std::get_if<proto::ControlReply>(&m.message)) return r->reply;
      if (auto* e = std::get_if<proto::Error>(&m.message)) return Status(static_cast<Code>(e->code), e->message);
    }
    return Status(Code::kInternal, "no reply");
  }
  std::vector<proto::ScheduleFiring> firings(const std::string& name) {
    std::vector<proto::ScheduleFiring> out;
    EXPECT_TRUE(ledger_->begin());
    EXPECT_TRUE(ledger_->for_each_firing(name, [&](const proto::ScheduleFiring& f) {
      out.push_back(f);
      return true;
    }));
    ledger_->abort();
    return out;
  }
  std::vector<uint64_t> slots(const std::string& name, const std::string& how = "") {
    std::vector<uint64_t> out;
    for (const auto& f : firings(name))
      if (how.empty() || f.how == how) out.push_back(f.slot_ms);
    return out;
  }
  size_t tasks_in_ledger() {
    size_t n = 0;
    EXPECT_TRUE(ledger_->for_each_task([&](const proto::TaskRecord&) { ++n; }));
    return n;
  }
  static size_t received(const Effects& e) {
    size_t n = 0;
    for (const auto& ev : e.events.decode()) n += ev.type == proto::EventType::kTaskReceived;
    return n;
  }

  std::filesystem::path dir_;
  RouterOptions options_;
  Stats stats_;
  std::optional<Ledger> ledger_;
  std::optional<Core> core_;
};

TEST_F(ScheduleCoreTest, AnIntervalSlotFiresOnceWithItsTaskInTheSameCommit) {
  options_.schedules = {every("tick", 10 * kSecond)};
  open();
  EXPECT_EQ(received(tick(kT0)), 0u);  // declared now: only later slots fire
  EXPECT_EQ(received(tick(kT0 + 9 * kSecond)), 0u);
  EXPECT_EQ(received(tick(kT0 + 10 * kSecond)), 1u);
  EXPECT_EQ(received(tick(kT0 + 10 * kSecond + 500)), 0u);  // the same slot, again: nothing
  EXPECT_EQ(received(tick(kT0 + 20 * kSecond + 1)), 1u);
  EXPECT_EQ(slots("tick"), (std::vector<uint64_t>{kT0 + 10 * kSecond, kT0 + 20 * kSecond}));
  const auto f = firings("tick");
  ASSERT_EQ(f.size(), 2u);
  EXPECT_EQ(f[0].how, "slot");
  EXPECT_FALSE(f[0].task.is_nil());
  EXPECT_NE(f[0].task, f[1].task);
  // The tasks are in LMDB, queued, with the schedule's kind and payload.
  ASSERT_TRUE(ledger_->begin());
  auto rec = ledger_->get_task(f[0].task);
  ledger_->abort();
  ASSERT_TRUE(rec && rec->has_value());
  EXPECT_EQ((*rec)->kind, "echo");
  EXPECT_EQ((*rec)->payload, "{\"n\":1}");
  EXPECT_EQ((*rec)->state, TaskState::kQueued);
  EXPECT_EQ((*rec)->ref, "schedule:tick@" + std::to_string(kT0 + 10 * kSecond));
  EXPECT_EQ(tasks_in_ledger(), 2u);
}

TEST_F(ScheduleCoreTest, ARolledBackTurnLosesTheFiringAndItsTaskTogetherAndTheSlotFiresAfterRecovery) {
  options_.schedules = {every("tick", 10 * kSecond)};
  open();
  tick(kT0);
  EXPECT_EQ(received(tick(kT0 + 10 * kSecond, /*commit=*/false)), 1u);  // the commit never happens
  open();  // as after a crash: what is on disk
  EXPECT_TRUE(firings("tick").empty());
  EXPECT_EQ(tasks_in_ledger(), 0u);
  EXPECT_EQ(received(tick(kT0 + 10 * kSecond + 200)), 1u);
  EXPECT_EQ(slots("tick"), std::vector<uint64_t>{kT0 + 10 * kSecond});
  open();
  EXPECT_EQ(received(tick(kT0 + 10 * kSecond + 400)), 0u);  // committed: not again after a restart
  EXPECT_EQ(tasks_in_ledger(), 1u);
}

TEST_F(ScheduleCoreTest, AfterDowntimeCatchUpAllFiresEveryMissedSlotOnce) {
  options_.schedules = {every("all", 10 * kSecond, "all")};
  open();
  tick(kT0);
  tick(kT0 + 10 * kSecond);
  open();  // down for 60 s
  EXPECT_EQ(received(tick(kT0 + 70 * kSecond + 100)), 6u);
  const auto f = firings("all");
  std::vector<uint64_t> want;
  for (uint64_t s = 1; s <= 7; ++s) want.push_back(kT0 + s * 10 * kSecond);
  EXPECT_EQ(slots("all"), want);
  EXPECT_EQ(slots("all", "catch_up").size(), 5u);  // 20..60 s; 70 s was on time
  EXPECT_EQ(tasks_in_ledger(), 7u);
}

TEST_F(ScheduleCoreTest, AfterDowntimeCatchUpOneRunsOnceAndNoneRunsNothingMissed) {
  options_.schedules = {every("one", 10 * kSecond, "one"), every("none", 10 * kSecond, "none")};
  open();
  tick(kT0);
  open();
  // Down until 55 s: slots 10..50 were missed, none is on time.
  const Effects e = tick(kT0 + 55 * kSecond);
  EXPECT_EQ(received(e), 1u);
  EXPECT_EQ(slots("one"), std::vector<uint64_t>{kT0 + 50 * kSecond});
  EXPECT_EQ(firings("one")[0].how, "catch_up");
  EXPECT_TRUE(slots("none").empty());
  // Both go on with the next slot.
  EXPECT_EQ(received(tick(kT0 + 60 * kSecond)), 2u);
  EXPECT_EQ(slots("none"), std::vector<uint64_t>{kT0 + 60 * kSecond});
  EXPECT_EQ(slots("one").back(), kT0 + 60 * kSecond);
}

TEST_F(ScheduleCoreTest, AClockThatGoesBackFiresNoSlotTwiceAndAJumpForwardIsACatchUp) {
  options_.schedules = {every("tick", 10 * kSecond, "none")};
  open();
  tick(kT0);
  EXPECT_EQ(received(tick(kT0 + 30 * kSecond)), 1u);  // a jump: 10, 20 missed (none), 30 on time
  EXPECT_EQ(slots("tick"), std::vector<uint64_t>{kT0 + 30 * kSecond});
  // Back by 25 s, then forward again through slots already fired.
  for (uint64_t t : {kT0 + 5 * kSecond, kT0 + 10 * kSecond, kT0 + 20 * kSecond, kT0 + 30 * kSecond})
    EXPECT_EQ(received(tick(t)), 0u) << t;
  open();
  EXPECT_EQ(received(tick(kT0 + 15 * kSecond)), 0u);
  EXPECT_EQ(received(tick(kT0 + 40 * kSecond)), 1u);
  EXPECT_EQ(slots("tick"), (std::vector<uint64_t>{kT0 + 30 * kSecond, kT0 + 40 * kSecond}));
}

TEST_F(ScheduleCoreTest, OverlapSkipPassesASlotWhileThePreviousTaskIsUnfinished) {
  proto::ScheduleSpec s = every("skip", 10 * kSecond);
  s.overlap = "skip";
  options_.schedules = {s, every("allow", 10 * kSecond)};
  open();
  tick(kT0);
  EXPECT_EQ(received(tick(kT0 + 10 * kSecond)), 2u);
  EXPECT_EQ(received(tick(kT0 + 20 * kSecond)), 1u);  // skip's first task is still queued
  const auto f = firings("skip");
  ASSERT_EQ(f.size(), 2u);
  EXPECT_EQ(f[1].how, "skipped");
  EXPECT_TRUE(f[1].task.is_nil());
  EXPECT_EQ(firings("allow").size(), 2u);
}

TEST_F(ScheduleCoreTest, ACronScheduleFiresAtItsMinuteInItsZone) {
  proto::ScheduleSpec s;
  s.name = "berlin";
  s.cron = "30 3 * * *";
  s.timezone = "Europe/Berlin";
  s.task.payload = "{}";
  options_.schedules = {s};
  open();
  // 2027-01-15 00:00 UTC; 03:30 in Berlin (CET) is 02:30 UTC.
  const uint64_t day = 1'799'971'200'000;
  tick(day);
  EXPECT_EQ(received(tick(day + 2 * 3600 * kSecond + 29 * 60 * kSecond)), 0u);
  EXPECT_EQ(received(tick(day + 2 * 3600 * kSecond + 30 * 60 * kSecond)), 1u);
  EXPECT_EQ(slots("berlin"), std::vector<uint64_t>{day + 2 * 3600 * kSecond + 30 * 60 * kSecond});
}

TEST_F(ScheduleCoreTest, ConfigSchedulesAreDeclaredAgainAtEachStartAndApiOnesPersist) {
  options_.schedules = {every("cfg", 10 * kSecond)};
  open();
  tick(kT0);
  auto made = control(proto::ControlOp::kScheduleCreate, every("api", 3600 * kSecond));
  ASSERT_TRUE(made) << made.status().message();
  EXPECT_EQ(std::get<proto::ScheduleReply>(*made).schedule.source, "api");
  auto dup = control(proto::ControlOp::kScheduleCreate, every("api", 60 * kSecond));
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.status().code(), Code::kConflict);
  // The config file no longer has "cfg": deleted at the next start; "api" stays.
  options_.schedules = {};
  open();
  tick(kT0 + kSecond);
  auto list = control(proto::ControlOp::kScheduleList, proto::ScheduleArgs{});
  ASSERT_TRUE(list);
  const auto& rows = std::get<proto::ScheduleListReply>(*list).schedules;
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].spec.name, "api");
}

TEST_F(ScheduleCoreTest, PauseResumeRunAndDeleteOverControl) {
  ASSERT_TRUE(control(proto::ControlOp::kScheduleCreate, every("job", 10 * kSecond)));
  const uint64_t now = now_unix_ms();
  auto paused = control(proto::ControlOp::kSchedulePause, proto::ScheduleArgs{"job"});
  ASSERT_TRUE(paused);
  EXPECT_TRUE(std::get<proto::ScheduleReply>(*paused).schedule.paused);
  EXPECT_EQ(std::get<proto::ScheduleReply>(*paused).schedule.next_slot_ms, 0u);
  EXPECT_EQ(received(tick(now + 60 * kSecond)), 0u);  // paused: slots pass
  auto run = control(proto::ControlOp::kScheduleRun, proto::ScheduleArgs{"job"});
  ASSERT_TRUE(run) << run.status().message();
  EXPECT_FALSE(std::get<proto::ScheduleReply>(*run).task.is_nil());
  EXPECT_EQ(slots("job", "run_now").size(), 1u);
  auto resumed = control(proto::ControlOp::kScheduleResume, proto::ScheduleArgs{"job"});
  ASSERT_TRUE(resumed);
  EXPECT_FALSE(std::get<proto::ScheduleReply>(*resumed).schedule.paused);
  EXPECT_GT(std::get<proto::ScheduleReply>(*resumed).schedule.next_slot_ms, now);
  ASSERT_TRUE(control(proto::ControlOp::kScheduleDelete, proto::ScheduleArgs{"job"}));
  EXPECT_TRUE(firings("job").empty());
  auto gone = control(proto::ControlOp::kScheduleList, proto::ScheduleArgs{"job"});
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.status().code(), Code::kNotFound);
  // Refused before anything is written: a bad zone, an unknown queue.
  proto::ScheduleSpec bad_zone;
  bad_zone.name = "z";
  bad_zone.cron = "* * * * *";
  bad_zone.timezone = "Mars/Base";
  EXPECT_EQ(control(proto::ControlOp::kScheduleCreate, bad_zone).status().code(), Code::kNotFound);
  proto::ScheduleSpec bad_queue = every("q", 10 * kSecond);
  bad_queue.task.queue = "nope";
  EXPECT_EQ(control(proto::ControlOp::kScheduleCreate, bad_queue).status().code(), Code::kUnprocessable);
}

TEST(ScheduleSpecCheck, RefusesWhatCannotBeASchedule) {
  auto check = [](auto edit) {
    proto::ScheduleSpec s;
    s.name = "ok";
    s.every_ms = 1000;
    edit(s);
    return proto::check_schedule_spec(s);
  };
  EXPECT_TRUE(check([](auto&) {}));
  EXPECT_FALSE(check([](auto& s) { s.name = ""; }));
  EXPECT_FALSE(check([](auto& s) { s.name = "a/b"; }));
  EXPECT_FALSE(check([](auto& s) { s.name = std::string(129, 'a'); }));
  EXPECT_FALSE(check([](auto& s) { s.every_ms = 999; }));
  EXPECT_FALSE(check([](auto& s) { s.every_ms = 0; }));
  EXPECT_FALSE(check([](auto& s) { s.cron = "* * * * *"; }));  // both
  EXPECT_FALSE(check([](auto& s) { s.every_ms = 0, s.cron = "*/0 * * * *"; }));
  EXPECT_FALSE(check([](auto& s) { s.catch_up = "some"; }));
  EXPECT_FALSE(check([](auto& s) { s.overlap = "queue"; }));
  EXPECT_FALSE(check([](auto& s) { s.task.eta_ms = 5; }));
  EXPECT_FALSE(check([](auto& s) { s.task.priority = 256; }));
}

}  // namespace
}  // namespace zb::router
