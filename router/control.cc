// Control operations on the frontend: ping, inspect.*, purge. Replies are JSON objects.
#include <algorithm>

#include <nlohmann/json.hpp>

#include "common/text.h"
#include "common/clock.h"
#include "common/log.h"
#include "router/core.h"

namespace zb::router {
namespace {

using nlohmann::json;
constexpr size_t kInspectLimit = 1000;

}  // namespace

void Core::on_control(const std::string& rid, const proto::Control& control) {
  if (control.deadline_ms && now_unix_ms() > control.deadline_ms) {
    ++stats_.late_requests;
    spdlog::warn("router refused late control op={} late_ms={}", control.op.substr(0, 64),
                 now_unix_ms() - control.deadline_ms);
    return reply_error(rid, control.corr, Status(Code::kTimeout, "'" + control.op.substr(0, 64) +
                                                     "' reached the router after its deadline: not carried out"));
  }
  auto answer = control_json(control.op, control.args);
  if (!answer) return reply_error(rid, control.corr, answer.status());
  reply(rid, proto::ControlReply{control.corr, std::move(answer.value())});
}

Result<std::string> Core::control_json(const std::string& op, const std::string& args_text) {
  json args = json::object();
  if (!args_text.empty()) {
    args = json::parse(args_text, nullptr, false);
    if (args.is_discarded() || !args.is_object())
      return Status(Code::kBadRequest, "control arguments must be a JSON object");
  }
  auto task_json = [&](const Id& id) -> json {
    auto rec = current_task(id);
    if (!rec || !rec->has_value()) return json{{"id", id.to_string()}};
    const auto& r = **rec;
    return json{{"id", r.id.to_string()}, {"ref", r.ref}, {"queue", r.queue}, {"kind", r.kind},
                {"state", state_name(r.state)}, {"attempt", r.attempt}, {"priority", r.priority},
                {"group", r.group.is_nil() ? json(nullptr) : json(r.group.to_string())},
                {"eta_ms", r.eta_ms}, {"created_ms", r.created_ms}, {"worker", r.worker}};
  };
  const uint64_t now = now_steady_ms();
  if (op == "ping") {
    return json_text(json{{"pong", true}, {"log_id", ledger_.meta().log_id.to_string()},
                {"head_seq", ledger_.meta().seq}, {"workers", workers_.size()},
                {"uptime_ms", now - stats_.started_steady_ms}});
  }
  // Celery's meanings: active = running on a slot now; reserved = taken by a worker (leased)
  // and not started; scheduled = waiting for its ETA, countdown or retry backoff. Each gives
  // the exact total beside a list of at most kInspectLimit tasks.
  if (op == "inspect.active" || op == "inspect.reserved") {
    const bool want_started = op == "inspect.active";
    json out = json::array();
    json flat = json::array();
    size_t total = 0, listed = 0;
    for (const auto& rid : workers_.order()) {
      const auto& w = *workers_.find(rid);
      json tasks = json::array();
      for (const Id& id : w.leased) {
        const LeaseState* l = tasks_.lease(id);
        if (!l || (l->started_unix_ms != 0) != want_started) continue;
        ++total;
        if (listed >= kInspectLimit) continue;
        ++listed;
        json t = task_json(id);
        t["worker"] = w.name;
        if (want_started) t["started_ms"] = l->started_unix_ms;
        (want_started ? tasks : flat).push_back(std::move(t));
      }
      if (want_started) out.push_back({{"name", w.name}, {"session", w.session.to_string()}, {"tasks", tasks}});
    }
    if (want_started) return json_text(json{{"workers", out}, {"total", total}});
    return json_text(json{{"tasks", flat}, {"total", total}});
  }
  if (op == "inspect.scheduled") {
    json tasks = json::array();
    size_t total = 0;
    tasks_.for_each_scheduled([&](const ScheduledTask& t) {
      ++total;
      if (tasks.size() < kInspectLimit) tasks.push_back(task_json(t.task));
    });
    return json_text(json{{"tasks", tasks}, {"total", total}});
  }
  if (op == "inspect.stats") {
    json ws = json::array();
    for (const auto& rid : workers_.order()) {
      const auto& w = *workers_.find(rid);
      ws.push_back({{"name", w.name}, {"session", w.session.to_string()}, {"hostname", w.hostname},
                    {"pid", w.pid}, {"concurrency", w.concurrency}, {"capacity", w.capacity},
                    {"in_flight", w.leased.size()}, {"busy", w.busy}, {"processed", w.processed},
                    {"failed", w.failed}, {"last_heartbeat_ms", w.last_seen_unix_ms},
                    {"online_ms", w.online_unix_ms}, {"draining", w.draining},
                    [&] {
                      json qs = json::array();
                      for (size_t q : w.queues) qs.push_back(tasks_.config(q).name);
                      return json{"queues", qs};
                    }()});
    }
    const auto& meta = ledger_.meta();
    json router_stats = {{"uptime_ms", now - stats_.started_steady_ms}, {"submitted", stats_.submitted},
                         {"succeeded", stats_.succeeded}, {"failed", stats_.failed},
                         {"in_flight", tasks_.leases().size()}, {"scheduled", tasks_.scheduled_size()},
                         {"groups_active", groups_.size()}, {"bad_frames", stats_.bad_frames},
                         {"late_requests", stats_.late_requests},
                         {"refused", {{"forbidden", stats_.forbidden}, {"foreign_results", stats_.foreign_results},
                                      {"foreign_claims", stats_.foreign_claims},
                                      {"foreign_started", stats_.foreign_started}, {"bad_counts", stats_.bad_counts},
                                      {"unknown_keys", health.unknown_keys}}},
                         {"event_seq", meta.seq}, {"event_first_seq", meta.first_seq},
                         {"event_confirmed", meta.confirmed},
                         {"db_used_bytes", health.db_used_bytes},
                         {"db_map_bytes", health.db_map_bytes},
                         {"storage_full", health.storage_full},
                         {"storage_free_bytes", health.storage_free_bytes},
                         {"storage_reserve_bytes", health.storage_reserve_bytes},
                         {"storage_failed_commits", health.storage_failed_commits},
                         {"durability", options_.fsync ? "fsync" : "nosync"}};
    return json_text(json{{"router", router_stats}, {"workers", ws}});
  }
  if (op == "inspect.registered") {
    json ws = json::array();
    for (const auto& rid : workers_.order()) {
      const auto& w = *workers_.find(rid);
      ws.push_back({{"name", w.name}, {"kinds", w.kinds}, {"test_profiles", w.test_profiles},
                    {"mcp_servers", w.mcp_servers}});
    }
    return json_text(json{{"workers", ws}});
  }
  if (op == "inspect.queues") {
    std::vector<size_t> scheduled_per_queue(tasks_.queue_count(), 0);
    tasks_.for_each_scheduled([&](const ScheduledTask& t) { ++scheduled_per_queue[t.queue]; });
    std::vector<size_t> started_per_queue(tasks_.queue_count(), 0);
    for (const auto& [id, l] : tasks_.leases())
      if (l.started_unix_ms) ++started_per_queue[l.queue];
    const std::vector<size_t> held_per_queue = groups_.held_per_queue();
    json qs = json::array();
    for (size_t i = 0; i < tasks_.queue_count(); ++i) {
      const auto& q = tasks_.config(i);
      const uint64_t running = tasks_.running(i);
      qs.push_back({{"name", q.name}, {"priority", q.priority}, {"default_kind", q.default_kind},
                    {"depth", tasks_.ready(i).size() + held_per_queue[i]}, {"scheduled", scheduled_per_queue[i]},
                    {"reserved", running - std::min<uint64_t>(running, started_per_queue[i])},
                    {"running", started_per_queue[i]}});
    }
    return json_text(json{{"queues", qs}});
  }
  if (op == "purge") {
    std::optional<std::string> queue;
    if (args.contains("queue") && !args["queue"].is_null()) {
      if (!args["queue"].is_string()) return Status(Code::kBadRequest, "purge: queue must be a string");
      queue = args["queue"].get<std::string>();
    }
    return purge(queue);
  }
  if (op == "inspect.failed" || op == "retry.failed") {
    std::string queue;
    if (args.contains("queue")) {
      if (!args["queue"].is_string()) return Status(Code::kBadRequest, op + ": queue must be a string");
      queue = args["queue"].get<std::string>();
      if (!tasks_.find_queue(queue)) return Status(Code::kUnprocessable, op + ": unknown queue '" + queue.substr(0, 64) + "'");
    }
    size_t limit = op == "inspect.failed" ? 100 : 100000;
    if (args.contains("limit")) {
      if (!args["limit"].is_number_unsigned() || args["limit"].get<uint64_t>() == 0 || args["limit"].get<uint64_t>() > 100000)
        return Status(Code::kBadRequest, op + ": limit must be 1..100000");
      limit = args["limit"].get<size_t>();
    }
    if (op == "retry.failed") return retry_failed(queue, limit);
    Id after;
    if (args.contains("after")) {
      auto parsed = args["after"].is_string() ? Id::parse(args["after"].get<std::string>()) : std::nullopt;
      if (!parsed) return Status(Code::kBadRequest, op + ": after must be a task id");
      after = *parsed;
    }
    return inspect_failed(queue, std::min<size_t>(limit, kInspectLimit), after);
  }
  if (op == "worker.shutdown" || op == "worker.pool") {
    if (!args.contains("worker") || !args["worker"].is_string())
      return Status(Code::kBadRequest, op + ": worker must be a worker name");
    const std::string name = args["worker"].get<std::string>();
    const WorkerSession* w = workers_.find_name(name);
    if (!w) return Status(Code::kNotFound, "no worker named '" + name.substr(0, 255) + "' is online");
    proto::WorkerCommand command{op == "worker.shutdown" ? "shutdown" : "pool", 0};
    if (op == "worker.pool") {
      if (!args.contains("delta") || !args["delta"].is_number_integer() || args["delta"].get<int64_t>() == 0 ||
          args["delta"].get<int64_t>() < -1024 || args["delta"].get<int64_t>() > 1024)
        return Status(Code::kBadRequest, "worker.pool: delta must be a non-zero integer, -1024..1024");
      command.delta = static_cast<int32_t>(args["delta"].get<int64_t>());
    }
    to_worker(w->routing_id, std::move(command));
    spdlog::info("router worker={} command={} delta={}", name, op, args.value("delta", 0));
    return json_text(json{{"worker", name}, {"sent", op}});
  }
  if (op == "revoke" || op == "retry") {
    if (!args.contains("task") || !args["task"].is_string())
      return Status(Code::kBadRequest, op + ": task must be a task id");
    auto id = Id::parse(args["task"].get<std::string>());
    if (!id) return Status(Code::kBadRequest, op + ": '" + args["task"].get<std::string>() + "' is not a task id");
    if (op == "retry") return retry(*id);
    bool terminate = args.contains("terminate") && args["terminate"].is_boolean() && args["terminate"].get<bool>();
    return revoke(*id, terminate);
  }
  return Status(Code::kBadRequest, "unknown control operation '" + op.substr(0, 64) + "'");
}

// Queued tasks (of one queue, or all) never run: each is revoked.
Result<std::string> Core::purge(const std::optional<std::string>& queue) {
  std::vector<size_t> targets;
  if (queue) {
    auto q = tasks_.find_queue(*queue);
    if (!q) return Status(Code::kUnprocessable, "unknown queue '" + *queue + "'");
    targets.push_back(*q);
  } else {
    for (size_t i = 0; i < tasks_.queue_count(); ++i) targets.push_back(i);
  }
  std::vector<std::pair<Id, bool>> victims;  // task, held by its group (not in a ready queue)
  for (size_t q : targets)
    for (auto& [key, id] : tasks_.ready(q).take_all()) victims.emplace_back(id, false);
  for (const Id& id : groups_.unhold_queues(targets)) victims.emplace_back(id, true);
  for (const auto& [id, held] : victims) {
    auto found = ledger_.get_task(id);
    if (!found) return found.status();
    if (!found->has_value()) continue;
    proto::TaskRecord& rec = **found;
    rec.error = "purged";
    if (Status s = transition(rec, TaskState::kQueued, Change(TaskState::kRevoked).from_held(held)); !s) return s;
  }
  const std::string name = targets.size() == 1 ? tasks_.config(targets[0]).name : std::string();
  proto::Event ev;
  ev.type = proto::EventType::kQueuePurged;
  ev.queue = name;
  ev.count = victims.size();
  emit(std::move(ev));
  dirty_ = true;
  spdlog::info("router purged tasks={} queue={}", victims.size(), name.empty() ? "*" : name);
  return json_text(json{{"purged", victims.size()}});
}

// A queued or scheduled task never runs; a running one is stopped only with `terminate`.
// The revocation is the task's record, so it survives a router restart.
Result<std::string> Core::revoke(const Id& task, bool terminate) {
  auto found = ledger_.get_task(task);
  if (!found) return found.status();
  if (!found->has_value()) return Status(Code::kNotFound, "no task " + task.to_string());
  proto::TaskRecord& rec = **found;
  if (is_terminal(rec.state))
    return Status(Code::kConflict, "task " + task.to_string() + " already " + std::string(state_name(rec.state)));
  auto group = group_of(rec);
  if (!group) return group.status();
  const uint64_t key = order_key(rec.priority, rec.seq);
  auto q = tasks_.find_queue(rec.queue);
  TaskState from = rec.state;
  bool held = false;
  std::string was = "queued";
  if (tasks_.lease(task)) {
    if (!terminate)
      return Status(Code::kConflict, "task " + task.to_string() + " is running; revoke it with terminate to stop it");
    const LeaseState l = *tasks_.end_lease(task);
    if (WorkerSession* w = workers_.find(l.routing_id)) {
      w->leased.erase(task);
      to_worker(l.routing_id, proto::Revoke{{{task, l.attempt}}});
    }
    if (Status s = ledger_.del_lease(task); !s) return s;
    rec.attempt = l.attempt;
    from = TaskState::kStarted;
    was = "terminated";
  } else if (q && tasks_.ready(*q).erase(key)) {
    from = TaskState::kQueued;
  } else if (*group && groups_.unhold(**group, key)) {
    from = TaskState::kQueued;
    held = true;
    was = "held";
  } else if (rec.state == TaskState::kScheduled || rec.state == TaskState::kRetrying) {
    tasks_.revoke_scheduled(task);
    was = "scheduled";
  } else {
    held = true;  // queued in no ready queue (its queue is not declared): it holds no place
  }
  rec.error = terminate ? "revoked (terminated)" : "revoked";
  if (Status s = transition(rec, from, Change(TaskState::kRevoked).from_held(held)); !s) return s;
  spdlog::info("router revoked task={} was={}", task.to_string(), was);
  return json_text(json{{"revoked", task.to_string()}, {"was", was}});
}

// Runs a failed (or revoked) task again: back to its queue, attempt + 1 on dispatch.
Result<std::string> Core::retry(const Id& task) {
  auto found = ledger_.get_task(task);
  if (!found) return found.status();
  if (!found->has_value()) return Status(Code::kNotFound, "no task " + task.to_string());
  proto::TaskRecord& rec = **found;
  if (rec.state != TaskState::kFailed && rec.state != TaskState::kRevoked)
    return Status(Code::kConflict, "only a failed or revoked task can be retried; task " + task.to_string() +
                                       " is " + std::string(state_name(rec.state)));
  if (!tasks_.find_queue(rec.queue)) return Status(Code::kUnprocessable, "unknown queue '" + rec.queue + "'");
  if (Status s = transition(rec, rec.state, Change(TaskState::kQueued)); !s) return s;
  return json_text(json{{"retried", task.to_string()}, {"attempts_so_far", rec.attempt}});
}


// Dead letters in id (= submission) order, with their last error.
Result<std::string> Core::inspect_failed(const std::string& queue, size_t limit, const Id& after) {
  auto total = ledger_.count_dead();
  if (!total) return total.status();
  json tasks = json::array();
  Status inner = Status::ok();
  Status walk = ledger_.for_each_dead(after, [&](const Id& id) {
    auto rec = ledger_.get_task(id);
    if (!rec) {
      inner = rec.status();
      return false;
    }
    if (!rec->has_value() || (!queue.empty() && (*rec)->queue != queue)) return true;
    const auto& r = **rec;
    tasks.push_back({{"id", r.id.to_string()}, {"ref", r.ref}, {"queue", r.queue}, {"kind", r.kind},
                     {"state", state_name(r.state)}, {"attempt", r.attempt}, {"retries", r.retries},
                     {"group", r.group.is_nil() ? json(nullptr) : json(r.group.to_string())},
                     {"error", r.error}, {"worker", r.worker}, {"finished_ms", r.finished_ms}});
    return tasks.size() < limit;
  });
  if (!walk) return walk;
  if (!inner) return inner;
  json out{{"total", *total}, {"tasks", tasks}};
  if (tasks.size() == limit) out["next"] = tasks.back()["id"];
  return json_text(out);
}

// Re-queues dead letters (of one queue, or all), oldest first.
Result<std::string> Core::retry_failed(const std::string& queue, size_t limit) {
  std::vector<Id> picked;
  Status inner = Status::ok();
  Status walk = ledger_.for_each_dead(Id(), [&](const Id& id) {
    if (!queue.empty()) {
      auto rec = ledger_.get_task(id);
      if (!rec) {
        inner = rec.status();
        return false;
      }
      if (!rec->has_value() || (*rec)->queue != queue) return true;
    }
    picked.push_back(id);
    return picked.size() < limit;
  });
  if (!walk) return walk;
  if (!inner) return inner;
  size_t retried = 0;
  for (const Id& id : picked) {
    auto r = retry(id);
    if (r) ++retried;
    else if (r.status().code() != Code::kConflict && r.status().code() != Code::kNotFound) return r.status();
  }
  auto left = ledger_.count_dead();
  if (!left) return left.status();
  spdlog::info("router retried dead letters={} queue={}", retried, queue.empty() ? "*" : queue);
  return json_text(json{{"retried", retried}, {"left", *left}});
}

}  // namespace zb::router
