// Inspection and control, forwarded to the router: workers, queues, ping, inspect, purge, dead
// letters, revoke and retry of a task, and the worker actions (shutdown, pool size). The
// router's reply is the answer; the store checks the request's body first.
#include <nlohmann/json.hpp>

#include "common/text.h"
#include "store/control_request.h"
#include "store/http_api.h"
#include "store/http_json.h"

namespace zb::store {
namespace {

using nlohmann::json;

// Sends the router's reply to `op` (with `args`) as the answer.
void reply_from_router(ClientPool& pool, const std::string& op, const std::string& args, httplib::Response& res) {
  auto reply = pool.with([&](Client& c) { return c.control(op, args); });
  if (!reply) return send_error(res, reply.status());
  send_json(res, 200, json::parse(*reply, nullptr, false));
}

// A route answering `op` without arguments: the whole reply, or its member `pick`.
HttpServer::Handler forward(ClientPool& pool, const std::string& op, const std::string& pick) {
  return [&pool, op, pick](const httplib::Request&, httplib::Response& res) {
    auto reply = pool.with([&](Client& c) { return c.control(op, "{}"); });
    if (!reply) return send_error(res, reply.status());
    json j = json::parse(*reply, nullptr, false);
    send_json(res, 200, pick.empty() ? j : j[pick]);
  };
}

void install_inspection(HttpServer& server, ClientPool& pool) {
  server.Get("/api/v1/workers", forward(pool, "inspect.stats", "workers"));
  server.Get("/api/v1/queues", forward(pool, "inspect.queues", "queues"));
  server.Get("/api/v1/ping", forward(pool, "ping", ""));
  server.Get("/api/v1/inspect/([^/]+)", [&pool](const httplib::Request& req, httplib::Response& res) {
    const std::string what = req.matches[1].str();
    if (what != "active" && what != "reserved" && what != "scheduled" && what != "stats" && what != "registered" &&
        what != "queues" && what != "failed")
      return send_error(res, Status(Code::kNotFound, "inspect what? active|reserved|scheduled|stats|registered|queues|failed"));
    forward(pool, "inspect." + what, "")(req, res);
  });
}

// Dead letters: GET /api/v1/dead?queue=Q&limit=N&after=ID; POST /api/v1/dead/retry {"queue","limit"}.
void install_dead_letters(HttpServer& server, ClientPool& pool) {
  server.Get("/api/v1/dead", [&pool](const httplib::Request& req, httplib::Response& res) {
    json args = json::object();
    if (req.has_param("queue")) args["queue"] = req.get_param_value("queue");
    if (req.has_param("after")) args["after"] = req.get_param_value("after");
    auto limit = query_size(req, "limit", 100, 1000);
    if (!limit) return send_error(res, limit.status());
    if (*limit == 0) return send_error(res, Status(Code::kBadRequest, "limit must be 1..1000"));
    args["limit"] = *limit;
    reply_from_router(pool, "inspect.failed", json_text(args), res);
  });
  server.Post("/api/v1/dead/retry", [&pool](const httplib::Request& req, httplib::Response& res) {
    auto body = parse_optional_body(req);
    if (!body) return send_error(res, body.status());
    // The router checks the values (queue known, limit in range).
    auto args = dead_retry_args(*body);
    if (!args) return send_error(res, args.status());
    reply_from_router(pool, "retry.failed", json_text(*args), res);
  });
}

void install_changes(HttpServer& server, ClientPool& pool) {
  server.Post("/api/v1/purge", [&pool](const httplib::Request& req, httplib::Response& res) {
    auto body = parse_optional_body(req);
    if (!body) return send_error(res, body.status());
    auto args = purge_args(*body);
    if (!args) return send_error(res, args.status());
    reply_from_router(pool, "purge", json_text(*args), res);
  });
  // POST /api/v1/tasks/{id}/revoke {"terminate": bool} and /retry {}.
  for (const std::string op : {"revoke", "retry"}) {
    server.Post("/api/v1/tasks/([^/]+)/" + op, [&pool, op](const httplib::Request& req, httplib::Response& res) {
      auto body = parse_optional_body(req);
      if (!body) return send_error(res, body.status());
      auto args = task_control_args(op, req.matches[1].str(), *body);
      if (!args) return send_error(res, args.status());
      reply_from_router(pool, op, json_text(*args), res);
    });
  }
  // POST /api/v1/workers/{name}/shutdown and /pool {"delta": N}.
  for (const std::string action : {"shutdown", "pool"}) {
    server.Post("/api/v1/workers/([^/]+)/" + action, [&pool, action](const httplib::Request& req, httplib::Response& res) {
      auto body = action == "pool" ? parse_body(req) : parse_optional_body(req);
      if (!body) return send_error(res, body.status());
      auto args = worker_control_args(action, req.matches[1].str(), *body);
      if (!args) return send_error(res, args.status());
      reply_from_router(pool, "worker." + action, json_text(*args), res);
    });
  }
}

}  // namespace

void install_control_routes(HttpServer& server, ClientPool& pool) {
  install_inspection(server, pool);
  install_dead_letters(server, pool);
  install_changes(server, pool);
}

}  // namespace zb::store
