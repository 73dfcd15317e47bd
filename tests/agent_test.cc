// The agent kind's pure parts: the workspace's confinement and diff, the reading of tool
// calls, the clipping of transcript texts, and Retry-After (worker/kinds/agent.h, replies.h).
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "worker/kinds/agent.h"
#include "worker/kinds/replies.h"

namespace zb::worker {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// A folder outside every workspace, removed afterwards.
struct Outside {
  fs::path dir;
  Outside() {
    std::string name = (fs::temp_directory_path() / "zbatch-outside-XXXXXX").string();
    dir = ::mkdtemp(name.data());
    std::ofstream(dir / "secret.txt") << "secret\n";
  }
  ~Outside() { fs::remove_all(dir); }
};

TaskContext context() {
  TaskContext ctx;
  ctx.started = std::chrono::steady_clock::now();
  return ctx;
}

TEST(WorkerAgentWorkspace, SeedsFromFilesAndReportsChangesAsAUnifiedDiff) {
  auto ws = Workspace::create(json{{"README.md", "# demo\n"}, {"src/old.py", "x = 1\n"}}, "");
  ASSERT_TRUE(ws) << ws.status().message();
  EXPECT_EQ(slurp((*ws)->root() / "src/old.py"), "x = 1\n");
  EXPECT_TRUE((*ws)->changed().empty());
  EXPECT_EQ((*ws)->diff(context(), 1 << 20).value(), "");
  ASSERT_TRUE((*ws)->write("hello.py", "print('hello')\n"));
  ASSERT_TRUE((*ws)->write("src/old.py", "x = 2\n"));
  ASSERT_TRUE((*ws)->write("deep/er/new.txt", "n\n"));
  EXPECT_EQ((*ws)->changed(), (std::vector<std::string>{"deep/er/new.txt", "hello.py", "src/old.py"}));
  auto diff = (*ws)->diff(context(), 1 << 20);
  ASSERT_TRUE(diff) << diff.status().message();
  EXPECT_NE(diff->find("--- a/hello.py\n+++ b/hello.py\n@@ -0,0 +1 @@\n+print('hello')\n"), std::string::npos) << *diff;
  EXPECT_NE(diff->find("-x = 1\n+x = 2\n"), std::string::npos) << *diff;
  EXPECT_EQ(diff->find('\t'), std::string::npos) << "timestamps are taken out: " << *diff;
  auto listed = (*ws)->list("", 100);
  ASSERT_TRUE(listed);
  EXPECT_NE(listed->find("hello.py  15 bytes\n"), std::string::npos) << *listed;
  EXPECT_EQ((*ws)->read("hello.py", 100).value(), "print('hello')\n");
  const fs::path folder = (*ws)->root().parent_path();
  ws->reset();
  EXPECT_FALSE(fs::exists(folder)) << "the workspace is removed with everything in it";
}

TEST(WorkerAgentWorkspace, RefusesEveryPathThatLeavesIt) {
  Outside outside;
  auto ws = Workspace::create(json::object(), "");
  ASSERT_TRUE(ws);
  const fs::path root = (*ws)->root();
  fs::create_symlink(outside.dir / "secret.txt", root / "link.txt");
  fs::create_symlink(outside.dir, root / "linkdir");
  fs::create_symlink("../../..", root / "up");
  const std::vector<std::string> refused = {"../x",     "/etc/passwd",     (outside.dir / "planted").string(), "a/../../x", "", ".",
                                            "link.txt", "linkdir/planted", "up/planted"};
  for (const std::string& path : refused) {
    Status s = (*ws)->write(path, "planted");
    EXPECT_FALSE(s) << path;
    EXPECT_EQ(s.code(), Code::kBadRequest) << path << ": " << s.message();
  }
  for (const std::string path : {"../x", "/etc/passwd", "link.txt", "linkdir/secret.txt", "up/etc/passwd"}) {
    auto r = (*ws)->read(path, 1 << 20);
    EXPECT_FALSE(r) << path;
    EXPECT_EQ(r.status().code(), Code::kBadRequest) << path << ": " << r.status().message();
    EXPECT_EQ(r.status().message().find(root.string()), std::string::npos) << "the workspace's own path is not told";
  }
  EXPECT_FALSE((*ws)->list("linkdir", 10));
  EXPECT_FALSE((*ws)->list("..", 10));
  EXPECT_EQ(slurp(outside.dir / "secret.txt"), "secret\n");
  EXPECT_FALSE(fs::exists(outside.dir / "planted"));
  // A link that stays inside may be read through, never written through.
  ASSERT_TRUE((*ws)->write("real.txt", "inside\n"));
  fs::create_symlink("real.txt", root / "alias.txt");
  EXPECT_EQ((*ws)->read("alias.txt", 100).value(), "inside\n");
  EXPECT_FALSE((*ws)->write("alias.txt", "x"));
  ws->reset();
  EXPECT_EQ(slurp(outside.dir / "secret.txt"), "secret\n") << "removing the workspace follows no link";
}

TEST(WorkerAgentWorkspace, CopiesASeedFolderWithItsLinksAsLinks) {
  Outside outside;
  Outside seed;
  fs::create_symlink(outside.dir / "secret.txt", seed.dir / "escape.txt");
  fs::create_directories(seed.dir / "pkg");
  std::ofstream(seed.dir / "pkg" / "mod.py") << "y = 1\n";
  auto ws = Workspace::create(json{{"pkg/mod.py", "y = 2\n"}}, seed.dir.string());
  ASSERT_TRUE(ws) << ws.status().message();
  EXPECT_TRUE(fs::is_symlink((*ws)->root() / "escape.txt"));
  EXPECT_EQ(slurp((*ws)->root() / "pkg/mod.py"), "y = 2\n") << "the task's files are written over the seed";
  EXPECT_FALSE((*ws)->read("escape.txt", 100));
  EXPECT_TRUE((*ws)->changed().empty());
  auto bad = Workspace::create(json{{"escape.txt", "over"}}, seed.dir.string());
  EXPECT_FALSE(bad) << "a task file cannot be written through a link of the seed";
  EXPECT_EQ(slurp(outside.dir / "secret.txt"), "secret\n");
  EXPECT_FALSE(Workspace::create(json::object(), (seed.dir / "missing").string()));
}

TEST(WorkerAgentToolCall, ReadsOllamasAndOpenAIsShapes) {
  auto c = read_tool_call(json::parse(R"({"function":{"name":"read_file","arguments":{"path":"a.py"}}})"), 1000);
  EXPECT_EQ(c.error, "");
  EXPECT_EQ(c.name, "read_file");
  EXPECT_EQ(c.arguments, json({{"path", "a.py"}}));
  c = read_tool_call(json::parse(R"({"id":"call_1","function":{"name":"list_files","arguments":"{\"path\":\"src\"}"}})"), 1000);
  EXPECT_EQ(c.error, "");
  EXPECT_EQ(c.id, "call_1");
  EXPECT_EQ(c.arguments, json({{"path", "src"}}));
  c = read_tool_call(json::parse(R"({"function":{"name":"list_files"}})"), 1000);
  EXPECT_EQ(c.error, "");
  EXPECT_EQ(c.arguments, json::object());
}

TEST(WorkerAgentToolCall, HostileEntriesGetAnErrorForTheModel) {
  const char* hostile[] = {R"("a string")",
                           R"([1,2])",
                           R"({})",
                           R"({"function":"write_file"})",
                           R"({"function":{"name":7}})",
                           R"({"function":{"name":""}})",
                           R"({"function":{"name":"write_file","arguments":[1]}})",
                           R"({"function":{"name":"write_file","arguments":"not json"}})",
                           R"({"function":{"name":"write_file","arguments":"[1]"}})",
                           R"({"function":{"name":"write_file","arguments":42}})"};
  for (const char* text : hostile) {
    const ToolCall c = read_tool_call(json::parse(text), 1000);
    EXPECT_NE(c.error, "") << text;
  }
  const std::string big(2000, 'x');
  EXPECT_NE(read_tool_call(json{{"function", {{"name", "write_file"}, {"arguments", {{"content", big}}}}}}, 1000).error.find("more than"),
            std::string::npos);
  EXPECT_NE(read_tool_call(json{{"function", {{"name", "write_file"}, {"arguments", "\"" + big + "\""}}}}, 1000).error.find("more than"),
            std::string::npos);
}

TEST(WorkerAgentToolCall, TheStreamGathersToolCallsAndCounts) {
  OllamaChatStream s;
  ASSERT_TRUE(s.feed(R"({"message":{"role":"assistant","content":"Let me "},"done":false})"
                     "\n"
                     R"({"message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"a","arguments":{}}}]},"done":false})"
                     "\n"
                     R"({"message":{"role":"assistant","content":"look.","tool_calls":{"function":{"name":"b"}}},"done":false})"
                     "\n"
                     R"({"done":true,"prompt_eval_count":12,"eval_count":5})"
                     "\n"));
  EXPECT_EQ(s.finish("m", json()).status, proto::OutcomeStatus::kSucceeded);
  EXPECT_EQ(s.content(), "Let me look.");
  ASSERT_EQ(s.tool_calls().size(), 2u);
  EXPECT_EQ(s.tool_calls()[1]["function"]["name"], "b");
  EXPECT_EQ(s.prompt_tokens(), 12u);
  EXPECT_EQ(s.completion_tokens(), 5u);
}

TEST(WorkerAgentClip, CutsOnACharacterBoundaryWithAMarker) {
  EXPECT_EQ(clip("short", 10), "short");
  const std::string cut = clip(std::string(100, 'a'), 10);
  EXPECT_EQ(cut, std::string(10, 'a') + "…[truncated: 90 more bytes]");
  const std::string accents = clip("ééééé", 5);  // 2 bytes each: the third would pass the limit
  EXPECT_EQ(accents, "éé…[truncated: 6 more bytes]");
  EXPECT_EQ(clip("a\xff" "b", 10), "a\xEF\xBF\xBD" "b") << "invalid bytes become U+FFFD";
}

TEST(WorkerAgentRetryAfter, ReadsSecondsAndDates) {
  EXPECT_EQ(retry_after_ms("120", 0), 120000u);
  EXPECT_EQ(retry_after_ms(" 3 ", 0), 3000u);
  EXPECT_EQ(retry_after_ms("0", 0), 0u);
  // Wed, 21 Oct 2026 07:28:00 GMT = 1792567680.
  EXPECT_EQ(retry_after_ms("Wed, 21 Oct 2026 07:28:00 GMT", 1792567680 - 30), 30000u);
  EXPECT_EQ(retry_after_ms("Wed, 21 Oct 2026 07:28:00 GMT", 1792567680 + 30), 0u);
  for (const char* bad : {"", "soon", "-1", "1.5", "Wed, 21 Oct 2026"}) EXPECT_FALSE(retry_after_ms(bad, 0)) << bad;
  EXPECT_GT(*retry_after_ms("99999999999999999999", 0), 0u) << "clamped, not wrapped";
}

TEST(WorkerAgentRetryAfter, A429Or503WithItAsksForThatDelay) {
  HandlerResult r = ollama_http_error(429, R"({"error":"slow down"})", "2");
  EXPECT_EQ(r.status, proto::OutcomeStatus::kRetry);
  EXPECT_EQ(r.retry_after_ms, 2000u);
  EXPECT_NE(r.error.find("slow down"), std::string::npos);
  EXPECT_EQ(ollama_http_error(503, "busy", "1").retry_after_ms, 1000u);
  EXPECT_EQ(ollama_http_error(503, "busy", "").retry_after_ms, 0u);
  EXPECT_EQ(ollama_http_error(503, "busy", "garbage").retry_after_ms, 0u);
  EXPECT_EQ(ollama_http_error(500, "crash", "5").retry_after_ms, 0u) << "only 429 and 503 carry a delay";
  EXPECT_EQ(ollama_http_error(404, "no model", "5").status, proto::OutcomeStatus::kFailed);
}

}  // namespace
}  // namespace zb::worker
