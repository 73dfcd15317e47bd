// What the seed's external programs send back, read apart from the I/O (internal to
// worker/kinds/): an MCP server's JSON-RPC lines, Ollama's streamed chat and the validation
// checkers' output. Nothing here throws, recurses per input byte or trusts the type of a
// field, whatever the bytes; mcp.cc, ollama.cc and validate.cc do the I/O around it. Every
// text these functions put into a HandlerResult is valid UTF-8 (the router and the store serve
// it as JSON).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "worker/worker.h"

namespace zb::worker {

// Deepest JSON nesting taken from a server or a task payload. Dumping or copying a value
// recurses once per level, so a reply nested a million levels deep would exhaust the stack.
inline constexpr int kMaxJsonDepth = 128;
// Longest line an MCP server or an Ollama stream may send.
inline constexpr size_t kMaxLineBytes = 64u << 20;

// The JSON value of `text`; discarded when it is not JSON or nests deeper than kMaxJsonDepth.
nlohmann::json parse_json_bounded(std::string_view text);

// `text` cut to at most `max_bytes` on a character boundary, with every byte that is not part
// of a valid UTF-8 sequence replaced by U+FFFD.
std::string utf8_prefix(std::string_view text, size_t max_bytes);

// Newline-delimited input that arrives in pieces of any size. Each byte is scanned once, so a
// long line arriving in small reads costs linear time.
class LineReader {
 public:
  explicit LineReader(size_t max_line_bytes = kMaxLineBytes) : max_line_bytes_(max_line_bytes) {}

  void feed(std::string_view bytes);
  // The next complete line, without its '\n'; nullopt when no complete line is buffered, and
  // from the first line longer than the limit on (too_long() then says so).
  std::optional<std::string> next();
  bool too_long() const { return too_long_; }
  // What follows the last '\n' (a last line without one).
  std::string_view rest() const { return std::string_view(buffer_).substr(start_); }

 private:
  size_t max_line_bytes_;
  std::string buffer_;
  size_t start_ = 0;    // first byte of the line being read
  size_t scanned_ = 0;  // bytes from start_ known to hold no '\n'
  bool too_long_ = false;
};

// One line an MCP server wrote on its stdout while the client waits for the response to `id`.
struct McpLine {
  enum class Kind {
    kNoise,          // not a JSON object (servers may log on stdout): ignored
    kServerRequest,  // a request from the server: send `answer` back
    kNotification,   // progress, logging: ignored
    kResponse,       // the response to `id`: `message`
    kOtherResponse,  // a response to another id: ignored
  };
  Kind kind = Kind::kNoise;
  nlohmann::json message;  // kResponse, kNotification, kServerRequest: the message itself
  nlohmann::json answer;   // kServerRequest: ping is answered, anything else is -32601
};
McpLine read_mcp_line(std::string_view line, int64_t id);
// The messages of one JSON text of the HTTP transport: an object, or an array of them (a
// 2025-03-26 batch); a text that is neither is one kNoise entry.
std::vector<McpLine> read_mcp_messages(std::string_view text, int64_t id);

// The JSON-RPC request `id`; a non-null `progress_token` asks for notifications/progress
// (params._meta.progressToken).
nlohmann::json mcp_request(int64_t id, std::string_view method, nlohmann::json params,
                           const nlohmann::json& progress_token = nullptr);
// initialize's params, offering `revision`.
nlohmann::json mcp_initialize_params(std::string_view revision);

// Protocol revisions the HTTP client speaks, newest first; it offers the first. From 2025-06-18
// on, every request after initialize carries an MCP-Protocol-Version header.
inline constexpr std::string_view kMcpHttpRevisions[] = {"2025-06-18", "2025-03-26", "2024-11-05"};
// The stateless revision (no initialize, no session; worker/kinds/mcp_http.cc), spoken over
// Streamable HTTP to a server that has no initialize and lists it in server/discover.
inline constexpr std::string_view kMcpStatelessRevision = "2026-07-28";
// The revision the server chose in its response to initialize: one of kMcpHttpRevisions (a
// response without protocolVersion is taken as 2025-03-26, the first with this transport), or
// kUnprocessable saying why not (a refusal, a revision this client does not speak).
Result<std::string> mcp_negotiated_revision(const nlohmann::json& response);
bool mcp_revision_wants_header(std::string_view revision);

// What notifications/progress said about one request.
struct McpProgress {
  uint64_t notifications = 0;
  nlohmann::json last;  // {"progress", "total"?, "message"?} of the latest

  // Counts `message` when it is notifications/progress for `token`; true then.
  bool note(const nlohmann::json& message, const nlohmann::json& token);
  // "3 progress notifications, the last 3/5 (message)"; empty when none came.
  std::string describe() const;
  // A response with a result object gets result._meta["zbatch/progress"] = {"notifications",
  // "progress", "total"?, "message"?}, when any came.
  void record(nlohmann::json& response) const;
};

// Following the pages of tools/list, resources/list or prompts/list (nextCursor), at most
// `max_pages` of them, so that a server that never stops paging cannot hold a slot.
inline constexpr uint32_t kMcpMaxListPages = 100;
// The array a list method pages through ("tools" for tools/list); empty for other methods.
std::string_view mcp_list_key(std::string_view method);
class McpListPages {
 public:
  McpListPages(std::string key, uint32_t max_pages = kMcpMaxListPages) : key_(std::move(key)), max_pages_(max_pages) {}
  // The response to the latest page request; the cursor to ask for next, or nullopt once the
  // list is complete, a page is an error or malformed, or max_pages pages are in.
  std::optional<std::string> add(nlohmann::json response);
  // The task's outcome: mcp_outcome of the first page with the items of every page appended
  // (nextCursor kept only when max_pages cut the list short); an error on any page fails it
  // like mcp_outcome; a later page without the list array, or a cursor given twice, fails with
  // McpBadReply.
  HandlerResult outcome() const;
  uint32_t pages() const { return pages_; }

 private:
  std::string key_;
  uint32_t max_pages_;
  uint32_t pages_ = 0;
  nlohmann::json response_;
  std::vector<std::string> cursors_;
  std::string bad_;
};

// A text/event-stream body arriving in pieces of any size, read by the WHATWG rules: lines end
// in "\r\n", "\n" or "\r"; "data:" lines of one event join with "\n"; a blank line ends an event;
// ':' starts a comment; an event without data is not one. Each byte is scanned once.
struct SseEvent {
  std::string type;  // "event:"; empty means "message"
  std::string id;
  std::string data;
};
class SseReader {
 public:
  explicit SseReader(size_t max_event_bytes = kMaxLineBytes) : max_event_bytes_(max_event_bytes) {}
  void feed(std::string_view bytes);
  // The next complete event; nullopt when none is buffered, and from the first line or event
  // longer than the limit on (too_long() then says so). An event the stream ends in the middle
  // of is never returned.
  std::optional<SseEvent> next();
  bool too_long() const { return too_long_; }

 private:
  void end_line();

  size_t max_event_bytes_;
  std::string line_;
  SseEvent event_;       // being read
  bool has_data_ = false;
  bool after_cr_ = false;
  bool too_long_ = false;
  std::vector<SseEvent> ready_;
  size_t taken_ = 0;     // of ready_
};

// The body of a 2xx reply to request `id` POSTed to an MCP server over Streamable HTTP: one
// JSON-RPC message (application/json) or an SSE stream of them (text/event-stream) in which
// notifications and requests of the server may come before the response. Errors (error()) start
// with "McpBadReply: ": another Content-Type, a body or event that is not JSON-RPC, one past
// `max_bytes`, a reply that does not answer `id`, a stream that ends without the response.
class McpHttpReply {
 public:
  McpHttpReply(int64_t id, std::string_view content_type, size_t max_bytes = kMaxLineBytes);
  // Bytes of the body; false once reading should stop: the response is in, or error() is set.
  bool feed(std::string_view bytes);
  // The whole body has arrived.
  void finish();
  // Server requests and notifications read so far, in order, each handed over once.
  std::vector<McpLine> take_messages();
  const std::optional<nlohmann::json>& response() const { return response_; }
  const std::string& error() const { return error_; }

 private:
  void on_text(std::string_view text, const char* what);

  int64_t id_;
  size_t max_bytes_;
  bool event_stream_ = false;
  std::string body_;  // application/json
  SseReader events_;
  std::vector<McpLine> messages_;
  std::optional<nlohmann::json> response_;
  std::string error_;
};

// The outcome of an HTTP status >= 300 from an MCP server, with `body` (its first bytes; a
// JSON-RPC error in it is quoted): McpHttpError, retried for 5xx and 429, failed otherwise.
HandlerResult mcp_http_error(int status, std::string_view body);

// The response to initialize: OK, or kUnprocessable saying why the server refused.
Status mcp_initialize_outcome(const nlohmann::json& response);
// The task's outcome from the response to its request: the result object; a JSON-RPC error
// fails with McpError, a tool that reports isError with McpToolError and its text, a result
// that is not an object with McpBadReply.
HandlerResult mcp_outcome(const nlohmann::json& response);

// Ollama's POST /api/chat with "stream": true: one JSON object per line, message.content
// pieces, then one with "done": true and the counts.
class OllamaChatStream {
 public:
  // Bytes of a 2xx body. False once the stream is unusable (an error reported in it, a line
  // that is not a JSON object, a line or a reply past 64 MiB): stop reading; error() says why.
  bool feed(std::string_view bytes);
  // The body ended: the task's outcome. `model` is the one asked for (the reply's own name
  // wins), `id` the task's own id (null: none). A stream without "done" is retried.
  HandlerResult finish(const std::string& model, const nlohmann::json& id);
  const std::string& error() const { return error_; }

  // For the agent loop, once finish() has not failed: the reply's text, the entries of every
  // message.tool_calls array seen (each kept as sent, whatever its shape; a tool_calls that
  // is not an array is one entry holding it), and the "done" chunk's counts.
  const std::string& content() const { return content_; }
  const nlohmann::json& tool_calls() const { return tool_calls_; }
  uint64_t prompt_tokens() const;
  uint64_t completion_tokens() const;

 private:
  void on_line(std::string_view line);

  LineReader lines_;
  std::string content_, error_;
  nlohmann::json tool_calls_ = nlohmann::json::array();
  nlohmann::json last_;  // the "done" chunk
};

// The outcome of an HTTP error answer (status >= 400) with `body` (its first bytes): 5xx and 429
// are retried, the rest fail; the message is the body's "error" when it is JSON. A 429 or 503
// with a Retry-After header (`retry_after`, as sent) is retried after that delay.
HandlerResult ollama_http_error(int status, std::string_view body, std::string_view retry_after = {});

// An HTTP Retry-After value in milliseconds: delta-seconds ("120") or an HTTP-date ("Wed, 21
// Oct 2026 07:28:00 GMT", counted from `now_unix_s`; a date in the past is 0). nullopt when it
// is neither.
std::optional<uint64_t> retry_after_ms(std::string_view value, int64_t now_unix_s);

// One finding of a validation checker (line and column 0 when it names none).
struct Diagnostic {
  int line = 0;
  int column = 0;
  std::string severity = "error";  // "error" or "warning"
  std::string message;
};
// gcc/g++ -fsyntax-only ("FILE:LINE:COL: error|warning|fatal error: MESSAGE") and bash -n
// ("FILE: line LINE: MESSAGE") output; other lines (source echoes, notes) are passed over.
// Numbers beyond an int are clamped. Linear in the output, however long its lines.
std::vector<Diagnostic> compiler_diagnostics(std::string_view output);
// validate.cc's python and yaml checkers: one JSON object per line, {"line","column",
// "message"}, or {"missing": MODULE} (then `missing` is set and the rest ignored).
std::vector<Diagnostic> json_line_diagnostics(std::string_view output, std::string* missing);
// node --check: the line number of the first "PATH:LINE" line and the first line holding
// "Error: " (empty message when there is none).
Diagnostic node_check_diagnostic(std::string_view output);

}  // namespace zb::worker
