// Execution semantics against real processes: retries with backoff and error classes, dead
// letters, time limits, exec and pool handlers, prefetch, acks, idempotency, rate limits,
// autoscale, eager mode, result expiry, configuration errors.
#include "tests/e2e_support.h"

#include "eager/eager.h"

#include <signal.h>

#include <filesystem>
#include <fstream>
#include <set>

namespace zb::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

CommandResult zbatch(const Cluster& c, std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
  std::vector<std::string> argv = {ZBATCH_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  env.emplace("ZBATCH_ROUTER", c.frontend());
  return run_command(argv, 60s, {}, env);
}

// A cluster whose router and worker read one configuration file.
class Semantics : public ::testing::Test {
 protected:
  void start(const std::string& config, int concurrency = 2, std::vector<std::string> worker_extra = {},
             std::vector<std::string> router_extra = {}) {
    config_ = cluster_.write_file("zbatch.toml", config);
    router_extra.insert(router_extra.end(), {"--config", config_});
    cluster_.start_router(router_extra);
    worker_extra.insert(worker_extra.end(), {"--config", config_});
    cluster_.start_worker(concurrency, worker_extra);
    ASSERT_TRUE(cluster_.ready(1)) << cluster_.logs();
    client_ = cluster_.client(10000ms);
  }
  Id submit(proto::TaskSpec spec) {
    auto id = client_->submit(spec);
    EXPECT_TRUE(id) << id.status().to_string();
    return id ? *id : Id();
  }
  Cluster cluster_;
  std::string config_;
  std::unique_ptr<Client> client_;
};

TEST_F(Semantics, RetriesNamedErrorClassesWithExponentialBackoffThenDeadLetters) {
  start(R"([[queue]]
name = "flaky"
max_retries = 3
retry_backoff = 0.2
retry_backoff_max = 10
retry_jitter = false
retry_on = ["Flaky"]
)");
  const auto t0 = Clock::now();
  Id flaky = submit(task("fail", R"({"error":"Flaky: try again"})", "flaky"));
  Id other = submit(task("fail", R"({"error":"Broken: for good"})", "flaky"));
  auto o = finish_one(*client_, other);
  EXPECT_EQ(o.state, TaskState::kFailed);
  EXPECT_EQ(o.attempt, 1u) << "an error class outside retry_on is not retried";
  auto f = finish_one(*client_, flaky);
  const auto elapsed = Clock::now() - t0;
  EXPECT_EQ(f.state, TaskState::kFailed);
  EXPECT_EQ(f.attempt, 4u);
  EXPECT_EQ(f.retries, 3u);
  EXPECT_EQ(f.error, "Flaky: try again");
  // Delays 0.2 + 0.4 + 0.8 s.
  EXPECT_GE(elapsed, 1400ms);

  // Both are dead letters; retrying them all runs them again with their history kept.
  proto::InspectFailedArgs of_flaky;
  of_flaky.queue = "flaky";
  auto dead = client_->inspect_failed(of_flaky);
  ASSERT_TRUE(dead) << dead.status().to_string();
  EXPECT_EQ(dead->total, 2u);
  ASSERT_EQ(dead->tasks.size(), 2u);
  std::set<Id> ids{dead->tasks[0].id, dead->tasks[1].id};
  EXPECT_TRUE(ids.count(flaky) && ids.count(other));
  auto cli = zbatch(cluster_, {"inspect", "failed", "--json"});
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_EQ(json::parse(cli.out)["total"], 2);

  auto retried = zbatch(cluster_, {"retry", "--failed", "-Q", "flaky", "--json"});
  ASSERT_EQ(retried.exit_code, 0) << retried.err;
  EXPECT_EQ(json::parse(retried.out)["retried"], 2);
  auto again = finish_one(*client_, other);
  EXPECT_EQ(again.state, TaskState::kFailed);
  EXPECT_EQ(again.attempt, 2u) << "a manual retry is a new attempt";
}

TEST_F(Semantics, SoftTimeLimitCancelsAnInProcessHandler) {
  start(R"([[queue]]
name = "default"
soft_time_limit = 0.3
time_limit = 1.5
)");
  const auto t0 = Clock::now();
  auto r = finish_one(*client_, submit(task("sleep", R"({"seconds":20})")));
  EXPECT_EQ(r.state, TaskState::kFailed);
  EXPECT_EQ(r.error.rfind("SoftTimeLimitExceeded", 0), 0u) << r.error;
  EXPECT_LT(Clock::now() - t0, 5s);
  // A task that ends within its soft limit is untouched.
  auto ok = finish_one(*client_, submit(task("sleep", R"({"seconds":0.05})")));
  EXPECT_EQ(ok.state, TaskState::kSucceeded);
}

TEST_F(Semantics, AHealthyLongTaskKeepsItsLease) {
  start("");  // heartbeats every 200 ms: a 2 s task outlives ten heartbeat intervals
  auto r = finish_one(*client_, submit(task("sleep", R"({"seconds":2})")));
  EXPECT_EQ(r.state, TaskState::kSucceeded);
  EXPECT_EQ(r.attempt, 1u) << "a running task must not be requeued while its worker is alive";
}

constexpr const char* kExecConfig = R"([[queue]]
name = "default"
soft_time_limit = 0.4
time_limit = 1.2

[[handler]]
kind = "cat"
type = "exec"
argv = ["/bin/cat"]

[[handler]]
kind = "stderr-exit"
type = "exec"
argv = ["/bin/sh", "-c", "echo something went wrong >&2; exit 3"]

[[handler]]
kind = "tempfail"
type = "exec"
argv = ["/bin/sh", "-c", "exit 75"]

[[handler]]
kind = "chatty"
type = "exec"
argv = ["/bin/sh", "-c", "head -c 100000 /dev/zero"]
stdout_limit = 1000

[[handler]]
kind = "polite-sleeper"
type = "exec"
argv = ["/bin/sh", "-c", "trap 'echo got TERM >&2; exit 143' TERM; sleep 30 & wait"]

[[handler]]
kind = "stubborn"
type = "exec"
argv = ["/bin/sh", "-c", "echo $$ > \"$PIDFILE\"; trap '' TERM; sleep 30; sleep 30"]
env = { PIDFILE = "@PIDFILE@" }
)";

std::string with_pidfile(std::string config, const std::string& pidfile) {
  config.replace(config.find("@PIDFILE@"), 9, pidfile);
  return config;
}

TEST_F(Semantics, ExecHandlerPassesTheTaskOnStdinOnly) {
  const std::string marker = cluster_.dir() + "/injected";
  start(with_pidfile(kExecConfig, cluster_.dir() + "/pid"));
  // Shell metacharacters in the payload reach the child as data, never as a command.
  json payload = {{"text", "$(touch " + marker + "); `touch " + marker + "`; touch " + marker}};
  auto r = finish_one(*client_, submit(task("cat", payload.dump())));
  ASSERT_EQ(r.state, TaskState::kSucceeded) << r.error;
  json out = json::parse(r.result);
  EXPECT_EQ(out["payload"], payload);
  EXPECT_EQ(out["kind"], "cat");
  EXPECT_EQ(out["attempt"], 1);
  EXPECT_EQ(out["id"], r.id.to_string());
  EXPECT_FALSE(std::filesystem::exists(marker));

  auto failed = finish_one(*client_, submit(task("stderr-exit", "{}")));
  EXPECT_EQ(failed.state, TaskState::kFailed);
  EXPECT_EQ(failed.error, "ProcessExitError: exit code 3: something went wrong");

  auto big = finish_one(*client_, submit(task("chatty", "{}")));
  EXPECT_EQ(big.state, TaskState::kFailed);
  EXPECT_EQ(big.error.rfind("OutputTooLarge", 0), 0u) << big.error;

  proto::TaskSpec temp = task("tempfail", "{}");
  temp.max_retries = 2;
  auto t = finish_one(*client_, submit(temp));
  EXPECT_EQ(t.state, TaskState::kFailed);
  EXPECT_EQ(t.attempt, 3u) << "exit 75 asks for a retry";
}

TEST_F(Semantics, ExecHandlerTimeLimitsSignalTheProcessGroup) {
  const std::string pidfile = cluster_.dir() + "/pid";
  start(with_pidfile(kExecConfig, pidfile));
  auto t0 = Clock::now();
  auto soft = finish_one(*client_, submit(task("polite-sleeper", "{}")));
  EXPECT_EQ(soft.state, TaskState::kFailed);
  EXPECT_EQ(soft.error.rfind("SoftTimeLimitExceeded", 0), 0u) << soft.error;
  EXPECT_LT(Clock::now() - t0, 3s);

  // Ignores SIGTERM: the hard limit kills the whole group, the grandchild `sleep` included.
  t0 = Clock::now();
  auto hard = finish_one(*client_, submit(task("stubborn", "{}")));
  EXPECT_EQ(hard.state, TaskState::kFailed);
  EXPECT_EQ(hard.error.rfind("TimeLimitExceeded", 0), 0u) << hard.error;
  EXPECT_LT(Clock::now() - t0, 4s);
  pid_t group = 0;
  std::ifstream(pidfile) >> group;
  ASSERT_GT(group, 0);
  EXPECT_TRUE(wait_until([&] { return ::kill(-group, 0) != 0; }, 3000ms)) << "the process group outlived its task";
  // The slot is free again.
  EXPECT_EQ(finish_one(*client_, submit(task("cat", "1"))).state, TaskState::kSucceeded);
}

TEST_F(Semantics, RevokeTerminateStopsAnExecChild) {
  start(with_pidfile(kExecConfig, cluster_.dir() + "/pid"));
  proto::TaskSpec spec = task("polite-sleeper", "{}");
  spec.soft_limit_ms = 60000;
  spec.hard_limit_ms = 60000;
  Id id = submit(spec);
  ASSERT_TRUE(wait_until([&] {
    auto s = client_->status(id);
    return s && s->state == TaskState::kStarted;
  }, 10000ms));
  auto r = zbatch(cluster_, {"revoke", id.to_string(), "--terminate"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(finish_one(*client_, id).state, TaskState::kRevoked);
  // The worker is free for more work: the child was stopped, not left running.
  EXPECT_EQ(finish_one(*client_, submit(task("cat", "2")), 10s).state, TaskState::kSucceeded);
}

constexpr const char* kPoolConfig = R"([[handler]]
kind = "pid"
type = "pool"
argv = ["/bin/sh", "-c", "while read -r line; do case \"$line\" in *crash*) exit 7;; *garbage*) echo 'not json';; *) echo \"{\\\"result\\\": $$}\";; esac; done"]
max_tasks_per_child = 3

[[handler]]
kind = "hog"
type = "pool"
argv = ["/usr/bin/python3", "-c", "import sys, json, os\nkeep = []\nfor line in sys.stdin:\n    task = json.loads(line)\n    keep.append(b'x' * (task['payload']['mb'] * 1048576))\n    print(json.dumps({'result': os.getpid()}), flush=True)\n"]
max_tasks_per_child = 100
max_memory_mb = 40
)";

TEST_F(Semantics, PoolChildrenAreReusedAndRecycledAfterMaxTasks) {
  start(kPoolConfig, 1);
  std::vector<std::string> pids;
  for (int i = 0; i < 10; ++i) {
    auto r = finish_one(*client_, submit(task("pid", "{}")));
    ASSERT_EQ(r.state, TaskState::kSucceeded) << r.error;
    pids.push_back(r.result);
  }
  // Tasks 1-3 on the first child, 4-6 on the second, ...
  EXPECT_EQ(std::set<std::string>(pids.begin(), pids.end()).size(), 4u);
  EXPECT_EQ(pids[0], pids[2]);
  EXPECT_NE(pids[2], pids[3]);
}

TEST_F(Semantics, ACrashedPoolChildFailsOnlyItsTaskAndIsReplaced) {
  start(kPoolConfig, 1);
  auto first = finish_one(*client_, submit(task("pid", "{}")));
  ASSERT_EQ(first.state, TaskState::kSucceeded) << first.error;
  auto crash = finish_one(*client_, submit(task("pid", R"({"crash":true})")));
  EXPECT_EQ(crash.state, TaskState::kFailed);
  EXPECT_EQ(crash.error.rfind("WorkerLostError: exit code 7", 0), 0u) << crash.error;
  auto bad = finish_one(*client_, submit(task("pid", R"({"garbage":true})")));
  EXPECT_EQ(bad.state, TaskState::kFailed);
  EXPECT_EQ(bad.error.rfind("BadOutput", 0), 0u) << bad.error;
  auto after = finish_one(*client_, submit(task("pid", "{}")));
  ASSERT_EQ(after.state, TaskState::kSucceeded) << after.error;
  EXPECT_NE(after.result, first.result) << "a new child replaced the crashed one";
}

TEST_F(Semantics, APoolChildOverItsMemoryCeilingIsRecycled) {
  start(kPoolConfig, 1);
  auto small = finish_one(*client_, submit(task("hog", R"({"mb":1})")));
  ASSERT_EQ(small.state, TaskState::kSucceeded) << small.error;
  auto same = finish_one(*client_, submit(task("hog", R"({"mb":1})")));
  EXPECT_EQ(same.result, small.result) << "under the ceiling the child is kept";
  auto big = finish_one(*client_, submit(task("hog", R"({"mb":64})")));
  ASSERT_EQ(big.state, TaskState::kSucceeded) << big.error;
  EXPECT_EQ(big.result, small.result);
  auto next = finish_one(*client_, submit(task("hog", R"({"mb":1})")));
  ASSERT_EQ(next.state, TaskState::kSucceeded) << next.error;
  EXPECT_NE(next.result, big.result) << "the child passed 40 MB and was replaced";
}

TEST(Prefetch, MultiplierOneLeavesNoShortTaskBehindALongOne) {
  Cluster cluster;
  cluster.start_router();
  cluster.start_worker(1, {"--prefetch-multiplier", "1"});
  cluster.start_worker(1, {"--prefetch-multiplier", "1"});
  ASSERT_TRUE(cluster.ready(2)) << cluster.logs();
  auto client = cluster.client();
  std::vector<proto::TaskSpec> specs{task("sleep", R"({"seconds":2})")};
  for (int i = 0; i < 20; ++i) specs.push_back(task("sleep", R"({"seconds":0.01})"));
  auto receipt = client->submit_group(specs);
  ASSERT_TRUE(receipt) << receipt.status().to_string();
  std::vector<Id> shorts(receipt->tasks.begin() + 1, receipt->tasks.end());
  auto done = finish(*client, shorts, 10s);
  auto long_task = client->status(receipt->tasks[0]);
  ASSERT_TRUE(long_task);
  EXPECT_EQ(long_task->state, TaskState::kStarted) << "every short task finished while the long one ran";
  for (const auto& r : done) {
    EXPECT_EQ(r.state, TaskState::kSucceeded);
    EXPECT_NE(r.worker, long_task->worker) << "no short task waited on the long task's worker";
  }
  EXPECT_EQ(finish_one(*client, receipt->tasks[0]).attempt, 1u);
}

TEST(Idempotency, ARepeatedKeyReturnsTheFirstIdsAndRunsNothingTwice) {
  Cluster cluster;
  cluster.start_router();
  cluster.start_worker(1);
  ASSERT_TRUE(cluster.ready(1)) << cluster.logs();
  auto first = zbatch(cluster, {"submit", "--kind", "noop", "--idempotency-key", "order-42", "{}", "--json"});
  auto second = zbatch(cluster, {"submit", "--kind", "noop", "--idempotency-key", "order-42", "{}", "--json"});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(json::parse(first.out)["id"], json::parse(second.out)["id"]);
  EXPECT_FALSE(json::parse(first.out)["duplicate"].get<bool>());
  EXPECT_TRUE(json::parse(second.out)["duplicate"].get<bool>());
  EXPECT_EQ(cluster.stats()["router"]["submitted"], 1);

  // A group larger than one message keeps one group id across a repeat.
  auto client = cluster.client();
  std::vector<proto::TaskSpec> specs(2500, task("noop", "{}"));
  GroupOptions go;
  go.idempotency_key = "batch-7";
  auto a = client->submit_group(specs, go);
  auto b = client->submit_group(specs, go);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->group, b->group);
  EXPECT_EQ(a->tasks, b->tasks);
  EXPECT_TRUE(b->duplicate);
  EXPECT_EQ(cluster.stats()["router"]["submitted"], 2501);
}

TEST(RateLimit, TheRouterLimitsAQueueForTheWholeCluster) {
  Cluster cluster;
  std::string config = cluster.write_file("zbatch.toml", "[[queue]]\nname = \"slow\"\nrate_limit = \"20/s\"\n");
  cluster.start_router({"--config", config});
  cluster.start_worker(2);
  cluster.start_worker(2);
  ASSERT_TRUE(cluster.ready(2)) << cluster.logs();
  auto client = cluster.client();
  std::vector<proto::TaskSpec> specs(60, task("noop", "{}", "slow"));
  const auto t0 = Clock::now();
  auto receipt = client->submit_group(specs);
  ASSERT_TRUE(receipt);
  auto done = finish(*client, receipt->tasks, 20s);
  const auto elapsed = Clock::now() - t0;
  // 60 tasks at 20/s with a burst of 2: at least (60 - 2) / 20 = 2.9 s, whatever the workers.
  EXPECT_GE(elapsed, 2800ms);
  EXPECT_LT(elapsed, 10s);
  for (const auto& r : done) EXPECT_EQ(r.state, TaskState::kSucceeded);
}

TEST(Autoscale, GrowsUnderBacklogAndShrinksWhenIdle) {
  Cluster cluster;
  cluster.start_router();
  cluster.start_worker(1, {"--autoscale", "4,1", "--autoscale-idle-ms", "300", "--prefetch-multiplier", "1"});
  ASSERT_TRUE(cluster.ready(1)) << cluster.logs();
  auto client = cluster.client();
  std::vector<proto::TaskSpec> specs(12, task("sleep", R"({"seconds":0.5})"));
  const auto t0 = Clock::now();
  auto receipt = client->submit_group(specs);
  ASSERT_TRUE(receipt);
  finish(*client, receipt->tasks, 20s);
  // One slot would need 6 s.
  EXPECT_LT(Clock::now() - t0, 4500ms) << cluster.logs();
  EXPECT_NE(cluster.worker(0).log().find("autoscale up slots=4"), std::string::npos) << cluster.logs();
  EXPECT_TRUE(wait_until([&] { return cluster.worker(0).log().find("autoscale down slots=1") != std::string::npos; }, 10000ms))
      << cluster.logs();
}

TEST(Eager, SubmitRunsInlineWithoutARouter) {
  // No router anywhere: the endpoint is never contacted.
  std::vector<std::string> argv = {ZBATCH_BINARY, "submit", "--kind", "echo", R"({"a":1})", "--wait"};
  auto r = run_command(argv, 20s, {}, {{"ZBATCH_ALWAYS_EAGER", "1"}, {"ZBATCH_ROUTER", "tcp://127.0.0.1:9"}});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "{\"a\":1}\n");

  EagerOptions o;
  std::atomic<int> calls{0};
  o.handlers.emplace_back("flaky", [&](const TaskContext& ctx) {
    ++calls;
    return ctx.attempt < 3 ? HandlerResult::retry("Flaky: not yet") : HandlerResult::ok("\"done\"");
  });
  for (auto& q : o.queues) q.retry_backoff_ms = q.retry_backoff_max_ms = 1;  // quick retries for the test
  auto cluster = EagerCluster::start(std::move(o));
  ASSERT_TRUE(cluster) << cluster.status().to_string();
  auto client = std::move((*cluster)->client().value());
  EXPECT_TRUE(client->eager());
  auto id = client->submit(task("flaky", "{}"));
  ASSERT_TRUE(id) << id.status().to_string();
  auto rec = finish_one(*client, *id, 10s);
  EXPECT_EQ(rec.state, TaskState::kSucceeded);
  EXPECT_EQ(rec.result, "\"done\"");
  EXPECT_EQ(rec.attempt, 3u);
  EXPECT_EQ(calls.load(), 3);
  auto group = client->submit_group(std::vector<proto::TaskSpec>(3, task("fail", R"({"error":"no"})")));
  ASSERT_TRUE(group);
  auto g = client->group(group->group);  // eager: the group has run when the submission returns
  ASSERT_TRUE(g);
  EXPECT_EQ(g->failed, 3u);
  EXPECT_TRUE(g->ready());
}

TEST(Config, ErrorsNameTheKeyAndTheExampleFileIsValid) {
  TempDir dir;
  auto check = [&](const std::string& text) {
    std::string path = dir.str() + "/c.toml";
    std::ofstream(path) << text;
    return run_command({ZBATCH_BINARY, "config", path}, 20s);
  };
  auto unknown = check("[[queue]]\nname = \"q\"\nretries = 3\n");
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("[[queue]] 'q' retries is not a known key"), std::string::npos) << unknown.err;
  auto bad_rate = check("[[queue]]\nname = \"q\"\nrate_limit = \"fast\"\n");
  EXPECT_EQ(bad_rate.exit_code, 2);
  EXPECT_NE(bad_rate.err.find("rate_limit must be"), std::string::npos) << bad_rate.err;
  auto limits = check("[[queue]]\nname = \"q\"\nsoft_time_limit = 10\ntime_limit = 5\n");
  EXPECT_EQ(limits.exit_code, 2);
  EXPECT_NE(limits.err.find("soft_time_limit must not exceed time_limit"), std::string::npos) << limits.err;
  auto handler = check("[[handler]]\nkind = \"x\"\ntype = \"fork\"\nargv = [\"/bin/true\"]\n");
  EXPECT_EQ(handler.exit_code, 2);
  EXPECT_NE(handler.err.find("type must be \"exec\" or \"pool\""), std::string::npos) << handler.err;
  auto no_argv = check("[[handler]]\nkind = \"x\"\n");
  EXPECT_EQ(no_argv.exit_code, 2);
  EXPECT_NE(no_argv.err.find("needs argv"), std::string::npos) << no_argv.err;
  auto section = check("[worker]\nconcurency = 3\n");
  EXPECT_EQ(section.exit_code, 2);
  EXPECT_NE(section.err.find("unknown key [worker] concurency"), std::string::npos) << section.err;

  auto example = run_command({ZBATCH_BINARY, "config", ZBATCH_SOURCE_DIR "/zbatch.example.toml"}, 20s);
  ASSERT_EQ(example.exit_code, 0) << example.err;
  json j = json::parse(example.out);
  EXPECT_EQ(j["queues"].size(), 7u);
  EXPECT_TRUE(j["handlers"].empty());  // the example is the defaults; its handlers are commented out (cli_test)
}

}  // namespace
}  // namespace zb::testing
