// Long and fault-injecting semantics tests (label "slow"): at-most-once queues under a killed
// worker, result expiry with a bounded LMDB file, a retry storm of 10,000 tasks.
#include "tests/e2e_support.h"

#include <filesystem>

namespace zb::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

TEST(Acks, AtMostOnceQueueFailsATaskWhoseWorkerDied) {
  Cluster cluster;
  std::string config = cluster.write_file("zbatch.toml", "[[queue]]\nname = \"once\"\nacks_late = false\n");
  cluster.start_router({"--config", config});
  cluster.start_worker(1);
  ASSERT_TRUE(cluster.ready(1)) << cluster.logs();
  auto client = cluster.client();
  Id id = *client->submit(task("sleep", R"({"seconds":30})", "once"));
  ASSERT_TRUE(wait_until([&] {
    auto s = client->status(id);
    return s && s->state == TaskState::kStarted;
  }, 10000ms));
  cluster.worker(0).kill9();
  cluster.start_worker(1);
  auto r = finish_one(*client, id, 20s);
  EXPECT_EQ(r.state, TaskState::kFailed);
  EXPECT_EQ(r.error.rfind("WorkerLostError", 0), 0u) << r.error;
  EXPECT_EQ(r.attempt, 1u) << "at-most-once: never a second run";
}


TEST(Expiry, FinishedTasksExpireAndTheLmdbFileStaysBounded) {
  Cluster cluster;
  cluster.start_router({"--result-ttl", "1", "--event-retention", "1000", "--durability", "nosync"});
  cluster.start_worker(2);
  ASSERT_TRUE(cluster.ready(1)) << cluster.logs();
  auto client = cluster.client();
  const std::string file = cluster.data() + "/data.mdb";
  uintmax_t after_warmup = 0;
  const std::string payload = "{\"pad\":\"" + std::string(200, 'x') + "\"}";
  for (int round = 0; round < 8; ++round) {
    std::vector<proto::TaskSpec> specs(5000, task("echo", payload));
    auto receipt = client->submit_group(specs);
    ASSERT_TRUE(receipt) << receipt.status().to_string();
    finish(*client, {receipt->tasks.back()}, 30s);
    // Gone after the TTL (swept once a second).
    ASSERT_TRUE(wait_until([&] {
      auto s = client->status(receipt->tasks.back());
      return !s && s.status().code() == Code::kNotFound;
    }, 10000ms)) << "round " << round;
    EXPECT_TRUE(wait_until([&] { return !client->group(receipt->group); }, 5000ms)) << "the group expired with its tasks";
    if (round == 1) after_warmup = std::filesystem::file_size(file);
  }
  const uintmax_t final_size = std::filesystem::file_size(file);
  RecordProperty("lmdb_bytes_after_2_rounds", std::to_string(after_warmup));
  RecordProperty("lmdb_bytes_after_8_rounds", std::to_string(final_size));
  EXPECT_LE(final_size, after_warmup * 3 / 2) << "LMDB pages were not reused: " << after_warmup << " → " << final_size;
}


TEST(RetryStorm, TenThousandFailingTasksRetriedThreeTimesEndWithExactCounts) {
  Cluster cluster;
  std::string config = cluster.write_file("zbatch.toml",
                                          "[[queue]]\nname = \"storm\"\nmax_retries = 3\nretry_backoff = 0\n"
                                          "retry_backoff_max = 0\nretry_on = [\"*\"]\n");
  cluster.start_router({"--config", config, "--durability", "nosync"});
  cluster.start_worker(2);
  cluster.start_worker(2);
  ASSERT_TRUE(cluster.ready(2)) << cluster.logs();
  auto client = cluster.client(30000ms);
  std::vector<proto::TaskSpec> specs(10000, task("fail", R"({"error":"Storm: always"})", "storm"));
  auto receipt = client->submit_group(specs);
  ASSERT_TRUE(receipt) << receipt.status().to_string();
  auto done = finish(*client, receipt->tasks, 120s);
  ASSERT_EQ(done.size(), 10000u);
  uint64_t attempts = 0, retries = 0;
  for (const auto& r : done) {
    EXPECT_EQ(r.state, TaskState::kFailed);
    EXPECT_EQ(r.retries, 3u);
    EXPECT_GE(r.attempt, 4u);
    attempts += r.attempt;
    retries += r.retries;
  }
  EXPECT_EQ(retries, 30000u);
  // 40,000 attempts, plus one for any attempt cut short by a worker declared lost (a slow,
  // sanitized build under load can miss a 200 ms heartbeat): those are not retries.
  EXPECT_GE(attempts, 40000u);
  RecordProperty("attempts", std::to_string(attempts));
  auto g = client->group(receipt->group);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->failed, 10000u);
  EXPECT_EQ(g->succeeded, 0u);
  EXPECT_TRUE(g->ready());
  proto::InspectFailedArgs one;
  one.limit = 1;
  auto dead = client->inspect_failed(one);
  ASSERT_TRUE(dead) << dead.status().to_string();
  EXPECT_EQ(dead->total, 10000u);
  auto stats = cluster.stats();
  EXPECT_EQ(stats["router"]["failed"], 10000);
  EXPECT_EQ(stats["router"]["in_flight"], 0);
}


}  // namespace
}  // namespace zb::testing
