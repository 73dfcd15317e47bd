// Dependencies: chains, chords and DAGs (docs/WORKFLOWS.md).
//
// A task that depends on others is made `waiting`, with its Dependencies in its record and
// one `waits` entry per thing it waits for. When a task ends (transition()) or a group
// completes, and something waits for it, it goes on a work list; settle() resolves the list
// in the same turn, so the dependant's change is in the transaction of the end that caused
// it: a router restart at any point finds either both or neither. Resolving reads only the
// waiters of what ended (no polling), and a dependant's own end goes on the list in turn, so a
// failure runs down a chain without recursion.
#include <algorithm>

#include "common/clock.h"
#include "common/log.h"
#include "common/text.h"
#include "router/core.h"

namespace zb::router {
namespace {

// Inputs above this size keep only the identity and state of each dependency.
constexpr size_t kMaxInputBytes = 4u << 20;
// A chord's callback receives the results of groups up to this size, a reference above it.
constexpr size_t kMaxInlineMembers = 10000;

// One ended dependency as a dependant receives it.
nlohmann::json input_of(const Id& id, const std::optional<proto::TaskRecord>& rec, size_t& budget) {
  nlohmann::json j = {{"id", id.to_string()}};
  if (!rec) {
    j["state"] = "expired";  // its result outlived the result TTL
    return j;
  }
  if (!rec->ref.empty()) j["ref"] = valid_utf8(rec->ref);
  j["state"] = state_name(rec->state);
  if (!rec->error.empty()) j["error"] = valid_utf8(rec->error);
  if (rec->state == TaskState::kSucceeded) {
    nlohmann::json result = nlohmann::json::parse(rec->result.empty() ? "null" : rec->result, nullptr, false);
    if (result.is_discarded()) result = valid_utf8(rec->result);  // a result that is not JSON: as text
    if (rec->result.size() <= budget) {
      budget -= rec->result.size();
      j["result"] = std::move(result);
    } else {
      j["result_omitted"] = true;  // read it from GET /api/v1/tasks/{id}
    }
  }
  return j;
}

}  // namespace

Status Core::check_dependencies(proto::Submit& submit) {
  const size_t n = submit.tasks.size();
  auto check_one = [&](const proto::TaskSpec& t, size_t self, bool callback) -> Status {
    const std::string who = (callback ? "callback " : "task ") + std::to_string(self);
    if (t.after.size() + t.after_index.size() > proto::kMaxDependencies)
      return Status(Code::kBadRequest, who + " depends on more than " + std::to_string(proto::kMaxDependencies) + " tasks");
    if (t.when > static_cast<uint8_t>(proto::Trigger::kAlways))
      return Status(Code::kBadRequest, who + ": when must be success (0), failure (1) or always (2)");
    const bool any = !t.after.empty() || !t.after_index.empty() || !t.after_group.is_nil() || callback;
    if (!any && t.when != 0) return Status(Code::kBadRequest, who + ": when is given, but it depends on nothing");
    for (uint32_t i : t.after_index) {
      if (i >= n)
        return Status(Code::kBadRequest, who + " depends on task " + std::to_string(i) + " of a submission of " +
                                             std::to_string(n));
      if (!callback && i == self) return Status(Code::kBadRequest, who + " depends on itself");
    }
    for (const Id& id : t.after) {
      auto rec = ledger_.get_task(id);
      if (!rec) return rec.status();
      if (!rec->has_value()) return Status(Code::kUnprocessable, who + " depends on task " + id.to_string() + ", which does not exist");
    }
    if (callback && !t.unique_key.empty()) return Status(Code::kBadRequest, who + " takes no unique key");
    if (!t.after_group.is_nil()) {
      if (callback) return Status(Code::kBadRequest, who + ": a callback waits for its own group; it names no other");
      if (t.after_group == submit.group)
        return Status(Code::kBadRequest, who + " is a member of group " + submit.group.to_string() +
                                             " and waits for it: it would wait for itself (make it a callback)");
      auto g = groups_.find(ledger_, t.after_group);
      if (!g) return g.status();
      if (!*g) return Status(Code::kUnprocessable, who + " depends on group " + t.after_group.to_string() + ", which does not exist");
    }
    return Status::ok();
  };
  for (size_t i = 0; i < n; ++i)
    if (Status s = check_one(submit.tasks[i], i, false); !s) return s;
  for (size_t i = 0; i < submit.callbacks.size(); ++i)
    if (Status s = check_one(submit.callbacks[i], i, true); !s) return s;
  if (!submit.callbacks.empty()) {
    if (submit.group.is_nil()) return Status(Code::kBadRequest, "callbacks wait for a group: the submission needs a group id");
    if (submit.chunks > 1)
      return Status(Code::kBadRequest, "a group with callbacks is sent in one submission, not in numbered chunks");
    if (submit.callbacks.size() > 100) return Status(Code::kBadRequest, "a group takes at most 100 callbacks");
    auto g = groups_.find(ledger_, submit.group);
    if (!g) return g.status();
    if (*g) return Status(Code::kConflict, "group " + submit.group.to_string() + " exists: callbacks are given with the submission that makes it");
  }
  // A cycle among this submission's tasks (Kahn's algorithm): tasks that exist already cannot
  // depend on new ones, so a cycle can only be here.
  std::vector<uint32_t> blocking(n, 0);
  std::vector<std::vector<uint32_t>> unblocks(n);
  bool edges = false;
  for (size_t i = 0; i < n; ++i)
    for (uint32_t p : submit.tasks[i].after_index) {
      ++blocking[i];
      unblocks[p].push_back(static_cast<uint32_t>(i));
      edges = true;
    }
  if (!edges) return Status::ok();
  std::vector<uint32_t> ready;
  for (size_t i = 0; i < n; ++i)
    if (!blocking[i]) ready.push_back(static_cast<uint32_t>(i));
  size_t seen = 0;
  while (!ready.empty()) {
    const uint32_t i = ready.back();
    ready.pop_back();
    ++seen;
    for (uint32_t c : unblocks[i])
      if (--blocking[c] == 0) ready.push_back(c);
  }
  if (seen == n) return Status::ok();
  // Name one task of the cycle: follow dependencies still blocked until one repeats.
  size_t at = 0;
  while (!blocking[at]) ++at;
  std::vector<uint32_t> path;
  std::vector<bool> on_path(n, false);
  while (!on_path[at]) {
    on_path[at] = true;
    path.push_back(static_cast<uint32_t>(at));
    for (uint32_t p : submit.tasks[at].after_index)
      if (blocking[p]) {
        at = p;
        break;
      }
  }
  std::string cycle;
  for (auto it = std::find(path.begin(), path.end(), at); it != path.end(); ++it) cycle += std::to_string(*it) + " → ";
  return Status(Code::kBadRequest, "the dependencies form a cycle: task " + cycle + std::to_string(at));
}

void Core::wait_for(proto::TaskRecord& rec, const proto::TaskSpec& spec, const std::vector<Id>& ids, const Id& group) {
  proto::Dependencies deps;
  deps.tasks = spec.after;
  for (uint32_t i : spec.after_index) deps.tasks.push_back(ids[i]);
  std::sort(deps.tasks.begin(), deps.tasks.end());
  deps.tasks.erase(std::unique(deps.tasks.begin(), deps.tasks.end()), deps.tasks.end());
  deps.group = group;
  deps.when = spec.when;
  deps.pending = static_cast<uint32_t>(deps.tasks.size() + (group.is_nil() ? 0 : 1));
  rec.state = TaskState::kWaiting;
  rec.deps = proto::pack_dependencies(deps);
  for (const Id& t : deps.tasks) {
    if (Status s = ledger_.put_wait(false, t, rec.id); !s) return fail_turn(s);
    awaited_tasks_.insert(t);
    resolve_tasks_.push_back(t);  // one that has ended already is resolved this turn
  }
  if (!group.is_nil()) {
    if (Status s = ledger_.put_wait(true, group, rec.id); !s) return fail_turn(s);
    awaited_groups_.insert(group);
    resolve_groups_.push_back(group);
  }
  waiting_[rec.id] = rec.group;
}

void Core::wait_again(proto::TaskRecord& rec) {
  auto deps = proto::unpack_dependencies(rec.deps);
  if (!deps) deps = proto::Dependencies{};  // unreadable: it waits for nothing, and is released now
  proto::TaskSpec spec;
  spec.after = std::move(deps->tasks);
  spec.when = deps->when;
  wait_for(rec, spec, {}, deps->group);
}

void Core::note_ended(const proto::TaskRecord& rec, const GroupState* group) {
  if (!awaited_tasks_.empty() && awaited_tasks_.count(rec.id)) resolve_tasks_.push_back(rec.id);
  if (group && !awaited_groups_.empty() && awaited_groups_.count(group->record.id) && group->record.ready())
    resolve_groups_.push_back(group->record.id);
}

void Core::settle() {
  while (turn_status_ && (!resolve_tasks_.empty() || !resolve_groups_.empty())) {
    if (!resolve_tasks_.empty()) {
      const Id id = resolve_tasks_.back();
      resolve_tasks_.pop_back();
      if (!awaited_tasks_.count(id)) continue;
      auto rec = ledger_.get_task(id);
      if (!rec) return fail_turn(rec.status());
      if (rec->has_value() && !is_terminal((*rec)->state)) continue;  // not ended (or running again)
      std::string why;
      const bool ok = rec->has_value() && (*rec)->state == TaskState::kSucceeded;
      if (!rec->has_value()) why = "task " + id.to_string() + " is gone (its result expired)";
      else if (!ok)
        why = "task " + id.to_string() + " " + std::string(state_name((*rec)->state)) +
              ((*rec)->error.empty() ? "" : ": " + (*rec)->error.substr(0, 1000));
      awaited_tasks_.erase(id);
      resolve(false, id, ok, why);
    } else {
      const Id id = resolve_groups_.back();
      resolve_groups_.pop_back();
      if (!awaited_groups_.count(id)) continue;
      auto g = groups_.find(ledger_, id);
      if (!g) return fail_turn(g.status());
      std::optional<proto::GroupRecord> record;
      if (*g) record = (*g)->record;
      if (record && !record->ready()) continue;
      const bool ok = record && record->failed == 0 && record->revoked == 0;
      std::string why = !record ? "group " + id.to_string() + " is gone (its results expired)"
                        : ok    ? ""
                                : "group " + id.to_string() + " completed with " + std::to_string(record->failed) +
                                   " failed and " + std::to_string(record->revoked) + " revoked of " +
                                   std::to_string(record->total) + " tasks";
      awaited_groups_.erase(id);
      resolve(true, id, ok, why);
    }
  }
}

void Core::resolve(bool is_group, const Id& awaited, bool succeeded, const std::string& why) {
  std::vector<Id> waiters;
  if (Status s = ledger_.waiters_of(is_group, awaited, waiters); !s) return fail_turn(s);
  for (const Id& w : waiters) {
    if (Status s = ledger_.del_wait(is_group, awaited, w); !s) return fail_turn(s);
    auto found = ledger_.get_task(w);
    if (!found) return fail_turn(found.status());
    if (!found->has_value() || (*found)->state != TaskState::kWaiting) continue;  // ended already
    proto::TaskRecord& rec = **found;
    auto deps = proto::unpack_dependencies(rec.deps);
    if (!deps || deps->pending == 0) {
      rec.error = "DependencyFailed: its dependency record cannot be read";
      (void)transition(rec, TaskState::kWaiting, Change(TaskState::kFailed));
      continue;
    }
    --deps->pending;
    if (!succeeded) ++deps->failed;
    const auto when = static_cast<proto::Trigger>(deps->when);
    rec.deps = proto::pack_dependencies(*deps);
    if (!succeeded && when == proto::Trigger::kSuccess) {
      rec.error = "DependencyFailed: " + why;
      (void)transition(rec, TaskState::kWaiting, Change(TaskState::kFailed));
    } else if (deps->pending > 0) {
      if (Status s = ledger_.put_task(rec); !s) return fail_turn(s);
      dirty_ = true;
    } else if (when == proto::Trigger::kFailure && deps->failed == 0) {
      rec.error = "skipped: every dependency succeeded (it runs only when one does not)";
      (void)transition(rec, TaskState::kWaiting, Change(TaskState::kRevoked));
    } else {
      release_waiting(rec, *deps);
    }
  }
}

void Core::release_waiting(proto::TaskRecord& rec, const proto::Dependencies& deps) {
  nlohmann::json inputs = nlohmann::json::object();
  size_t budget = kMaxInputBytes;
  if (!deps.tasks.empty()) {
    nlohmann::json list = nlohmann::json::array();
    for (const Id& id : deps.tasks) {
      auto parent = ledger_.get_task(id);
      if (!parent) return fail_turn(parent.status());
      list.push_back(input_of(id, *parent, budget));
    }
    inputs["tasks"] = std::move(list);
  }
  if (!deps.group.is_nil()) {
    auto g = groups_.find(ledger_, deps.group);
    if (!g) return fail_turn(g.status());
    nlohmann::json j = {{"id", deps.group.to_string()}};
    if (*g) {
      const auto& r = (*g)->record;
      j["total"] = r.total;
      j["succeeded"] = r.succeeded;
      j["failed"] = r.failed;
      j["revoked"] = r.revoked;
      if (r.indexed && r.total <= kMaxInlineMembers) {
        nlohmann::json results = nlohmann::json::array();
        Status read_error = Status::ok();
        Status s = ledger_.for_each_member(deps.group, [&](const Id& id) {
          auto member = ledger_.get_task(id);
          if (!member) {
            read_error = member.status();
            return false;
          }
          results.push_back(input_of(id, *member, budget));
          return true;
        });
        if (!s) return fail_turn(s);
        if (!read_error) return fail_turn(read_error);
        j["results"] = std::move(results);
      } else {
        j["results_omitted"] = true;
      }
    } else {
      j["state"] = "expired";
    }
    j["results_url"] = "/api/v1/groups/" + deps.group.to_string() + "/results";
    inputs["group"] = std::move(j);
  }
  rec.inputs = json_text(inputs);
  const uint64_t now = now_unix_ms();
  if (rec.eta_ms > now) {
    auto q = tasks_.find_queue(rec.queue);
    if (Status s = transition(rec, TaskState::kWaiting, Change(TaskState::kScheduled)); !s) return;
    if (q) tasks_.schedule({rec.eta_ms, order_key(rec.priority, rec.seq), *q, rec.id, rec.group});
    return;
  }
  rec.eta_ms = 0;
  (void)transition(rec, TaskState::kWaiting, Change(TaskState::kQueued));
}

size_t Core::revoke_waiting(const Id& group, const std::string& error) {
  std::vector<Id> ids;
  for (const auto& [task, g] : waiting_)
    if (g == group) ids.push_back(task);
  size_t revoked = 0;
  for (const Id& id : ids) {
    auto rec = ledger_.get_task(id);
    if (!rec) {
      fail_turn(rec.status());
      return revoked;
    }
    if (!rec->has_value() || (*rec)->state != TaskState::kWaiting) continue;
    (*rec)->error = error;
    if (transition(**rec, TaskState::kWaiting, Change(TaskState::kRevoked))) ++revoked;
  }
  return revoked;
}

Status Core::recover_dependencies() {
  Status s = ledger_.for_each_wait([&](bool group, const Id& awaited, const Id&) {
    if (group) {
      if (awaited_groups_.insert(awaited).second) resolve_groups_.push_back(awaited);
    } else if (awaited_tasks_.insert(awaited).second) {
      resolve_tasks_.push_back(awaited);
    }
  });
  return s;
}

}  // namespace zb::router
