// Eager mode is the real code path: one set of submissions, run through an in-process
// EagerCluster and through router and worker processes, ends with the same outcomes.
#include "tests/e2e_support.h"

#include "eager/eager.h"

namespace zb::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

struct Case {
  std::string name;
  proto::TaskSpec spec;
};

std::vector<Case> cases() {
  auto with = [](proto::TaskSpec t, auto&& change) {
    change(t);
    return t;
  };
  return {
      {"echo", task("echo", R"({"a":1})")},
      {"failure", task("fail", R"({"error":"ValueError: nope"})")},
      {"retried", with(task("fail", R"({"error":"Flaky: later","retry":true})"), [](auto& t) { t.max_retries = 1; })},
      {"unknown queue", task("echo", "{}", "nope")},
      {"unknown kind", task("no_such_kind", "{}")},
      {"bad priority", with(task("echo", "{}"), [](auto& t) { t.priority = 300; })},
      {"validation", [] {
         proto::TaskSpec t;
         t.queue = "validation";  // the queue's own kind: validate
         t.payload = R"({"language":"python","code":"def f(:\n  pass\n"})";
         return t;
       }()},
      {"time limit", with(task("sleep", R"({"seconds":5})"), [](auto& t) {
         t.soft_limit_ms = 200;
         t.hard_limit_ms = 300;
       })},
      {"countdown", with(task("echo", "{}"), [](auto& t) { t.countdown_ms = 60000; })},
  };
}

// What a submission came to: refused (with its code), or the task's end (or wait).
json outcome(Client& client, const proto::TaskSpec& spec) {
  auto id = client.submit(spec);
  if (!id) return {{"refused", code_name(id.status().code())}};
  auto rec = client.status(*id);
  if (rec && !is_terminal(rec->state) && rec->state != TaskState::kScheduled) rec = finish_one(client, *id, 20s);
  if (!rec) return {{"lost", rec.status().to_string()}};
  std::string error_class = rec->error.substr(0, rec->error.find(':'));
  return {{"state", state_name(rec->state)}, {"attempt", rec->attempt}, {"retries", rec->retries},
          {"result", rec->result}, {"error_class", error_class}, {"kind", rec->kind}};
}

TEST(Eager, SameSubmissionsEndTheSameWayEagerAndDeployed) {
  json eager_outcomes, deployed_outcomes;
  {
    auto cluster = EagerCluster::start();
    ASSERT_TRUE(cluster) << cluster.status().to_string();
    auto client = std::move((*cluster)->client().value());
    for (const auto& c : cases()) eager_outcomes[c.name] = outcome(*client, c.spec);
  }
  {
    Cluster cluster;
    cluster.start_router();
    cluster.start_worker(2);
    ASSERT_TRUE(cluster.ready(1)) << cluster.logs();
    auto client = cluster.client();
    for (const auto& c : cases()) deployed_outcomes[c.name] = outcome(*client, c.spec);
  }
  for (const auto& c : cases()) EXPECT_EQ(eager_outcomes[c.name], deployed_outcomes[c.name]) << c.name;
  // And the outcomes are the deployed semantics, not merely equal.
  EXPECT_EQ(eager_outcomes["echo"]["result"], R"({"a":1})");
  EXPECT_EQ(eager_outcomes["retried"]["retries"], 1);
  EXPECT_EQ(eager_outcomes["retried"]["state"], "failed");
  EXPECT_EQ(eager_outcomes["unknown queue"]["refused"], "unprocessable");
  EXPECT_EQ(eager_outcomes["bad priority"]["refused"], "bad_request");
  EXPECT_EQ(eager_outcomes["unknown kind"]["error_class"], "UnknownKind");
  EXPECT_EQ(eager_outcomes["validation"]["kind"], "validate");
  EXPECT_FALSE(json::parse(eager_outcomes["validation"]["result"].get<std::string>())["passed"].get<bool>());
  EXPECT_EQ(eager_outcomes["time limit"]["error_class"], "SoftTimeLimitExceeded");
  EXPECT_EQ(eager_outcomes["countdown"]["state"], "scheduled");
}

}  // namespace
}  // namespace zb::testing
