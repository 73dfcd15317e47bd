// What the router acknowledged survives a SIGKILL while group syncs are in flight, also when it
// restarts on "another boot" (ZBATCH_BOOT_ID), where it drops every commit past the last durable
// one as a power loss would (router/durability.h).
#include "tests/e2e_support.h"

#include <atomic>
#include <mutex>
#include <thread>

namespace zb::testing {
namespace {

using namespace std::chrono_literals;

// Clients submit one task per request as fast as the router answers while a worker runs them;
// another client polls results. Every task a client got an id for, and every result a client
// saw, must be there after the kill.
void kill_during_syncs_and_restart(const std::string& second_boot) {
  Cluster cluster;
  cluster.start_router({}, {{"ZBATCH_BOOT_ID", "boot-one"}});
  cluster.start_worker(2);
  ASSERT_TRUE(cluster.ready(1)) << cluster.logs();

  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<Id> acked;
  std::vector<Id> seen_done;
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t)
    threads.emplace_back([&, t] {
      auto c = cluster.client(2000ms);
      for (int i = 0; !stop; ++i) {
        auto id = c->submit(task("echo", "{\"t\":" + std::to_string(t) + ",\"i\":" + std::to_string(i) + "}"));
        if (!id) return;  // the router is gone
        std::lock_guard lock(mu);
        acked.push_back(*id);
      }
    });
  threads.emplace_back([&] {
    auto c = cluster.client(2000ms);
    while (!stop) {
      Id probe;
      {
        std::lock_guard lock(mu);
        if (acked.empty()) continue;
        probe = acked[acked.size() / 2];
      }
      auto r = c->status(probe);
      if (!r) return;
      if (r->state == TaskState::kSucceeded) {
        std::lock_guard lock(mu);
        seen_done.push_back(probe);
      }
    }
  });
  auto count = [&] {
    std::lock_guard lock(mu);
    return acked.size();
  };
  const bool enough = wait_until([&] { return count() >= 3000; }, 60s);
  const uint64_t syncs = cluster.stats()["router"]["syncs"].get<uint64_t>();
  cluster.router().kill9();
  stop = true;
  for (auto& t : threads) t.join();
  ASSERT_TRUE(enough) << cluster.logs();
  EXPECT_GT(syncs, 10u);  // commits were being synced in rounds while the clients wrote
  ASSERT_GE(cluster.router().wait(5000ms), 0);

  cluster.start_router({}, {{"ZBATCH_BOOT_ID", second_boot}});
  ASSERT_TRUE(cluster.ready(1, 20s)) << cluster.logs();
  auto c = cluster.client();
  size_t missing = 0;
  for (const Id& id : acked)
    if (auto r = c->status(id); !r) ++missing;
  EXPECT_EQ(missing, 0u) << "of " << acked.size() << " acknowledged submissions";
  auto done = finish(*c, acked, 60s);
  ASSERT_EQ(done.size(), acked.size());
  for (const auto& r : done) EXPECT_EQ(r.state, TaskState::kSucceeded) << r.id.to_string();
  ASSERT_FALSE(seen_done.empty());
  for (const Id& id : seen_done) {
    auto r = c->status(id);
    ASSERT_TRUE(r) << id.to_string();
    EXPECT_EQ(r->state, TaskState::kSucceeded);
    EXPECT_EQ(r->attempt, 1u) << "a result a client saw must not be run again";
  }
  if (second_boot != "boot-one") {
    // The new boot is noticed: the commits after the durable one are dropped, or, when the kill
    // came just after a sync, there were none.
    const std::string log = cluster.router().log();
    EXPECT_TRUE(log.find("restored the last durable commit") != std::string::npos ||
                log.find("found the last durable commit on disk after the machine restarted") != std::string::npos)
        << cluster.logs();
  }
}

TEST(Durable, AcknowledgedWritesSurviveAKillDuringSyncs) { kill_during_syncs_and_restart("boot-one"); }

TEST(Durable, AcknowledgedWritesSurviveWhenTheUnsyncedCommitsAreLost) {
  kill_during_syncs_and_restart("boot-two");
}

}  // namespace
}  // namespace zb::testing
