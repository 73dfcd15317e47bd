// What an MCP server over Streamable HTTP sends back, read apart from the I/O
// (worker/kinds/replies.h): SSE framing, JSON-RPC response matching, protocol revisions,
// progress, paged lists and HTTP errors, with hostile replies among them.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "worker/kinds/replies.h"

namespace zb::worker {
namespace {

using nlohmann::json;

std::vector<SseEvent> all_events(SseReader& r) {
  std::vector<SseEvent> out;
  while (auto e = r.next()) out.push_back(std::move(*e));
  return out;
}

TEST(SseReader, ReadsEventsWhateverTheLineEndsAndPieces) {
  const std::string stream = "event: message\r\nid: 7\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n: a comment\n\ndata:x\rdata: y\r\r";
  for (size_t piece : {size_t(1), size_t(2), size_t(5), stream.size()}) {
    SseReader r;
    std::vector<SseEvent> events;
    for (size_t i = 0; i < stream.size(); i += piece) {
      r.feed(std::string_view(stream).substr(i, piece));
      for (auto& e : all_events(r)) events.push_back(std::move(e));
    }
    ASSERT_EQ(events.size(), 2u) << piece;
    EXPECT_EQ(events[0].type, "message");
    EXPECT_EQ(events[0].id, "7");
    EXPECT_EQ(events[0].data, "{\"a\":\n1}");
    EXPECT_EQ(events[1].data, "x\ny");
    EXPECT_EQ(events[1].type, "");
  }
}

TEST(SseReader, AnEventWithoutDataOrWithoutItsBlankLineIsNone) {
  SseReader r;
  r.feed("id: 1\nevent: message\n\nretry: 10\n\ndata: half");
  EXPECT_TRUE(all_events(r).empty());
  r.feed("\n\n");
  auto events = all_events(r);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].data, "half");
  EXPECT_EQ(events[0].id, "");  // ids do not leak from one event to the next
}

TEST(SseReader, StopsAtALineOrEventPastTheLimit) {
  SseReader line(16);
  line.feed(std::string(17, 'a'));
  EXPECT_TRUE(line.too_long());
  EXPECT_FALSE(line.next());
  SseReader event(16);
  for (int i = 0; i < 10; ++i) event.feed("data: abc\n");
  EXPECT_TRUE(event.too_long());
  EXPECT_FALSE(event.next());
}

TEST(McpHttpReply, TakesTheResponseAfterNotificationsAndServerRequests) {
  McpHttpReply reply(3, "text/event-stream; charset=utf-8");
  EXPECT_TRUE(reply.feed("id: p\ndata: \n\n"));  // a priming event without a message
  EXPECT_TRUE(reply.feed("data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\","
                         "\"params\":{\"progressToken\":3,\"progress\":1,\"total\":2}}\n\n"));
  EXPECT_TRUE(reply.feed("data: {\"jsonrpc\":\"2.0\",\"id\":\"s1\",\"method\":\"ping\"}\n\n"));
  EXPECT_TRUE(reply.feed("data: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}\n\n"));  // another request's
  EXPECT_FALSE(reply.feed("data: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"content\":[]}}\n\ndata: ignored\n\n"));
  ASSERT_TRUE(reply.response());
  EXPECT_EQ((*reply.response())["result"], json({{"content", json::array()}}));
  auto messages = reply.take_messages();
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(messages[0].kind, McpLine::Kind::kNotification);
  EXPECT_EQ(messages[1].kind, McpLine::Kind::kServerRequest);
  EXPECT_EQ(messages[1].answer, json({{"jsonrpc", "2.0"}, {"id", "s1"}, {"result", json::object()}}));
  EXPECT_TRUE(reply.take_messages().empty());
  EXPECT_TRUE(reply.error().empty());
}

TEST(McpHttpReply, ReadsAJsonReplyWholeAndMatchesItsId) {
  McpHttpReply ok(5, "Application/JSON");
  EXPECT_TRUE(ok.feed("{\"jsonrpc\":\"2.0\",\"id\":5,"));
  EXPECT_TRUE(ok.feed("\"result\":{\"tools\":[]}}"));
  ok.finish();
  ASSERT_TRUE(ok.response()) << ok.error();

  McpHttpReply batch(5, "application/json");
  batch.feed(R"([{"jsonrpc":"2.0","method":"notifications/message","params":{}},{"jsonrpc":"2.0","id":5,"result":{}}])");
  batch.finish();
  EXPECT_TRUE(batch.response()) << batch.error();
  EXPECT_EQ(batch.take_messages().size(), 1u);

  McpHttpReply wrong(5, "application/json");
  wrong.feed(R"({"jsonrpc":"2.0","id":6,"result":{}})");
  wrong.finish();
  EXPECT_FALSE(wrong.response());
  EXPECT_EQ(wrong.error(), "McpBadReply: the reply does not answer request 5 (another id, or no id)");

  McpHttpReply string_id(5, "application/json");
  string_id.feed(R"({"jsonrpc":"2.0","id":"5","result":{}})");
  string_id.finish();
  EXPECT_FALSE(string_id.response());
}

TEST(McpHttpReply, HostileRepliesGiveAClearError) {
  auto error_of = [](std::string_view type, std::string_view body) {
    McpHttpReply r(1, type, 1024);
    if (r.feed(body)) r.finish();
    EXPECT_FALSE(r.response()) << body;
    return r.error();
  };
  EXPECT_EQ(error_of("application/json", "{not json"), "McpBadReply: the reply is not a JSON-RPC message (a JSON object, at most 128 deep)");
  EXPECT_EQ(error_of("application/json", "[]"), "McpBadReply: the reply is not a JSON-RPC message (a JSON object, at most 128 deep)");
  EXPECT_EQ(error_of("application/json", "[1]"), "McpBadReply: the reply is not a JSON-RPC message (a JSON object, at most 128 deep)");
  EXPECT_EQ(error_of("application/json", std::string(200, '[') + std::string(200, ']')),
            "McpBadReply: the reply is not a JSON-RPC message (a JSON object, at most 128 deep)");
  EXPECT_EQ(error_of("application/json", ""), "McpBadReply: the reply to request 1 is empty");
  EXPECT_EQ(error_of("application/json", std::string(2000, ' ')), "McpBadReply: the reply passed 0 MiB");
  EXPECT_EQ(error_of("text/html", "<html>"),
            "McpBadReply: the reply's Content-Type is 'text/html', not application/json or text/event-stream");
  EXPECT_EQ(error_of("text/event-stream", "data: nope\n\n"),
            "McpBadReply: an event of the stream is not a JSON-RPC message (a JSON object, at most 128 deep)");
  EXPECT_EQ(error_of("text/event-stream", ": only comments\n\nevent: endpoint\ndata: /x\n\n"),
            "McpBadReply: the event stream ended without the response to request 1");
  EXPECT_EQ(error_of("text/event-stream", "data: " + std::string(2000, 'x')),
            "McpBadReply: an event of the stream passed 0 MiB");
  // The last event still counts when the stream ends without its blank line.
  McpHttpReply last(1, "text/event-stream");
  last.feed("data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}");
  last.finish();
  EXPECT_TRUE(last.response()) << last.error();
}

TEST(McpRevisions, OffersTheNewestAndAcceptsOnlyWhatItSpeaks) {
  auto answer = [](json result) { return json{{"jsonrpc", "2.0"}, {"id", 1}, {"result", std::move(result)}}; };
  EXPECT_EQ(std::string(kMcpHttpRevisions[0]), "2025-06-18");
  EXPECT_EQ(mcp_initialize_params(kMcpHttpRevisions[0])["protocolVersion"], "2025-06-18");
  for (const char* r : {"2025-06-18", "2025-03-26", "2024-11-05"})
    EXPECT_EQ(mcp_negotiated_revision(answer({{"protocolVersion", r}})).value(), r);
  EXPECT_EQ(mcp_negotiated_revision(answer(json::object())).value(), "2025-03-26");
  auto newer = mcp_negotiated_revision(answer({{"protocolVersion", "2031-01-01"}}));
  ASSERT_FALSE(newer);
  EXPECT_EQ(newer.status().message(),
            "initialize: the server speaks protocol revision '2031-01-01'; this client speaks 2025-06-18, 2025-03-26, 2024-11-05");
  EXPECT_FALSE(mcp_negotiated_revision(answer({{"protocolVersion", 20250618}})));
  EXPECT_FALSE(mcp_negotiated_revision(json{{"id", 1}, {"error", {{"code", -32602}, {"message", "no"}}}}));
  EXPECT_FALSE(mcp_negotiated_revision(json{{"id", 1}, {"result", "x"}}));
  EXPECT_TRUE(mcp_revision_wants_header("2025-06-18"));
  EXPECT_FALSE(mcp_revision_wants_header("2025-03-26"));
  EXPECT_FALSE(mcp_revision_wants_header(""));
}

TEST(McpRequest, AsksForProgressInMeta) {
  json r = mcp_request(4, "tools/call", {{"name", "echo"}}, 4);
  EXPECT_EQ(r, json::parse(R"({"jsonrpc":"2.0","id":4,"method":"tools/call",
                               "params":{"name":"echo","_meta":{"progressToken":4}}})"));
  EXPECT_EQ(mcp_request(1, "tools/list", json::object())["params"], json::object());
}

TEST(McpProgress, CountsOnlyItsOwnTokenAndRecordsTheLast) {
  McpProgress p;
  auto note = [](json token, json progress, json total, std::string message = "") {
    json params{{"progressToken", token}, {"progress", progress}, {"total", total}};
    if (!message.empty()) params["message"] = message;
    return json{{"jsonrpc", "2.0"}, {"method", "notifications/progress"}, {"params", params}};
  };
  EXPECT_TRUE(p.note(note(7, 1, 3), 7));
  EXPECT_FALSE(p.note(note(8, 2, 3), 7));
  EXPECT_FALSE(p.note(note("7", 2, 3), 7));
  EXPECT_FALSE(p.note(json{{"method", "notifications/message"}, {"params", {{"progressToken", 7}}}}, 7));
  EXPECT_FALSE(p.note(json{{"method", "notifications/progress"}, {"params", "x"}}, 7));
  EXPECT_TRUE(p.note(note(7, 2, 3, "half way"), 7));
  EXPECT_EQ(p.describe(), "2 progress notifications, the last 2/3 (half way)");
  json response{{"id", 7}, {"result", {{"content", json::array()}}}};
  p.record(response);
  EXPECT_EQ(response["result"]["_meta"]["zbatch/progress"],
            json({{"notifications", 2}, {"progress", 2}, {"total", 3}, {"message", "half way"}}));
  McpProgress none;
  json untouched{{"result", json::object()}};
  none.record(untouched);
  EXPECT_EQ(untouched, json({{"result", json::object()}}));
  EXPECT_EQ(none.describe(), "");
}

json page(json tools, json next = nullptr) {
  json result{{"tools", std::move(tools)}};
  if (!next.is_null()) result["nextCursor"] = next;
  return {{"jsonrpc", "2.0"}, {"id", 1}, {"result", result}};
}

TEST(McpListPages, FollowsNextCursorAndGathersEveryPage) {
  EXPECT_EQ(mcp_list_key("tools/list"), "tools");
  EXPECT_EQ(mcp_list_key("prompts/list"), "prompts");
  EXPECT_EQ(mcp_list_key("tools/call"), "");
  McpListPages pages("tools");
  EXPECT_EQ(pages.add(page({{{"name", "a"}}}, "c1")), "c1");
  EXPECT_EQ(pages.add(page({{{"name", "b"}}, {{"name", "c"}}}, "c2")), "c2");
  EXPECT_EQ(pages.add(page(json::array())), std::nullopt);
  HandlerResult r = pages.outcome();
  ASSERT_EQ(r.status, proto::OutcomeStatus::kSucceeded) << r.error;
  EXPECT_EQ(json::parse(r.result), json::parse(R"({"tools":[{"name":"a"},{"name":"b"},{"name":"c"}]})"));
  EXPECT_EQ(pages.pages(), 3u);
}

TEST(McpListPages, BoundsPagesAndRefusesLoopsAndBadPages) {
  McpListPages bounded("tools", 2);
  EXPECT_EQ(bounded.add(page({1}, "a")), "a");
  EXPECT_EQ(bounded.add(page({2}, "b")), std::nullopt);
  EXPECT_EQ(json::parse(bounded.outcome().result), json::parse(R"({"tools":[1,2],"nextCursor":"b"})"));

  McpListPages loop("tools");
  EXPECT_EQ(loop.add(page({1}, "same")), "same");
  EXPECT_EQ(loop.add(page({1}, "same")), std::nullopt);
  EXPECT_EQ(loop.outcome().error, "McpBadReply: the server gave the cursor 'same' twice (a list that never ends)");

  McpListPages bad("tools");
  EXPECT_EQ(bad.add(page({1}, "n")), "n");
  EXPECT_EQ(bad.add(json{{"id", 1}, {"result", {{"prompts", json::array()}}}}), std::nullopt);
  EXPECT_EQ(bad.outcome().error, "McpBadReply: page 2 of the list has no \"tools\" array");

  McpListPages error("tools");
  EXPECT_EQ(error.add(page({1}, "n")), "n");
  EXPECT_EQ(error.add(json{{"id", 1}, {"error", {{"code", -32602}, {"message", "bad cursor"}}}}), std::nullopt);
  EXPECT_EQ(error.outcome().error, "McpError: -32602 bad cursor");

  McpListPages first_error("tools");
  EXPECT_EQ(first_error.add(json{{"id", 1}, {"error", {{"code", -32601}, {"message", "no"}}}}), std::nullopt);
  EXPECT_EQ(first_error.outcome().error, "McpError: -32601 no");

  McpListPages odd_cursor("tools");
  EXPECT_EQ(odd_cursor.add(page({1}, 42)), std::nullopt);  // not a string: nothing to follow
  EXPECT_EQ(odd_cursor.outcome().status, proto::OutcomeStatus::kSucceeded);
}

TEST(McpHttpError, RetriesServerTroubleAndQuotesJsonRpcErrors) {
  HandlerResult gone = mcp_http_error(400, R"({"jsonrpc":"2.0","error":{"code":-32000,"message":"Bad Request: No valid session ID provided"},"id":null})");
  EXPECT_EQ(gone.status, proto::OutcomeStatus::kFailed);
  EXPECT_EQ(gone.error, "McpHttpError: HTTP 400: Bad Request: No valid session ID provided (-32000)");
  EXPECT_EQ(mcp_http_error(503, "busy").status, proto::OutcomeStatus::kRetry);
  EXPECT_EQ(mcp_http_error(429, "").error, "McpHttpError: HTTP 429");
  EXPECT_EQ(mcp_http_error(405, "\xff\xfe").error, "McpHttpError: HTTP 405: \xEF\xBF\xBD\xEF\xBF\xBD");
}

}  // namespace
}  // namespace zb::worker
