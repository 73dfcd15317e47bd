// Control operations on the frontend: ping, inspect.*, purge. Replies are JSON objects.
#include <algorithm>

#include <nlohmann/json.hpp>

#include "common/text.h"
#include "common/clock.h"
#include "common/log.h"
#include "router/router_impl.h"

namespace zb {
namespace {

using nlohmann::json;
constexpr size_t kInspectLimit = 1000;

}  // namespace

void Router::Impl::on_control(const std::string& rid, const proto::Control& control) {
  if (control.deadline_ms && now_unix_ms() > control.deadline_ms) {
    ++late_requests;
    spdlog::warn("router refused late control op={} late_ms={}", control.op.substr(0, 64),
                 now_unix_ms() - control.deadline_ms);
    return reply_error(rid, control.corr, Status(Code::kTimeout, "'" + control.op.substr(0, 64) +
                                                     "' reached the router after its deadline: not carried out"));
  }
  auto reply = control_json(control.op, control.args);
  if (!reply) return reply_error(rid, control.corr, reply.status());
  outbox.push_back({false, rid, proto::ControlReply{control.corr, std::move(reply.value())}});
}

Result<std::string> Router::Impl::control_json(const std::string& op, const std::string& args_text) {
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
    return json_text(json{{"pong", true}, {"log_id", ledger->meta().log_id.to_string()},
                {"head_seq", ledger->meta().seq}, {"workers", workers.size()},
                {"uptime_ms", now - started_steady_ms}});
  }
  // Celery's meanings: active = running on a slot now; reserved = taken by a worker (leased)
  // and not started; scheduled = waiting for its ETA, countdown or retry backoff. Each gives
  // the exact total beside a list of at most kInspectLimit tasks.
  if (op == "inspect.active" || op == "inspect.reserved") {
    const bool want_started = op == "inspect.active";
    json out = json::array();
    json flat = json::array();
    size_t total = 0, listed = 0;
    for (const auto& rid : worker_order) {
      const auto& w = workers.at(rid);
      json tasks = json::array();
      for (const Id& id : w.leased) {
        auto l = leases.find(id);
        if (l == leases.end() || (l->second.started_unix_ms != 0) != want_started) continue;
        ++total;
        if (listed >= kInspectLimit) continue;
        ++listed;
        json t = task_json(id);
        t["worker"] = w.name;
        if (want_started) t["started_ms"] = l->second.started_unix_ms;
        (want_started ? tasks : flat).push_back(std::move(t));
      }
      if (want_started) out.push_back({{"name", w.name}, {"session", w.session.to_string()}, {"tasks", tasks}});
    }
    if (want_started) return json_text(json{{"workers", out}, {"total", total}});
    return json_text(json{{"tasks", flat}, {"total", total}});
  }
  if (op == "inspect.scheduled") {
    auto copy = scheduled;
    json tasks = json::array();
    size_t total = 0;
    for (; !copy.empty(); copy.pop()) {
      if (revoked_scheduled.count(copy.top().task)) continue;
      ++total;
      if (tasks.size() < kInspectLimit) tasks.push_back(task_json(copy.top().task));
    }
    return json_text(json{{"tasks", tasks}, {"total", total}});
  }
  if (op == "inspect.stats") {
    json ws = json::array();
    for (const auto& rid : worker_order) {
      const auto& w = workers.at(rid);
      ws.push_back({{"name", w.name}, {"session", w.session.to_string()}, {"hostname", w.hostname},
                    {"pid", w.pid}, {"concurrency", w.concurrency}, {"capacity", w.capacity},
                    {"in_flight", w.leased.size()}, {"busy", w.busy}, {"processed", w.processed},
                    {"failed", w.failed}, {"last_heartbeat_ms", w.last_seen_unix_ms},
                    {"online_ms", w.online_unix_ms}, {"draining", w.draining},
                    [&] {
                      json qs = json::array();
                      for (size_t q : w.queues) qs.push_back(options.queues[q].name);
                      return json{"queues", qs};
                    }()});
    }
    const auto& meta = ledger->meta();
    json router_stats = {{"uptime_ms", now - started_steady_ms}, {"submitted", submitted_total},
                         {"succeeded", succeeded_total}, {"failed", failed_total},
                         {"in_flight", leases.size()}, {"scheduled", scheduled.size()},
                         {"groups_active", groups.size()}, {"bad_frames", bad_frames},
                         {"late_requests", late_requests},
                         {"refused", {{"forbidden", refused.forbidden}, {"foreign_results", refused.foreign_results},
                                      {"foreign_claims", refused.foreign_claims},
                                      {"foreign_started", refused.foreign_started}, {"bad_counts", refused.bad_counts},
                                      {"unknown_keys", zap ? zap->refused() : 0}}},
                         {"event_seq", meta.seq}, {"event_first_seq", meta.first_seq},
                         {"event_confirmed", meta.confirmed},
                         {"db_used_bytes", ledger->env().used_bytes()},
                         {"db_map_bytes", ledger->env().map_bytes()},
                         {"storage_full", storage_full},
                         {"storage_free_bytes", storage.free_bytes},
                         {"storage_reserve_bytes", storage.reserve_bytes},
                         {"storage_failed_commits", storage.failed_commits},
                         {"durability", options.fsync ? "fsync" : "nosync"}};
    return json_text(json{{"router", router_stats}, {"workers", ws}});
  }
  if (op == "inspect.registered") {
    json ws = json::array();
    for (const auto& rid : worker_order) {
      const auto& w = workers.at(rid);
      ws.push_back({{"name", w.name}, {"kinds", w.kinds}, {"test_profiles", w.test_profiles},
                    {"mcp_servers", w.mcp_servers}});
    }
    return json_text(json{{"workers", ws}});
  }
  if (op == "inspect.queues") {
    std::vector<size_t> scheduled_per_queue(options.queues.size(), 0);
    for (auto copy = scheduled; !copy.empty(); copy.pop())
      if (!revoked_scheduled.count(copy.top().task)) ++scheduled_per_queue[copy.top().queue];
    std::vector<size_t> started_per_queue(options.queues.size(), 0);
    for (const auto& [id, l] : leases)
      if (l.started_unix_ms) ++started_per_queue[l.queue];
    std::vector<size_t> held_per_queue(options.queues.size(), 0);
    for (const auto& [gid, g] : groups)
      for (const auto& [key, held] : g.held) ++held_per_queue[held.first];
    json qs = json::array();
    for (size_t i = 0; i < options.queues.size(); ++i) {
      const auto& q = options.queues[i];
      qs.push_back({{"name", q.name}, {"priority", q.priority}, {"default_kind", q.default_kind},
                    {"depth", ready[i].size() + held_per_queue[i]}, {"scheduled", scheduled_per_queue[i]},
                    {"reserved", queue_running[i] - std::min<uint64_t>(queue_running[i], started_per_queue[i])},
                    {"running", started_per_queue[i]}});
    }
    return json_text(json{{"queues", qs}});
  }
  if (op == "purge") {
    std::vector<size_t> targets;
    if (args.contains("queue") && !args["queue"].is_null()) {
      if (!args["queue"].is_string()) return Status(Code::kBadRequest, "purge: queue must be a string");
      auto q = queue_index.find(args["queue"].get<std::string>());
      if (q == queue_index.end())
        return Status(Code::kUnprocessable, "unknown queue '" + args["queue"].get<std::string>() + "'");
      targets.push_back(q->second);
    } else {
      for (size_t i = 0; i < options.queues.size(); ++i) targets.push_back(i);
    }
    std::vector<std::pair<Id, bool>> victims;  // task, was admitted (in a ready queue)
    for (size_t q : targets)
      for (auto& [key, id] : ready[q].take_all()) victims.emplace_back(id, true);
    for (auto& [gid, g] : groups)
      for (auto it = g.held.begin(); it != g.held.end();) {
        if (std::find(targets.begin(), targets.end(), it->second.first) != targets.end()) {
          victims.emplace_back(it->second.second, false);
          it = g.held.erase(it);
        } else {
          ++it;
        }
      }
    for (const auto& [id, admitted] : victims) {
      auto found = ledger->get_task(id);
      if (!found) return found.status();
      if (!found->has_value()) continue;
      if (Status s = finish_revoked(**found, admitted, "purged"); !s) return s;
    }
    const std::string queue_name = targets.size() == 1 ? options.queues[targets[0]].name : std::string();
    proto::Event ev;
    ev.type = proto::EventType::kQueuePurged;
    ev.queue = queue_name;
    ev.count = victims.size();
    emit(std::move(ev));
    dirty = true;
    spdlog::info("router purged tasks={} queue={}", victims.size(), queue_name.empty() ? "*" : queue_name);
    return json_text(json{{"purged", victims.size()}});
  }
  if (op == "inspect.failed" || op == "retry.failed") {
    std::string queue;
    if (args.contains("queue")) {
      if (!args["queue"].is_string()) return Status(Code::kBadRequest, op + ": queue must be a string");
      queue = args["queue"].get<std::string>();
      if (!queue_index.count(queue)) return Status(Code::kUnprocessable, op + ": unknown queue '" + queue.substr(0, 64) + "'");
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
    auto w = std::find_if(workers.begin(), workers.end(), [&](const auto& kv) { return kv.second.name == name; });
    if (w == workers.end()) return Status(Code::kNotFound, "no worker named '" + name.substr(0, 255) + "' is online");
    proto::WorkerCommand command{op == "worker.shutdown" ? "shutdown" : "pool", 0};
    if (op == "worker.pool") {
      if (!args.contains("delta") || !args["delta"].is_number_integer() || args["delta"].get<int64_t>() == 0 ||
          args["delta"].get<int64_t>() < -1024 || args["delta"].get<int64_t>() > 1024)
        return Status(Code::kBadRequest, "worker.pool: delta must be a non-zero integer, -1024..1024");
      command.delta = static_cast<int32_t>(args["delta"].get<int64_t>());
    }
    outbox.push_back({true, w->first, std::move(command)});
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

Status Router::Impl::finish_revoked(proto::TaskRecord& rec, bool admitted, const std::string& reason) {
  const uint64_t now = now_unix_ms();
  requeued_from.erase(rec.id);
  rec.state = TaskState::kRevoked;
  rec.error = reason;
  rec.finished_ms = now;
  if (Status s = ledger->put_task(rec); !s) return s;
  proto::Event ev = router::task_event(rec, proto::EventType::kTaskRevoked, TaskState::kRevoked);
  ev.error = reason;
  emit(std::move(ev));
  if (router::GroupState* g = rec.group.is_nil() ? nullptr : load_group(rec.group)) {
    ++g->record.revoked;
    if (admitted && g->admitted > 0) --g->admitted;
    if (g->record.ready() && !g->record.finished_ms) g->record.finished_ms = now;
    mark_group(*g);
    admit_held(*g);
  }
  dirty = true;
  task_finished(rec.id);
  return Status::ok();
}

// A queued or scheduled task never runs; a running one is stopped only with `terminate`.
// The revocation is the task's record, so it survives a router restart.
Result<std::string> Router::Impl::revoke(const Id& task, bool terminate) {
  auto found = ledger->get_task(task);
  if (!found) return found.status();
  if (!found->has_value()) return Status(Code::kNotFound, "no task " + task.to_string());
  proto::TaskRecord& rec = **found;
  if (is_terminal(rec.state))
    return Status(Code::kConflict, "task " + task.to_string() + " already " + std::string(state_name(rec.state)));
  const uint64_t key = router::order_key(rec.priority, rec.seq);
  bool admitted = false;
  std::string outcome = "queued";
  if (auto lease = leases.find(task); lease != leases.end()) {
    if (!terminate)
      return Status(Code::kConflict, "task " + task.to_string() + " is running; revoke it with terminate to stop it");
    const router::LeaseState l = lease->second;
    if (auto w = workers.find(l.routing_id); w != workers.end()) {
      w->second.leased.erase(task);
      outbox.push_back({true, l.routing_id, proto::Revoke{{{task, l.attempt}}}});
    }
    --queue_running[l.queue];
    leases.erase(lease);
    if (Status s = ledger->del_lease(task); !s) return s;
    if (router::GroupState* g = rec.group.is_nil() ? nullptr : load_group(rec.group))
      if (g->record.running > 0) --g->record.running;
    rec.attempt = l.attempt;
    admitted = true;
    outcome = "terminated";
  } else if (auto q = queue_index.find(rec.queue); q != queue_index.end() && ready[q->second].erase(key)) {
    admitted = true;
  } else if (router::GroupState* g = rec.group.is_nil() ? nullptr : load_group(rec.group); g && g->held.erase(key)) {
    outcome = "held";
  } else if ((rec.state == TaskState::kScheduled || rec.state == TaskState::kRetrying) && rec.eta_ms > now_unix_ms()) {
    revoked_scheduled.insert(task);
    outcome = "scheduled";
  }
  if (Status s = finish_revoked(rec, admitted, terminate ? "revoked (terminated)" : "revoked"); !s) return s;
  spdlog::info("router revoked task={} was={}", task.to_string(), outcome);
  return json_text(json{{"revoked", task.to_string()}, {"was", outcome}});
}

// Runs a failed (or revoked) task again: back to its queue, attempt + 1 on dispatch.
Result<std::string> Router::Impl::retry(const Id& task) {
  auto found = ledger->get_task(task);
  if (!found) return found.status();
  if (!found->has_value()) return Status(Code::kNotFound, "no task " + task.to_string());
  proto::TaskRecord& rec = **found;
  if (rec.state != TaskState::kFailed && rec.state != TaskState::kRevoked)
    return Status(Code::kConflict, "only a failed or revoked task can be retried; task " + task.to_string() +
                                       " is " + std::string(state_name(rec.state)));
  auto q = queue_index.find(rec.queue);
  if (q == queue_index.end()) return Status(Code::kUnprocessable, "unknown queue '" + rec.queue + "'");
  const TaskState was = rec.state;
  rec.state = TaskState::kQueued;
  rec.result.clear();
  rec.finished_ms = 0;
  rec.eta_ms = 0;
  rec.retries = 0;  // a new round of automatic retries; attempts keep counting
  if (Status s = ledger->put_task(rec); !s) return s;
  if (Status s = ledger->del_dead(task); !s) return s;
  proto::Event ev = router::task_event(rec, proto::EventType::kTaskQueued, TaskState::kQueued);
  ev.from = was;
  emit(std::move(ev));
  if (router::GroupState* g = rec.group.is_nil() ? nullptr : load_group(rec.group)) {
    uint32_t& counter = was == TaskState::kFailed ? g->record.failed : g->record.revoked;
    if (counter > 0) --counter;
    g->record.finished_ms = 0;
    mark_group(*g);
  }
  enqueue(q->second, router::order_key(rec.priority, rec.seq), task, rec.group);
  dirty = true;
  return json_text(json{{"retried", task.to_string()}, {"attempts_so_far", rec.attempt}});
}

}  // namespace zb

namespace zb {

// Dead letters in id (= submission) order, with their last error.
Result<std::string> Router::Impl::inspect_failed(const std::string& queue, size_t limit, const Id& after) {
  auto total = ledger->count_dead();
  if (!total) return total.status();
  json tasks = json::array();
  Status inner = Status::ok();
  Status walk = ledger->for_each_dead(after, [&](const Id& id) {
    auto rec = ledger->get_task(id);
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
Result<std::string> Router::Impl::retry_failed(const std::string& queue, size_t limit) {
  std::vector<Id> picked;
  Status inner = Status::ok();
  Status walk = ledger->for_each_dead(Id(), [&](const Id& id) {
    if (!queue.empty()) {
      auto rec = ledger->get_task(id);
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
  auto left = ledger->count_dead();
  if (!left) return left.status();
  spdlog::info("router retried dead letters={} queue={}", retried, queue.empty() ? "*" : queue);
  return json_text(json{{"retried", retried}, {"left", *left}});
}

}  // namespace zb
