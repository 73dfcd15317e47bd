#include "common/task_json.h"

#include <cmath>

namespace zb {

using nlohmann::json;

namespace {
json text_or_null(const std::string& text) { return text.empty() ? json(nullptr) : json(text); }
}  // namespace

std::string seed_status(TaskState s) {
  switch (s) {
    case TaskState::kSucceeded: return "completed";
    case TaskState::kFailed: return "failed";
    case TaskState::kStarted: return "running";
    case TaskState::kRetrying: return "retrying";
    case TaskState::kRevoked: return "revoked";
    case TaskState::kQueued:
    case TaskState::kWaiting:
    case TaskState::kScheduled: return "pending";
  }
  return "pending";
}

json json_or_text(const std::string& text) {
  if (text.empty()) return nullptr;
  json j = json::parse(text, nullptr, false);
  return j.is_discarded() ? json(text) : j;
}

json task_json(const proto::TaskRecord& t, bool with_payload, uint64_t runtime_us) {
  json j = {{"task_id", t.id.to_string()},
            {"id", text_or_null(t.ref)},
            {"status", seed_status(t.state)},
            {"state", state_name(t.state)},
            {"queue", t.queue},
            {"kind", t.kind},
            {"attempt", t.attempt},
            {"group_id", t.group.is_nil() ? json(nullptr) : json(t.group.to_string())},
            {"worker", text_or_null(t.worker)},
            {"result", json_or_text(t.result)},
            {"error", text_or_null(t.error)},
            {"created_ms", t.created_ms},
            {"started_ms", t.started_ms},
            {"finished_ms", t.finished_ms},
            {"runtime_us", runtime_us},
            {"traceparent", text_or_null(t.trace)},
            // The trace id of a W3C traceparent: its 32 hex digits after the version.
            {"trace_id", t.trace.size() >= 35 ? json(t.trace.substr(3, 32)) : json(nullptr)},
            {"unique_key", text_or_null(t.unique_key)}};
  if (with_payload) j["payload"] = json_or_text(t.payload);
  if (!t.deps.empty()) {
    // What it waits for (docs/WORKFLOWS.md); `inputs` once they have ended.
    auto deps = proto::unpack_dependencies(t.deps);
    if (deps) {
      json after = json::array();
      for (const Id& id : deps->tasks) after.push_back(id.to_string());
      j["depends_on"] = std::move(after);
      j["depends_on_group"] = deps->group.is_nil() ? json(nullptr) : json(deps->group.to_string());
      j["when"] = proto::trigger_name(static_cast<proto::Trigger>(deps->when));
    }
    if (with_payload && !t.inputs.empty()) j["inputs"] = json_or_text(t.inputs);
  }
  return j;
}

json group_json(const proto::GroupRecord& g) {
  const double progress = g.total ? std::round(1000.0 * g.completed() / g.total) / 10 : (g.sealed ? 100.0 : 0.0);
  json j = {{"group_id", g.id.to_string()}, {"total", g.total},       {"completed", g.completed()},
            {"successful", g.succeeded},    {"failed", g.failed},     {"revoked", g.revoked},
            {"running", g.running},         {"parallel", g.parallel}, {"progress", progress},
            {"ready", g.ready()},           {"revoked_at_ms", g.revoked_ms}};
  if (g.budget_tokens || g.budget_run_ms)  // a batch budget (docs/kinds/agent.md)
    j["budget"] = {{"tokens", g.budget_tokens ? json(g.budget_tokens) : json(nullptr)},
                   {"run_seconds", g.budget_run_ms ? json(g.budget_run_ms / 1000.0) : json(nullptr)},
                   {"spent_tokens", g.spent_tokens},
                   {"spent_run_seconds", g.spent_run_ms / 1000.0},
                   {"spent_at_ms", g.budget_spent_ms ? json(g.budget_spent_ms) : json(nullptr)}};
  return j;
}

}  // namespace zb
