#include "worker/kinds/replies.h"

#include <time.h>

#include <algorithm>
#include <ctime>
#include <limits>
#include <utility>

namespace zb::worker {
namespace {

using nlohmann::json;

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// Calls f(line) for each line of `text` (without '\n' or a trailing '\r').
template <typename F>
void for_each_line(std::string_view text, F&& f) {
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    f(line);
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
}

// Decimal digits at the start of `text`: their count (0 when none), the value clamped to int.
size_t read_number(std::string_view text, int& value) {
  size_t n = 0;
  int64_t v = 0;
  while (n < text.size() && text[n] >= '0' && text[n] <= '9') {
    v = std::min<int64_t>(v * 10 + (text[n] - '0'), std::numeric_limits<int>::max());
    ++n;
  }
  value = static_cast<int>(v);
  return n;
}

// "FILE:LINE:COL: SEVERITY: MESSAGE" at the first ':' where it fits.
std::optional<Diagnostic> gcc_line(std::string_view line) {
  static constexpr std::pair<std::string_view, const char*> kSeverities[] = {
      {" error: ", "error"}, {" warning: ", "warning"}, {" fatal error: ", "error"}};
  for (size_t colon = line.find(':'); colon != std::string_view::npos; colon = line.find(':', colon + 1)) {
    Diagnostic d;
    std::string_view rest = line.substr(colon + 1);
    size_t n = read_number(rest, d.line);
    if (!n || n >= rest.size() || rest[n] != ':') continue;
    rest.remove_prefix(n + 1);
    n = read_number(rest, d.column);
    if (!n || n >= rest.size() || rest[n] != ':') continue;
    rest.remove_prefix(n + 1);
    for (const auto& [marker, severity] : kSeverities)
      if (rest.starts_with(marker)) {
        d.severity = severity;
        d.message = utf8_prefix(rest.substr(marker.size()), 2000);
        return d;
      }
  }
  return std::nullopt;
}

// "FILE: line LINE: MESSAGE" at the first ": line " where it fits.
std::optional<Diagnostic> bash_line(std::string_view line) {
  static constexpr std::string_view kMarker = ": line ";
  for (size_t at = line.find(kMarker); at != std::string_view::npos; at = line.find(kMarker, at + 1)) {
    Diagnostic d;
    std::string_view rest = line.substr(at + kMarker.size());
    const size_t n = read_number(rest, d.line);
    if (!n || !rest.substr(n).starts_with(": ")) continue;
    d.message = utf8_prefix(rest.substr(n + 2), 2000);
    return d;
  }
  return std::nullopt;
}

McpLine classify_mcp_message(json msg, int64_t id) {
  McpLine out;
  if (!msg.is_object()) return out;
  auto msg_id = msg.find("id");
  if (auto method = msg.find("method"); method != msg.end()) {
    if (msg_id == msg.end()) {
      out.kind = McpLine::Kind::kNotification;
      out.message = std::move(msg);
      return out;
    }
    out.kind = McpLine::Kind::kServerRequest;
    out.answer = {{"jsonrpc", "2.0"}, {"id", *msg_id}};
    if (method->is_string() && *method == "ping") out.answer["result"] = json::object();
    else out.answer["error"] = {{"code", -32601}, {"message", "not supported by this client"}};
    out.message = std::move(msg);
    return out;
  }
  if (msg_id != msg.end() && *msg_id == json(id)) {
    out.kind = McpLine::Kind::kResponse;
    out.message = std::move(msg);
  } else {
    out.kind = McpLine::Kind::kOtherResponse;
  }
  return out;
}

// "text/event-stream; charset=utf-8" → "text/event-stream".
std::string media_type(std::string_view content_type) {
  content_type = content_type.substr(0, content_type.find(';'));
  std::string out;
  for (char c : content_type)
    if (c != ' ' && c != '\t') out += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return out;
}

}  // namespace

json parse_json_bounded(std::string_view text) {
  bool deep = false;
  json j = json::parse(
      text, [&](int depth, json::parse_event_t, json&) { return !(deep = deep || depth > kMaxJsonDepth); }, false);
  return deep ? json(json::value_t::discarded) : j;
}

std::string utf8_prefix(std::string_view text, size_t max_bytes) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  static constexpr uint32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};  // by length: no overlongs
  std::string out;
  out.reserve(std::min(text.size(), max_bytes));
  for (size_t i = 0; i < text.size();) {
    const auto first = static_cast<unsigned char>(text[i]);
    const size_t len = first < 0x80 ? 1 : (first >> 5) == 0x6 ? 2 : (first >> 4) == 0xe ? 3 : (first >> 3) == 0x1e ? 4 : 0;
    bool valid = len > 0 && i + len <= text.size();
    if (valid && len > 1) {
      uint32_t cp = first & (0x7fu >> len);
      for (size_t k = 1; valid && k < len; ++k) {
        const auto next = static_cast<unsigned char>(text[i + k]);
        valid = (next & 0xc0) == 0x80;
        cp = cp << 6 | (next & 0x3fu);
      }
      valid = valid && cp >= kSmallest[len] && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
    }
    const std::string_view piece = valid ? text.substr(i, len) : kReplacement;
    if (out.size() + piece.size() > max_bytes) break;
    out += piece;
    i += valid ? len : 1;
  }
  return out;
}

void LineReader::feed(std::string_view bytes) {
  if (too_long_) return;
  if (start_ > 0 && start_ >= buffer_.size() / 2) {  // drop read lines; amortised linear
    buffer_.erase(0, start_);
    start_ = 0;
  }
  buffer_.append(bytes);
}

std::optional<std::string> LineReader::next() {
  if (too_long_) return std::nullopt;
  const size_t nl = buffer_.find('\n', start_ + scanned_);
  if (nl == std::string::npos) {
    scanned_ = buffer_.size() - start_;
    too_long_ = scanned_ > max_line_bytes_;
    return std::nullopt;
  }
  if (nl - start_ > max_line_bytes_) {
    too_long_ = true;
    return std::nullopt;
  }
  std::string line = buffer_.substr(start_, nl - start_);
  start_ = nl + 1;
  scanned_ = 0;
  return line;
}

McpLine read_mcp_line(std::string_view line, int64_t id) {
  json msg = parse_json_bounded(line);
  return classify_mcp_message(std::move(msg), id);
}

Status mcp_initialize_outcome(const json& response) {
  if (!response.is_object()) return Status(Code::kUnprocessable, "initialize: the response is not a JSON object");
  if (auto e = response.find("error"); e != response.end())
    return Status(Code::kUnprocessable, "initialize refused: " + utf8_prefix(dump(*e), 500));
  return Status::ok();
}

HandlerResult mcp_outcome(const json& response) {
  if (!response.is_object()) return HandlerResult::fail("McpBadReply: the response is not a JSON object");
  if (auto e = response.find("error"); e != response.end()) {
    if (!e->is_object()) return HandlerResult::fail("McpError: " + utf8_prefix(dump(*e), 2000));
    int64_t code = 0;
    if (auto c = e->find("code"); c != e->end() && c->is_number_integer()) code = c->get<int64_t>();
    std::string message;
    if (auto m = e->find("message"); m != e->end() && m->is_string()) message = m->get<std::string>();
    return HandlerResult::fail("McpError: " + std::to_string(code) + " " + utf8_prefix(message, 2000));
  }
  auto found = response.find("result");
  if (found == response.end()) return HandlerResult::ok("{}");
  const json& result = *found;
  if (!result.is_object()) return HandlerResult::fail("McpBadReply: the result is not a JSON object");
  if (auto is_error = result.find("isError"); is_error != result.end() && is_error->is_boolean() && is_error->get<bool>()) {
    std::string text;
    if (auto content = result.find("content"); content != result.end() && content->is_array())
      for (const auto& c : *content) {
        if (!c.is_object()) continue;
        auto type = c.find("type"), t = c.find("text");
        if (type != c.end() && *type == "text" && t != c.end() && t->is_string())
          text += (text.empty() ? "" : "\n") + t->get<std::string>();
      }
    return HandlerResult::fail("McpToolError: " + utf8_prefix(text.empty() ? dump(result) : text, 2000));
  }
  return HandlerResult::ok(dump(result));
}

std::vector<McpLine> read_mcp_messages(std::string_view text, int64_t id) {
  json msg = parse_json_bounded(text);
  std::vector<McpLine> out;
  if (!msg.is_array()) {
    out.push_back(classify_mcp_message(std::move(msg), id));
    return out;
  }
  if (msg.empty()) out.emplace_back();  // an empty batch is not a message
  for (auto& m : msg) out.push_back(classify_mcp_message(std::move(m), id));
  return out;
}

json mcp_request(int64_t id, std::string_view method, json params, const json& progress_token) {
  if (!params.is_object()) params = json::object();
  if (!progress_token.is_null()) params["_meta"]["progressToken"] = progress_token;
  return {{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", std::move(params)}};
}

json mcp_initialize_params(std::string_view revision) {
  return {{"protocolVersion", revision},
          {"capabilities", json::object()},
          {"clientInfo", {{"name", "zbatch"}, {"version", "1"}}}};
}

Result<std::string> mcp_negotiated_revision(const json& response) {
  if (Status refused = mcp_initialize_outcome(response); !refused) return refused;
  auto result = response.find("result");
  if (result == response.end() || !result->is_object())
    return Status(Code::kUnprocessable, "initialize: the response has no result object");
  auto version = result->find("protocolVersion");
  if (version == result->end()) return std::string("2025-03-26");
  if (!version->is_string()) return Status(Code::kUnprocessable, "initialize: protocolVersion is not a string");
  const std::string chosen = version->get<std::string>();
  std::string spoken;
  for (std::string_view r : kMcpHttpRevisions) {
    if (chosen == r) return chosen;
    spoken += (spoken.empty() ? "" : ", ") + std::string(r);
  }
  return Status(Code::kUnprocessable, "initialize: the server speaks protocol revision '" + utf8_prefix(chosen, 40) +
                                          "'; this client speaks " + spoken);
}

bool mcp_revision_wants_header(std::string_view revision) { return revision >= "2025-06-18"; }

bool McpProgress::note(const json& message, const json& token) {
  if (!message.is_object() || message.value("method", json()) != "notifications/progress") return false;
  auto params = message.find("params");
  if (params == message.end() || !params->is_object()) return false;
  auto t = params->find("progressToken");
  if (t == params->end() || *t != token) return false;
  ++notifications;
  last = json::object();
  for (const char* key : {"progress", "total"})
    if (auto v = params->find(key); v != params->end() && v->is_number()) last[key] = *v;
  if (auto m = params->find("message"); m != params->end() && m->is_string())
    last["message"] = utf8_prefix(m->get<std::string>(), 500);
  return true;
}

std::string McpProgress::describe() const {
  if (notifications == 0) return {};
  std::string out = std::to_string(notifications) + " progress notification" + (notifications == 1 ? "" : "s");
  if (auto p = last.find("progress"); p != last.end()) {
    out += ", the last " + dump(*p);
    if (auto t = last.find("total"); t != last.end()) out += "/" + dump(*t);
  }
  if (auto m = last.find("message"); m != last.end()) out += " (" + m->get<std::string>() + ")";
  return out;
}

void McpProgress::record(json& response) const {
  if (notifications == 0 || !response.is_object()) return;
  auto result = response.find("result");
  if (result == response.end() || !result->is_object()) return;
  json& meta = (*result)["_meta"];
  if (meta.is_null()) meta = json::object();
  if (!meta.is_object()) return;  // a server's own _meta that is not an object stays as it is
  json summary = last;
  summary["notifications"] = notifications;
  meta["zbatch/progress"] = std::move(summary);
}

std::string_view mcp_list_key(std::string_view method) {
  if (method == "tools/list") return "tools";
  if (method == "resources/list") return "resources";
  if (method == "prompts/list") return "prompts";
  return {};
}

std::optional<std::string> McpListPages::add(json response) {
  ++pages_;
  json* result = nullptr;
  if (response.is_object() && !response.contains("error"))
    if (auto r = response.find("result"); r != response.end() && r->is_object()) result = &*r;
  const bool usable = result != nullptr;
  if (pages_ == 1) {
    response_ = std::move(response);
    if (!usable) return std::nullopt;
  } else {
    if (!usable) {  // an error on a later page is the task's outcome; a malformed page is McpBadReply
      if (response.is_object() && response.contains("error")) response_ = std::move(response);
      else bad_ = "McpBadReply: page " + std::to_string(pages_) + " of the list is not a result object";
      return std::nullopt;
    }
    auto items = result->find(key_);
    json& gathered = response_["result"][key_];
    if (items == result->end() || !items->is_array() || !gathered.is_array()) {
      bad_ = "McpBadReply: page " + std::to_string(pages_) + " of the list has no \"" + key_ + "\" array";
      return std::nullopt;
    }
    for (auto& item : *items) gathered.push_back(std::move(item));
    if (auto next = result->find("nextCursor"); next != result->end()) response_["result"]["nextCursor"] = std::move(*next);
    else response_["result"].erase("nextCursor");
  }
  json& first = response_["result"];
  auto next = first.find("nextCursor");
  if (next == first.end() || !next->is_string()) return std::nullopt;
  if (pages_ >= max_pages_) return std::nullopt;  // nextCursor stays: the caller may go on from it
  std::string cursor = next->get<std::string>();
  if (std::find(cursors_.begin(), cursors_.end(), cursor) != cursors_.end()) {
    bad_ = "McpBadReply: the server gave the cursor '" + utf8_prefix(cursor, 100) + "' twice (a list that never ends)";
    return std::nullopt;
  }
  cursors_.push_back(cursor);
  first.erase("nextCursor");
  return cursor;
}

HandlerResult McpListPages::outcome() const {
  if (!bad_.empty()) return HandlerResult::fail(bad_);
  return mcp_outcome(response_);
}

void SseReader::feed(std::string_view bytes) {
  for (const char c : bytes) {
    if (too_long_) return;
    if (after_cr_) {
      after_cr_ = false;
      if (c == '\n') continue;  // the second half of "\r\n"
    }
    if (c == '\r' || c == '\n') {
      after_cr_ = c == '\r';
      end_line();
      continue;
    }
    line_ += c;
    too_long_ = line_.size() > max_event_bytes_;
  }
}

void SseReader::end_line() {
  std::string_view line = line_;
  if (line.empty()) {
    if (has_data_) {
      if (!event_.data.empty() && event_.data.back() == '\n') event_.data.pop_back();
      ready_.push_back(std::move(event_));
    }
    event_ = SseEvent{};
    has_data_ = false;
  } else if (line.front() != ':') {
    const size_t colon = line.find(':');
    const std::string_view field = line.substr(0, colon);
    std::string_view value = colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (field == "data") {
      event_.data.append(value).push_back('\n');
      has_data_ = true;
      too_long_ = event_.data.size() > max_event_bytes_;
    } else if (field == "event") {
      event_.type = value;
    } else if (field == "id" && value.find('\0') == std::string_view::npos) {
      event_.id = value;
    }
  }
  line_.clear();
}

std::optional<SseEvent> SseReader::next() {
  if (too_long_ || taken_ == ready_.size()) {
    if (taken_ == ready_.size()) {
      ready_.clear();
      taken_ = 0;
    }
    return std::nullopt;
  }
  return std::move(ready_[taken_++]);
}

McpHttpReply::McpHttpReply(int64_t id, std::string_view content_type, size_t max_bytes)
    : id_(id), max_bytes_(max_bytes), events_(max_bytes) {
  const std::string type = media_type(content_type);
  event_stream_ = type == "text/event-stream";
  if (!event_stream_ && type != "application/json" && !type.empty())
    error_ = "McpBadReply: the reply's Content-Type is '" + utf8_prefix(type, 100) +
             "', not application/json or text/event-stream";
}

void McpHttpReply::on_text(std::string_view text, const char* what) {
  for (McpLine& m : read_mcp_messages(text, id_)) {
    switch (m.kind) {
      case McpLine::Kind::kNoise:
        error_ = std::string("McpBadReply: ") + what + " is not a JSON-RPC message (a JSON object, at most " +
                 std::to_string(kMaxJsonDepth) + " deep)";
        return;
      case McpLine::Kind::kResponse:
        if (!response_) response_ = std::move(m.message);
        break;
      case McpLine::Kind::kOtherResponse:
        break;  // answers nothing this client asked on this request
      case McpLine::Kind::kServerRequest:
      case McpLine::Kind::kNotification:
        messages_.push_back(std::move(m));
        break;
    }
  }
}

bool McpHttpReply::feed(std::string_view bytes) {
  if (!error_.empty() || response_) return false;
  if (!event_stream_) {
    if (body_.size() + bytes.size() > max_bytes_) {
      error_ = "McpBadReply: the reply passed " + std::to_string(max_bytes_ >> 20) + " MiB";
      return false;
    }
    body_.append(bytes);
    return true;
  }
  events_.feed(bytes);
  while (auto event = events_.next()) {
    if (!event->type.empty() && event->type != "message") continue;  // not a JSON-RPC message
    if (event->data.find_first_not_of(" \t\r\n") == std::string::npos) continue;  // a priming event
    on_text(event->data, "an event of the stream");
    if (!error_.empty() || response_) return false;
  }
  if (events_.too_long()) {
    error_ = "McpBadReply: an event of the stream passed " + std::to_string(max_bytes_ >> 20) + " MiB";
    return false;
  }
  return true;
}

void McpHttpReply::finish() {
  if (!error_.empty() || response_) return;
  if (event_stream_) {
    feed("\n\n");  // a last event without its blank line still counts
    if (!error_.empty() || response_) return;
    error_ = "McpBadReply: the event stream ended without the response to request " + std::to_string(id_);
    return;
  }
  if (body_.find_first_not_of(" \t\r\n") == std::string::npos) {
    error_ = "McpBadReply: the reply to request " + std::to_string(id_) + " is empty";
    return;
  }
  on_text(body_, "the reply");
  if (error_.empty() && !response_)
    error_ = "McpBadReply: the reply does not answer request " + std::to_string(id_) + " (another id, or no id)";
}

std::vector<McpLine> McpHttpReply::take_messages() { return std::exchange(messages_, {}); }

HandlerResult mcp_http_error(int status, std::string_view body) {
  std::string detail;
  json j = parse_json_bounded(body);
  if (j.is_object()) {
    if (auto e = j.find("error"); e != j.end() && e->is_object()) {
      if (auto m = e->find("message"); m != e->end() && m->is_string()) detail = m->get<std::string>();
      if (auto c = e->find("code"); c != e->end() && c->is_number_integer()) detail += " (" + dump(*c) + ")";
    } else if (e != j.end() && e->is_string()) {
      detail = e->get<std::string>();
    }
  }
  if (detail.empty()) detail = std::string(body.substr(0, 300));
  std::string message = "McpHttpError: HTTP " + std::to_string(status) + (detail.empty() ? "" : ": " + utf8_prefix(detail, 500));
  if (status >= 500 || status == 429) return HandlerResult::retry(std::move(message));
  return HandlerResult::fail(std::move(message));
}

void OllamaChatStream::on_line(std::string_view line) {
  if (line.find_first_not_of(" \r\t") == std::string_view::npos) return;
  json chunk = parse_json_bounded(line);
  if (!chunk.is_object()) {
    error_ = "OllamaBadReply: a streamed line is not a JSON object";
    return;
  }
  if (auto e = chunk.find("error"); e != chunk.end()) {
    error_ = "OllamaError: " + utf8_prefix(e->is_string() ? e->get<std::string>() : dump(*e), 2000);
    return;
  }
  if (auto m = chunk.find("message"); m != chunk.end() && m->is_object()) {
    if (auto c = m->find("content"); c != m->end() && c->is_string()) content_ += c->get<std::string>();
    if (auto t = m->find("tool_calls"); t != m->end() && !t->is_null()) {
      if (t->is_array())
        for (auto& call : *t) tool_calls_.push_back(std::move(call));
      else
        tool_calls_.push_back(std::move(*t));
    }
  }
  if (content_.size() > kMaxLineBytes) {
    error_ = "OllamaBadReply: the reply passed 64 MiB";
    return;
  }
  if (auto done = chunk.find("done"); done != chunk.end() && done->is_boolean() && done->get<bool>())
    last_ = std::move(chunk);
}

bool OllamaChatStream::feed(std::string_view bytes) {
  if (!error_.empty()) return false;
  lines_.feed(bytes);
  while (auto line = lines_.next()) {
    on_line(*line);
    if (!error_.empty()) return false;
  }
  if (lines_.too_long()) {
    error_ = "OllamaBadReply: a streamed line longer than 64 MiB";
    return false;
  }
  return true;
}

HandlerResult OllamaChatStream::finish(const std::string& model, const json& id) {
  if (error_.empty()) on_line(lines_.rest());
  if (!error_.empty()) return HandlerResult::fail(error_);
  if (last_.is_null()) return HandlerResult::retry("OllamaBadReply: the stream ended before \"done\"");
  auto text = [&](const char* key, const std::string& fallback) {
    auto it = last_.find(key);
    return it != last_.end() && it->is_string() ? it->get<std::string>() : fallback;
  };
  auto count = [&](const char* key) {
    auto it = last_.find(key);
    return it != last_.end() && it->is_number_unsigned() ? it->get<uint64_t>() : uint64_t{0};
  };
  json result{{"model", text("model", model)},
              {"message", {{"role", "assistant"}, {"content", content_}}},
              {"done_reason", text("done_reason", "")},
              {"prompt_tokens", count("prompt_eval_count")},
              {"completion_tokens", count("eval_count")},
              {"total_duration_ns", count("total_duration")}};
  if (!id.is_null()) result["id"] = id;
  return HandlerResult::ok(dump(result)).with_tokens(count("prompt_eval_count") + count("eval_count"));
}

uint64_t OllamaChatStream::prompt_tokens() const {
  auto it = last_.find("prompt_eval_count");
  return last_.is_object() && it != last_.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}

uint64_t OllamaChatStream::completion_tokens() const {
  auto it = last_.find("eval_count");
  return last_.is_object() && it != last_.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}

HandlerResult ollama_http_error(int status, std::string_view body, std::string_view retry_after) {
  std::string message(body);
  json j = parse_json_bounded(body);
  if (j.is_object())
    if (auto e = j.find("error"); e != j.end() && e->is_string()) message = e->get<std::string>();
  std::string error = "HTTP " + std::to_string(status) + ": " + utf8_prefix(message, 500);
  if (status == 429 || status == 503) {
    if (auto after = retry_after_ms(retry_after, ::time(nullptr))) {
      error += " (Retry-After: " + utf8_prefix(retry_after, 60) + ")";
      return HandlerResult::retry("OllamaServerError: " + error, std::max<uint64_t>(*after, 1));
    }
  }
  if (status >= 500 || status == 429) return HandlerResult::retry("OllamaServerError: " + error);
  return HandlerResult::fail("OllamaRequestError: " + error);
}

std::optional<uint64_t> retry_after_ms(std::string_view value, int64_t now_unix_s) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t' || value.back() == '\r')) value.remove_suffix(1);
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (value.size() > 9) return uint64_t{999999999} * 1000;  // clamped; the router bounds it further
    int seconds = 0;
    read_number(value, seconds);
    return static_cast<uint64_t>(seconds) * 1000;
  }
  // IMF-fixdate, the one form RFC 9110 requires senders to use.
  std::tm tm{};
  const std::string text(value);
  const char* end = ::strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (!end || *end) return std::nullopt;
  const int64_t at = ::timegm(&tm);
  return at <= now_unix_s ? 0 : static_cast<uint64_t>(at - now_unix_s) * 1000;
}

std::vector<Diagnostic> compiler_diagnostics(std::string_view output) {
  std::vector<Diagnostic> out;
  for_each_line(output, [&](std::string_view line) {
    if (auto d = gcc_line(line)) out.push_back(std::move(*d));
    else if (auto b = bash_line(line)) out.push_back(std::move(*b));
  });
  return out;
}

std::vector<Diagnostic> json_line_diagnostics(std::string_view output, std::string* missing) {
  std::vector<Diagnostic> out;
  bool stop = false;
  for_each_line(output, [&](std::string_view line) {
    if (stop) return;
    json j = parse_json_bounded(line);
    if (!j.is_object()) return;
    if (auto m = j.find("missing"); m != j.end()) {
      *missing = m->is_string() ? utf8_prefix(m->get<std::string>(), 200) : std::string("a module");
      stop = true;
      return;
    }
    Diagnostic d;
    auto number = [&](const char* key) {
      auto it = j.find(key);
      if (it == j.end() || !it->is_number_integer()) return 0;
      return static_cast<int>(std::clamp<int64_t>(it->get<int64_t>(), 0, std::numeric_limits<int>::max()));
    };
    d.line = number("line");
    d.column = number("column");
    if (auto m = j.find("message"); m != j.end() && m->is_string()) d.message = utf8_prefix(m->get<std::string>(), 2000);
    out.push_back(std::move(d));
  });
  return out;
}

Diagnostic node_check_diagnostic(std::string_view output) {
  Diagnostic d;
  bool have_line = false;
  for_each_line(output, [&](std::string_view line) {
    if (!have_line) {
      // "PATH:LINE": the digits after the last ':' run to the end of the line.
      const size_t colon = line.rfind(':');
      int value = 0;
      if (colon != std::string_view::npos && colon + 1 < line.size() &&
          read_number(line.substr(colon + 1), value) == line.size() - colon - 1) {
        d.line = value;
        have_line = true;
      }
    }
    if (d.message.empty() && line.find("Error: ") != std::string_view::npos) d.message = utf8_prefix(line, 2000);
  });
  return d;
}

}  // namespace zb::worker
