// Tasks: the generic submission (one task, or many as a group) and the two views of a task
// (the seed's, and the API's with its payload).
#include <nlohmann/json.hpp>

#include "common/text.h"
#include "store/http_api.h"
#include "store/http_json.h"
#include "store/read_your_writes.h"
#include "store/task_request.h"

namespace zb::store {
namespace {

using nlohmann::json;

// POST /api/v1/tasks: one task ({"queue","kind","payload",...}) or many ({"tasks":[...]}).
void submit_tasks(const Api& api, const httplib::Request& req, httplib::Response& res) {
  auto body = parse_body(req);
  if (!body) return send_error(res, body.status());
  auto key = submission_key(req, *body);
  if (!key) return send_error(res, key.status());
  auto submission = parse_api_submission(*body, *api.cluster, api.limits.max_batch_tasks);
  if (!submission) return send_submission_error(res, submission.status(), *key);
  if (Status s = apply_traceparent(req.get_header_value("traceparent"), *submission); !s) return send_submission_error(res, s, *key);
  if (Status s = check_webhook(api, submission->webhook_url); !s) return send_submission_error(res, s, *key);
  if (!submission->group) {
    auto r = api.pool.with([&](Client& c) { return c.submit(submission->tasks.front(), *key); });
    if (!r) return send_submission_error(res, r.status(), *key);
    if (Status s = record_webhook(api, HookKind::kTask, r->task, submission->webhook_url); !s) return send_error(res, s);
    api.writes->acknowledged(r->seq);
    const std::string id = r->task.to_string();
    // 200 for an answer that made no task: a repeat of the idempotency key, or the task that
    // holds the unique key (on_duplicate = existing).
    return send_submitted(res, r->duplicate || r->existing ? 200 : 201,
                          json{{"task_id", id}, {"url", "/api/v1/tasks/" + id}, {"duplicate", r->duplicate},
                               {"existing", r->existing}},
                          *key);
  }
  GroupOptions go;
  go.parallel = submission->parallel;
  go.chunk_tasks = submission->tasks.size();
  go.idempotency_key = *key;
  go.callbacks = submission->callbacks;
  go.budget_tokens = submission->budget_tokens;
  go.budget_run_ms = submission->budget_run_ms;
  auto receipt = api.pool.with([&](Client& c) { return c.submit_group(submission->tasks, go); });
  if (!receipt) return send_submission_error(res, receipt.status(), *key);
  if (Status s = record_webhook(api, HookKind::kGroup, receipt->group, submission->webhook_url); !s)
    return send_error(res, s);
  api.writes->acknowledged(receipt->seq);
  json ids = json::array();
  for (const auto& id : receipt->tasks) ids.push_back(id.to_string());
  json out{{"group_id", receipt->group.to_string()}, {"task_ids", ids},
           {"url", "/api/v1/groups/" + receipt->group.to_string()}, {"duplicate", receipt->duplicate}};
  if (!receipt->callbacks.empty()) {
    json cbs = json::array();
    for (const auto& id : receipt->callbacks) cbs.push_back(id.to_string());
    out["callback_ids"] = std::move(cbs);
  }
  send_submitted(res, receipt->duplicate ? 200 : 201, out, *key);
}

// GET .../task/{id}: the task view, with its payload when `full`.
HttpServer::Handler task_handler(const Api& api, bool full) {
  return [api, full](const httplib::Request& req, httplib::Response& res) {
    auto id = Id::parse(req.matches[1].str());
    if (!id) return send_error(res, Status(Code::kNotFound, "no task " + req.matches[1].str()));
    auto t = read_task(api, *id);
    if (!t) return send_error(res, t.status());
    json out = task_status_json(*t, full);
    if (full)
      if (auto hook = webhook_view(api, HookKind::kTask, *id)) out["webhook"] = std::move(*hook);
    // A dependant's inputs (docs/WORKFLOWS.md) are in the router's record only: asked for
    // them once it has been released.
    if (full && !t->deps.empty() && t->state != TaskState::kWaiting)
      if (auto rec = api.pool.with([&](Client& c) { return c.status(*id); }); rec && !rec->inputs.empty()) {
        json inputs = json::parse(rec->inputs, nullptr, false);
        out["inputs"] = inputs.is_discarded() ? json(valid_utf8(rec->inputs)) : std::move(inputs);
      }
    send_json(res, 200, out);
  };
}

}  // namespace

void install_task_routes(HttpServer& server, const Api& api) {
  for (const std::string prefix : {"/batch/celery/", "/batch/"}) server.Get(prefix + "task/([^/]+)", task_handler(api, false));
  server.Get("/api/v1/tasks/([^/]+)", task_handler(api, true));
  server.Post("/api/v1/tasks", [api](const httplib::Request& req, httplib::Response& res) { submit_tasks(api, req, res); });
}

}  // namespace zb::store
