// JSON helpers shared by the HTTP routes (store/http_json.h). Pure: no client, no server.
#include "store/http_json.h"

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "common/task_json.h"
#include "common/text.h"

namespace zb::store {

using nlohmann::json;

namespace {
constexpr size_t kMaxJsonDepth = 64;
}  // namespace

int http_status(Code code) {
  switch (code) {
    case Code::kBadRequest: return 400;
    case Code::kForbidden: return 403;
    case Code::kNotFound: return 404;
    case Code::kConflict: return 409;
    case Code::kTooLarge: return 413;
    case Code::kUnprocessable: return 422;
    case Code::kUnavailable: return 503;
    case Code::kTimeout: return 504;
    case Code::kOutcomeUnknown: return 504;
    case Code::kStorageFull: return 507;
    default: return 500;
  }
}

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(json_text(body), "application/json");
}

void send_error(httplib::Response& res, const Status& s) {
  send_json(res, http_status(s.code()),
            json{{"error", {{"code", code_name(s.code())}, {"message", s.message()}}}});
}

namespace {

// Nesting depth of a JSON text, counted outside strings, so a hostile body of a million '['
// is refused before a recursive parser sees it.
bool depth_within(std::string_view text, size_t max) {
  size_t depth = 0;
  bool in_string = false, escaped = false;
  for (char ch : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (ch == '\\') escaped = true;
      else if (ch == '"') in_string = false;
    } else if (ch == '"') {
      in_string = true;
    } else if (ch == '[' || ch == '{') {
      if (++depth > max) return false;
    } else if ((ch == ']' || ch == '}') && depth > 0) {
      --depth;
    }
  }
  return true;
}

}  // namespace

Result<json> parse_json_body(std::string_view text) {
  if (!depth_within(text, kMaxJsonDepth))
    return Status(Code::kBadRequest, "JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return Status(Code::kBadRequest, "request body is not valid JSON");
  if (!j.is_object()) return Status(Code::kBadRequest, "request body must be a JSON object");
  return j;
}

Result<json> parse_optional_json_body(std::string_view text) {
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) return json::object();
  return parse_json_body(text);
}

Result<json> parse_body(const httplib::Request& req) { return parse_json_body(req.body); }

Result<json> parse_optional_body(const httplib::Request& req) { return parse_optional_json_body(req.body); }

std::string field_path(const std::string& where, std::string_view key) {
  return where.empty() ? std::string(key) : where + "." + std::string(key);
}

namespace {

// Levenshtein distance, for "did you mean" (names are short; longer ones are not compared).
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

}  // namespace

Status known_fields(const json& object, std::span<const std::string_view> allowed, const std::string& where,
                    std::string_view what) {
  if (!object.is_object()) return Status::ok();
  for (auto it = object.begin(); it != object.end(); ++it) {
    const std::string& key = it.key();
    if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
    std::string message = field_path(where, key.size() > 60 ? key.substr(0, 60) + "..." : key) + ": unknown field";
    std::string_view nearest;
    size_t best = 3;
    if (key.size() <= 64) {
      for (std::string_view name : allowed) {
        const size_t d = edit_distance(key, name);
        if (d < best && d < key.size()) best = d, nearest = name;
      }
    }
    if (!nearest.empty()) message += ", did you mean \"" + std::string(nearest) + "\"?";
    std::string names;
    for (std::string_view name : allowed) names += (names.empty() ? "" : ", ") + std::string(name);
    message += " (" + std::string(what) + (names.empty() ? " takes no fields)" : " takes " + names + ")");
    return Status(Code::kBadRequest, message);
  }
  return Status::ok();
}

json task_status_json(const TaskStatus& t, bool with_payload) {
  proto::TaskRecord r;
  r.id = t.id;
  r.group = t.group;
  r.ref = t.ref;
  r.queue = t.queue;
  r.kind = t.kind;
  r.state = t.state;
  r.attempt = t.attempt;
  r.worker = t.worker;
  if (with_payload) r.payload = t.payload;
  r.result = t.result;
  r.error = t.error;
  r.created_ms = t.created_ms;
  r.started_ms = t.started_ms;
  r.finished_ms = t.finished_ms;
  r.trace = t.trace;
  r.unique_key = t.unique_key;
  r.deps = t.deps;
  return task_json(r, with_payload, t.runtime_us);
}

TaskStatus from_record(const proto::TaskRecord& r) {
  return {r.id, r.group, r.ref, r.queue, r.kind, r.state, r.attempt, r.worker, r.payload, r.result, r.error,
          r.created_ms, r.started_ms, r.finished_ms, 0, r.trace, r.unique_key, r.deps};
}

Result<size_t> query_size(const httplib::Request& req, const char* name, size_t fallback, size_t max) {
  if (!req.has_param(name)) return fallback;
  const std::string v = req.get_param_value(name);
  char* end = nullptr;
  unsigned long long n = std::strtoull(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || v[0] == '-') return Status(Code::kBadRequest, std::string(name) + " must be a non-negative integer");
  return std::min<size_t>(n, max);
}

}  // namespace zb::store
