#include "common/control_json.h"

#include "common/task.h"

namespace zb {
namespace {

using nlohmann::json;

json id_or_null(const Id& id) { return id.is_nil() ? json(nullptr) : json(id.to_string()); }

// A task of inspect.active, .reserved or .scheduled (active adds started_ms).
json live_task(const proto::TaskRow& t) {
  return json{{"id", t.id.to_string()}, {"ref", t.ref}, {"queue", t.queue}, {"kind", t.kind},
              {"state", state_name(t.state)}, {"attempt", t.attempt}, {"priority", t.priority},
              {"group", id_or_null(t.group)}, {"eta_ms", t.eta_ms}, {"created_ms", t.created_ms},
              {"worker", t.worker}};
}

// A dead letter of inspect.failed.
json dead_task(const proto::TaskRow& t) {
  return json{{"id", t.id.to_string()}, {"ref", t.ref}, {"queue", t.queue}, {"kind", t.kind},
              {"state", state_name(t.state)}, {"attempt", t.attempt}, {"retries", t.retries},
              {"group", id_or_null(t.group)}, {"error", t.error}, {"worker", t.worker},
              {"finished_ms", t.finished_ms}};
}

json tasks_json(const std::vector<proto::TaskRow>& tasks, json (*view)(const proto::TaskRow&)) {
  json out = json::array();
  for (const auto& t : tasks) out.push_back(view(t));
  return out;
}

json to_json(const std::monostate&) { return nullptr; }

json to_json(const proto::PingReply& r) {
  return json{{"pong", true}, {"log_id", r.log_id.to_string()}, {"head_seq", r.head_seq},
              {"workers", r.workers}, {"uptime_ms", r.uptime_ms}};
}

json to_json(const proto::InspectActiveReply& r) {
  json workers = json::array();
  for (const auto& w : r.workers) {
    json tasks = json::array();
    for (const auto& t : w.tasks) {
      json j = live_task(t);
      j["started_ms"] = t.started_ms;
      tasks.push_back(std::move(j));
    }
    workers.push_back({{"name", w.name}, {"session", w.session.to_string()}, {"tasks", std::move(tasks)}});
  }
  return json{{"workers", std::move(workers)}, {"total", r.total}};
}

json to_json(const proto::TaskListReply& r) {
  return json{{"tasks", tasks_json(r.tasks, live_task)}, {"total", r.total}};
}

json to_json(const proto::InspectStatsReply& r) {
  json workers = json::array();
  for (const auto& w : r.workers)
    workers.push_back({{"name", w.name}, {"session", w.session.to_string()}, {"hostname", w.hostname},
                       {"pid", w.pid}, {"concurrency", w.concurrency}, {"capacity", w.capacity},
                       {"in_flight", w.in_flight}, {"busy", w.busy}, {"processed", w.processed},
                       {"failed", w.failed}, {"last_heartbeat_ms", w.last_heartbeat_ms},
                       {"online_ms", w.online_ms}, {"draining", w.draining}, {"queues", w.queues},
                       {"window", w.window}, {"round_trip_us", w.round_trip_us}, {"task_pace_us", w.task_pace_us}});
  const auto& s = r.router;
  const auto& refused = s.refused;
  json router = {{"uptime_ms", s.uptime_ms}, {"submitted", s.submitted}, {"succeeded", s.succeeded},
                 {"failed", s.failed}, {"in_flight", s.in_flight}, {"scheduled", s.scheduled},
                 {"groups_active", s.groups_active}, {"bad_frames", s.bad_frames},
                 {"late_requests", s.late_requests},
                 {"refused", {{"forbidden", refused.forbidden}, {"foreign_results", refused.foreign_results},
                              {"foreign_claims", refused.foreign_claims},
                              {"foreign_started", refused.foreign_started}, {"bad_counts", refused.bad_counts},
                              {"unknown_keys", refused.unknown_keys}}},
                 {"event_seq", s.event_seq}, {"event_first_seq", s.event_first_seq},
                 {"event_confirmed", s.event_confirmed}, {"db_used_bytes", s.db_used_bytes},
                 {"db_map_bytes", s.db_map_bytes}, {"storage_full", s.storage_full},
                 {"storage_free_bytes", s.storage_free_bytes}, {"storage_reserve_bytes", s.storage_reserve_bytes},
                 {"storage_failed_commits", s.storage_failed_commits}, {"durability", s.durability},
                 {"commits", s.commits}, {"records_written", s.records_written}, {"syncs", s.syncs}};
  return json{{"router", std::move(router)}, {"workers", std::move(workers)}};
}

json to_json(const proto::InspectRegisteredReply& r) {
  json workers = json::array();
  for (const auto& w : r.workers)
    workers.push_back({{"name", w.name}, {"kinds", w.kinds}, {"test_profiles", w.test_profiles},
                       {"mcp_servers", w.mcp_servers}});
  return json{{"workers", std::move(workers)}};
}

json to_json(const proto::InspectQueuesReply& r) {
  json queues = json::array();
  for (const auto& q : r.queues)
    queues.push_back({{"name", q.name}, {"priority", q.priority}, {"default_kind", q.default_kind},
                      {"depth", q.depth}, {"scheduled", q.scheduled}, {"reserved", q.reserved},
                      {"running", q.running}});
  return json{{"queues", std::move(queues)}};
}

json to_json(const proto::InspectFailedReply& r) {
  json out{{"total", r.total}, {"tasks", tasks_json(r.tasks, dead_task)}};
  if (!r.next.is_nil()) out["next"] = r.next.to_string();
  return out;
}

json to_json(const proto::PurgeReply& r) { return json{{"purged", r.purged}}; }
json to_json(const proto::RevokeReply& r) { return json{{"revoked", r.revoked.to_string()}, {"was", r.was}}; }
json to_json(const proto::RetryReply& r) {
  return json{{"retried", r.retried.to_string()}, {"attempts_so_far", r.attempts_so_far}};
}
json to_json(const proto::RetryFailedReply& r) { return json{{"retried", r.retried}, {"left", r.left}}; }
json to_json(const proto::WorkerCommandReply& r) { return json{{"worker", r.worker}, {"sent", r.sent}}; }
json to_json(const proto::RevokeGroupReply& r) {
  return json{{"group", r.group.to_string()}, {"revoked", r.revoked}, {"terminated", r.terminated},
              {"running", r.running}, {"again", r.again}};
}

}  // namespace

json control_json(const proto::ControlResult& reply) {
  return std::visit([](const auto& r) { return to_json(r); }, reply);
}

}  // namespace zb
