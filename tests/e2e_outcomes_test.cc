// Honest outcomes with real processes: every submission is acknowledged (durable), refused
// (never runs, ever), or outcome_unknown with a key that makes a repeat safe.
#include "tests/e2e_support.h"

#include <csignal>
#include <set>

#include "common/clock.h"
#include "common/wire.h"

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

// Sends one chunk of a group on a raw DEALER, as submit_group would, and returns the answer.
proto::Message send_chunk(const std::string& frontend, proto::Submit chunk) {
  zmq::context_t ctx;
  zmq::socket_t raw(ctx, zmq::socket_type::dealer);
  wire::configure(raw, zmq::socket_type::dealer);
  raw.connect(frontend);
  chunk.corr = 1;
  chunk.deadline_ms = now_unix_ms() + 5000;
  std::optional<proto::Message> reply;
  EXPECT_TRUE(wire::send_blocking(raw, chunk, 5s));
  EXPECT_TRUE(wait_until([&] {
    auto in = wire::recv(raw, false);
    if (in && in->message) reply = std::move(*in->message);
    return reply.has_value();
  }, 5s));
  return reply ? *reply : proto::Message{proto::Error{0, 0, "no reply"}};
}

void restart_router(Cluster& cluster) {
  cluster.router().kill9();
  cluster.router().wait(5s);
  cluster.start_router();
}

TEST(Outcomes, InterruptedGroupSubmissionIsCompletedByARepeatWithItsKey) {
  Cluster cluster;
  cluster.start_router();
  cluster.start_worker(4);
  ASSERT_TRUE(cluster.ready(1)) << cluster.logs();
  std::vector<proto::TaskSpec> tasks;
  for (int i = 0; i < 30; ++i) tasks.push_back(task("echo", "{\"i\":" + std::to_string(i) + "}"));
  GroupOptions go;
  go.idempotency_key = "interrupted-1";
  go.chunk_tasks = 10;
  GroupChunks plan(tasks, go);
  ASSERT_EQ(plan.count(), 3u);

  // The whole group goes to a router that reads nothing, and dies with it in its socket.
  auto c = cluster.client(700ms);
  ASSERT_TRUE(c->ping());
  cluster.router().signal(SIGSTOP);
  auto unknown = c->submit_group(tasks, go);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.status().code(), Code::kOutcomeUnknown) << unknown.status().message();
  EXPECT_NE(unknown.status().message().find("interrupted-1"), std::string::npos) << unknown.status().message();
  restart_router(cluster);
  ASSERT_TRUE(cluster.ready(1)) << cluster.logs();

  // Its last chunk reaches the restarted router (it was still queued somewhere), twice.
  auto last = send_chunk(cluster.frontend(), plan.chunk(2));
  ASSERT_TRUE(std::holds_alternative<proto::SubmitAck>(last)) << std::get<proto::Error>(last).message;
  auto last_again = send_chunk(cluster.frontend(), plan.chunk(2));
  ASSERT_TRUE(std::holds_alternative<proto::SubmitAck>(last_again));
  EXPECT_TRUE(std::get<proto::SubmitAck>(last_again).duplicate);
  const std::vector<Id> last_ids = std::get<proto::SubmitAck>(last).tasks;
  EXPECT_EQ(std::get<proto::SubmitAck>(last_again).tasks, last_ids);
  auto reader = cluster.client();
  finish(*reader, last_ids);
  auto partial = reader->group(plan.group());
  ASSERT_TRUE(partial) << partial.status().to_string();
  EXPECT_FALSE(partial->sealed);
  EXPECT_FALSE(partial->ready()) << "10 of 30 tasks done is not a finished group";
  EXPECT_EQ(partial->total, 30u);
  EXPECT_EQ(partial->succeeded, 10u);

  // Another restart between two chunks, then the caller's repeat with the key.
  reader.reset();
  restart_router(cluster);
  ASSERT_TRUE(cluster.ready(1)) << cluster.logs();
  auto fresh = cluster.client();
  auto receipt = fresh->submit_group(tasks, go);
  ASSERT_TRUE(receipt) << receipt.status().to_string();
  EXPECT_FALSE(receipt->duplicate);
  EXPECT_EQ(receipt->group, plan.group());
  ASSERT_EQ(receipt->tasks.size(), 30u);
  EXPECT_EQ(std::vector<Id>(receipt->tasks.begin() + 20, receipt->tasks.end()), last_ids);
  EXPECT_EQ(std::set<Id>(receipt->tasks.begin(), receipt->tasks.end()).size(), 30u);

  auto records = finish(*fresh, receipt->tasks);
  ASSERT_EQ(records.size(), 30u);
  for (size_t i = 0; i < records.size(); ++i) {
    EXPECT_EQ(records[i].state, TaskState::kSucceeded) << i;
    EXPECT_EQ(records[i].attempt, 1u) << "ran once: " << i;
    EXPECT_EQ(json::parse(records[i].result)["i"], static_cast<int>(i)) << "the task at its place: " << i;
  }
  ASSERT_TRUE(wait_until([&] { auto g = fresh->group(plan.group()); return g && g->ready(); }, 10s)) << cluster.logs();
  auto g = fresh->group(plan.group());
  EXPECT_TRUE(g->sealed);
  EXPECT_EQ(g->total, 30u);
  EXPECT_EQ(g->received, 30u);
  EXPECT_EQ(g->succeeded, 30u);
  EXPECT_EQ(submitted(cluster), 20u) << "this router created only the first two chunks";
  // And once more: the whole group is answered, nothing is added.
  auto repeat = fresh->submit_group(tasks, go);
  ASSERT_TRUE(repeat) << repeat.status().to_string();
  EXPECT_TRUE(repeat->duplicate);
  EXPECT_EQ(repeat->tasks, receipt->tasks);
  EXPECT_EQ(submitted(cluster), 20u);
}

TEST(Outcomes, ControlOperationsArrivingLateAreNotCarriedOut) {
  Cluster cluster;
  cluster.start_router();
  ASSERT_TRUE(cluster.ready(0)) << cluster.logs();
  auto c = cluster.client(500ms);
  auto queued = c->submit(task("echo", "{}"));
  ASSERT_TRUE(queued);
  cluster.router().signal(SIGSTOP);
  auto purge = c->purge("default");
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
