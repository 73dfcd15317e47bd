#include "common/control_json.h"

#include <algorithm>
#include <iterator>

#include "common/task.h"

namespace zb {
namespace {

using nlohmann::json;

json id_or_null(const Id& id) { return id.is_nil() ? json(nullptr) : json(id.to_string()); }

// A duration histogram: each bucket's own count (not cumulative), for <= bounds_us[i], the last
// one beyond every bound.
json duration_json(const proto::DurationHistogram& h) {
  uint64_t count = 0;
  for (uint64_t n : h.buckets) count += n;
  return json{{"bounds_us", proto::kDurationBoundsUs}, {"buckets", h.buckets}, {"count", count}, {"sum_us", h.sum_us}};
}

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
                       {"window", w.window}, {"round_trip_us", w.round_trip_us}, {"task_pace_us", w.task_pace_us},
                       {"rss_kb", w.rss_kb}, {"load", w.load_milli / 1000.0}});
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
                 {"commits", s.commits}, {"records_written", s.records_written}, {"syncs", s.syncs},
                 {"turn_time", duration_json(s.turn_time)}, {"sync_time", duration_json(s.sync_time)}};
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
  for (const auto& q : r.queues) {
    json row{{"name", q.name}, {"priority", q.priority}, {"default_kind", q.default_kind}, {"depth", q.depth},
             {"scheduled", q.scheduled}, {"reserved", q.reserved}, {"running", q.running}, {"fair", q.fair}};
    if (!q.pool.empty()) row["pool"] = q.pool;
    for (const auto& p : r.pools) {
      if (q.pool.empty() || p.name != q.pool) continue;
      // The pool's servers, shared by every queue naming the pool.
      row["model"] = p.model;
      json hosts = json::array();
      for (const auto& h : p.hosts)
        hosts.push_back({{"host", h.host}, {"parallel", h.parallel}, {"running", h.running}, {"cooling_ms", h.cooling_ms}});
      row["hosts"] = std::move(hosts);
    }
    queues.push_back(std::move(row));
  }
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

json to_json(const proto::ScheduleListReply& r) {
  json out = json::array();
  for (const auto& row : r.schedules) out.push_back(schedule_json(row));
  return json{{"schedules", std::move(out)}};
}
json to_json(const proto::ScheduleReply& r) {
  return json{{"schedule", schedule_json(r.schedule)}, {"task", id_or_null(r.task)}};
}

}  // namespace

json schedule_spec_json(const proto::ScheduleSpec& s) {
  json task{{"queue", s.task.queue}, {"kind", s.task.kind}, {"priority", s.task.priority},
            {"max_retries", s.task.max_retries}, {"soft_limit_ms", s.task.soft_limit_ms},
            {"hard_limit_ms", s.task.hard_limit_ms}, {"ref", s.task.ref},
            {"unique_key", s.task.unique_key.empty() ? json(nullptr) : json(s.task.unique_key)}};
  // The payload is JSON text; shown as JSON when it parses, else as the text.
  json payload = json::parse(s.task.payload, nullptr, false);
  task["payload"] = payload.is_discarded() ? json(s.task.payload) : payload;
  json out{{"name", s.name}, {"catch_up", s.catch_up}, {"overlap", s.overlap}, {"task", std::move(task)}};
  if (!s.cron.empty()) {
    out["cron"] = s.cron;
    out["timezone"] = s.timezone;
  } else {
    out["every_ms"] = s.every_ms;
  }
  return out;
}

json schedule_json(const proto::ScheduleRow& r) {
  json recent = json::array();
  for (const auto& f : r.recent)
    recent.push_back({{"slot_ms", f.slot_ms}, {"fired_ms", f.fired_ms}, {"task", id_or_null(f.task)}, {"how", f.how}});
  json out = schedule_spec_json(r.spec);
  out["source"] = r.source;
  out["paused"] = r.paused;
  out["created_ms"] = r.created_ms;
  out["last_slot_ms"] = r.last_slot_ms;
  out["next_slot_ms"] = r.next_slot_ms;
  out["fired"] = r.fired;
  out["last_task"] = id_or_null(r.last_task);
  out["recent"] = std::move(recent);
  return out;
}

Result<proto::ScheduleSpec> schedule_spec_from_json(const json& body) {
  auto bad = [](const std::string& what) { return Status(Code::kBadRequest, "schedule: " + what); };
  if (!body.is_object()) return bad("the body must be a JSON object");
  static const char* const kFields[] = {"name", "cron", "timezone", "every_ms", "every_s", "catch_up", "overlap", "task"};
  static const char* const kTaskFields[] = {"queue", "kind", "payload", "priority", "max_retries",
                                            "soft_limit_ms", "hard_limit_ms", "ref", "unique_key"};
  auto known = [](const json& obj, const auto& names, const std::string& where) -> Status {
    for (const auto& [key, value] : obj.items()) {
      (void)value;
      if (std::find(std::begin(names), std::end(names), key) == std::end(names))
        return Status(Code::kBadRequest, "schedule: unknown field '" + where + key.substr(0, 64) + "'");
    }
    return Status::ok();
  };
  if (Status s = known(body, kFields, ""); !s) return s;
  proto::ScheduleSpec spec;
  auto str = [&](const json& obj, const char* key, std::string& out, const std::string& where) -> Status {
    auto it = obj.find(key);
    if (it == obj.end()) return Status::ok();
    if (!it->is_string()) return bad(where + key + " must be a string");
    out = it->get<std::string>();
    return Status::ok();
  };
  auto num = [&](const json& obj, const char* key, int64_t lo, int64_t hi, auto& out, const std::string& where) -> Status {
    auto it = obj.find(key);
    if (it == obj.end()) return Status::ok();
    if (!it->is_number_integer() || (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(hi)) ||
        it->get<int64_t>() < lo || it->get<int64_t>() > hi)
      return bad(where + key + " must be an integer " + std::to_string(lo) + ".." + std::to_string(hi));
    out = static_cast<std::decay_t<decltype(out)>>(it->get<int64_t>());
    return Status::ok();
  };
  for (const char* key : {"name", "cron", "timezone", "catch_up", "overlap"}) {
    std::string* field = key == std::string("name")       ? &spec.name
                         : key == std::string("cron")     ? &spec.cron
                         : key == std::string("timezone") ? &spec.timezone
                         : key == std::string("catch_up") ? &spec.catch_up
                                                          : &spec.overlap;
    if (Status s = str(body, key, *field, ""); !s) return s;
  }
  constexpr int64_t kMaxMs = static_cast<int64_t>(proto::kMaxScheduleIntervalMs);
  if (Status s = num(body, "every_ms", 0, kMaxMs, spec.every_ms, ""); !s) return s;
  if (body.contains("every_s")) {
    if (body.contains("every_ms")) return bad("give every_s or every_ms, not both");
    uint64_t seconds = 0;
    if (Status s = num(body, "every_s", 0, kMaxMs / 1000, seconds, ""); !s) return s;
    spec.every_ms = seconds * 1000;
  }
  if (auto it = body.find("task"); it != body.end()) {
    if (!it->is_object()) return bad("task must be an object");
    const json& t = *it;
    if (Status s = known(t, kTaskFields, "task."); !s) return s;
    if (Status s = str(t, "queue", spec.task.queue, "task."); !s) return s;
    if (Status s = str(t, "kind", spec.task.kind, "task."); !s) return s;
    if (Status s = str(t, "ref", spec.task.ref, "task."); !s) return s;
    if (auto u = t.find("unique_key"); u != t.end() && !u->is_null())
      if (Status s = str(t, "unique_key", spec.task.unique_key, "task."); !s) return s;
    if (auto p = t.find("payload"); p != t.end()) spec.task.payload = p->dump();
    if (Status s = num(t, "priority", -1, 255, spec.task.priority, "task."); !s) return s;
    if (Status s = num(t, "max_retries", -1, 1'000'000, spec.task.max_retries, "task."); !s) return s;
    constexpr int64_t kMaxLimit = 0xffffffffll;
    if (Status s = num(t, "soft_limit_ms", 0, kMaxLimit, spec.task.soft_limit_ms, "task."); !s) return s;
    if (Status s = num(t, "hard_limit_ms", 0, kMaxLimit, spec.task.hard_limit_ms, "task."); !s) return s;
  }
  if (spec.task.payload.empty()) spec.task.payload = "{}";
  if (Status s = proto::check_schedule_spec(spec); !s) return s;
  return spec;
}

json control_json(const proto::ControlResult& reply) {
  return std::visit([](const auto& r) { return to_json(r); }, reply);
}

}  // namespace zb
