#include "worker/kinds/replies.h"

#include <time.h>

#include <algorithm>
#include <ctime>
#include <limits>

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
  McpLine out;
  json msg = parse_json_bounded(line);
  if (!msg.is_object()) return out;
  auto msg_id = msg.find("id");
  if (auto method = msg.find("method"); method != msg.end()) {
    if (msg_id == msg.end()) {
      out.kind = McpLine::Kind::kNotification;
      return out;
    }
    out.kind = McpLine::Kind::kServerRequest;
    out.answer = {{"jsonrpc", "2.0"}, {"id", *msg_id}};
    if (method->is_string() && *method == "ping") out.answer["result"] = json::object();
    else out.answer["error"] = {{"code", -32601}, {"message", "not supported by this client"}};
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
  return HandlerResult::ok(dump(result));
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
