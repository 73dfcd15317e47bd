// The command line against real router and worker processes.
#include "tests/e2e_support.h"

#include <fstream>

namespace zb::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster_.start_router();
    cluster_.start_worker(2);
    ASSERT_TRUE(cluster_.ready(1)) << cluster_.logs();
  }
  CommandResult zbatch(std::vector<std::string> args, const std::string& input = {}) {
    std::vector<std::string> argv = {ZBATCH_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv, 30s, input, {{"ZBATCH_ROUTER", cluster_.frontend()}});
  }
  Cluster cluster_;
};

TEST_F(Cli, SubmitWaitPrintsTheResult) {
  auto r = zbatch({"submit", "--kind", "echo", "{\"a\": 1}", "--wait"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "{\"a\":1}\n");
}

TEST_F(Cli, SubmitPrintsAnIdThatStatusKnows) {
  auto r = zbatch({"submit", "-Q", "high_priority", "--kind", "noop", "{}"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string id = r.out.substr(0, r.out.size() - 1);
  ASSERT_TRUE(Id::parse(id)) << r.out;
  auto w = zbatch({"wait", id, "--json"});
  ASSERT_EQ(w.exit_code, 0) << w.err;
  auto s = zbatch({"status", id, "--json"});
  ASSERT_EQ(s.exit_code, 0) << s.err;
  json j = json::parse(s.out);
  EXPECT_EQ(j["state"], "succeeded");
  EXPECT_EQ(j["queue"], "high_priority");
  EXPECT_EQ(j["attempt"], 1);
}

TEST_F(Cli, StdinLinesBecomeOneGroupWhoseIdIsTheWholeOutput) {
  auto r = zbatch({"submit", "--kind", "echo", "-"}, "{\"n\":1}\n{\"n\":2}\n\n{\"n\":3}\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;  // the group id, by itself
  const std::string group = r.out.substr(0, r.out.size() - 1);
  ASSERT_TRUE(Id::parse(group)) << r.out;
  auto g = zbatch({"group", group, "--wait", "--json"});
  ASSERT_EQ(g.exit_code, 0) << g.err;
  json j = json::parse(g.out);
  EXPECT_EQ(j["group_id"], group);
  EXPECT_EQ(j["total"], 3);
  EXPECT_EQ(j["successful"], 3);
  EXPECT_EQ(j["progress"], 100.0);
  EXPECT_EQ(j["ready"], true);
  // With --json: one object with the group id and the task ids, in submission order.
  auto js = zbatch({"submit", "--kind", "echo", "--json", "-"}, "{\"n\":1}\n{\"n\":2}\n");
  ASSERT_EQ(js.exit_code, 0) << js.err;
  json receipt = json::parse(js.out);
  ASSERT_EQ(receipt["tasks"].size(), 2u);
  auto client = cluster_.client();
  auto first = finish_one(*client, *Id::parse(receipt["tasks"][0].get<std::string>()));
  EXPECT_EQ(first.result, "{\"n\":1}");
  EXPECT_EQ(first.group.to_string(), receipt["group_id"]);
}

TEST_F(Cli, GroupWaitExitsOneWhenATaskFailed) {
  auto r = zbatch({"submit", "--kind", "fail", "--max-retries", "0", "-"}, "{\"error\":\"one\"}\n{\"error\":\"two\"}\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string group = r.out.substr(0, r.out.find('\n'));
  auto g = zbatch({"group", group, "--wait"});
  EXPECT_EQ(g.exit_code, 1) << g.out << g.err;
  EXPECT_NE(g.out.find("2 failed"), std::string::npos) << g.out;  // the summary is still printed
  EXPECT_NE(g.err.find("2 of 2 task(s) failed"), std::string::npos) << g.err;
  // Without --wait, reading a group's status is not a failure.
  EXPECT_EQ(zbatch({"group", group}).exit_code, 0);
  // submit - --wait: the same exit code, after printing the group id.
  auto sw = zbatch({"submit", "--kind", "fail", "--max-retries", "0", "--wait", "-"}, "{}\n");
  EXPECT_EQ(sw.exit_code, 1) << sw.err;
  EXPECT_TRUE(Id::parse(sw.out.substr(0, sw.out.find('\n')))) << sw.out;
  auto ok = zbatch({"submit", "--kind", "noop", "--wait", "-"}, "{}\n{}\n");
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
}

TEST_F(Cli, GlobalOptionsWorkBeforeAndAfterTheCommand) {
  for (std::vector<std::string> args : {std::vector<std::string>{"ping", "--json", "--log-level", "debug"},
                                        {"--json", "ping"},
                                        {"--loglevel", "WARNING", "ping", "--json"},
                                        {"ping", "-l", "ERROR", "--json"}}) {
    auto r = zbatch(args);
    ASSERT_EQ(r.exit_code, 0) << args[0] << " " << args[1] << ": " << r.err;
    EXPECT_EQ(json::parse(r.out)["workers"], 1) << r.out;
  }
}

TEST_F(Cli, WorkerTakesTheLogLevelAfterTheCommandAndNamesItsEndpoint) {
  auto& w = cluster_.start_worker(1, {"-l", "DEBUG"});
  ASSERT_TRUE(cluster_.ready(2)) << cluster_.logs();
  EXPECT_NE(w.log().find("worker router endpoint=" + cluster_.backend() + " from=\"flag --router\""),
            std::string::npos) << w.log();
}

TEST_F(Cli, WorkerReadsZbatchWorkerRouter) {
  TempDir dir;
  Process w({ZBATCH_BINARY, "worker", "-c", "1", "--heartbeat-ms", "200", "--hostname", "env@test"},
            {{"ZBATCH_WORKER_ROUTER", cluster_.backend()}, {"ZBATCH_ROUTER", cluster_.frontend()}},
            dir.str() + "/worker.log");
  ASSERT_TRUE(cluster_.ready(2)) << w.log();
  EXPECT_NE(w.log().find("from=\"environment ZBATCH_WORKER_ROUTER\""), std::string::npos) << w.log();
  EXPECT_EQ(w.log().find("ignores ZBATCH_ROUTER"), std::string::npos) << w.log();
  w.stop();
}

TEST_F(Cli, InspectPrintsExactCountsOfCappedLists) {
  // 1,005 tasks waiting for their countdown: more than the router lists (1,000).
  std::string lines;
  for (int i = 0; i < 1005; ++i) lines += "{}\n";
  ASSERT_EQ(zbatch({"submit", "-Q", "low_priority", "--countdown", "3600", "-"}, lines).exit_code, 0);
  json reply = json::parse(zbatch({"inspect", "scheduled", "--json"}).out);
  ASSERT_EQ(reply["tasks"].size(), 1000u);
  auto human = zbatch({"inspect", "scheduled"});
  ASSERT_EQ(human.exit_code, 0) << human.err;
  const std::string first = human.out.substr(0, human.out.find('\n'));
  // The exact total where the router gives one; the list's size where it does not.
  if (reply.contains("total")) {
    EXPECT_EQ(reply["total"], 1005);
    EXPECT_EQ(first, "1005 task(s), showing 1000");
  } else {
    EXPECT_EQ(first, "1000 task(s)");
  }
  EXPECT_EQ(std::count(human.out.begin(), human.out.end(), '\n'), 1001);  // one line per task listed
  // A running task under its worker.
  auto id = zbatch({"submit", "--kind", "sleep", "{\"seconds\": 30}"});
  ASSERT_EQ(id.exit_code, 0) << id.err;
  const std::string task = id.out.substr(0, id.out.size() - 1);
  std::string active;
  ASSERT_TRUE(wait_until([&] {
    active = zbatch({"inspect", "active"}).out;
    return active.find(task) != std::string::npos;
  }, 10s)) << active;
  EXPECT_EQ(active.substr(0, active.find('\n')), "1 task(s) on 1 worker(s)") << active;
  EXPECT_NE(active.find("\nw1@test: 1 task(s)\n  " + task + " default sleep attempt 1"), std::string::npos) << active;
  EXPECT_EQ(zbatch({"revoke", task, "--terminate"}).exit_code, 0);
}

TEST_F(Cli, ErrorTextsArePrintedWhole) {
  const std::string error = "OllamaUnavailable: 127.0.0.1:11434: Connection refused after " + std::string(400, '.') + " the end";
  auto r = zbatch({"submit", "--kind", "fail", "--max-retries", "0", "--wait", json{{"error", error}}.dump()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(error + "\n"), std::string::npos) << r.err;
  auto failed = zbatch({"inspect", "failed"});
  ASSERT_EQ(failed.exit_code, 0) << failed.err;
  EXPECT_NE(failed.out.find("    error: " + error + "\n"), std::string::npos) << failed.out;
  const std::string id = json::parse(zbatch({"inspect", "failed", "--json"}).out)["tasks"][0]["id"];
  auto status = zbatch({"status", id});
  EXPECT_NE(status.out.find("error: " + error + "\n"), std::string::npos) << status.out;
}

TEST_F(Cli, FailedTaskUnderWaitExitsOne) {
  auto r = zbatch({"submit", "--kind", "fail", "{\"error\":\"boom\"}", "--wait", "--max-retries", "0"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("boom"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1);
}

TEST_F(Cli, InvalidPayloadIsRefusedBeforeSending) {
  auto r = zbatch({"submit", "{not json"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("not valid JSON"), std::string::npos) << r.err;
  auto stdin_bad = zbatch({"submit", "-"}, "{\"ok\":1}\n[broken\n");
  EXPECT_EQ(stdin_bad.exit_code, 2);
  EXPECT_NE(stdin_bad.err.find("line 2"), std::string::npos) << stdin_bad.err;
  EXPECT_EQ(cluster_.stats()["router"]["submitted"], 0);  // nothing half-submitted
}

TEST_F(Cli, UnknownQueueIsAClearError) {
  auto r = zbatch({"submit", "-Q", "nope", "{}"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("unknown queue 'nope'"), std::string::npos) << r.err;
}

TEST_F(Cli, InspectAndPingAnswer) {
  auto ping = zbatch({"ping", "--json"});
  ASSERT_EQ(ping.exit_code, 0) << ping.err;
  EXPECT_EQ(json::parse(ping.out)["workers"], 1);
  for (std::string what : {"active", "reserved", "scheduled", "stats", "registered", "queues"}) {
    auto r = zbatch({"inspect", what, "--json"});
    ASSERT_EQ(r.exit_code, 0) << what << ": " << r.err;
    EXPECT_TRUE(json::parse(r.out).is_object()) << what;
    auto human = zbatch({"inspect", what});
    EXPECT_EQ(human.exit_code, 0) << what << ": " << human.err;
  }
  auto reg = json::parse(zbatch({"inspect", "registered", "--json"}).out);
  auto kinds = reg["workers"][0]["kinds"];
  EXPECT_NE(std::find(kinds.begin(), kinds.end(), "sleep"), kinds.end());
  auto queues = json::parse(zbatch({"inspect", "queues", "--json"}).out)["queues"];
  ASSERT_EQ(queues.size(), 7u);
  EXPECT_EQ(queues[0]["name"], "high_priority");
  EXPECT_EQ(queues[0]["priority"], 10);
}

TEST_F(Cli, PurgeNeedsForceAndRevokesQueuedTasks) {
  auto refused = zbatch({"purge", "-Q", "low_priority"});
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("--force"), std::string::npos);
  cluster_.worker(0).stop();  // nothing runs, so the tasks stay queued
  ASSERT_TRUE(cluster_.ready(0));
  for (int i = 0; i < 3; ++i) ASSERT_EQ(zbatch({"submit", "-Q", "low_priority", "{}"}).exit_code, 0);
  auto purged = zbatch({"purge", "-Q", "low_priority", "--force", "--json"});
  ASSERT_EQ(purged.exit_code, 0) << purged.err;
  EXPECT_EQ(json::parse(purged.out)["purged"], 3);
}

TEST(CliAlone, UnreachableRouterIsExitThreeWithinTheTimeout) {
  std::string ep = tcp_endpoint(free_port());
  const auto start = std::chrono::steady_clock::now();
  auto r = run_command({ZBATCH_BINARY, "ping", "--router", ep, "--timeout", "1"}, 20s);
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("is not reachable"), std::string::npos) << r.err;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST(CliAlone, WorkerSaysAtStartUpThatItDoesNotReadZbatchRouter) {
  // The start fails on a bad flag right after the start-up lines, so nothing connects anywhere.
  auto r = run_command({ZBATCH_BINARY, "worker", "--heartbeat-ms", "5"}, 10s, {},
                       {{"ZBATCH_ROUTER", "tcp://router-host:5555"}, {"ZBATCH_WORKER_ROUTER", ""}});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  const std::string log = r.out + r.err;
  EXPECT_NE(log.find("worker router endpoint=tcp://127.0.0.1:5556 from=\"default\""), std::string::npos) << log;
  EXPECT_NE(log.find("worker ignores ZBATCH_ROUTER=tcp://router-host:5555"), std::string::npos) << log;
  EXPECT_NE(log.find("from --router, ZBATCH_WORKER_ROUTER or [worker] router"), std::string::npos) << log;
}

TEST(CliAlone, WorkerNamesAnEndpointFromItsConfigFile) {
  TempDir dir;
  std::ofstream(dir.str() + "/z.toml") << "[worker]\nrouter = \"tcp://127.0.0.1:1\"\nheartbeat_ms = 5\n";
  auto r = run_command({ZBATCH_BINARY, "worker", "--config", dir.str() + "/z.toml"}, 10s);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  const std::string log = r.out + r.err;
  EXPECT_NE(log.find("worker router endpoint=tcp://127.0.0.1:1 from=\"config " + dir.str() + "/z.toml [worker] router\""),
            std::string::npos) << log;
}

TEST(CliAlone, BadFlagValuesAreUsageErrors) {
  auto r = run_command({ZBATCH_BINARY, "worker", "--heartbeat-ms", "5", "--router", "tcp://127.0.0.1:1"}, 10s);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--heartbeat-ms must be >= 10, got 5"), std::string::npos) << r.err;
  auto big = run_command({ZBATCH_BINARY, "worker", "-c", "1000", "--prefetch-multiplier", "5000", "--router", "tcp://127.0.0.1:1"}, 10s);
  EXPECT_EQ(big.exit_code, 2) << big.err;
  EXPECT_NE(big.err.find("concurrency x prefetch multiplier must be <= 1000000"), std::string::npos) << big.err;
  auto d = run_command({ZBATCH_BINARY, "router", "--durability", "sometimes"}, 10s);
  EXPECT_EQ(d.exit_code, 2) << d.err;
  EXPECT_NE(d.err.find("fsync or nosync"), std::string::npos) << d.err;
}

}  // namespace
}  // namespace zb::testing

namespace zb::testing {
namespace {

using namespace std::chrono_literals;

TEST(CliConfig, UnknownKeysAndBadValuesAreStartUpErrors) {
  TempDir dir;
  auto write = [&](const std::string& text) {
    std::ofstream(dir.str() + "/z.toml") << text;
    return dir.str() + "/z.toml";
  };
  auto unknown = run_command({ZBATCH_BINARY, "worker", "--config", write("[worker]\nfoo = 1\n")}, 10s);
  EXPECT_EQ(unknown.exit_code, 2) << unknown.err;
  EXPECT_NE(unknown.err.find("unknown key [worker] foo"), std::string::npos) << unknown.err;
  auto section = run_command({ZBATCH_BINARY, "worker", "--config", write("[wroker]\n")}, 10s);
  EXPECT_EQ(section.exit_code, 2);
  EXPECT_NE(section.err.find("unknown section [wroker]"), std::string::npos) << section.err;
  auto bad = run_command({ZBATCH_BINARY, "worker", "--config", write("[worker]\nheartbeat_ms = 5\n")}, 10s);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--heartbeat-ms must be >= 10, got 5"), std::string::npos) << bad.err;
  auto syntax = run_command({ZBATCH_BINARY, "router", "--config", write("[router\n")}, 10s);
  EXPECT_EQ(syntax.exit_code, 2);
  EXPECT_NE(syntax.err.find("line 1"), std::string::npos) << syntax.err;
  auto queue = run_command({ZBATCH_BINARY, "router", "--config", write("[[queue]]\nname = \"x\"\npriority = 300\n")}, 10s);
  EXPECT_EQ(queue.exit_code, 2);
  EXPECT_NE(queue.err.find("[[queue]] 'x' priority must be an integer 0..255"), std::string::npos) << queue.err;
}

TEST(CliConfig, FlagsBeatEnvironmentWhichBeatsTheFile) {
  TempDir dir;
  const int file_port = free_port(), env_port = free_port(), flag_port = free_port();
  std::ofstream(dir.str() + "/z.toml") << "[router]\nfrontend = \"" << tcp_endpoint(file_port)
                                       << "\"\nbackend = \"" << tcp_endpoint(free_port()) << "\"\nevents = \""
                                       << tcp_endpoint(free_port()) << "\"\ndata = \"" << dir.str() << "/d\"\n"
                                       << "[[queue]]\nname = \"extra\"\npriority = 9\n";
  auto ping = [](int port) {
    return run_command({ZBATCH_BINARY, "ping", "--router", tcp_endpoint(port), "--timeout", "0.5", "--json"}, 10s);
  };
  {
    Process router({ZBATCH_BINARY, "router", "--config", dir.str() + "/z.toml"});
    ASSERT_TRUE(wait_until([&] { return ping(file_port).exit_code == 0; }, 10s));
    auto queues = run_command({ZBATCH_BINARY, "inspect", "queues", "--json", "--router", tcp_endpoint(file_port)}, 10s);
    EXPECT_NE(queues.out.find("\"name\":\"extra\""), std::string::npos) << queues.out;
    router.stop();
  }
  {
    Process router({ZBATCH_BINARY, "router", "--config", dir.str() + "/z.toml"},
                   {{"ZBATCH_FRONTEND", tcp_endpoint(env_port)}});
    ASSERT_TRUE(wait_until([&] { return ping(env_port).exit_code == 0; }, 10s));
    router.stop();
  }
  {
    Process router({ZBATCH_BINARY, "router", "--config", dir.str() + "/z.toml", "--frontend", tcp_endpoint(flag_port)},
                   {{"ZBATCH_FRONTEND", tcp_endpoint(env_port)}});
    ASSERT_TRUE(wait_until([&] { return ping(flag_port).exit_code == 0; }, 10s));
    EXPECT_EQ(router.stop(), 0);  // SIGTERM is a clean exit
  }
}

}  // namespace
}  // namespace zb::testing
