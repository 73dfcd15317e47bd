// What monitoring reads: GET /metrics (Prometheus text: the store's counters and runtime
// histogram, and the router's queues, workers and refusals as it answers the scrape), and the
// probes /healthz (the process answers) and /readyz (the store has caught up with the router).
#include <ostream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "store/http_api.h"
#include "store/http_json.h"

namespace zb::store {
namespace {

using nlohmann::json;

// The store's own: tasks by life-cycle event, the runtime histogram, the last event applied.
void write_store_metrics(std::ostream& out, const Counters& c, uint64_t applied) {
  out << "# HELP zbatch_tasks_total Tasks by life-cycle event.\n# TYPE zbatch_tasks_total counter\n";
  for (auto [name, v] : {std::pair{"received", c.received}, {"started", c.started}, {"succeeded", c.succeeded},
                         {"failed", c.failed}, {"retried", c.retried}, {"revoked", c.revoked}})
    out << "zbatch_tasks_total{event=\"" << name << "\"} " << v << "\n";
  out << "# HELP zbatch_task_runtime_seconds Handler run time of finished tasks.\n"
         "# TYPE zbatch_task_runtime_seconds histogram\n";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < std::size(kRuntimeBucketsMs); ++i) {
    cumulative += c.runtime_buckets[i];
    out << "zbatch_task_runtime_seconds_bucket{le=\"" << kRuntimeBucketsMs[i] / 1000 << "\"} " << cumulative << "\n";
  }
  cumulative += c.runtime_buckets.back();
  out << "zbatch_task_runtime_seconds_bucket{le=\"+Inf\"} " << cumulative << "\n"
      << "zbatch_task_runtime_seconds_sum " << c.runtime_sum_us / 1e6 << "\n"
      << "zbatch_task_runtime_seconds_count " << cumulative << "\n";
  out << "# HELP zbatch_events_applied Last router event applied by the store.\n# TYPE zbatch_events_applied gauge\n"
      << "zbatch_events_applied " << applied << "\n";
}

// Per queue, from the router's inspect.queues reply: ready, running, waiting for their ETA.
void write_queue_metrics(std::ostream& out, const proto::InspectQueuesReply& reply) {
  out << "# HELP zbatch_queue_depth Tasks ready to run.\n# TYPE zbatch_queue_depth gauge\n";
  for (const auto& q : reply.queues) out << "zbatch_queue_depth{queue=\"" << q.name << "\"} " << q.depth << "\n";
  out << "# HELP zbatch_queue_running Tasks running.\n# TYPE zbatch_queue_running gauge\n";
  for (const auto& q : reply.queues) out << "zbatch_queue_running{queue=\"" << q.name << "\"} " << q.running << "\n";
  out << "# HELP zbatch_queue_scheduled Tasks waiting for their ETA.\n# TYPE zbatch_queue_scheduled gauge\n";
  for (const auto& q : reply.queues) out << "zbatch_queue_scheduled{queue=\"" << q.name << "\"} " << q.scheduled << "\n";
}

// From the router's inspect.stats reply: workers online, storage, what it refused.
void write_router_metrics(std::ostream& out, const proto::InspectStatsReply& reply) {
  const proto::RouterStats& router = reply.router;
  out << "# HELP zbatch_workers Workers online.\n# TYPE zbatch_workers gauge\nzbatch_workers "
      << reply.workers.size() << "\n";
  out << "# HELP zbatch_router_storage_full Whether the router refuses submissions for want of space.\n"
         "# TYPE zbatch_router_storage_full gauge\nzbatch_router_storage_full "
      << (router.storage_full ? 1 : 0) << "\n";
  out << "# HELP zbatch_router_bad_frames_total Messages the router could not decode.\n"
         "# TYPE zbatch_router_bad_frames_total counter\nzbatch_router_bad_frames_total "
      << router.bad_frames << "\n";
  out << "# HELP zbatch_router_late_requests_total Requests refused for arriving after their deadline.\n"
         "# TYPE zbatch_router_late_requests_total counter\nzbatch_router_late_requests_total "
      << router.late_requests << "\n";
  // docs/SECURITY.md: what the router refused on its ZeroMQ sockets, by reason.
  const proto::Refusals& r = router.refused;
  out << "# HELP zbatch_router_refused_total Messages and connections the router refused, by reason.\n"
         "# TYPE zbatch_router_refused_total counter\n";
  for (auto [reason, n] : {std::pair{"unknown_keys", r.unknown_keys}, {"forbidden", r.forbidden},
                           {"foreign_results", r.foreign_results}, {"foreign_claims", r.foreign_claims},
                           {"foreign_started", r.foreign_started}, {"bad_counts", r.bad_counts}})
    out << "zbatch_router_refused_total{reason=\"" << reason << "\"} " << n << "\n";
}

void send_metrics(const Api& api, httplib::Response& res) {
  auto counts = api.db.counters();
  if (!counts) return send_error(res, counts.status());
  std::ostringstream out;
  write_store_metrics(out, *counts, api.db.applied());
  auto queues = api.pool.with([&](Client& cl) { return cl.inspect_queues(); });
  auto stats = api.pool.with([&](Client& cl) { return cl.inspect_stats(); });
  out << "# HELP zbatch_router_up Whether the router answered this scrape.\n# TYPE zbatch_router_up gauge\n"
      << "zbatch_router_up " << (queues && stats ? 1 : 0) << "\n";
  if (queues) write_queue_metrics(out, *queues);
  if (stats) write_router_metrics(out, *stats);
  res.set_content(out.str(), "text/plain; version=0.0.4");
}

}  // namespace

void install_metrics_routes(HttpServer& server, const Api& api) {
  server.Get("/healthz", [](const httplib::Request&, httplib::Response& res) { send_json(res, 200, json{{"status", "ok"}}); });
  server.Get("/readyz", [api](const httplib::Request&, httplib::Response& res) {
    const bool ready = api.follower.caught_up();
    send_json(res, ready ? 200 : 503,
              json{{"ready", ready}, {"applied_seq", api.db.applied()}, {"router_head_seq", api.follower.head_seq()}});
  });

  server.Get("/metrics", [api](const httplib::Request&, httplib::Response& res) { send_metrics(api, res); });
}

}  // namespace zb::store
