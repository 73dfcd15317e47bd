// Batches and groups: the seed's batch submissions and the two views of a group (the seed's,
// with its results, and the API's, with its tasks).
#include <cstdint>

#include <nlohmann/json.hpp>

#include "store/http_api.h"
#include "store/http_json.h"
#include "store/read_your_writes.h"
#include "store/task_request.h"

namespace zb::store {
namespace {

using nlohmann::json;

// POST /batch[/celery]/<endpoint>: the guide's batch submission to the endpoint's queue.
HttpServer::Handler seed_batch_handler(const Api& api, const std::string& queue, const std::string& prefix) {
  return [api, queue, prefix](const httplib::Request& req, httplib::Response& res) {
    auto body = parse_body(req);
    if (!body) return send_error(res, body.status());
    auto key = submission_key(req, *body);
    if (!key) return send_error(res, key.status());
    auto batch = parse_seed_batch(*body, queue, *api.cluster, api.limits.max_batch_tasks);
    if (!batch) return send_submission_error(res, batch.status(), *key);
    if (Status s = apply_traceparent(req.get_header_value("traceparent"), *batch); !s) return send_submission_error(res, s, *key);
    if (Status s = check_webhook(api, batch->webhook_url); !s) return send_submission_error(res, s, *key);
    GroupOptions go;
    go.parallel = batch->parallel;
    go.budget_tokens = batch->budget_tokens;
    go.budget_run_ms = batch->budget_run_ms;
    go.chunk_tasks = batch->tasks.size();  // one message: the router accepts or refuses it whole
    go.idempotency_key = *key;
    auto receipt = api.pool.with([&](Client& c) { return c.submit_group(batch->tasks, go); });
    if (!receipt) return send_submission_error(res, receipt.status(), *key);
    if (Status s = record_webhook(api, HookKind::kGroup, receipt->group, batch->webhook_url); !s) return send_error(res, s);
    api.writes->acknowledged(receipt->seq);
    const std::string gid = receipt->group.to_string();
    send_submitted(res, 200,
                   json{{"backend", "zbatch"}, {"group_id", gid}, {"status", "submitted"},
                        {"total_tasks", batch->tasks.size()}, {"monitor_url", prefix + "group/" + gid}},
                   *key);
  };
}

// A task in the seed's group view.
json seed_result_json(const TaskStatus& t) {
  return json{{"task_id", t.id.to_string()}, {"id", t.ref.empty() ? json(nullptr) : json(t.ref)},
              {"status", seed_status(t.state)}, {"result", json_or_text(t.result)},
              {"error", t.error.empty() ? json(nullptr) : json(t.error)}};
}

// GET .../group/{id}?offset=&limit=: the counters and a page of the group's tasks, as the
// seed's `results` or (`full`) the API's `tasks`.
HttpServer::Handler group_handler(const Api& api, bool full) {
  return [api, full](const httplib::Request& req, httplib::Response& res) {
    auto id = Id::parse(req.matches[1].str());
    if (!id) return send_error(res, Status(Code::kNotFound, "no group " + req.matches[1].str()));
    auto offset = query_size(req, "offset", 0, SIZE_MAX);
    auto limit = query_size(req, "limit", api.limits.max_group_results, api.limits.max_group_results);
    if (!offset) return send_error(res, offset.status());
    if (!limit) return send_error(res, limit.status());
    auto group = read_group(api, *id);
    if (!group) return send_error(res, group.status());
    auto tasks = api.db.group_tasks(*id, *offset, *limit);
    if (!tasks) return send_error(res, tasks.status());
    json out = group_json(*group);
    json results = json::array();
    for (const auto& t : *tasks) results.push_back(full ? task_status_json(t, false) : seed_result_json(t));
    out[full ? "tasks" : "results"] = results;
    if (full) {
      out["created_ms"] = group->created_ms;
      out["finished_ms"] = group->finished_ms;
      if (auto hook = webhook_view(api, HookKind::kGroup, *id)) out["webhook"] = std::move(*hook);
    }
    out["offset"] = *offset;
    out["results_truncated"] = *offset + tasks->size() < group->total;
    send_json(res, 200, out);
  };
}

}  // namespace

void install_batch_routes(HttpServer& server, const Api& api) {
  struct SeedEndpoint {
    const char* path;
    const char* queue;
  };
  for (const auto& e : {SeedEndpoint{"agent-tasks", "agent_tasks"}, {"validation", "validation"},
                        {"tests", "tests"}, {"mcp-operations", "mcp_operations"}}) {
    for (const std::string prefix : {"/batch/celery/", "/batch/"}) server.Post(prefix + e.path, seed_batch_handler(api, e.queue, prefix));
  }
  for (const std::string prefix : {"/batch/celery/", "/batch/"}) server.Get(prefix + "group/([^/]+)", group_handler(api, false));
  server.Get("/api/v1/groups/([^/]+)", group_handler(api, true));
}

}  // namespace zb::store
