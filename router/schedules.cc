// Periodic tasks (docs/SCHEDULES.md): schedules live in LMDB with the newest slot they fired;
// each turn, the slots due by now fire. A firing is written in the same transaction as the
// task it submits and the schedule's advanced last slot, so a crash loses or doubles neither:
// either all three are on disk or none is, and only slots after the last one fire. The task's
// id is derived from (schedule, slot): a slot that somehow came again would find its task.
#include <algorithm>

#include "common/clock.h"
#include "common/log.h"
#include "router/core.h"

namespace zb::router {
namespace {

// A slot due within this long fires as itself; older due slots were missed (the router was
// down, or the clock jumped forward) and follow the schedule's catch_up policy.
constexpr uint64_t kOnTimeMs = 2000;
// Slots looked at per schedule per turn; a longer backlog takes more turns.
constexpr size_t kSlotsPerTurn = 1000;
// Firings kept per schedule in LMDB, and in a row's `recent`.
constexpr size_t kFiringsKept = 10000;
constexpr size_t kRecentKept = 20;

Id slot_task_id(const std::string& name, uint64_t slot_ms) {
  std::string key = "zbatch-schedule";
  key.push_back('\0');
  key += name;
  key.push_back('\0');
  key += std::to_string(slot_ms);
  return Id::from_hash(key);
}

bool same_spec(const proto::ScheduleSpec& a, const proto::ScheduleSpec& b) {
  msgpack::sbuffer x, y;
  msgpack::pack(x, a);
  msgpack::pack(y, b);
  return x.size() == y.size() && std::equal(x.data(), x.data() + x.size(), y.data());
}

}  // namespace

Result<Core::ScheduleState> Core::schedule_state(proto::ScheduleRow row) const {
  ScheduleState s;
  if (!row.spec.cron.empty()) {
    auto expr = cron::parse(row.spec.cron);
    if (!expr) return expr.status();
    s.expr = std::move(*expr);
    auto zone = cron::Zone::load(row.spec.timezone);
    if (!zone) return zone.status();
    s.zone = std::move(*zone);
  } else if (row.spec.every_ms == 0) {
    return Status(Code::kBadRequest, "schedule '" + row.spec.name + "' has neither cron nor an interval");
  }
  s.row = std::move(row);
  s.next_slot_ms = next_slot_after(s, s.row.last_slot_ms);
  return s;
}

uint64_t Core::next_slot_after(const ScheduleState& s, uint64_t after_ms) const {
  if (!s.expr) {
    const uint64_t every = s.row.spec.every_ms;
    return (after_ms / every + 1) * every;  // slots are multiples of the interval since 1970
  }
  const int64_t t = cron::next_slot(*s.expr, s.zone, static_cast<int64_t>(after_ms / 1000));
  return t < 0 ? 0 : static_cast<uint64_t>(t) * 1000;
}

Status Core::load_schedules() {
  schedules_.clear();
  std::vector<proto::ScheduleRow> rows;
  if (Status s = ledger_.for_each_schedule([&](proto::ScheduleRow&& row) { rows.push_back(std::move(row)); }); !s)
    return s;
  for (auto& row : rows) {
    const std::string name = row.spec.name;
    auto state = schedule_state(std::move(row));
    if (!state) {
      // A zone removed from the system, say: kept in LMDB, not fired, logged.
      spdlog::error("router schedule={} not loaded reason=\"{}\"", name, state.status().message());
      continue;
    }
    schedules_.emplace(name, std::move(*state));
  }
  if (!schedules_.empty()) spdlog::info("router recovered schedules={}", schedules_.size());
  return Status::ok();
}

Status Core::save_schedule(ScheduleState& s) {
  s.next_slot_ms = next_slot_after(s, s.row.last_slot_ms);
  dirty_ = true;
  return ledger_.put_schedule(s.row);
}

void Core::declare_schedules(uint64_t now) {
  schedules_declared_ = true;
  for (const auto& spec : options_.schedules) {
    auto it = schedules_.find(spec.name);
    if (it != schedules_.end() && same_spec(it->second.row.spec, spec) && it->second.row.source == "config") continue;
    proto::ScheduleRow row;
    if (it != schedules_.end()) {
      row = it->second.row;  // its state (last slot, pause, firings) carries over
    } else {
      row.created_ms = now;
      row.last_slot_ms = now;  // only slots after its declaration fire
    }
    const bool timing_changed = it != schedules_.end() && (row.spec.cron != spec.cron || row.spec.every_ms != spec.every_ms ||
                                                           row.spec.timezone != spec.timezone);
    row.spec = spec;
    row.source = "config";
    if (timing_changed) row.last_slot_ms = std::max(row.last_slot_ms, now);  // a new timing starts now
    auto state = schedule_state(std::move(row));
    if (!state) {
      spdlog::error("router schedule={} from the config not declared reason=\"{}\"", spec.name, state.status().message());
      continue;
    }
    if (Status s = save_schedule(*state); !s) return fail_turn(s);
    spdlog::info("router schedule={} declared source=config", spec.name);
    schedules_.insert_or_assign(spec.name, std::move(*state));
  }
  for (auto it = schedules_.begin(); it != schedules_.end();) {
    const bool in_config = std::any_of(options_.schedules.begin(), options_.schedules.end(),
                                       [&](const auto& spec) { return spec.name == it->first; });
    if (it->second.row.source != "config" || in_config) {
      ++it;
      continue;
    }
    spdlog::info("router schedule={} deleted: no longer in the config", it->first);
    if (Status s = ledger_.del_schedule(it->first); !s) return fail_turn(s);
    dirty_ = true;
    it = schedules_.erase(it);
  }
}

Result<Id> Core::fire(ScheduleState& s, uint64_t slot_ms, uint64_t now, const std::string& how) {
  proto::ScheduleRow& row = s.row;
  const proto::TaskSpec& t = row.spec.task;
  proto::ScheduleFiring firing{slot_ms, now, Id(), how};
  const bool run_now = how == "run_now";
  bool skip = false;
  if (!run_now && row.spec.overlap == "skip" && !row.last_task.is_nil()) {
    auto last = ledger_.get_task(row.last_task);
    if (!last) return last.status();
    skip = last->has_value() && !is_terminal((*last)->state);
  }
  const std::string queue = t.queue.empty() ? std::string(kDefaultQueue) : t.queue;
  auto q = tasks_.find_queue(queue);
  if (!q) {
    spdlog::error("router schedule={} slot={} not fired reason=\"unknown queue '{}'\"", row.spec.name, slot_ms, queue);
    firing.how = "unknown_queue";
    skip = true;
  } else if (skip) {
    firing.how = "skipped";
  } else if (!t.unique_key.empty()) {
    // While a task of the queue holds the schedule's unique key — one it fired, or one
    // submitted by hand — the slot is passed over, as for overlap = "skip" (docs/SCHEDULES.md).
    auto held = ledger_.get_unique(queue, t.unique_key);
    if (!held) return held.status();
    if (held->has_value()) {
      skip = true;
      firing.how = "skipped_unique";
    }
  }
  if (!skip) {
    const Id id = run_now ? Id::time_ordered() : slot_task_id(row.spec.name, slot_ms);
    auto existing = ledger_.get_task(id);
    if (!existing) return existing.status();
    if (existing->has_value()) {
      // Cannot happen while last_slot_ms is durable with the task; kept as the last guard.
      spdlog::warn("router schedule={} slot={} already has task={}", row.spec.name, slot_ms, id.to_string());
      firing.how = "duplicate";
    } else {
      // Made as a submitted task is (its unique key held with it), queued at once.
      proto::TaskSpec spec = t;
      spec.queue = queue;
      if (spec.ref.empty()) spec.ref = "schedule:" + row.spec.name + "@" + std::to_string(slot_ms);
      proto::TaskRecord rec;
      if (!make_task(rec, spec, *q, id, nullptr, Id(), {}, now)) return turn_status_;
      ++stats_.submitted;
      firing.task = id;
      row.last_task = id;
      ++row.fired;
    }
  }
  if (!run_now) row.last_slot_ms = std::max(row.last_slot_ms, slot_ms);
  if (Status st = ledger_.put_firing(row.spec.name, firing); !st) return st;
  if (Status st = ledger_.trim_firings(row.spec.name, kFiringsKept); !st) return st;
  row.recent.insert(row.recent.begin(), firing);
  if (row.recent.size() > kRecentKept) row.recent.resize(kRecentKept);
  if (Status st = save_schedule(s); !st) return st;
  spdlog::info("router schedule={} slot={} how={} task={}", row.spec.name, slot_ms, firing.how,
               firing.task.is_nil() ? "-" : firing.task.to_string());
  return firing.task;
}

void Core::fire_schedules(uint64_t now) {
  for (auto& [name, s] : schedules_) {
    if (s.row.paused || s.next_slot_ms == 0 || s.next_slot_ms > now) continue;
    // The slots due: after the last one fired (a clock that went back fires nothing until it
    // passes that slot again), up to now.
    std::vector<uint64_t> due;
    bool more = false;
    for (uint64_t slot = s.next_slot_ms; slot && slot <= now; slot = next_slot_after(s, slot)) {
      if (due.size() == kSlotsPerTurn) {
        more = true;
        break;
      }
      due.push_back(slot);
    }
    if (due.empty()) continue;
    const uint64_t latest = due.back();
    const bool on_time = !more && now - latest <= kOnTimeMs;
    const size_t missed = on_time ? due.size() - 1 : due.size();
    const std::string& policy = s.row.spec.catch_up;
    auto fired = [&](Result<Id> r) {
      if (!r) fail_turn(r.status());
      return static_cast<bool>(r);
    };
    if (policy == "all") {
      for (size_t i = 0; i < missed; ++i)
        if (!fired(fire(s, due[i], now, "catch_up"))) return;
      if (on_time && !fired(fire(s, latest, now, "slot"))) return;
      continue;
    }
    // one, none: missed slots are passed over without a firing of their own; with one, the
    // newest of them runs once (or the slot on time does, which is that one run).
    auto pass_over = [&](uint64_t upto) {
      s.row.last_slot_ms = std::max(s.row.last_slot_ms, upto);
      Status st = save_schedule(s);
      if (!st) fail_turn(st);
      spdlog::info("router schedule={} passed over missed slots up to={} catch_up={}", name, upto, policy);
      return static_cast<bool>(st);
    };
    if (more) {
      if (!pass_over(latest)) return;  // a long backlog: the next turn goes on from here
    } else if (on_time) {
      if (missed && !pass_over(due[due.size() - 2])) return;
      if (!fired(fire(s, latest, now, missed && policy == "one" ? "catch_up" : "slot"))) return;
    } else if (policy == "one") {
      if (!fired(fire(s, latest, now, "catch_up"))) return;
    } else if (!pass_over(latest)) {
      return;
    }
  }
}

std::optional<uint64_t> Core::next_schedule_ms() const {
  std::optional<uint64_t> next;
  for (const auto& [name, s] : schedules_)
    if (!s.row.paused && s.next_slot_ms) next = next ? std::min(*next, s.next_slot_ms) : s.next_slot_ms;
  return next;
}

proto::ScheduleRow Core::schedule_row(const ScheduleState& s) const {
  proto::ScheduleRow row = s.row;
  row.next_slot_ms = s.row.paused ? 0 : s.next_slot_ms;
  return row;
}

Result<proto::ControlResult> Core::schedule_control(proto::ControlOp op, const proto::ControlArgs& args) {
  using proto::ControlOp;
  const uint64_t now = now_unix_ms();
  if (op == ControlOp::kScheduleCreate) {
    const auto& spec = std::get<proto::ScheduleSpec>(args);
    if (schedules_.count(spec.name))
      return Status(Code::kConflict, "schedule '" + spec.name + "' exists (delete it first to change it)");
    const std::string queue = spec.task.queue.empty() ? std::string(kDefaultQueue) : spec.task.queue;
    if (!tasks_.find_queue(queue)) return Status(Code::kUnprocessable, "unknown queue '" + queue.substr(0, 64) + "'");
    proto::ScheduleRow row;
    row.spec = spec;
    row.source = "api";
    row.created_ms = now;
    row.last_slot_ms = now;
    auto state = schedule_state(std::move(row));
    if (!state) return state.status();
    if (Status s = save_schedule(*state); !s) return s;
    spdlog::info("router schedule={} created source=api", spec.name);
    auto [it, inserted] = schedules_.insert_or_assign(spec.name, std::move(*state));
    return proto::ControlResult(proto::ScheduleReply{schedule_row(it->second), Id()});
  }
  const proto::ScheduleArgs& sargs = std::get<proto::ScheduleArgs>(args);
  const std::string& name = sargs.name;
  if (op == ControlOp::kScheduleList) {
    proto::ScheduleListReply reply;
    for (const auto& [n, s] : schedules_)
      if (name.empty() || n == name) reply.schedules.push_back(schedule_row(s));
    if (!name.empty() && reply.schedules.empty()) return Status(Code::kNotFound, "no schedule '" + name + "'");
    if (sargs.firings) {
      // A page of its firings from LMDB (every one kept, up to kFiringsKept).
      auto page = ledger_.firings_before(name, sargs.before_ms, sargs.firings);
      if (!page) return page.status();
      reply.schedules.front().recent = std::move(*page);
    }
    return proto::ControlResult(std::move(reply));
  }
  auto it = schedules_.find(name);
  if (it == schedules_.end()) return Status(Code::kNotFound, "no schedule '" + name + "'");
  ScheduleState& s = it->second;
  switch (op) {
    case ControlOp::kSchedulePause:
    case ControlOp::kScheduleResume: {
      const bool pause = op == ControlOp::kSchedulePause;
      if (s.row.paused != pause) {
        s.row.paused = pause;
        // Slots that passed while paused do not fire on resume.
        if (!pause) s.row.last_slot_ms = std::max(s.row.last_slot_ms, now);
        if (Status st = save_schedule(s); !st) return st;
        spdlog::info("router schedule={} {}", name, pause ? "paused" : "resumed");
      }
      return proto::ControlResult(proto::ScheduleReply{schedule_row(s), Id()});
    }
    case ControlOp::kScheduleDelete: {
      proto::ScheduleReply reply{schedule_row(s), Id()};
      if (Status st = ledger_.del_schedule(name); !st) return st;
      dirty_ = true;
      schedules_.erase(it);
      spdlog::info("router schedule={} deleted", name);
      return proto::ControlResult(std::move(reply));
    }
    case ControlOp::kScheduleRun: {
      auto task = fire(s, now, now, "run_now");
      if (!task) return task.status();
      if (task->is_nil()) return Status(Code::kUnprocessable, "schedule '" + name + "': its queue is not declared");
      return proto::ControlResult(proto::ScheduleReply{schedule_row(s), *task});
    }
    default: break;
  }
  return Status(Code::kBadRequest, "unknown schedule operation");
}

}  // namespace zb::router
