// Fault injection with real processes: routers and workers killed with SIGKILL and restarted.
#include "tests/e2e_support.h"

#include <csignal>

#include "common/wire.h"

namespace zb::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

uint64_t processed_total(const json& stats) {
  uint64_t n = 0;
  for (const auto& w : stats["workers"]) n += w["processed"].get<uint64_t>();
  return n;
}

bool all_succeeded(Client& c, const std::vector<Id>& ids, std::vector<proto::TaskRecord>* out = nullptr) {
  auto records = c.wait(ids, 0ms);
  if (!records) return false;
  for (const auto& r : *records)
    if (r.state != TaskState::kSucceeded) return false;
  if (out) *out = std::move(*records);
  return true;
}

TEST(Faults, QueuedTasksSurviveRouterKillAndRunOnce) {
  Cluster cluster;
  cluster.start_router();
  ASSERT_TRUE(cluster.ready(0)) << cluster.logs();
  std::vector<proto::TaskSpec> tasks;
  for (int i = 0; i < 2000; ++i) tasks.push_back(task("echo", "{\"i\":" + std::to_string(i) + "}"));
  auto receipt = cluster.client()->submit_group(tasks);
  ASSERT_TRUE(receipt) << receipt.status().to_string();

  cluster.router().kill9();
  ASSERT_GE(cluster.router().wait(5000ms), 0);
  cluster.start_router();
  ASSERT_TRUE(cluster.ready(0)) << cluster.logs();
  cluster.start_worker(2);
  cluster.start_worker(2);
  auto c = cluster.client();
  std::vector<proto::TaskRecord> done;
  ASSERT_TRUE(wait_until([&] { return all_succeeded(*c, receipt->tasks, &done); }, 60s)) << cluster.logs();
  ASSERT_EQ(done.size(), 2000u);
  for (const auto& r : done) EXPECT_EQ(r.attempt, 1u) << r.id.to_string();
  EXPECT_EQ(processed_total(cluster.stats()), 2000u);  // none ran twice
  auto group = c->group(receipt->group);
  ASSERT_TRUE(group);
  EXPECT_TRUE(group->ready());
  EXPECT_EQ(group->succeeded, 2000u);
}

TEST(Faults, TasksOfKilledWorkerAreRequeuedAndComplete) {
  Cluster cluster;
  cluster.start_router();
  cluster.start_worker(2);
  ASSERT_TRUE(cluster.ready(1)) << cluster.logs();
  auto c = cluster.client();
  std::vector<proto::TaskSpec> tasks;
  for (int i = 0; i < 4; ++i) tasks.push_back(task("sleep", "{\"seconds\":1.5}"));
  auto receipt = c->submit_group(tasks);
  ASSERT_TRUE(receipt);
  // The first worker holds every task (capacity 8) before the second one arrives.
  ASSERT_TRUE(wait_until([&] { return cluster.stats()["router"]["in_flight"].get<int>() == 4; }, 5s));
  cluster.start_worker(2);
  ASSERT_TRUE(cluster.ready(2)) << cluster.logs();
  const auto killed_at = std::chrono::steady_clock::now();
  cluster.worker(0).kill9();
  ASSERT_TRUE(cluster.ready(1, 5s)) << cluster.logs();
  EXPECT_LT(std::chrono::steady_clock::now() - killed_at, 2s);  // well within 3 heartbeats + a turn
  std::vector<proto::TaskRecord> done;
  ASSERT_TRUE(wait_until([&] { return all_succeeded(*c, receipt->tasks, &done); }, 20s)) << cluster.logs();
  for (const auto& r : done) {
    EXPECT_EQ(r.attempt, 2u);
    EXPECT_EQ(r.worker, "w2@test");
  }
}

TEST(Faults, SilentWorkerIsDeclaredDeadAfterMissedHeartbeats) {
  Cluster cluster;
  cluster.start_router();
  cluster.start_worker(1);
  ASSERT_TRUE(cluster.ready(1)) << cluster.logs();
  auto c = cluster.client();
  auto id = c->submit(task("sleep", "{\"seconds\":1}"));
  ASSERT_TRUE(id);
  ASSERT_TRUE(wait_until([&] { return cluster.stats()["router"]["in_flight"].get<int>() == 1; }, 5s));
  // A stopped process keeps its TCP connection open: only the missing heartbeats tell.
  cluster.worker(0).signal(SIGSTOP);
  const auto stopped_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(cluster.ready(0, 5s)) << cluster.logs();
  const auto detected = std::chrono::steady_clock::now() - stopped_at;
  EXPECT_GE(detected, 400ms);   // not before liveness (3 x 200 ms) ran out...
  EXPECT_LT(detected, 1500ms);  // ...but soon after
  cluster.start_worker(1);
  auto done = c->wait(std::vector<Id>{*id}, 10000ms);
  ASSERT_TRUE(done && done->size() == 1);
  EXPECT_EQ((*done)[0].state, TaskState::kSucceeded);
  EXPECT_EQ((*done)[0].attempt, 2u);
  EXPECT_EQ((*done)[0].worker, "w2@test");
  // The first worker wakes up and reports its stale attempt: it must not overwrite attempt 2.
  cluster.worker(0).signal(SIGCONT);
  ASSERT_TRUE(cluster.ready(2, 10s)) << cluster.logs();
  auto after = c->status(*id);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->attempt, 2u);
  EXPECT_EQ(after->worker, "w2@test");
}

TEST(Faults, RunningTaskIsReclaimedAfterRouterRestartAndRunsOnce) {
  Cluster cluster;
  cluster.start_router();
  cluster.start_worker(1);
  ASSERT_TRUE(cluster.ready(1)) << cluster.logs();
  auto id = cluster.client()->submit(task("sleep", "{\"seconds\":3}"));
  ASSERT_TRUE(id);
  ASSERT_TRUE(wait_until([&] {
    auto s = cluster.client()->status(*id);
    return s && s->state == TaskState::kStarted;
  }, 5s));
  cluster.router().kill9();
  ASSERT_GE(cluster.router().wait(5000ms), 0);
  cluster.start_router();
  // The worker notices the silence, reconnects and re-claims its task.
  ASSERT_TRUE(cluster.ready(1, 15s)) << cluster.logs();
  auto c = cluster.client();
  proto::TaskRecord rec;
  ASSERT_TRUE(wait_until([&] {
    auto s = c->status(*id);
    if (s) rec = *s;
    return s && is_terminal(s->state);
  }, 20s)) << cluster.logs();
  EXPECT_EQ(rec.state, TaskState::kSucceeded);
  EXPECT_EQ(rec.attempt, 1u);  // not re-dispatched
  EXPECT_NE(cluster.router().log().find("reclaimed=1"), std::string::npos) << cluster.logs();
}

TEST(Faults, GarbageAndOversizeFramesDoNotStopTheRouter) {
  Cluster cluster;
  cluster.start_router();
  cluster.start_worker(1);
  ASSERT_TRUE(cluster.ready(1)) << cluster.logs();
  zmq::context_t ctx;
  for (const std::string& ep : {cluster.frontend(), cluster.backend()}) {
    zmq::socket_t raw(ctx, zmq::socket_type::dealer);
    raw.set(zmq::sockopt::linger, 0);
    raw.connect(ep);
    raw.send(zmq::str_buffer("garbage"), zmq::send_flags::none);
    raw.send(zmq::str_buffer("ZB\x01\x01"), zmq::send_flags::sndmore);
    raw.send(zmq::str_buffer("\xdd\xff\xff\xff\xff"), zmq::send_flags::none);  // hostile length
    raw.send(zmq::str_buffer("ZB\x09\x01"), zmq::send_flags::sndmore);          // wrong version
    raw.send(zmq::str_buffer("\x90"), zmq::send_flags::none);
    for (int i = 0; i < 5; ++i) raw.send(zmq::str_buffer("x"), zmq::send_flags::sndmore);
    raw.send(zmq::str_buffer("x"), zmq::send_flags::none);
    std::string huge((64u << 20) + 1024, 'x');  // above the socket's maximum message size
    raw.send(zmq::buffer(huge), zmq::send_flags::none);
  }
  // The frontend answers garbage with errors; the router keeps serving both sockets.
  auto c = cluster.client();
  auto id = c->submit(task("echo", "{\"still\":\"alive\"}"));
  ASSERT_TRUE(id) << id.status().to_string();
  auto done = c->wait(std::vector<Id>{*id}, 10000ms);
  ASSERT_TRUE(done);
  ASSERT_EQ(done->size(), 1u);
  EXPECT_EQ((*done)[0].state, TaskState::kSucceeded);
  EXPECT_EQ((*done)[0].result, "{\"still\":\"alive\"}");
  EXPECT_TRUE(cluster.router().running());
  EXPECT_GE(cluster.stats()["router"]["bad_frames"].get<int>(), 4);
}

}  // namespace
}  // namespace zb::testing
