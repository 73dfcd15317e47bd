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

TEST_F(Cli, StdinLinesBecomeOneGroup) {
  auto r = zbatch({"submit", "--kind", "echo", "-"}, "{\"n\":1}\n{\"n\":2}\n\n{\"n\":3}\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> lines;
  std::stringstream ss(r.out);
  for (std::string l; std::getline(ss, l);) lines.push_back(l);
  ASSERT_EQ(lines.size(), 4u);  // three task ids, then the group id
  auto g = zbatch({"group", lines.back(), "--wait", "--json"});
  ASSERT_EQ(g.exit_code, 0) << g.err;
  json j = json::parse(g.out);
  EXPECT_EQ(j["total"], 3);
  EXPECT_EQ(j["successful"], 3);
  EXPECT_EQ(j["progress"], 100.0);
  EXPECT_EQ(j["ready"], true);
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

TEST_F(Cli, WorkerTakesTheLogLevelAfterTheCommand) {
  cluster_.start_worker(1, {"-l", "DEBUG"});
  ASSERT_TRUE(cluster_.ready(2)) << cluster_.logs();
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
  EXPECT_NE(r.err.find("did not answer"), std::string::npos) << r.err;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST(CliAlone, BadFlagValuesAreUsageErrors) {
  auto r = run_command({ZBATCH_BINARY, "worker", "--prefetch-multiplier", "0", "--router", "tcp://127.0.0.1:1"}, 10s);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--prefetch-multiplier must be >= 1, got 0"), std::string::npos) << r.err;
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
  auto bad = run_command({ZBATCH_BINARY, "worker", "--config", write("[worker]\nprefetch_multiplier = 0\n")}, 10s);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--prefetch-multiplier must be >= 1, got 0"), std::string::npos) << bad.err;
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
