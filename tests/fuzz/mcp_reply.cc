// What an MCP server writes on its stdout, read as mcp.cc reads it: bytes arrive in pieces of
// any size (LineReader), each line is classified (read_mcp_line), and the response to our
// request becomes the task's outcome (mcp_outcome) or initialize's verdict. The same bytes are
// then the body of a Streamable HTTP reply (McpHttpReply), as an event stream and as JSON, in
// the same pieces. Input: a byte that seeds the piece sizes, then the server's output.
#include "tests/fuzz/fuzz.h"
#include "worker/kinds/replies.h"

namespace {

constexpr size_t kMaxLine = 3000;  // beyond the 2000 bytes an error keeps, below the 4096 of an input

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace zb;
  using namespace zb::worker;
  fuzz::Reader in(data, size);
  uint32_t piece_seed = in.u8() | 1u;
  const uint32_t first_seed = piece_seed;
  const std::string output = in.rest();

  LineReader lines(kMaxLine);
  std::string seen;  // the lines read so far, each with its '\n'
  for (size_t at = 0; at < output.size();) {
    piece_seed = piece_seed * 1103515245u + 12345u;
    const size_t piece = std::min<size_t>(1 + (piece_seed >> 16) % 64, output.size() - at);
    lines.feed(std::string_view(output).substr(at, piece));
    at += piece;
    while (auto line = lines.next()) {
      FUZZ_CHECK(line->size() <= kMaxLine);
      FUZZ_CHECK(line->find('\n') == std::string::npos);
      seen += *line + "\n";
      McpLine read = read_mcp_line(*line, 1);
      switch (read.kind) {
        case McpLine::Kind::kServerRequest:
          FUZZ_CHECK(read.answer.is_object() && read.answer.contains("id"));
          FUZZ_CHECK(read.answer.contains("result") != read.answer.contains("error"));
          FUZZ_CHECK(fuzz::is_utf8(read.answer.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
          break;
        case McpLine::Kind::kResponse: {
          FUZZ_CHECK(read.message.is_object() && read.message["id"] == 1);
          HandlerResult r = mcp_outcome(read.message);
          FUZZ_CHECK(fuzz::is_utf8(r.error) && fuzz::is_utf8(r.result));
          if (r.status == proto::OutcomeStatus::kSucceeded) {
            FUZZ_CHECK(r.error.empty());
            FUZZ_CHECK(nlohmann::json::parse(r.result, nullptr, false).is_object());
          } else {
            FUZZ_CHECK(r.status == proto::OutcomeStatus::kFailed);
            FUZZ_CHECK(r.error.starts_with("Mcp") && r.error.size() < 2100);
          }
          Status init = mcp_initialize_outcome(read.message);
          FUZZ_CHECK(init || (init.code() == Code::kUnprocessable && fuzz::is_utf8(init.message())));
          break;
        }
        default:
          break;
      }
    }
    if (lines.too_long()) break;
  }
  if (!lines.too_long()) FUZZ_CHECK(seen + std::string(lines.rest()) == output);
  else FUZZ_CHECK(output.starts_with(seen));

  for (const char* type : {"text/event-stream", "application/json"}) {
    McpHttpReply reply(1, type, kMaxLine);
    bool more = true;
    piece_seed = first_seed;
    for (size_t at = 0; more && at < output.size();) {
      piece_seed = piece_seed * 1103515245u + 12345u;
      const size_t piece = std::min<size_t>(1 + (piece_seed >> 16) % 64, output.size() - at);
      more = reply.feed(std::string_view(output).substr(at, piece));
      at += piece;
    }
    if (more) reply.finish();
    for (const McpLine& m : reply.take_messages())
      FUZZ_CHECK(m.kind == McpLine::Kind::kServerRequest || m.kind == McpLine::Kind::kNotification);
    FUZZ_CHECK(reply.response().has_value() == reply.error().empty());
    if (!reply.response()) {
      FUZZ_CHECK(reply.error().starts_with("McpBadReply: ") && fuzz::is_utf8(reply.error()));
      continue;
    }
    const nlohmann::json& response = *reply.response();
    FUZZ_CHECK(response.is_object() && response.value("id", nlohmann::json()) == 1);
    McpListPages pages("tools", 2);
    auto next = pages.add(response);
    if (next) pages.add(response);
    HandlerResult r = pages.outcome();
    FUZZ_CHECK(fuzz::is_utf8(r.error) && fuzz::is_utf8(r.result));
    FUZZ_CHECK(r.status == proto::OutcomeStatus::kSucceeded ? r.error.empty() : r.error.starts_with("Mcp"));
    auto revision = mcp_negotiated_revision(response);
    FUZZ_CHECK(revision || fuzz::is_utf8(revision.status().message()));
  }
  return 0;
}
