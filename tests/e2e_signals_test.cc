// Requested stops with real processes: SIGTERM and SIGINT are warm shutdowns, a second signal
// is cold, every requested stop exits 0, and nothing a stopped process held is lost.
#include "tests/e2e_support.h"

#include <csignal>

namespace zb::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// Busy slots of the named worker, as the router last heard.
// Tasks running on the named worker's slots now (inspect.active: Started, not just leased).
int busy_of(Cluster& cluster, const std::string& name) {
  auto r = cluster.client()->inspect_active();
  if (!r) return -1;
  for (const auto& w : r->workers)
    if (w.name == name) return static_cast<int>(w.tasks.size());
  return -1;
}

std::vector<proto::TaskRecord> records(Client& c, const std::vector<Id>& ids) {
  auto got = c.wait(ids, 0ms);
  EXPECT_TRUE(got) << got.status().to_string();
  return got ? std::move(*got) : std::vector<proto::TaskRecord>{};
}

TEST(Signals, WarmShutdownFinishesTheRunningTaskAndHandsBackPrefetchedOnes) {
  Cluster cluster;
  cluster.start_router();
  cluster.start_worker(1, {"--prefetch-multiplier", "4"});
  ASSERT_TRUE(cluster.ready(1)) << cluster.logs();
  auto c = cluster.client();
  std::vector<proto::TaskSpec> tasks = {task("sleep", R"({"seconds":1.0})")};
  for (int i = 0; i < 3; ++i) tasks.push_back(task("echo", "{\"i\":" + std::to_string(i) + "}"));
  auto receipt = c->submit_group(tasks);
  ASSERT_TRUE(receipt) << receipt.status().to_string();
  // The sleep runs on the only slot; the three echoes wait behind it, prefetched.
  ASSERT_TRUE(wait_until([&] { return busy_of(cluster, "w1@test") == 1; }, 5s)) << cluster.logs();

  const auto signalled = std::chrono::steady_clock::now();
  cluster.worker(0).signal(SIGTERM);
  EXPECT_EQ(cluster.worker(0).wait(5s), 0) << cluster.logs();
  EXPECT_LT(std::chrono::steady_clock::now() - signalled, 3s);

  auto after = records(*c, receipt->tasks);
  ASSERT_EQ(after.size(), 4u);
  EXPECT_EQ(after[0].state, TaskState::kSucceeded) << "the running task finished before the exit";
  EXPECT_EQ(after[0].attempt, 1u);
  for (size_t i = 1; i < 4; ++i) EXPECT_EQ(after[i].state, TaskState::kQueued) << "handed back, not lost";
  // The goodbye took the worker off the router at once, not after missed heartbeats.
  EXPECT_EQ(cluster.stats()["workers"].size(), 0u);

  cluster.start_worker(2);
  auto done = finish(*c, receipt->tasks, 10s);
  for (size_t i = 1; i < done.size(); ++i) {
    EXPECT_EQ(done[i].state, TaskState::kSucceeded);
    EXPECT_EQ(done[i].worker, "w2@test");
    EXPECT_EQ(done[i].retries, 0u) << "a task handed back is not a failed attempt";
  }
}

TEST(Signals, ShutdownTimeoutCancelsTheRunningTaskWhichIsRequeuedNotFailed) {
  Cluster cluster;
  cluster.start_router();
  cluster.start_worker(1, {"--shutdown-timeout", "0.5"});
  ASSERT_TRUE(cluster.ready(1)) << cluster.logs();
  auto c = cluster.client();
  auto id = c->submit(task("sleep", R"({"seconds":30})"));
  ASSERT_TRUE(id) << id.status().to_string();
  ASSERT_TRUE(wait_until([&] { return busy_of(cluster, "w1@test") == 1; }, 5s)) << cluster.logs();

  const auto signalled = std::chrono::steady_clock::now();
  cluster.worker(0).signal(SIGTERM);
  EXPECT_EQ(cluster.worker(0).wait(10s), 0) << cluster.logs();
  EXPECT_LT(std::chrono::steady_clock::now() - signalled, 4s);
  auto rec = c->status(*id);
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->state, TaskState::kQueued) << rec->error;
  EXPECT_EQ(rec->retries, 0u);

  cluster.start_worker(1);
  ASSERT_TRUE(wait_until([&] { return busy_of(cluster, "w2@test") == 1; }, 5s)) << cluster.logs();
  auto running = c->status(*id);
  ASSERT_TRUE(running);
  EXPECT_EQ(running->state, TaskState::kStarted);
  EXPECT_EQ(running->worker, "w2@test");
}

TEST(Signals, SecondSignalIsAColdShutdown) {
  Cluster cluster;
  cluster.start_router();
  cluster.start_worker(2);  // the default shutdown timeout: 30 s
  ASSERT_TRUE(cluster.ready(1)) << cluster.logs();
  auto c = cluster.client();
  auto receipt = c->submit_group(std::vector<proto::TaskSpec>{task("sleep", R"({"seconds":30})"),
                                                              task("sleep", R"({"seconds":30})")});
  ASSERT_TRUE(receipt);
  ASSERT_TRUE(wait_until([&] { return busy_of(cluster, "w1@test") == 2; }, 5s)) << cluster.logs();

  const auto signalled = std::chrono::steady_clock::now();
  cluster.worker(0).signal(SIGINT);
  ASSERT_TRUE(wait_until([&] { return cluster.worker(0).log().find("warm shutdown") != std::string::npos; }, 3s));
  EXPECT_TRUE(cluster.worker(0).running()) << "a warm shutdown waits for its running tasks";
  cluster.worker(0).signal(SIGINT);
  EXPECT_EQ(cluster.worker(0).wait(5s), 0) << cluster.logs();
  EXPECT_LT(std::chrono::steady_clock::now() - signalled, 4s);
  for (const auto& r : records(*c, receipt->tasks)) {
    EXPECT_EQ(r.state, TaskState::kQueued) << r.error;
    EXPECT_EQ(r.retries, 0u);
  }
}

TEST(Signals, RouterStopsCleanlyMidBatchAndNothingIsLostOrRunTwice) {
  Cluster cluster;
  cluster.start_router();
  cluster.start_worker(2);
  ASSERT_TRUE(cluster.ready(1)) << cluster.logs();
  auto c = cluster.client();
  std::vector<proto::TaskSpec> tasks;
  for (int i = 0; i < 400; ++i) tasks.push_back(task("sleep", R"({"seconds":0.005})"));
  auto receipt = c->submit_group(tasks);
  ASSERT_TRUE(receipt) << receipt.status().to_string();
  ASSERT_TRUE(wait_until([&] {
    auto g = c->group(receipt->group);
    return g && g->succeeded >= 20;
  }, 10s));

  const auto signalled = std::chrono::steady_clock::now();
  cluster.router().signal(SIGTERM);
  EXPECT_EQ(cluster.router().wait(5s), 0) << cluster.logs();
  EXPECT_LT(std::chrono::steady_clock::now() - signalled, 2s);
  EXPECT_NE(cluster.router().log().find("router stopped"), std::string::npos);

  cluster.start_router();
  auto fresh = cluster.client();
  auto done = finish(*fresh, receipt->tasks, 60s);
  ASSERT_EQ(done.size(), 400u);
  for (const auto& r : done) {
    EXPECT_EQ(r.state, TaskState::kSucceeded);
    EXPECT_EQ(r.attempt, 1u) << "the worker re-claimed what it ran across the restart";
  }
  auto group = fresh->group(receipt->group);
  ASSERT_TRUE(group);
  EXPECT_EQ(group->succeeded, 400u);
}

}  // namespace
}  // namespace zb::testing
