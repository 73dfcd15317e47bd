// What fuzzing and the issue "Nothing lost, nothing crashes" found, as specifications: each
// test feeds the input that used to throw, crash or mislead, through the public entry point.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include <spdlog/spdlog.h>

#include "cli/config.h"
#include "common/protocol.h"
#include "common/wire.h"
#include "store/sse.h"
#include "store/status_db.h"
#include "worker/kinds/replies.h"

namespace zb {
namespace {

using nlohmann::json;
using proto::Event;
using proto::EventType;

class StatusDbHostileEvents : public ::testing::Test {
 protected:
  void SetUp() override {
    spdlog::set_level(spdlog::level::off);
    dir_ = std::filesystem::temp_directory_path() /
           ("zbatch-regress-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    open();
  }
  void TearDown() override {
    db_.reset();
    std::filesystem::remove_all(dir_);
  }
  void open() {
    db_.reset();
    auto db = store::StatusDb::open(dir_.string());
    ASSERT_TRUE(db) << db.status().to_string();
    db_.emplace(std::move(db.value()));
  }

  Event next(EventType type, TaskState state = TaskState::kQueued) {
    Event e;
    e.seq = ++seq_;
    e.ts_ms = 1000 + seq_;
    e.type = type;
    e.state = state;
    e.queue = "default";
    return e;
  }
  // A group-updated event of this test's group carrying `records` (the router sends one).
  Event group_updated(std::vector<proto::GroupRecord> records) {
    Event e = next(EventType::kGroupUpdated);
    e.group = group_;
    e.group_record = std::move(records);
    return e;
  }
  proto::GroupRecord record(uint32_t total, uint32_t succeeded = 0, uint32_t failed = 0, uint32_t running = 0) {
    proto::GroupRecord g;
    g.id = group_;
    g.total = total;
    g.succeeded = succeeded;
    g.failed = failed;
    g.running = running;
    g.parallel = 1;
    g.created_ms = 1000;
    return g;
  }
  Event task(EventType type, TaskState state, const Id& id) {
    Event e = next(type, state);
    e.task = id;
    e.group = group_;
    return e;
  }

  std::filesystem::path dir_;
  std::optional<store::StatusDb> db_;
  Id log_ = Id::random(), group_ = Id::random();
  uint64_t seq_ = 0;
};

TEST_F(StatusDbHostileEvents, GroupUpdateWithoutARecordIsSkippedAndTheNextEventApplies) {
  const Id t = Id::random();
  std::vector<Event> batch = {group_updated({}), task(EventType::kTaskReceived, TaskState::kQueued, t),
                              group_updated({record(1)})};
  ASSERT_TRUE(db_->apply(log_, batch));
  EXPECT_EQ(db_->applied(), 3u);
  EXPECT_EQ(db_->skipped(), 1u);
  auto status = db_->task(t);
  ASSERT_TRUE(status && status->has_value());
  EXPECT_EQ((*status)->state, TaskState::kQueued);
  auto group = db_->group(group_);
  ASSERT_TRUE(group && group->has_value());
  EXPECT_EQ((*group)->total, 1u);
  EXPECT_EQ((*group)->parallel, 1u);
}

TEST_F(StatusDbHostileEvents, EveryHostileFieldIsSkippedCountedAndRemembered) {
  const Id a = Id::random();
  proto::GroupRecord elsewhere = record(2);
  elsewhere.id = Id::random();
  proto::GroupRecord revoked_beyond = record(2, 1, 1);
  revoked_beyond.revoked = 1;
  std::vector<Event> hostile = {
      group_updated({}),                            // no record
      group_updated({record(2), record(3)}),        // two records
      group_updated({elsewhere}),                   // a record of another group
      group_updated({record(2, 2, 1)}),             // more completed than the group holds
      group_updated({revoked_beyond}),              // the same, with revoked ones
      group_updated({record(2, 0, 0, 3)}),          // more running than the group holds
      group_updated({record(UINT32_MAX, UINT32_MAX, UINT32_MAX)}),  // a sum that would wrap
  };
  Event no_group = group_updated({record(1)});
  no_group.group = Id();
  hostile.push_back(no_group);
  hostile.push_back(task(EventType::kTaskFailed, TaskState::kQueued, a));        // state contradicts type
  hostile.push_back(task(EventType::kTaskReceived, TaskState::kSucceeded, a));   // received as finished
  hostile.push_back(task(EventType::kTaskStarted, TaskState::kStarted, Id()));   // no task id
  hostile.push_back(next(EventType::kResultsExpired));                            // without its instant
  Event unknown_type = task(static_cast<EventType>(200), TaskState::kQueued, a);
  hostile.push_back(unknown_type);
  Event unknown_state = task(EventType::kTaskQueued, static_cast<TaskState>(99), a);
  hostile.push_back(unknown_state);
  Event unknown_from = task(EventType::kTaskQueued, TaskState::kQueued, a);
  unknown_from.from = static_cast<TaskState>(77);
  hostile.push_back(unknown_from);
  for (const Event& e : hostile) ASSERT_TRUE(db_->apply(log_, {e})) << e.seq;
  EXPECT_EQ(db_->skipped(), hostile.size());
  EXPECT_EQ(db_->applied(), seq_);
  auto nothing = db_->task(a);
  ASSERT_TRUE(nothing);
  EXPECT_FALSE(nothing->has_value());
  auto group = db_->group(group_);
  ASSERT_TRUE(group);
  EXPECT_FALSE(group->has_value());  // no bad update created it

  ASSERT_TRUE(db_->apply(log_, {task(EventType::kTaskReceived, TaskState::kQueued, a)}));
  auto good = db_->task(a);
  ASSERT_TRUE(good && good->has_value());
  EXPECT_EQ((*good)->state, TaskState::kQueued);

  open();  // the count survives a restart
  EXPECT_EQ(db_->skipped(), hostile.size());
  auto counters = db_->counters();
  ASSERT_TRUE(counters);
  EXPECT_EQ(counters->skipped, hostile.size());
}

TEST_F(StatusDbHostileEvents, ABatchWithAGapInsideIsAppliedUpToTheGap) {
  const Id a = Id::random(), b = Id::random();
  Event first = task(EventType::kTaskReceived, TaskState::kQueued, a);
  Event second = task(EventType::kTaskStarted, TaskState::kStarted, a);
  ++seq_;  // seq 3 is missing
  Event fourth = task(EventType::kTaskReceived, TaskState::kQueued, b);
  ASSERT_TRUE(db_->apply(log_, {first, second, fourth}));
  EXPECT_EQ(db_->applied(), 2u);
  auto later = db_->task(b);
  ASSERT_TRUE(later);
  EXPECT_FALSE(later->has_value());

  Event third = fourth;
  third.seq = 3;
  third.task = Id::random();
  ASSERT_TRUE(db_->apply(log_, {third, fourth}));
  EXPECT_EQ(db_->applied(), 4u);
}

TEST(SseFrames, InvalidUtf8AndDeepJsonStillMakeOneValidFrame) {
  Event e;
  e.seq = 7;
  e.type = EventType::kTaskFailed;
  e.task = Id::random();
  e.state = TaskState::kFailed;
  e.error = "ProcessExitError: exit code 1: \xff\xfe\xc3(";
  e.result = std::string(8000, '[') + std::string(8000, ']');  // under the 16 KiB inline limit
  e.runtime_us = 1500;
  std::string frame;
  ASSERT_NO_THROW(frame = store::sse_frame(e));
  const std::string data = frame.substr(frame.find("data: ") + 6);
  json j = json::parse(data);
  EXPECT_EQ(j["error"], "ProcessExitError: exit code 1: \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD(");
  EXPECT_TRUE(j["result"].is_string());  // too deep to be JSON here: the text
  EXPECT_EQ(j["detail"], (json{{"runtime_us", 1500}, {"retries", 0}}));
}

TEST(SseQuery, SequenceNumbersAreDecimalDigitsThatFit) {
  auto q = [](const char* last, const char* after) {
    return store::parse_stream_query(last ? std::optional<std::string_view>(last) : std::nullopt,
                                     after ? std::optional<std::string_view>(after) : std::nullopt, std::nullopt,
                                     std::nullopt);
  };
  EXPECT_EQ(q("18446744073709551615", nullptr)->after, UINT64_MAX);
  EXPECT_EQ(q("000000000000000000000000000000000000000000000042", nullptr)->after, 42u);  // found by sse_query
  EXPECT_EQ(q("", "12")->after, 12u);
  EXPECT_EQ(q("5", "12")->after, 5u);
  EXPECT_FALSE(q(nullptr, nullptr)->after);
  for (const char* bad : {"-1", " 5", "5 ", "+5", "0x10", "18446744073709551616", "99999999999999999999999"}) {
    auto r = q(bad, nullptr);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.status().message(), "Last-Event-ID must be a sequence number");
  }
  EXPECT_EQ(q(nullptr, "x").status().message(), "after must be a sequence number");
}

TEST(McpReplies, WronglyTypedFieldsFailTheTaskInsteadOfThrowing) {
  for (const char* reply : {R"({"id":1,"error":"boom"})", R"({"id":1,"error":{"code":"x","message":7}})",
                            R"({"id":1,"result":5})", R"({"id":1,"result":{"isError":true,"content":[1,"x",{"type":2}]}})"}) {
    HandlerResult r;
    ASSERT_NO_THROW(r = worker::mcp_outcome(json::parse(reply))) << reply;
    EXPECT_EQ(r.status, proto::OutcomeStatus::kFailed) << reply;
    EXPECT_TRUE(r.error.starts_with("Mcp")) << r.error;
  }
  // isError that is not true is not an error report: the result is the task's.
  auto r = worker::mcp_outcome(json::parse(R"({"id":1,"result":{"isError":"yes","content":[]}})"));
  EXPECT_EQ(r.status, proto::OutcomeStatus::kSucceeded);
  EXPECT_EQ(json::parse(r.result)["isError"], "yes");
}

TEST(McpReplies, ToolErrorTextIsCutOnACharacterBoundary) {
  const std::string text = std::string(1999, 'a') + "\xC3\xA9";  // 'é' across byte 2000
  json reply = {{"id", 1}, {"result", {{"isError", true}, {"content", {{{"type", "text"}, {"text", text}}}}}}};
  auto r = worker::mcp_outcome(reply);
  EXPECT_EQ(r.error, "McpToolError: " + std::string(1999, 'a'));
}

TEST(McpReplies, ServerRequestsAreAnsweredAndDeepLinesIgnored) {
  auto ping = worker::read_mcp_line(R"({"jsonrpc":"2.0","id":"p1","method":"ping"})", 1);
  EXPECT_EQ(ping.kind, worker::McpLine::Kind::kServerRequest);
  EXPECT_EQ(ping.answer["result"], json::object());
  const std::string deep = R"({"id":1,"result":)" + std::string(100000, '[') + std::string(100000, ']') + "}";
  EXPECT_EQ(worker::read_mcp_line(deep, 1).kind, worker::McpLine::Kind::kNoise);
}

TEST(OllamaStream, DoneThatIsNotABooleanAndCountsOfTheWrongTypeDoNotThrow) {
  worker::OllamaChatStream stream;
  EXPECT_TRUE(stream.feed("{\"message\":{\"content\":\"Hi\"},\"done\":1}\n"));
  EXPECT_TRUE(stream.feed("{\"done\":true,\"model\":7,\"eval_count\":\"many\",\"prompt_eval_count\":1e300}"));
  HandlerResult r;
  ASSERT_NO_THROW(r = stream.finish("llama3.2", json()));
  ASSERT_EQ(r.status, proto::OutcomeStatus::kSucceeded) << r.error;
  json result = json::parse(r.result);
  EXPECT_EQ(result["model"], "llama3.2");
  EXPECT_EQ(result["message"]["content"], "Hi");
  EXPECT_EQ(result["completion_tokens"], 0);
  EXPECT_EQ(result["prompt_tokens"], 0);
}

TEST(OllamaStream, AnErrorBodyThatIsNotUtf8GivesAValidMessage) {
  auto r = worker::ollama_http_error(500, std::string(499, 'x') + "\xE2\x82\xAC\xff");
  EXPECT_EQ(r.status, proto::OutcomeStatus::kRetry);
  EXPECT_EQ(r.error, "OllamaServerError: HTTP 500: " + std::string(499, 'x'));
}

TEST(CheckerOutput, AMegabyteLineDoesNotExhaustTheStack) {
  // The std::regex reading recursed once per character: a long source line echoed by gcc or
  // bash -n took the worker down with a stack overflow.
  const std::string line = "input.sh: line 3: `" + std::string(1 << 20, 'a') + "'";
  auto found = worker::compiler_diagnostics("    1 | " + std::string(1 << 20, 'b') + "\n" + line + "\n");
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].line, 3);
  EXPECT_EQ(found[0].message.size(), 2000u);
}

TEST(CheckerOutput, NumbersBeyondAnIntAreClampedNotThrown) {
  auto found = worker::compiler_diagnostics("a.c:99999999999999999999:3: error: x\n");
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].line, INT32_MAX);
  EXPECT_EQ(found[0].column, 3);
  std::string missing;
  auto lines = worker::json_line_diagnostics("{\"line\":\"7\",\"column\":-4,\"message\":[1]}\n{\"missing\":5}\n", &missing);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].line, 0);
  EXPECT_EQ(lines[0].column, 0);
  EXPECT_EQ(missing, "a module");
}

TEST(Protocol, AnArrayClaimingMoreElementsThanTheBodyHoldsIsTruncatedNotAllocated) {
  // array32 announcing 2^20 elements in five bytes: msgpack used to allocate 24 MiB for it.
  for (std::string body : {std::string("\xdd\x00\x10\x00\x00", 5), std::string("\x92\x01\xdd\x00\x00\x01\x00", 7),
                           std::string("\xde\x00\x10", 3)}) {
    auto out = proto::decode(std::string("ZB\x01\x01", 4), body);
    ASSERT_FALSE(out);
    EXPECT_EQ(out.status().code(), Code::kBadRequest);
    EXPECT_NE(out.status().message().find("truncated body"), std::string::npos) << out.status().message();
  }
}

TEST(WireFrames, ARoutedMessageWithoutFramesIsAnError) {
  auto in = wire::decode_frames({}, 0, true);
  EXPECT_FALSE(in.message);
  auto four = wire::decode_frames({}, 4, false);
  EXPECT_EQ(four.message.status().message(), "expected 2 frames (header, body), got more than 3");
}

TEST(ConfigText, NumbersAndBooleansAreReadByTheirTomlType) {
  // Found by config_toml under UBSan: toml++ cast the float 1e90 to int64 before checking its
  // range. And its value<bool>() read an integer as a boolean.
  struct Case {
    const char* line;
    const char* message;
  };
  for (const Case& c : {Case{"soft_time_limit = 1e90", "soft_time_limit must be seconds"},
                        Case{"priority = 1e90", "priority must be an integer 0..255"},
                        Case{"acks_late = 5", "acks_late must be true or false"},
                        Case{"max_retries = 2.5", "max_retries must be an integer"}}) {
    CLI::App app;
    std::vector<QueueConfig> queues;
    Status s = cli::apply_config_text("[[queue]]\nname = \"q\"\n" + std::string(c.line) + "\n", "test.toml", "router", app, &queues);
    EXPECT_FALSE(s) << c.line;
    EXPECT_NE(s.message().find(c.message), std::string::npos) << s.message();
  }
  CLI::App app;
  std::vector<QueueConfig> queues;
  ASSERT_TRUE(cli::apply_config_text("[[queue]]\nname = \"q\"\npriority = 7.0\nacks_late = false\ntime_limit = 7200\n", "test.toml",
                                     "router", app, &queues));
  ASSERT_EQ(queues.size(), 1u);
  EXPECT_EQ(queues[0].priority, 7);
  EXPECT_FALSE(queues[0].acks_late);
  EXPECT_EQ(queues[0].time_limit_ms, 7200000u);
}

TEST(ConfigText, RatesOutsideWhatTheRouterCanDivideByAreRefused) {
  for (const char* rate : {"inf", "1e-300", "1e10", "\"1e-300/s\""}) {
    CLI::App app;
    std::vector<QueueConfig> queues;
    const std::string text = "[[queue]]\nname = \"q\"\nrate_limit = " + std::string(rate) + "\n";
    Status s = cli::apply_config_text(text, "test.toml", "router", app, &queues);
    EXPECT_FALSE(s) << rate;
    EXPECT_NE(s.message().find("rate_limit must be tasks per second"), std::string::npos) << s.message();
  }
  CLI::App app;
  std::vector<QueueConfig> queues;
  ASSERT_TRUE(cli::apply_config_text("[[queue]]\nname = \"q\"\nrate_limit = \"2/h\"\n", "test.toml", "router", app, &queues));
  ASSERT_EQ(queues.size(), 1u);
  EXPECT_DOUBLE_EQ(queues[0].rate_limit, 2.0 / 3600);
}

}  // namespace
}  // namespace zb
