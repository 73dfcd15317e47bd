// Honest outcomes with real processes: every submission is acknowledged (durable), refused
// (never runs, ever), or outcome_unknown with a key that makes a repeat safe.
#include "tests/e2e_support.h"

#include <csignal>

namespace zb::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

uint64_t submitted(Cluster& cluster) { return cluster.stats()["router"]["submitted"].get<uint64_t>(); }

TEST(Outcomes, SubmissionToAStoppedRouterIsRefusedAndNeverRunsAfterItsRestart) {
  Cluster cluster;
  cluster.start_router();
  ASSERT_TRUE(cluster.ready(0)) << cluster.logs();
  auto c = cluster.client(1000ms);
  ASSERT_TRUE(c->submit(task("echo", "{}")));  // connected once, so the socket knows the router
  cluster.router().signal(SIGTERM);
  ASSERT_EQ(cluster.router().wait(5s), 0);

  auto refused = c->submit(task("echo", R"({"refused":true})"));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.status().code(), Code::kUnavailable) << refused.status().message();
  EXPECT_NE(refused.status().message().find("nothing was sent"), std::string::npos) << refused.status().message();
  auto group = c->submit_group(std::vector<proto::TaskSpec>(3, task("echo", "{}")));
  ASSERT_FALSE(group);
  EXPECT_EQ(group.status().code(), Code::kUnavailable);

  cluster.start_router();
  ASSERT_TRUE(cluster.ready(0)) << cluster.logs();
  // The client's socket reconnects; what was refused did not wait in it.
  auto later = cluster.client();
  ASSERT_TRUE(wait_until([&] { return later->submit(task("echo", "{}")).is_ok(); }, 5s));
  EXPECT_TRUE(wait_until([&] { return c->status(Id::random()).status().code() == Code::kNotFound; }, 5s));
  EXPECT_EQ(submitted(cluster), 1u) << "only the submission made after the restart";
}

TEST(Outcomes, UnansweredSubmissionIsOutcomeUnknownAndALateArrivalNeverRuns) {
  Cluster cluster;
  cluster.start_router();
  ASSERT_TRUE(cluster.ready(0)) << cluster.logs();
  auto c = cluster.client(500ms);
  ASSERT_TRUE(c->submit(task("echo", "{}")));
  // A router that is alive but does not answer (stopped): the submission waits in its socket.
  cluster.router().signal(SIGSTOP);
  auto unknown = c->submit(task("echo", R"({"n":1})"), "key-42");
  cluster.router().signal(SIGCONT);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.status().code(), Code::kOutcomeUnknown);
  EXPECT_NE(unknown.status().message().find("key-42"), std::string::npos) << unknown.status().message();

  // The router reads it after its deadline: refused, not run.
  ASSERT_TRUE(wait_until([&] { return cluster.stats()["router"]["late_requests"].get<int>() == 1; }, 5s))
      << cluster.logs();
  EXPECT_EQ(submitted(cluster), 1u);
  // The safe retry: the same key, now answered, runs it once.
  auto fresh = cluster.client();
  auto retried = fresh->submit(task("echo", R"({"n":1})"), "key-42");
  ASSERT_TRUE(retried) << retried.status().to_string();
  EXPECT_FALSE(retried->duplicate);
  EXPECT_EQ(retried->idempotency_key, "key-42");
  auto again = fresh->submit(task("echo", R"({"n":1})"), "key-42");
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->task, retried->task);
  EXPECT_EQ(submitted(cluster), 2u);
}

TEST(Outcomes, EverySubmissionCarriesAnIdempotencyKeyAndAReusedKeyForAnotherRequestConflicts) {
  Cluster cluster;
  cluster.start_router();
  ASSERT_TRUE(cluster.ready(0)) << cluster.logs();
  auto c = cluster.client();
  auto one = c->submit(task("echo", "{}"), "");
  ASSERT_TRUE(one);
  EXPECT_FALSE(one->idempotency_key.empty());
  auto group = c->submit_group(std::vector<proto::TaskSpec>(5, task("echo", "{}")));
  ASSERT_TRUE(group);
  EXPECT_FALSE(group->idempotency_key.empty());

  ASSERT_TRUE(c->submit(task("echo", R"({"a":1})"), "shared"));
  auto conflict = c->submit(task("echo", R"({"a":2})"), "shared");
  ASSERT_FALSE(conflict);
  EXPECT_EQ(conflict.status().code(), Code::kConflict);
  GroupOptions go;
  go.idempotency_key = "batch-1";
  ASSERT_TRUE(c->submit_group(std::vector<proto::TaskSpec>(2, task("echo", "{}")), go));
  auto group_conflict = c->submit_group(std::vector<proto::TaskSpec>(3, task("echo", "{}")), go);
  ASSERT_FALSE(group_conflict);
  EXPECT_EQ(group_conflict.status().code(), Code::kConflict);
  // A countdown is counted by the router: the same request repeated later is the same request.
  proto::TaskSpec later = task("echo", "{}");
  later.countdown_ms = 60000;
  auto first = c->submit(later, "countdown");
  ASSERT_TRUE(first);
  auto repeat = c->submit(later, "countdown");
  ASSERT_TRUE(repeat) << repeat.status().to_string();
  EXPECT_TRUE(repeat->duplicate);
  auto rec = c->status(first->task);
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->state, TaskState::kScheduled);
}

TEST(Outcomes, ControlOperationsArrivingLateAreNotCarriedOut) {
  Cluster cluster;
  cluster.start_router();
  ASSERT_TRUE(cluster.ready(0)) << cluster.logs();
  auto c = cluster.client(500ms);
  auto queued = c->submit(task("echo", "{}"));
  ASSERT_TRUE(queued);
  cluster.router().signal(SIGSTOP);
  auto purge = c->control("purge", R"({"queue":"default"})");
  cluster.router().signal(SIGCONT);
  ASSERT_FALSE(purge);
  EXPECT_EQ(purge.status().code(), Code::kOutcomeUnknown);
  ASSERT_TRUE(wait_until([&] { return cluster.stats()["router"]["late_requests"].get<int>() == 1; }, 5s));
  auto rec = cluster.client()->status(*queued);
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->state, TaskState::kQueued) << "the late purge did not happen";
}

}  // namespace
}  // namespace zb::testing
