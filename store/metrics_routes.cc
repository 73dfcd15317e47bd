// What monitoring reads: GET /metrics (Prometheus text: the store's counters and histograms,
// and the router's queues, workers, storage and refusals as it answers the scrape), and the
// probes /healthz (the process answers) and /readyz (the store has caught up with the router).
#include <map>
#include <ostream>
#include <sstream>
#include <string>
#include <tuple>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/text.h"
#include "store/http_api.h"
#include "store/http_json.h"

namespace zb::store {
namespace {

using nlohmann::json;

// A label value in the text format: backslash, quote and line feed escaped, valid UTF-8 (worker
// names and hostnames come from peers).
std::string label(std::string_view v) {
  std::string out;
  for (char c : valid_utf8(v)) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

void family(std::ostream& out, const char* name, const char* type, const char* help) {
  out << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
}

// A histogram of `buckets` (ms) written in seconds: counts[i] for <= buckets[i], the last for +Inf.
template <size_t N>
void histogram(std::ostream& out, const char* name, const double (&buckets)[N], const std::vector<uint64_t>& counts,
               uint64_t sum_us) {
  uint64_t cumulative = 0;
  for (size_t i = 0; i < N; ++i) {
    cumulative += counts[i];
    out << name << "_bucket{le=\"" << buckets[i] / 1000 << "\"} " << cumulative << "\n";
  }
  cumulative += counts.back();
  out << name << "_bucket{le=\"+Inf\"} " << cumulative << "\n"
      << name << "_sum " << sum_us / 1e6 << "\n"
      << name << "_count " << cumulative << "\n";
}

// A router histogram (proto::DurationHistogram) in seconds; nothing when it holds no
// measurement or not the buckets this build knows.
void router_histogram(std::ostream& out, const char* name, const char* help, const proto::DurationHistogram& h) {
  family(out, name, "histogram", help);
  if (h.buckets.size() != proto::kDurationBoundsUs.size() + 1) return;
  uint64_t cumulative = 0;
  for (size_t i = 0; i < proto::kDurationBoundsUs.size(); ++i) {
    cumulative += h.buckets[i];
    out << name << "_bucket{le=\"" << static_cast<double>(proto::kDurationBoundsUs[i]) / 1e6 << "\"} " << cumulative << "\n";
  }
  cumulative += h.buckets.back();
  out << name << "_bucket{le=\"+Inf\"} " << cumulative << "\n"
      << name << "_sum " << static_cast<double>(h.sum_us) / 1e6 << "\n"
      << name << "_count " << cumulative << "\n";
}

void outcomes(std::ostream& out, const char* name, const char* by, const std::map<std::string, QueueCounts>& counts) {
  for (const auto& [key, q] : counts)
    for (auto [event, v] : {std::pair{"received", q.received}, {"started", q.started}, {"succeeded", q.succeeded},
                            {"failed", q.failed}, {"retried", q.retried}, {"revoked", q.revoked}})
      out << name << "{" << by << "=\"" << label(key) << "\",event=\"" << event << "\"} " << v << "\n";
}

// The store's own: tasks by life-cycle event (in all, per queue, per kind), the run time and
// queue wait histograms, the last event applied and how far behind the router's head it is.
void write_store_metrics(std::ostream& out, const Counters& c, uint64_t applied, uint64_t router_head) {
  family(out, "zbatch_tasks_total", "counter", "Tasks by life-cycle event.");
  for (auto [name, v] : {std::pair{"received", c.received}, {"started", c.started}, {"succeeded", c.succeeded},
                         {"failed", c.failed}, {"retried", c.retried}, {"revoked", c.revoked}})
    out << "zbatch_tasks_total{event=\"" << name << "\"} " << v << "\n";
  family(out, "zbatch_queue_tasks_total", "counter", "Tasks by queue and life-cycle event.");
  outcomes(out, "zbatch_queue_tasks_total", "queue", c.queues);
  family(out, "zbatch_kind_tasks_total", "counter", "Tasks by kind and life-cycle event.");
  outcomes(out, "zbatch_kind_tasks_total", "kind", c.kinds);
  family(out, "zbatch_task_runtime_seconds", "histogram", "Handler run time of finished tasks.");
  histogram(out, "zbatch_task_runtime_seconds", kRuntimeBucketsMs, c.runtime_buckets, c.runtime_sum_us);
  family(out, "zbatch_task_queue_wait_seconds", "histogram", "Time from submission to the start of the first attempt.");
  histogram(out, "zbatch_task_queue_wait_seconds", kWaitBucketsMs, c.wait_buckets, c.wait_sum_us);
  family(out, "zbatch_events_applied", "gauge", "Last router event applied by the store.");
  out << "zbatch_events_applied " << applied << "\n";
  family(out, "zbatch_store_event_lag", "gauge", "Router events the store has not applied yet (router head minus applied).");
  out << "zbatch_store_event_lag " << (router_head > applied ? router_head - applied : 0) << "\n";
}

// Per queue, from the router's inspect.queues reply: ready, reserved, running, waiting for their ETA.
void write_queue_metrics(std::ostream& out, const proto::InspectQueuesReply& reply) {
  for (auto [name, field, help] : {std::tuple{"zbatch_queue_depth", &proto::QueueStats::depth, "Tasks ready to run."},
                                   {"zbatch_queue_running", &proto::QueueStats::running, "Tasks running."},
                                   {"zbatch_queue_scheduled", &proto::QueueStats::scheduled, "Tasks waiting for their ETA."},
                                   {"zbatch_queue_reserved", &proto::QueueStats::reserved,
                                    "Tasks sent to a worker and not started yet."}}) {
    family(out, name, "gauge", help);
    for (const auto& q : reply.queues) out << name << "{queue=\"" << label(q.name) << "\"} " << q.*field << "\n";
  }
  family(out, "zbatch_queue_priority", "gauge", "The queue's priority (higher is served first).");
  for (const auto& q : reply.queues) out << "zbatch_queue_priority{queue=\"" << label(q.name) << "\"} " << unsigned(q.priority) << "\n";
  if (reply.pools.empty()) return;
  // Model pools: per server, its places and how many are taken, and how long it cools down.
  auto each = [&](const char* name, const char* help, auto value) {
    family(out, name, "gauge", help);
    for (const auto& p : reply.pools)
      for (const auto& h : p.hosts)
        out << name << "{pool=\"" << label(p.name) << "\",host=\"" << label(h.host) << "\",model=\"" << label(p.model)
            << "\"} " << value(h) << "\n";
  };
  each("zbatch_pool_parallel", "Requests a model pool's server takes at once.",
       [](const proto::PoolHostStats& h) { return uint64_t{h.parallel}; });
  each("zbatch_pool_running", "Tasks holding a place on a model pool's server.",
       [](const proto::PoolHostStats& h) { return uint64_t{h.running}; });
  each("zbatch_pool_cooling_seconds", "How long a model pool's server that refused a task takes none.",
       [](const proto::PoolHostStats& h) { return static_cast<double>(h.cooling_ms) / 1000.0; });
}

// Per worker, from the router's inspect.stats reply. processed/failed count since the worker's
// session began at the router (they start over when the worker or the router restarts): gauges.
void write_worker_metrics(std::ostream& out, const std::vector<proto::WorkerStats>& workers, uint64_t now_ms) {
  using W = proto::WorkerStats;
  auto each = [&](const char* name, const char* help, auto value) {
    family(out, name, "gauge", help);
    for (const W& w : workers)
      out << name << "{worker=\"" << label(w.name) << "\",host=\"" << label(w.hostname) << "\"} " << value(w) << "\n";
  };
  each("zbatch_worker_slots", "Execution slots of the worker.", [](const W& w) { return uint64_t{w.concurrency}; });
  each("zbatch_worker_busy_slots", "Slots running a task.", [](const W& w) { return uint64_t{w.busy}; });
  each("zbatch_worker_in_flight", "Tasks the worker holds (running or reserved).", [](const W& w) { return w.in_flight; });
  each("zbatch_worker_processed_tasks", "Tasks the worker finished in its current session.", [](const W& w) { return w.processed; });
  each("zbatch_worker_failed_tasks", "Tasks that failed on the worker in its current session.", [](const W& w) { return w.failed; });
  each("zbatch_worker_online_seconds", "Seconds since the worker's session began.",
       [now_ms](const W& w) { return w.online_ms && now_ms > w.online_ms ? (now_ms - w.online_ms) / 1000 : 0; });
  each("zbatch_worker_heartbeat_age_seconds", "Seconds since the worker's last heartbeat.",
       [now_ms](const W& w) { return w.last_heartbeat_ms && now_ms > w.last_heartbeat_ms ? (now_ms - w.last_heartbeat_ms) / 1000.0 : 0.0; });
  each("zbatch_worker_draining", "Whether the worker is shutting down (takes no new tasks).", [](const W& w) { return w.draining ? 1 : 0; });
}

// From the router's inspect.stats reply: workers online, storage, its event log, what it refused.
void write_router_metrics(std::ostream& out, const proto::InspectStatsReply& reply) {
  const proto::RouterStats& router = reply.router;
  family(out, "zbatch_workers", "gauge", "Workers online.");
  out << "zbatch_workers " << reply.workers.size() << "\n";
  family(out, "zbatch_router_storage_full", "gauge", "Whether the router refuses submissions for want of space.");
  out << "zbatch_router_storage_full " << (router.storage_full ? 1 : 0) << "\n";
  family(out, "zbatch_router_bad_frames_total", "counter", "Messages the router could not decode.");
  out << "zbatch_router_bad_frames_total " << router.bad_frames << "\n";
  family(out, "zbatch_router_late_requests_total", "counter", "Requests refused for arriving after their deadline.");
  out << "zbatch_router_late_requests_total " << router.late_requests << "\n";
  // docs/SECURITY.md: what the router refused on its ZeroMQ sockets, by reason.
  const proto::Refusals& r = router.refused;
  family(out, "zbatch_router_refused_total", "counter", "Messages and connections the router refused, by reason.");
  for (auto [reason, n] : {std::pair{"unknown_keys", r.unknown_keys}, {"forbidden", r.forbidden},
                           {"foreign_results", r.foreign_results}, {"foreign_claims", r.foreign_claims},
                           {"foreign_started", r.foreign_started}, {"bad_counts", r.bad_counts}})
    out << "zbatch_router_refused_total{reason=\"" << reason << "\"} " << n << "\n";
  family(out, "zbatch_router_uptime_seconds", "gauge", "Seconds since the router started.");
  out << "zbatch_router_uptime_seconds " << router.uptime_ms / 1000.0 << "\n";
  family(out, "zbatch_router_commits_total", "counter", "LMDB commits since the router started (about one per busy loop turn).");
  out << "zbatch_router_commits_total " << router.commits << "\n";
  family(out, "zbatch_router_syncs_total", "counter", "Syncs that made commits durable since the router started (0 with nosync).");
  out << "zbatch_router_syncs_total " << router.syncs << "\n";
  family(out, "zbatch_router_records_written_total", "counter", "LMDB records the router's commits wrote since it started.");
  out << "zbatch_router_records_written_total " << router.records_written << "\n";
  router_histogram(out, "zbatch_router_turn_seconds",
                   "Router loop turns that committed, from reading their messages to the commit.", router.turn_time);
  router_histogram(out, "zbatch_router_sync_seconds", "Router syncs (fdatasync and the durable record) that made commits durable.",
                   router.sync_time);
  family(out, "zbatch_router_event_seq", "gauge", "The router's last event sequence number.");
  out << "zbatch_router_event_seq " << router.event_seq << "\n";
  family(out, "zbatch_router_event_log_events", "gauge", "Events the router's log still holds.");
  out << "zbatch_router_event_log_events " << (router.event_seq >= router.event_first_seq && router.event_first_seq
                                                  ? router.event_seq - router.event_first_seq + 1 : 0) << "\n";
  family(out, "zbatch_router_db_used_bytes", "gauge", "Bytes of the router's LMDB map in use.");
  out << "zbatch_router_db_used_bytes " << router.db_used_bytes << "\n";
  family(out, "zbatch_router_db_map_bytes", "gauge", "Size of the router's LMDB map.");
  out << "zbatch_router_db_map_bytes " << router.db_map_bytes << "\n";
  family(out, "zbatch_router_in_flight", "gauge", "Tasks leased to workers.");
  out << "zbatch_router_in_flight " << router.in_flight << "\n";
  family(out, "zbatch_router_groups_active", "gauge", "Groups not finished yet.");
  out << "zbatch_router_groups_active " << router.groups_active << "\n";
}

void send_metrics(const Api& api, httplib::Response& res) {
  auto counts = api.db.counters();
  if (!counts) return send_error(res, counts.status());
  const uint64_t applied = api.db.applied();
  auto queues = api.pool.with([&](Client& cl) { return cl.inspect_queues(); });
  auto stats = api.pool.with([&](Client& cl) { return cl.inspect_stats(); });
  proto::InspectFailedArgs one;
  one.limit = 1;
  auto dead = api.pool.with([&](Client& cl) { return cl.inspect_failed(one); });
  std::ostringstream out;
  write_store_metrics(out, *counts, applied, stats ? std::max(stats->router.event_seq, api.follower.head_seq()) : api.follower.head_seq());
  // Since the store started: the counts of a process, as counters restart with it.
  const auto& hooks = api.webhooks.totals();
  family(out, "zbatch_webhook_deliveries_total", "counter",
         "Webhook delivery attempts by result since the store started: delivered, retried (failed, another attempt "
         "to come), failed (given up).");
  for (auto [result, v] : {std::pair{"delivered", hooks.delivered.load()}, {"retried", hooks.retried.load()},
                           {"failed", hooks.failed.load()}})
    out << "zbatch_webhook_deliveries_total{result=\"" << result << "\"} " << v << "\n";
  family(out, "zbatch_router_up", "gauge", "Whether the router answered this scrape.");
  out << "zbatch_router_up " << (queues && stats ? 1 : 0) << "\n";
  if (queues) write_queue_metrics(out, *queues);
  if (stats) {
    write_router_metrics(out, *stats);
    write_worker_metrics(out, stats->workers, now_unix_ms());
  }
  if (dead) {
    family(out, "zbatch_dead_letters", "gauge", "Tasks that failed after their last retry and were not retried since.");
    out << "zbatch_dead_letters " << dead->total << "\n";
  }
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
