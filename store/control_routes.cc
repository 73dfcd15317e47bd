// Inspection and control, forwarded to the router: workers, queues, ping, inspect, purge, dead
// letters, revoke and retry of a task, revoke of a group, the worker actions (shutdown, pool size),
// and schedules. The router's typed reply is the answer, in its JSON view (common/control_json.h);
// the store checks the request's body first (store/control_request.h).
#include <span>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/control_json.h"
#include "store/control_request.h"
#include "store/http_api.h"
#include "store/http_json.h"

namespace zb::store {
namespace {

using nlohmann::json;
using proto::ControlOp;

// Sends the router's reply to `op` (with `args`) in its JSON view, or its member `pick`.
void reply_from_router(ClientPool& pool, ControlOp op, proto::ControlArgs args, httplib::Response& res,
                       const char* pick = nullptr) {
  auto reply = pool.with([&](Client& c) { return c.control(op, std::move(args)); });
  if (!reply) return send_error(res, reply.status());
  json j = control_json(*reply);
  send_json(res, 200, pick ? j[pick] : j);
}

// A route answering `op` with its default arguments.
HttpServer::Handler forward(ClientPool& pool, ControlOp op, const char* pick = nullptr) {
  return [&pool, op, pick](const httplib::Request&, httplib::Response& res) {
    reply_from_router(pool, op, proto::default_control_args(op), res, pick);
  };
}

void install_inspection(HttpServer& server, ClientPool& pool) {
  server.Get("/api/v1/workers", forward(pool, ControlOp::kInspectStats, "workers"));
  server.Get("/api/v1/queues", forward(pool, ControlOp::kInspectQueues, "queues"));
  server.Get("/api/v1/ping", forward(pool, ControlOp::kPing));
  server.Get("/api/v1/inspect/([^/]+)", [&pool](const httplib::Request& req, httplib::Response& res) {
    const std::string what = req.matches[1].str();
    auto op = proto::parse_control_op("inspect." + what);
    if (!op)
      return send_error(res, Status(Code::kNotFound, "inspect what? active|reserved|scheduled|stats|registered|queues|failed"));
    forward(pool, *op)(req, res);
  });
}

// Dead letters: GET /api/v1/dead?queue=Q&limit=N&after=ID; POST /api/v1/dead/retry {"queue","limit"}.
void install_dead_letters(HttpServer& server, ClientPool& pool) {
  server.Get("/api/v1/dead", [&pool](const httplib::Request& req, httplib::Response& res) {
    proto::InspectFailedArgs args;
    if (req.has_param("queue")) args.queue = req.get_param_value("queue");
    if (req.has_param("after")) {
      auto after = Id::parse(req.get_param_value("after"));
      if (!after) return send_error(res, Status(Code::kBadRequest, "inspect.failed: after must be a task id"));
      args.after = *after;
    }
    auto limit = query_size(req, "limit", 100, 1000);
    if (!limit) return send_error(res, limit.status());
    if (*limit == 0) return send_error(res, Status(Code::kBadRequest, "limit must be 1..1000"));
    args.limit = static_cast<uint32_t>(*limit);
    reply_from_router(pool, ControlOp::kInspectFailed, args, res);
  });
  server.Post("/api/v1/dead/retry", [&pool](const httplib::Request& req, httplib::Response& res) {
    auto body = parse_optional_body(req);
    if (!body) return send_error(res, body.status());
    auto args = dead_retry_args(*body);  // the router checks that the queue is declared
    if (!args) return send_error(res, args.status());
    reply_from_router(pool, ControlOp::kRetryFailed, *args, res);
  });
}

void install_changes(HttpServer& server, ClientPool& pool) {
  server.Post("/api/v1/purge", [&pool](const httplib::Request& req, httplib::Response& res) {
    auto body = parse_optional_body(req);
    if (!body) return send_error(res, body.status());
    auto args = purge_args(*body);
    if (!args) return send_error(res, args.status());
    reply_from_router(pool, ControlOp::kPurge, *args, res);
  });
  // POST /api/v1/tasks/{id}/revoke {"terminate": bool} and /retry {}.
  for (const std::string op : {"revoke", "retry"}) {
    server.Post("/api/v1/tasks/([^/]+)/" + op, [&pool, op](const httplib::Request& req, httplib::Response& res) {
      auto body = parse_optional_body(req);
      if (!body) return send_error(res, body.status());
      auto args = task_control_args(op, req.matches[1].str(), *body);
      if (!args) return send_error(res, args.status());
      reply_from_router(pool, op == "revoke" ? ControlOp::kRevoke : ControlOp::kRetry, *args, res);
    });
  }
  // POST /api/v1/groups/{id}/revoke {"terminate": bool}: the whole group.
  server.Post("/api/v1/groups/([^/]+)/revoke", [&pool](const httplib::Request& req, httplib::Response& res) {
    auto body = parse_optional_body(req);
    if (!body) return send_error(res, body.status());
    auto args = group_revoke_args(req.matches[1].str(), *body);
    if (!args) return send_error(res, args.status());
    reply_from_router(pool, ControlOp::kRevokeGroup, *args, res);
  });
  // POST /api/v1/workers/{name}/shutdown and /pool {"delta": N}.
  for (const std::string action : {"shutdown", "pool"}) {
    server.Post("/api/v1/workers/([^/]+)/" + action, [&pool, action](const httplib::Request& req, httplib::Response& res) {
      auto body = action == "pool" ? parse_body(req) : parse_optional_body(req);
      if (!body) return send_error(res, body.status());
      auto args = worker_control_args(action, req.matches[1].str(), *body);
      if (!args) return send_error(res, args.status());
      reply_from_router(pool, action == "pool" ? ControlOp::kWorkerPool : ControlOp::kWorkerShutdown, *args, res);
    });
  }
}

// Periodic tasks (docs/SCHEDULES.md): GET /api/v1/schedules[/{name}], POST /api/v1/schedules
// (a ScheduleSpec's JSON), POST /api/v1/schedules/{name}/pause|resume|run|delete {}.
void install_schedules(HttpServer& server, ClientPool& pool) {
  server.Get("/api/v1/schedules", [&pool](const httplib::Request&, httplib::Response& res) {
    reply_from_router(pool, ControlOp::kScheduleList, proto::ScheduleArgs{}, res);
  });
  server.Get("/api/v1/schedules/([^/]+)", [&pool](const httplib::Request& req, httplib::Response& res) {
    const std::string name = req.matches[1].str();
    if (Status s = proto::check_schedule_name(name); !s) return send_error(res, s);
    // ?firings=N[&before=SLOT_MS]: a page of its firings, newest first, instead of the newest 20.
    proto::ScheduleArgs args{name};
    auto firings = query_size(req, "firings", 0, proto::kMaxFiringsListed + 1);
    if (!firings) return send_error(res, firings.status());
    if (req.has_param("firings") && (*firings < 1 || *firings > proto::kMaxFiringsListed))
      return send_error(res, Status(Code::kBadRequest, "firings must be an integer 1.." +
                                                           std::to_string(proto::kMaxFiringsListed)));
    auto before = query_size(req, "before", 0, size_t{1} << 53);
    if (!before) return send_error(res, before.status());
    args.firings = static_cast<uint32_t>(*firings);
    args.before_ms = *before;
    if (args.before_ms && !args.firings) args.firings = 20;
    auto reply = pool.with([&](Client& c) { return c.control(ControlOp::kScheduleList, args); });
    if (!reply) return send_error(res, reply.status());
    const auto& list = std::get<proto::ScheduleListReply>(*reply);
    if (list.schedules.empty()) return send_error(res, Status(Code::kNotFound, "no schedule '" + name + "'"));
    send_json(res, 200, schedule_json(list.schedules.front()));
  });
  server.Post("/api/v1/schedules", [&pool](const httplib::Request& req, httplib::Response& res) {
    auto body = parse_body(req);
    if (!body) return send_error(res, body.status());
    auto spec = schedule_spec_from_json(*body);
    if (!spec) return send_error(res, spec.status());
    auto reply = pool.with([&](Client& c) { return c.control(ControlOp::kScheduleCreate, *spec); });
    if (!reply) return send_error(res, reply.status());
    send_json(res, 201, schedule_json(std::get<proto::ScheduleReply>(*reply).schedule));
  });
  for (const std::string verb : {"pause", "resume", "run", "delete"}) {
    const ControlOp which = verb == "pause"    ? ControlOp::kSchedulePause
                            : verb == "resume" ? ControlOp::kScheduleResume
                            : verb == "run"    ? ControlOp::kScheduleRun
                                               : ControlOp::kScheduleDelete;
    server.Post("/api/v1/schedules/([^/]+)/" + verb, [&pool, which](const httplib::Request& req, httplib::Response& res) {
      auto body = parse_optional_body(req);
      if (!body) return send_error(res, body.status());
      if (Status s = known_fields(*body, std::span<const std::string_view>(), "", "a schedule action"); !s)
        return send_error(res, s);
      const std::string name = req.matches[1].str();
      if (Status s = proto::check_schedule_name(name); !s) return send_error(res, s);
      reply_from_router(pool, which, proto::ScheduleArgs{name}, res);
    });
  }
}

}  // namespace

void install_control_routes(HttpServer& server, ClientPool& pool) {
  install_inspection(server, pool);
  install_dead_letters(server, pool);
  install_changes(server, pool);
  install_schedules(server, pool);
}

}  // namespace zb::store
