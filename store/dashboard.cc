// The dashboard: its static files (compiled into the binary, no CDN), and the read endpoints
// it browses with: task search, a task's timeline, recent groups, store counters, the per-second history. Its worker
// actions (shutdown, pool resize) are control routes (control_routes.cc).
#include "store/dashboard.h"

#include <array>

#include "common/clock.h"
#include "common/text.h"
#include "store/http_json.h"

namespace zb::store {
namespace {

using nlohmann::json;

json quantiles(const std::vector<SeriesHistogram>& hists) {
  json out = json::object();
  for (auto [name, q] : {std::pair{"p50", 0.5}, {"p95", 0.95}, {"p99", 0.99}}) {
    json col = json::array();
    for (const auto& h : hists) {
      const double v = series_quantile(h, q);
      col.push_back(v < 0 ? json(nullptr) : json(v));
    }
    out[name] = std::move(col);
  }
  return out;
}

json counts_json(const std::vector<SeriesCounts>& counts) {
  json out = json::object();
  for (auto [name, field] : {std::pair{"received", &SeriesCounts::received}, {"started", &SeriesCounts::started},
                             {"succeeded", &SeriesCounts::succeeded}, {"failed", &SeriesCounts::failed},
                             {"retried", &SeriesCounts::retried}, {"revoked", &SeriesCounts::revoked}}) {
    json col = json::array();
    for (const auto& c : counts) col.push_back(c.*field);
    out[name] = std::move(col);
  }
  return out;
}

// GET /api/v1/series?since=MS&until=MS&step=S: the per-second history (store/series.h) as
// columns, one entry per step: counts in the step, percentiles of the step's samples.
void send_series(StatusDb& db, const httplib::Request& req, httplib::Response& res) {
  for (const auto& [name, value] : req.params)
    if (name != "since" && name != "until" && name != "step")
      return send_error(res, Status(Code::kBadRequest, "unknown query parameter '" + valid_utf8(name.substr(0, 64)) +
                                                           "' (series takes since, until, step)"));
  const uint64_t now_ms = now_unix_ms();
  auto until = query_size(req, "until", now_ms, UINT64_MAX / 2);
  if (!until) return send_error(res, until.status());
  auto since = query_size(req, "since", *until > 300000 ? *until - 300000 : 0, UINT64_MAX / 2);
  if (!since) return send_error(res, since.status());
  auto step = query_size(req, "step", 1, 86400);
  if (!step) return send_error(res, step.status());
  if (*step < 1) return send_error(res, Status(Code::kBadRequest, "step must be 1..86400 seconds, got 0"));
  if (*since > *until) return send_error(res, Status(Code::kBadRequest, "since must not be after until"));
  if (*until - *since > (kSeriesRetentionS + 3600) * 1000)
    return send_error(res, Status(Code::kBadRequest, "since..until spans more than the " +
                                                         std::to_string(kSeriesRetentionS / 3600) +
                                                         " h the store keeps"));
  auto range = db.series(*since / 1000, *until / 1000, *step);
  if (!range) return send_error(res, range.status());
  json t = json::array();
  for (size_t i = 0; i < range->total.size(); ++i) t.push_back((range->from_s + i * range->step_s) * 1000);
  json queues = json::object();
  for (const auto& [name, counts] : range->queues) queues[valid_utf8(name)] = counts_json(counts);
  json out = counts_json(range->total);
  out["t_ms"] = std::move(t);
  out["step_s"] = range->step_s;
  out["now_ms"] = now_ms;
  out["retention_s"] = kSeriesRetentionS;
  out["queues"] = std::move(queues);
  out["wait_ms"] = quantiles(range->wait_ms);
  out["run_ms"] = quantiles(range->run_ms);
  send_json(res, 200, out);
}

}  // namespace

void install_dashboard(HttpServer& server, StatusDb& db) {
  // Static files: "/" is the single page; the rest under /dashboard/.
  for (const auto& asset : dashboard_assets()) {
    const std::string path = asset.path == "index.html" ? "/" : "/dashboard/" + std::string(asset.path);
    server.Get(path, [&asset](const httplib::Request&, httplib::Response& res) {
      res.set_header("Cache-Control", "no-cache");
      res.set_header("X-Content-Type-Options", "nosniff");
      res.set_header("Content-Security-Policy",
                     "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'");
      res.set_content(std::string(asset.data), std::string(asset.content_type));
    });
  }

  // GET /api/v1/tasks?state=&queue=&kind=&group=&q=&since=&until=&limit=&before=: newest first.
  server.Get("/api/v1/tasks", [&db](const httplib::Request& req, httplib::Response& res) {
    TaskFilter f;
    if (req.has_param("state") && !req.get_param_value("state").empty()) {
      f.state = parse_state(req.get_param_value("state"));
      if (!f.state) return send_error(res, Status(Code::kBadRequest, "state must be one of waiting, scheduled, queued, started, retrying, succeeded, failed, revoked"));
    }
    f.queue = req.get_param_value("queue");
    f.kind = req.get_param_value("kind");
    f.text = req.get_param_value("q").substr(0, 200);
    for (const char* key : {"group", "before"}) {
      const std::string v = req.get_param_value(key);
      if (v.empty()) continue;
      auto id = Id::parse(v);
      if (!id) return send_error(res, Status(Code::kBadRequest, std::string(key) + " must be an id"));
      (std::string(key) == "group" ? f.group : f.before) = *id;
    }
    auto limit = query_size(req, "limit", 50, 500);
    auto since = query_size(req, "since", 0, SIZE_MAX);
    auto until = query_size(req, "until", 0, SIZE_MAX);
    for (auto* r : {&limit, &since, &until})
      if (!*r) return send_error(res, r->status());
    f.limit = std::max<size_t>(1, *limit);
    f.since_ms = *since;
    f.until_ms = *until;
    bool complete = true;
    auto tasks = db.list_tasks(f, &complete);
    if (!tasks) return send_error(res, tasks.status());
    json out = json::array();
    for (const auto& t : *tasks) out.push_back(task_status_json(t, false));
    json reply{{"tasks", out}, {"complete", complete}};
    reply["next"] = tasks->size() == f.limit ? json(tasks->back().id.to_string()) : json(nullptr);
    send_json(res, 200, reply);
  });

  // GET /api/v1/tasks/{id}/events: the task's history, oldest first.
  server.Get("/api/v1/tasks/([^/]+)/events", [&db](const httplib::Request& req, httplib::Response& res) {
    auto id = Id::parse(req.matches[1].str());
    if (!id) return send_error(res, Status(Code::kNotFound, "no task " + req.matches[1].str().substr(0, 64)));
    auto events = db.timeline(*id);
    if (!events) return send_error(res, events.status());
    if (events->empty()) return send_error(res, Status(Code::kNotFound, "no events for task " + id->to_string()));
    json out = json::array();
    for (const auto& e : *events)
      out.push_back({{"seq", e.seq}, {"ts_ms", e.ts_ms}, {"event", proto::event_type_name(e.type)},
                     {"state", state_name(e.state)}, {"attempt", e.attempt},
                     {"worker", e.worker.empty() ? json(nullptr) : json(e.worker)},
                     {"error", e.error.empty() ? json(nullptr) : json(e.error)}});
    send_json(res, 200, json{{"task_id", id->to_string()}, {"events", out}});
  });

  // GET /api/v1/groups?running=1&limit=&before=: recent groups, newest first.
  server.Get("/api/v1/groups", [&db](const httplib::Request& req, httplib::Response& res) {
    auto limit = query_size(req, "limit", 20, 200);
    auto before = query_size(req, "before", 0, SIZE_MAX);
    if (!limit) return send_error(res, limit.status());
    if (!before) return send_error(res, before.status());
    const std::string running = req.get_param_value("running");
    if (!running.empty() && running != "0" && running != "1" && running != "true" && running != "false")
      return send_error(res, Status(Code::kBadRequest, "running must be 1 or 0"));
    auto groups = db.list_groups(std::max<size_t>(1, *limit), running == "1" || running == "true", *before);
    if (!groups) return send_error(res, groups.status());
    json out = json::array();
    for (const auto& g : *groups) {
      json j = group_json(g);
      j["created_ms"] = g.created_ms;
      j["finished_ms"] = g.finished_ms;
      out.push_back(std::move(j));
    }
    send_json(res, 200, json{{"groups", out}});
  });

  server.Get("/api/v1/series", [&db](const httplib::Request& req, httplib::Response& res) { send_series(db, req, res); });

  // GET /api/v1/stats: the store's totals (all, per queue, per worker name over all its sessions)
  // and its runtime histogram.
  server.Get("/api/v1/stats", [&db](const httplib::Request&, httplib::Response& res) {
    auto c = db.counters();
    if (!c) return send_error(res, c.status());
    json queues = json::object();
    for (const auto& [name, q] : c->queues)
      queues[name] = {{"received", q.received}, {"started", q.started}, {"succeeded", q.succeeded},
                      {"failed", q.failed}, {"retried", q.retried}, {"revoked", q.revoked}};
    auto totals = db.worker_totals(1000);
    if (!totals) return send_error(res, totals.status());
    json workers = json::object();
    for (const auto& [name, w] : *totals) {
      json started = json::object();
      for (const auto& [q, n] : w.started) started[valid_utf8(q)] = n;
      workers[valid_utf8(name)] = {{"succeeded", w.succeeded}, {"failed", w.failed}, {"first_ms", w.first_ms},
                                   {"last_ms", w.last_ms}, {"started", started}};
    }
    json buckets = json::array();
    for (size_t i = 0; i < c->runtime_buckets.size(); ++i)
      buckets.push_back({{"le_ms", i < std::size(kRuntimeBucketsMs) ? json(kRuntimeBucketsMs[i]) : json("+Inf")},
                         {"count", c->runtime_buckets[i]}});
    send_json(res, 200, json{{"now_ms", now_unix_ms()}, {"applied_seq", db.applied()},
                             {"received", c->received}, {"started", c->started}, {"succeeded", c->succeeded},
                             {"failed", c->failed}, {"retried", c->retried}, {"revoked", c->revoked},
                             {"runtime_sum_us", c->runtime_sum_us}, {"runtime_buckets", buckets},
                             {"wait_sum_us", c->wait_sum_us}, {"waits", c->waits},
                             {"queues", queues}, {"workers", workers}});
  });
}

}  // namespace zb::store
