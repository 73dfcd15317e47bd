// The store's per-second history (store/series.h) through StatusDb, as the follower feeds it:
// counts per queue and second, percentiles from its histograms, nothing counted twice when a
// batch is replayed, kept across a reopen, and pruned once a day and an hour old.
#include <gtest/gtest.h>

#include "store/status_db.h"
#include "tests/support/harness.h"

namespace zb::store {
namespace {

using proto::EventType;

constexpr uint64_t kT0 = 1'800'000'000'000;  // a unix instant in ms, on a whole second

struct Log {
  Id log = Id::time_ordered();
  uint64_t seq = 0;
  std::vector<proto::Event> events;

  Id received(uint64_t ts_ms, const std::string& queue) {
    proto::Event ev;
    ev.seq = ++seq;
    ev.ts_ms = ts_ms;
    ev.type = EventType::kTaskReceived;
    ev.task = Id::time_ordered();
    ev.queue = queue;
    ev.kind = "echo";
    ev.state = TaskState::kQueued;
    events.push_back(ev);
    return ev.task;
  }
  void next(const Id& task, uint64_t ts_ms, EventType type, TaskState state, uint64_t runtime_us = 0) {
    proto::Event ev;
    ev.seq = ++seq;
    ev.ts_ms = ts_ms;
    ev.type = type;
    ev.task = task;
    ev.state = state;
    ev.attempt = 1;
    ev.worker = "w";
    ev.from = type == EventType::kTaskStarted ? TaskState::kQueued : TaskState::kStarted;
    ev.runtime_us = runtime_us;
    events.push_back(ev);
  }
  // A task's whole life: received at t, started after wait_ms, finished run_ms later.
  void task(uint64_t t, const std::string& queue, uint64_t wait_ms, uint64_t run_ms, bool fails = false) {
    const Id id = received(t, queue);
    next(id, t + wait_ms, EventType::kTaskStarted, TaskState::kStarted);
    next(id, t + wait_ms + run_ms, fails ? EventType::kTaskFailed : EventType::kTaskSucceeded,
         fails ? TaskState::kFailed : TaskState::kSucceeded, run_ms * 1000);
  }
};

using zb::testing::TempDir;

Result<StatusDb> open_db(const TempDir& dir) { return StatusDb::open(dir.str()); }

TEST(StoreSeries, CountsEachQueuesEventsPerSecondWithPercentiles) {
  TempDir dir;
  auto db = open_db(dir);
  ASSERT_TRUE(db) << db.status().message();
  Log log;
  for (int i = 0; i < 100; ++i) log.task(kT0 + 100, "default", /*wait_ms=*/i < 90 ? 10 : 4000, /*run_ms=*/50);
  log.task(kT0 + 200, "tests", 10, 50, /*fails=*/true);
  ASSERT_TRUE(db->apply(log.log, log.events));

  auto r = db->series(kT0 / 1000, kT0 / 1000 + 9, 1);
  ASSERT_TRUE(r) << r.status().message();
  ASSERT_EQ(r->total.size(), 10u);
  EXPECT_EQ(r->total[0].received, 101u);
  EXPECT_EQ(r->queues.at("default")[0].received, 100u);
  EXPECT_EQ(r->queues.at("tests")[0].failed, 1u);
  // 90 waits of 10 ms in second 0, 10 of 4 s in second 4 (started then).
  EXPECT_EQ(r->total[0].started, 91u);
  EXPECT_EQ(r->total[4].started, 10u);
  const double p50 = series_quantile(r->wait_ms[0], 0.5);
  EXPECT_GE(p50, 10.0);
  EXPECT_LE(p50, 12.5);
  EXPECT_GE(series_quantile(r->wait_ms[4], 0.99), 4000.0);
  EXPECT_LT(series_quantile(r->wait_ms[1], 0.5), 0);  // nothing started in second 1
  // The same range in one 10 s step holds everything.
  auto one = db->series(kT0 / 1000, kT0 / 1000 + 9, 10);
  ASSERT_TRUE(one);
  ASSERT_EQ(one->total.size(), 1u);
  EXPECT_EQ(one->total[0].succeeded, 100u);
  EXPECT_EQ(one->total[0].started, 101u);
  const double p95 = series_quantile(one->wait_ms[0], 0.95);
  EXPECT_GE(p95, 4000.0);
  EXPECT_LE(p95, 5000.0);
}

TEST(StoreSeries, ReplayedEventsAreNotCountedTwiceAndAReopenKeepsTheHistory) {
  TempDir dir;
  Log log;
  for (int i = 0; i < 5; ++i) log.task(kT0 + 1000 * i, "default", 1, 1);
  {
    auto db = open_db(dir);
    ASSERT_TRUE(db);
    ASSERT_TRUE(db->apply(log.log, log.events));
    ASSERT_TRUE(db->apply(log.log, log.events));  // a replay after a gap: all at or below applied()
  }
  auto db = open_db(dir);
  ASSERT_TRUE(db);
  auto r = db->series(kT0 / 1000, kT0 / 1000 + 4, 1);
  ASSERT_TRUE(r);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(r->total[i].received, 1u) << i;
    EXPECT_EQ(r->total[i].succeeded, 1u) << i;
  }
}

TEST(StoreSeries, SecondsOlderThanTheRetentionArePruned) {
  TempDir dir;
  auto db = open_db(dir);
  ASSERT_TRUE(db);
  Log log;
  log.task(kT0, "default", 1, 1);
  ASSERT_TRUE(db->apply(log.log, log.events));
  const uint64_t later = kT0 + (kSeriesRetentionS + 10) * 1000;
  log.events.clear();
  log.task(later, "default", 1, 1);
  ASSERT_TRUE(db->apply(log.log, log.events));
  auto old = db->series(kT0 / 1000, kT0 / 1000 + 5, 1);
  ASSERT_TRUE(old);
  EXPECT_EQ(old->total[0].received, 0u);
  auto recent = db->series(later / 1000, later / 1000, 1);
  ASSERT_TRUE(recent);
  EXPECT_EQ(recent->total[0].received, 1u);
}

TEST(StoreSeries, ALongRangeIsReadInAtMostTheMaximumOfPoints) {
  TempDir dir;
  auto db = open_db(dir);
  ASSERT_TRUE(db);
  auto r = db->series(kT0 / 1000, kT0 / 1000 + 86400, 1);
  ASSERT_TRUE(r);
  EXPECT_LE(r->total.size(), kSeriesMaxPoints);
  EXPECT_GE(r->step_s, 24u);
}

TEST(StoreSeries, BucketsCoverSubMillisecondToHours) {
  EXPECT_EQ(series_bucket(0), 0);
  EXPECT_EQ(series_bucket(0.1), 0);
  for (double ms : {0.3, 1.0, 7.0, 1000.0, 3.6e6}) {
    const double edge = series_bucket_edge_ms(series_bucket(ms));
    EXPECT_GE(edge, ms * 0.999) << ms;
    EXPECT_LE(edge, ms * 1.25 + 1e-9) << ms;
  }
  EXPECT_EQ(series_bucket(1e12), series_bucket(1e11));  // the last bucket takes the rest
}

}  // namespace
}  // namespace zb::store
