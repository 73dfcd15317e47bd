#include "common/text.h"
#include "store/task_request.h"

#include <algorithm>
#include <array>
#include <filesystem>
#include <iomanip>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <sstream>

#include "common/clock.h"
#include "common/task.h"
#include "store/http_json.h"
#include "store/webhooks.h"

namespace zb::store {
namespace {

using nlohmann::json;

Status bad(const std::string& path, const std::string& why) { return Status(Code::kBadRequest, path + ": " + why); }

std::string index_path(size_t i) { return "tasks[" + std::to_string(i) + "]"; }

// A string from a hostile body, cut short enough to quote in a message.
std::string quote_short(const std::string& s) { return "'" + (s.size() > 60 ? s.substr(0, 60) + "..." : s) + "'"; }

std::string joined(const std::set<std::string>& names) {
  std::string out;
  size_t n = 0;
  for (const auto& name : names) {
    if (n++ == 20) return out + ", ...";
    out += (out.empty() ? "" : ", ") + name;
  }
  return out;
}

constexpr const char* kTraceparentForm =
    "must be a W3C traceparent: 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>, lower case, ids not all zero";
constexpr double kMaxCountdownS = 10.0 * 366 * 86400;  // the router's bound: ten years
constexpr double kMaxEtaS = 253402300799;  // 9999-12-31T23:59:59Z
constexpr double kMaxLimitS = 4e6;

// The schemas. A seed task object holds these scheduling fields beside its kind's own (not
// queue: the endpoint fixes it); a task of the API holds its kind's in "payload".
constexpr std::array<std::string_view, 11> kSeedTaskFields = {
    "id", "kind", "priority", "max_retries", "countdown", "eta", "time_limit", "soft_time_limit", "traceparent",
    "unique_key", "on_duplicate"};
constexpr std::array<std::string_view, 15> kApiTaskFields = {
    "queue", "kind", "payload", "id", "priority", "max_retries", "countdown", "eta", "time_limit", "soft_time_limit",
    "traceparent", "unique_key", "on_duplicate", "depends_on", "when"};
constexpr std::array<std::string_view, 18> kApiSingleFields = {
    "queue", "kind", "payload", "id", "priority", "max_retries", "countdown", "eta", "time_limit", "soft_time_limit",
    "idempotency_key", "traceparent", "unique_key", "on_duplicate", "webhook", "depends_on", "depends_on_group", "when"};
constexpr std::array<std::string_view, 16> kApiGroupFields = {
    "tasks", "parallel", "idempotency_key", "queue", "kind", "priority", "max_retries", "countdown", "eta",
    "time_limit", "soft_time_limit", "traceparent", "webhook", "chain", "callbacks", "budget"};
constexpr std::array<std::string_view, 12> kApiCallbackFields = {
    "queue", "kind", "payload", "id", "priority", "max_retries", "countdown", "eta", "time_limit", "soft_time_limit",
    "traceparent", "when"};
constexpr std::array<std::string_view, 13> kSeedBatchFields = {
    "tasks", "parallel", "idempotency_key", "kind", "priority", "max_retries", "countdown", "eta", "time_limit",
    "soft_time_limit", "traceparent", "webhook", "budget"};

// Fields that belong somewhere else: a clearer word than "unknown field".
Status misplaced(const json& object, const std::string& where, bool top_level, bool group_form) {
  auto has = [&](const char* key) { return object.contains(key); };
  if (top_level && group_form) {
    if (has("payload")) return bad("payload", "each task carries its own payload (inside \"tasks\")");
    if (has("id")) return bad("id", "each task carries its own id (inside \"tasks\")");
  }
  if (top_level && !group_form && has("parallel")) return bad("parallel", "only with \"tasks\" (the group form)");
  if (!top_level) {
    for (const char* key : {"idempotency_key", "parallel", "tasks", "webhook"})
      if (has(key)) return bad(field_path(where, key), "belongs to the whole submission (its top level), not to a task");
  }
  return Status::ok();
}

// Scheduling fields of a task, or of the group form for every task in it.
struct Scheduling {
  std::optional<std::string> queue, kind, ref;
  std::optional<int32_t> priority, max_retries;
  // countdown travels as such (the router counts it from acceptance), so a repeated request
  // under the same idempotency key is the same request.
  std::optional<uint64_t> eta_ms, countdown_ms;
  std::optional<uint32_t> hard_limit_ms, soft_limit_ms;
  std::optional<std::string> trace, unique_key;
  uint8_t on_duplicate = 0;  // proto::UniquePolicy

  void inherit(const Scheduling& group) {
    if (!trace) trace = group.trace;
    if (!queue) queue = group.queue;
    if (!kind) kind = group.kind;
    if (!priority) priority = group.priority;
    if (!max_retries) max_retries = group.max_retries;
    if (!eta_ms && !countdown_ms) {  // a task's countdown or eta replaces the group's time
      eta_ms = group.eta_ms;
      countdown_ms = group.countdown_ms;
    }
    if (!hard_limit_ms) hard_limit_ms = group.hard_limit_ms;
    if (!soft_limit_ms) soft_limit_ms = group.soft_limit_ms;
  }
};

Status read_seconds(const json& v, const std::string& path, double max, double& out) {
  if (!v.is_number() || v.get<double>() < 0 || v.get<double>() > max) {
    std::ostringstream range;
    range << "must be a number of seconds, 0.." << std::fixed << std::setprecision(0) << max;
    return bad(path, range.str());
  }
  out = v.get<double>();
  return Status::ok();
}

// Reads the scheduling fields present in `o` (unknown fields are checked by the caller).
Status read_scheduling(const json& o, const std::string& where, bool with_queue, bool with_id,
                       Scheduling& s) {
  auto path = [&](std::string_view key) { return field_path(where, key); };
  if (auto it = o.find("queue"); with_queue && it != o.end()) {
    if (!it->is_string() || it->get_ref<const std::string&>().empty())
      return bad(path("queue"), "must be a non-empty string (the name of a queue)");
    s.queue = it->get<std::string>();
  }
  if (auto it = o.find("kind"); it != o.end()) {
    if (!it->is_string() || it->get_ref<const std::string&>().empty())
      return bad(path("kind"), "must be a non-empty string (the name of a task kind)");
    s.kind = it->get<std::string>();
  }
  if (auto it = o.find("id"); with_id && it != o.end()) {
    if (it->is_string()) s.ref = it->get<std::string>();
    else if (it->is_number_integer()) s.ref = it->dump();
    else return bad(path("id"), "must be a string or an integer");
  }
  if (auto it = o.find("priority"); it != o.end()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > 255)
      return bad(path("priority"), "must be an integer 0..255");
    s.priority = static_cast<int32_t>(it->get<int64_t>());
  }
  if (auto it = o.find("max_retries"); it != o.end()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0)
      return bad(path("max_retries"), "must be a non-negative integer");
    s.max_retries = static_cast<int32_t>(std::min<int64_t>(it->get<int64_t>(), 1000));
  }
  const auto countdown = o.find("countdown");
  const auto eta = o.find("eta");
  if (countdown != o.end() && eta != o.end())
    return bad(path("eta"), "give countdown (seconds from now) or eta (a time), not both");
  if (countdown != o.end()) {
    double seconds = 0;
    if (Status st = read_seconds(*countdown, path("countdown"), kMaxCountdownS, seconds); !st) return st;
    s.countdown_ms = static_cast<uint64_t>(seconds * 1000);
  }
  if (eta != o.end()) {
    if (eta->is_string()) {
      auto ms = parse_datetime_ms(eta->get_ref<const std::string&>());
      if (!ms) return bad(path("eta"), ms.status().message());
      s.eta_ms = *ms;
    } else if (eta->is_number() && eta->get<double>() >= 0 && eta->get<double>() <= kMaxEtaS) {
      s.eta_ms = static_cast<uint64_t>(eta->get<double>() * 1000);
    } else {
      return bad(path("eta"), "must be unix seconds or an RFC 3339 date-time such as \"2026-12-01T18:00:00Z\"");
    }
  }
  for (const char* key : {"time_limit", "soft_time_limit"}) {
    auto it = o.find(key);
    if (it == o.end()) continue;
    double seconds = 0;
    if (Status st = read_seconds(*it, path(key), kMaxLimitS, seconds); !st) return st;
    (std::string_view(key) == "time_limit" ? s.hard_limit_ms : s.soft_limit_ms) = static_cast<uint32_t>(seconds * 1000);
  }
  if (auto it = o.find("traceparent"); it != o.end() && !it->is_null()) {
    if (!it->is_string() || !proto::valid_traceparent(it->get_ref<const std::string&>()))
      return bad(path("traceparent"), kTraceparentForm);
    s.trace = it->get<std::string>();
  }
  if (auto it = o.find("unique_key"); it != o.end() && !it->is_null()) {
    if (!it->is_string() || it->get_ref<const std::string&>().empty() ||
        it->get_ref<const std::string&>().size() > proto::kMaxUniqueKeyBytes)
      return bad(path("unique_key"), "must be a non-empty string of at most " +
                                         std::to_string(proto::kMaxUniqueKeyBytes) + " bytes");
    s.unique_key = it->get<std::string>();
  }
  if (auto it = o.find("on_duplicate"); it != o.end() && !it->is_null()) {
    if (*it == "refuse") s.on_duplicate = static_cast<uint8_t>(proto::UniquePolicy::kRefuse);
    else if (*it == "existing") s.on_duplicate = static_cast<uint8_t>(proto::UniquePolicy::kExisting);
    else return bad(path("on_duplicate"), "must be \"refuse\" (the default: 409) or \"existing\" (answer with the task that holds the key)");
    if (!s.unique_key) return bad(path("on_duplicate"), "only with \"unique_key\"");
  }
  return Status::ok();
}

proto::TaskSpec spec_of(const Scheduling& s, std::string payload) {
  proto::TaskSpec spec;
  spec.queue = s.queue.value_or("");
  spec.kind = s.kind.value_or("");
  spec.ref = s.ref.value_or("");
  spec.payload = std::move(payload);
  spec.priority = s.priority.value_or(-1);
  spec.max_retries = s.max_retries.value_or(-1);
  spec.eta_ms = s.eta_ms.value_or(0);
  spec.countdown_ms = s.countdown_ms.value_or(0);
  spec.hard_limit_ms = s.hard_limit_ms.value_or(0);
  spec.soft_limit_ms = s.soft_limit_ms.value_or(0);
  spec.trace = s.trace.value_or("");
  spec.unique_key = s.unique_key.value_or("");
  spec.on_duplicate = s.on_duplicate;
  return spec;
}

Status check_limits(const Scheduling& s, const std::string& where) {
  if (s.hard_limit_ms && s.soft_limit_ms && *s.hard_limit_ms && *s.soft_limit_ms > *s.hard_limit_ms)
    return bad(field_path(where, "soft_time_limit"), "the soft time limit must not exceed the hard time limit (time_limit)");
  return Status::ok();
}

// --- the four kinds' inputs (worker/kinds/*.cc) ----------------------------------------------

// What a check of one task's input needs: the object its handler receives, where it sits in
// the body, and the fields allowed there besides the kind's own (a seed task's scheduling).
struct KindInput {
  const json& object;
  const std::string& where;
  std::span<const std::string_view> also;
};

Status check_fields(const KindInput& in, std::span<const std::string_view> own, std::string_view what) {
  std::vector<std::string_view> allowed(own.begin(), own.end());
  for (std::string_view field : in.also)
    if (std::find(allowed.begin(), allowed.end(), field) == allowed.end()) allowed.push_back(field);
  return known_fields(in.object, allowed, in.where, what);
}

Status non_empty_string(const KindInput& in, const char* key, const std::string& what) {
  auto it = in.object.find(key);
  if (it == in.object.end()) return bad(field_path(in.where, key), "required: " + what);
  if (!it->is_string() || it->get_ref<const std::string&>().empty())
    return bad(field_path(in.where, key), "must be " + what);
  return Status::ok();
}

Status optional_type(const KindInput& in, const char* key, bool (json::*is)() const noexcept, const char* what) {
  auto it = in.object.find(key);
  if (it != in.object.end() && !((*it).*is)()) return bad(field_path(in.where, key), std::string("must be ") + what);
  return Status::ok();
}

Status check_agent(const KindInput& in) {
  static constexpr std::array<std::string_view, 10> kOwn = {"description", "system",    "model",      "files",      "options",
                                                            "id",          "mode",      "max_steps",  "max_tokens", "max_seconds"};
  if (in.object.contains("prompt"))
    return bad(field_path(in.where, "prompt"), "unknown field: an agent task takes its instructions in \"description\"");
  if (Status s = check_fields(in, kOwn, "an agent task"); !s) return s;
  if (Status s = non_empty_string(in, "description", "a non-empty string (the agent's instructions)"); !s) return s;
  for (const char* key : {"system", "model"}) {
    auto it = in.object.find(key);
    if (it != in.object.end() && !it->is_null() && !it->is_string()) return bad(field_path(in.where, key), "must be a string");
  }
  if (Status s = optional_type(in, "options", &json::is_object, "an object (Ollama's options)"); !s) return s;
  if (auto mode = in.object.find("mode"); mode != in.object.end() && !mode->is_null() && *mode != "agent" && *mode != "chat")
    return bad(field_path(in.where, "mode"), "must be \"agent\" (the default: a coding agent with tools) or \"chat\"");
  for (const char* key : {"max_steps", "max_tokens"}) {
    auto it = in.object.find(key);
    if (it != in.object.end() && !it->is_null() && !(it->is_number_unsigned() && it->get<uint64_t>() > 0))
      return bad(field_path(in.where, key), "must be a whole number > 0");
  }
  if (auto it = in.object.find("max_seconds"); it != in.object.end() && !it->is_null() && !(it->is_number() && it->get<double>() > 0))
    return bad(field_path(in.where, "max_seconds"), "must be a number of seconds > 0");
  if (auto files = in.object.find("files"); files != in.object.end()) {
    if (!files->is_object()) return bad(field_path(in.where, "files"), "must be an object of file name → content");
    for (const auto& [name, content] : files->items())
      if (!content.is_string()) return bad(field_path(in.where, "files") + "[\"" + name.substr(0, 60) + "\"]", "must be a string");
  }
  return Status::ok();
}

Status check_validate(const KindInput& in) {
  static constexpr std::array<std::string_view, 5> kOwn = {"language", "code", "files", "filename", "id"};
  static constexpr std::array<std::string_view, 13> kLanguages = {
      "python", "javascript", "js", "c", "cpp", "c++", "json", "toml", "yaml", "yml", "shell", "sh", "bash"};
  const char* known = "python, javascript, c, cpp, json, toml, yaml, shell";
  if (Status s = check_fields(in, kOwn, "a validation task"); !s) return s;
  auto lang = in.object.find("language");
  if (lang == in.object.end()) return bad(field_path(in.where, "language"), std::string("required (") + known + ")");
  if (!lang->is_string()) return bad(field_path(in.where, "language"), std::string("must be a string (") + known + ")");
  const std::string& language = lang->get_ref<const std::string&>();
  if (std::find(kLanguages.begin(), kLanguages.end(), language) == kLanguages.end())
    return bad(field_path(in.where, "language"), "unknown language " + quote_short(language) + " (" + known + ")");
  const auto code = in.object.find("code");
  const auto files = in.object.find("files");
  if (code != in.object.end() && files != in.object.end())
    return bad(field_path(in.where, "files"), "give code or files, not both");
  if (code != in.object.end()) {
    if (!code->is_string()) return bad(field_path(in.where, "code"), "must be a string (the source to check)");
    return optional_type(in, "filename", &json::is_string, "a string (the name shown in diagnostics)");
  }
  if (files == in.object.end())
    return bad(in.where.empty() ? "code" : in.where, "a validation task needs \"code\" (a string) or \"files\" (an array of paths)");
  if (in.object.contains("filename")) return bad(field_path(in.where, "filename"), "only with \"code\"");
  if (!files->is_array() || files->empty())
    return bad(field_path(in.where, "files"), "must be a non-empty array of paths relative to the worker's workspace");
  for (size_t i = 0; i < files->size(); ++i) {
    const std::string path = field_path(in.where, "files") + "[" + std::to_string(i) + "]";
    const json& f = (*files)[i];
    if (!f.is_string() || f.get_ref<const std::string&>().empty()) return bad(path, "must be a non-empty string");
    const std::filesystem::path p = std::filesystem::path(f.get<std::string>()).lexically_normal();
    if (p.is_absolute() || (!p.empty() && *p.begin() == ".."))
      return bad(path, quote_short(f.get<std::string>()) + " is outside the workspace (paths are relative to the worker's workspace)");
  }
  return Status::ok();
}

Status check_announced(const KindInput& in, const char* key, ClusterView& cluster, ClusterView::Announced what) {
  const char* noun = what == ClusterView::Announced::kTestProfiles ? "test profile" : "MCP server";
  const char* config = what == ClusterView::Announced::kTestProfiles ? "[[test_profile]]" : "[[mcp_server]]";
  auto it = in.object.find(key);
  if (it == in.object.end() || !it->is_string() || it->get_ref<const std::string&>().empty())
    return bad(field_path(in.where, key), std::string(it == in.object.end() ? "required: a" : "must be a") +
                                              " non-empty string (the name of a " + noun + " of a worker)");
  const std::string& name = it->get_ref<const std::string&>();
  auto names = cluster.announced(what, name);
  if (!names) return names.status();
  if (names->empty())
    return bad(field_path(in.where, key), std::string("no worker announces ") + noun + "s (configure " + config +
                                              " on a worker): " + quote_short(name) + " cannot run");
  if (!names->count(name))
    return bad(field_path(in.where, key), "unknown " + std::string(noun) + " " + quote_short(name) + " (" + joined(*names) + ")");
  return Status::ok();
}

Status check_test(const KindInput& in, ClusterView& cluster) {
  static constexpr std::array<std::string_view, 2> kOwn = {"profile", "id"};
  for (const char* key : {"argv", "command", "cmd", "args"})
    if (in.object.contains(key))
      return bad(field_path(in.where, key), "a test task names a profile of the worker, never a command");
  if (Status s = check_fields(in, kOwn, "a test task"); !s) return s;
  return check_announced(in, "profile", cluster, ClusterView::Announced::kTestProfiles);
}

Status check_mcp(const KindInput& in, ClusterView& cluster) {
  static constexpr std::array<std::string_view, 7> kOwn = {"server", "method", "tool", "arguments", "uri", "cursor", "id"};
  if (Status s = check_fields(in, kOwn, "an MCP task"); !s) return s;
  std::string method = "tools/call";
  if (auto m = in.object.find("method"); m != in.object.end()) {
    if (!m->is_string()) return bad(field_path(in.where, "method"), "must be a string");
    method = m->get<std::string>();
  }
  const bool list = method == "tools/list" || method == "resources/list" || method == "prompts/list";
  if (method != "tools/call" && method != "resources/read" && !list)
    return bad(field_path(in.where, "method"), "unknown method " + quote_short(method) +
                                                   " (tools/call, tools/list, resources/read, resources/list, prompts/list)");
  auto not_for = [&](std::initializer_list<const char*> keys) -> Status {
    for (const char* key : keys)
      if (in.object.contains(key)) return bad(field_path(in.where, key), "not a field of a " + method + " task");
    return Status::ok();
  };
  if (method == "tools/call") {
    if (Status s = not_for({"uri", "cursor"}); !s) return s;
    if (Status s = non_empty_string(in, "tool", "a non-empty string (the name of the tool to call)"); !s) return s;
    if (Status s = optional_type(in, "arguments", &json::is_object, "an object (the tool's arguments)"); !s) return s;
  } else if (method == "resources/read") {
    if (Status s = not_for({"tool", "arguments", "cursor"}); !s) return s;
    if (Status s = non_empty_string(in, "uri", "a non-empty string (the resource's URI)"); !s) return s;
  } else {
    if (Status s = not_for({"tool", "arguments", "uri"}); !s) return s;
    if (Status s = optional_type(in, "cursor", &json::is_string, "a string"); !s) return s;
  }
  return check_announced(in, "server", cluster, ClusterView::Announced::kMcpServers);
}

bool is_seed_kind(const std::string& kind) {
  return kind == "agent" || kind == "validate" || kind == "test" || kind == "mcp";
}

// Checks a task's input when its kind is one of the four; any other kind takes any input.
Status check_input(const std::string& kind, const KindInput& in, ClusterView& cluster) {
  if (kind == "agent") return check_agent(in);
  if (kind == "validate") return check_validate(in);
  if (kind == "test") return check_test(in, cluster);
  if (kind == "mcp") return check_mcp(in, cluster);
  return Status::ok();
}

// The kind the router will run the task as: its own, else its queue's default; nullopt for a
// queue the router does not declare (it refuses the task itself, 422).
Result<std::optional<std::string>> effective_kind(const Scheduling& s, ClusterView& cluster) {
  if (s.kind) return s.kind;
  return cluster.default_kind(s.queue.value_or(std::string(kDefaultQueue)));
}

// A generic task's payload, checked for its kind.
Status check_payload(const Scheduling& s, const json* payload, const std::string& where, ClusterView& cluster) {
  auto kind = effective_kind(s, cluster);
  if (!kind) return kind.status();
  if (!kind->has_value() || !is_seed_kind(**kind)) return Status::ok();
  const std::string path = field_path(where, "payload");
  if (!payload) return bad(path, "required: the input of the " + **kind + " kind, a JSON object (docs/KINDS.md)");
  if (!payload->is_object()) return bad(path, "must be a JSON object (the input of the " + **kind + " kind)");
  return check_input(**kind, KindInput{*payload, path, {}}, cluster);
}

// {"budget": {"tokens": N, "run_seconds": S}}: the batch's budget; each part optional, at
// least one given, null = none.
Status read_budget(const json& body, Submission& out) {
  auto it = body.find("budget");
  if (it == body.end() || it->is_null()) return Status::ok();
  if (!it->is_object()) return bad("budget", "must be an object: {\"tokens\": N, \"run_seconds\": S}");
  for (const auto& [key, value] : it->items())
    if (key != "tokens" && key != "run_seconds")
      return bad("budget." + valid_utf8(key.substr(0, 60)), "unknown: a budget has tokens and run_seconds");
  if (auto t = it->find("tokens"); t != it->end() && !t->is_null()) {
    if (!t->is_number_integer() || t->get<int64_t>() <= 0)
      return bad("budget.tokens", "must be a whole number > 0 (model tokens the batch may spend)");
    out.budget_tokens = t->get<uint64_t>();
  }
  if (auto r = it->find("run_seconds"); r != it->end() && !r->is_null()) {
    if (!r->is_number() || !(r->get<double>() > 0) || r->get<double>() > kMaxLimitS)
      return bad("budget.run_seconds", "must be a number of seconds > 0 (the run time its tasks may add up to)");
    out.budget_run_ms = std::max<uint64_t>(1, static_cast<uint64_t>(r->get<double>() * 1000));
  }
  if (!out.budget_tokens && !out.budget_run_ms) return bad("budget", "give tokens, run_seconds or both");
  return Status::ok();
}

Result<uint32_t> read_parallel(const json& body) {
  auto it = body.find("parallel");
  if (it == body.end() || it->is_null()) return uint32_t{0};
  if (!it->is_number_integer() || it->get<int64_t>() < 0) return bad("parallel", "must be a non-negative integer");
  return static_cast<uint32_t>(std::min<int64_t>(it->get<int64_t>(), 1'000'000));
}

Status read_webhook(const json& body, Submission& out) {
  auto it = body.find("webhook");
  if (it == body.end() || it->is_null()) return Status::ok();
  auto url = parse_webhook(*it);
  if (!url) return url.status();
  out.webhook_url = std::move(url.value());
  return Status::ok();
}

Status check_tasks_array(const json& body, size_t max_tasks) {
  auto it = body.find("tasks");
  if (it == body.end() || !it->is_array() || it->empty()) return bad("tasks", "must be a non-empty array of task objects");
  if (it->size() > max_tasks)
    return Status(Code::kTooLarge, "tasks: a batch holds at most " + std::to_string(max_tasks) + " tasks, got " +
                                       std::to_string(it->size()));
  return Status::ok();
}

}  // namespace

Status apply_traceparent(std::string_view header, Submission& submission) {
  if (header.empty()) return Status::ok();
  if (!proto::valid_traceparent(header)) return bad("traceparent header", kTraceparentForm);
  for (auto& t : submission.tasks)
    if (t.trace.empty()) t.trace = std::string(header);
  return Status::ok();
}

namespace {

// `when` and `depends_on` of a task (docs/WORKFLOWS.md): each dependency is a task id, or
// the `id` of another task of the same request (`refs`: id → position; nullptr: none).
Status read_dependencies(const json& o, const std::string& where, const std::map<std::string, uint32_t>* refs,
                         proto::TaskSpec& t) {
  auto path = [&](std::string_view key) { return field_path(where, key); };
  if (auto it = o.find("when"); it != o.end()) {
    auto when = it->is_string() ? proto::parse_trigger(it->get<std::string>()) : std::nullopt;
    if (!when) return bad(path("when"), "must be \"success\", \"failure\" or \"always\"");
    t.when = static_cast<uint8_t>(*when);
  }
  if (auto it = o.find("depends_on"); it != o.end()) {
    if (!it->is_array() || it->size() > proto::kMaxDependencies)
      return bad(path("depends_on"), "must be an array of at most " + std::to_string(proto::kMaxDependencies) +
                                         " task ids (or ids of tasks of this request)");
    for (size_t i = 0; i < it->size(); ++i) {
      const json& d = (*it)[i];
      const std::string at = path("depends_on") + "[" + std::to_string(i) + "]";
      if (!d.is_string()) return bad(at, "must be a string: a task id, or the id of a task of this request");
      const std::string& name = d.get_ref<const std::string&>();
      if (refs)
        if (auto r = refs->find(name); r != refs->end()) {
          t.after_index.push_back(r->second);
          continue;
        }
      auto id = Id::parse(name);
      if (!id) return bad(at, quote_short(name) + " is neither a task id nor the id of a task of this request");
      t.after.push_back(*id);
    }
  }
  if (auto it = o.find("depends_on_group"); it != o.end()) {
    auto id = it->is_string() ? Id::parse(it->get<std::string>()) : std::nullopt;
    if (!id) return bad(path("depends_on_group"), "must be a group id");
    t.after_group = *id;
  }
  const bool any = !t.after.empty() || !t.after_index.empty() || !t.after_group.is_nil();
  if (!any && o.contains("when") && where.find("callbacks") == std::string::npos)
    return bad(path("when"), "only with depends_on (or in callbacks)");
  return Status::ok();
}

// A task of the group form (or a callback), its fields checked: its scheduling over the
// group's, its limits, and its payload for its kind.
Result<proto::TaskSpec> member_spec(const json& t, const std::string& where, const Scheduling& group,
                                    ClusterView& cluster) {
  Scheduling s;
  if (Status st = read_scheduling(t, where, true, true, s); !st) return st;
  s.inherit(group);
  if (Status st = check_limits(s, where); !st) return st;
  const auto payload = t.find("payload");
  const json* p = payload == t.end() ? nullptr : &*payload;
  if (Status st = check_payload(s, p, where, cluster); !st) return st;
  return spec_of(s, p ? p->dump() : "null");
}

}  // namespace

Result<Submission> parse_api_submission(const json& body, ClusterView& cluster, size_t max_tasks) {
  Submission out;
  if (Status s = read_webhook(body, out); !s) return s;
  if (!body.contains("tasks")) {
    if (Status s = misplaced(body, "", true, false); !s) return s;
    if (Status s = known_fields(body, kApiSingleFields, "", "a task"); !s) return s;
    Scheduling s;
    if (Status st = read_scheduling(body, "", true, true, s); !st) return st;
    if (Status st = check_limits(s, ""); !st) return st;
    const auto payload = body.find("payload");
    const json* p = payload == body.end() ? nullptr : &*payload;
    if (Status st = check_payload(s, p, "", cluster); !st) return st;
    out.tasks.push_back(spec_of(s, p ? p->dump() : "null"));
    if (Status st = read_dependencies(body, "", nullptr, out.tasks.back()); !st) return st;
    return out;
  }
  if (Status s = misplaced(body, "", true, true); !s) return s;
  if (Status s = known_fields(body, kApiGroupFields, "", "the group form"); !s) return s;
  if (Status s = check_tasks_array(body, max_tasks); !s) return s;
  auto parallel = read_parallel(body);
  if (!parallel) return parallel.status();
  if (Status s = read_budget(body, out); !s) return s;
  out.group = true;
  out.parallel = *parallel;
  Scheduling group;
  if (Status st = read_scheduling(body, "", true, false, group); !st) return st;
  const json& tasks = body["tasks"];
  out.tasks.reserve(tasks.size());
  for (size_t i = 0; i < tasks.size(); ++i) {
    const json& t = tasks[i];
    const std::string where = index_path(i);
    if (!t.is_object()) return bad(where, "each task must be a JSON object");
    if (Status s = misplaced(t, where, false, true); !s) return s;
    if (Status s = known_fields(t, kApiTaskFields, where, "a task"); !s) return s;
    auto spec = member_spec(t, where, group, cluster);
    if (!spec) return spec.status();
    out.tasks.push_back(std::move(*spec));
  }
  // Dependencies once every task is read: a task may name a later one by its id.
  std::map<std::string, uint32_t> refs;
  for (size_t i = 0; i < out.tasks.size(); ++i)
    if (!out.tasks[i].ref.empty()) refs.emplace(out.tasks[i].ref, static_cast<uint32_t>(i));
  for (size_t i = 0; i < tasks.size(); ++i)
    if (Status st = read_dependencies(tasks[i], index_path(i), &refs, out.tasks[i]); !st) return st;
  if (auto it = body.find("chain"); it != body.end()) {
    if (!it->is_boolean()) return bad("chain", "must be true or false");
    if (it->get<bool>())  // each task runs after the one before it, with its result
      for (size_t i = 1; i < out.tasks.size(); ++i) out.tasks[i].after_index.push_back(static_cast<uint32_t>(i - 1));
  }
  if (auto it = body.find("callbacks"); it != body.end()) {
    if (!it->is_array() || it->empty() || it->size() > 100)
      return bad("callbacks", "must be an array of 1..100 task objects, run when the whole group has ended");
    for (size_t i = 0; i < it->size(); ++i) {
      const json& t = (*it)[i];
      const std::string where = "callbacks[" + std::to_string(i) + "]";
      if (!t.is_object()) return bad(where, "each callback must be a JSON object");
      if (Status st = known_fields(t, kApiCallbackFields, where, "a callback"); !st) return st;
      auto spec = member_spec(t, where, group, cluster);
      if (!spec) return spec.status();
      out.callbacks.push_back(std::move(*spec));
      if (Status st = read_dependencies(t, where, nullptr, out.callbacks.back()); !st) return st;
    }
  }
  return out;
}

Result<Submission> parse_seed_batch(const json& body, const std::string& queue, ClusterView& cluster, size_t max_tasks) {
  Submission out;
  out.group = true;
  if (Status s = read_webhook(body, out); !s) return s;
  if (body.contains("queue"))
    return bad("queue", "this endpoint's queue is " + queue + "; POST /api/v1/tasks chooses any queue");
  if (Status s = misplaced(body, "", true, true); !s) return s;
  if (Status s = known_fields(body, kSeedBatchFields, "", "a batch"); !s) return s;
  if (Status s = check_tasks_array(body, max_tasks); !s) return s;
  auto parallel = read_parallel(body);
  if (!parallel) return parallel.status();
  if (Status s = read_budget(body, out); !s) return s;
  out.parallel = *parallel;
  Scheduling group;
  if (Status st = read_scheduling(body, "", false, false, group); !st) return st;
  group.queue = queue;
  const json& tasks = body["tasks"];
  out.tasks.reserve(tasks.size());
  for (size_t i = 0; i < tasks.size(); ++i) {
    const json& t = tasks[i];
    const std::string where = index_path(i);
    if (!t.is_object()) return bad(where, "each task must be a JSON object");
    Scheduling s;
    if (Status st = read_scheduling(t, where, false, true, s); !st) return st;
    s.inherit(group);
    if (Status st = check_limits(s, where); !st) return st;
    auto kind = effective_kind(s, cluster);
    if (!kind) return kind.status();
    if (kind->has_value() && is_seed_kind(**kind)) {
      if (t.contains("queue"))
        return bad(field_path(where, "queue"), "this endpoint's queue is " + queue + "; POST /api/v1/tasks chooses any queue");
      if (Status st = misplaced(t, where, false, true); !st) return st;
      if (Status st = check_input(**kind, KindInput{t, where, kSeedTaskFields}, cluster); !st) return st;
    }
    out.tasks.push_back(spec_of(s, json_text(t)));  // the guide's tasks are handed to the handler whole
  }
  return out;
}

Result<uint64_t> parse_datetime_ms(std::string_view text) {
  const std::string shown = "'" + std::string(text.substr(0, 60)) + "'";
  auto invalid = [&](const std::string& why) {
    return Status(Code::kBadRequest, shown + " is not a date-time: " + why +
                                         " (RFC 3339, e.g. 2026-12-01T18:00:00Z or 2026-12-01T20:00:00.5+02:00)");
  };
  size_t pos = 0;
  auto digits = [&](size_t n, int& out) {
    if (pos + n > text.size()) return false;
    out = 0;
    for (size_t i = 0; i < n; ++i) {
      const char c = text[pos + i];
      if (c < '0' || c > '9') return false;
      out = out * 10 + (c - '0');
    }
    pos += n;
    return true;
  };
  auto expect = [&](char c) {
    if (pos >= text.size() || text[pos] != c) return false;
    ++pos;
    return true;
  };
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!digits(4, year) || !expect('-') || !digits(2, month) || !expect('-') || !digits(2, day))
    return invalid("it must start with a date YYYY-MM-DD");
  if (pos >= text.size() || (text[pos] != 'T' && text[pos] != 't' && text[pos] != ' '))
    return invalid("a time must follow the date after 'T'");
  ++pos;
  if (!digits(2, hour) || !expect(':') || !digits(2, minute)) return invalid("the time must be HH:MM[:SS[.fraction]]");
  if (expect(':') && !digits(2, second)) return invalid("the seconds must be two digits");
  uint64_t fraction_ms = 0;
  if (expect('.') || expect(',')) {
    size_t n = 0;
    uint64_t scale = 100;
    for (; pos < text.size() && text[pos] >= '0' && text[pos] <= '9'; ++pos, ++n) {
      fraction_ms += static_cast<uint64_t>(text[pos] - '0') * scale;
      scale /= 10;
    }
    if (n == 0 || n > 9) return invalid("a fraction of a second has 1 to 9 digits");
  }
  int64_t offset_min = 0;  // Z
  if (!expect('Z') && !expect('z')) {
    if (pos == text.size()) return invalid("it needs a time zone, Z or an offset such as +02:00");
    if (text[pos] != '+' && text[pos] != '-') return invalid("unexpected text after the time");
    const int sign = text[pos++] == '-' ? -1 : 1;
    int oh = 0, om = 0;
    if (!digits(2, oh)) return invalid("the offset must be +HH:MM or -HH:MM");
    if (expect(':') ? !digits(2, om) : pos < text.size() && !digits(2, om))
      return invalid("the offset must be +HH:MM or -HH:MM");
    if (oh > 23 || om > 59) return invalid("the offset is out of range");
    offset_min = sign * (oh * 60 + om);
  }
  if (pos != text.size()) return invalid("unexpected text after the time zone");
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  if (month < 1 || month > 12) return invalid("the month is out of range");
  if (day < 1 || day > kDays[month - 1] + (month == 2 && leap ? 1 : 0)) return invalid("the day is out of range");
  if (hour > 23 || minute > 59 || second > 60) return invalid("the time is out of range");
  // Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
  const int y = year - (month <= 2 ? 1 : 0);
  const int era = y / 400;
  const int yoe = y - era * 400;
  const int doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
  const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  const int64_t days = int64_t{era} * 146097 + doe - 719468;
  const int64_t seconds = days * 86400 + hour * 3600 + minute * 60 + second - offset_min * 60;
  if (seconds < 0) return invalid("it is before 1970-01-01T00:00:00Z");
  return static_cast<uint64_t>(seconds) * 1000 + fraction_ms;
}

}  // namespace zb::store
