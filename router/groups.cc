#include "router/groups.h"

#include <algorithm>

namespace zb::router {

Result<GroupState*> GroupTable::find(Ledger& ledger, const Id& id) {
  if (auto g = groups_.find(id); g != groups_.end()) return &g->second;
  auto rec = ledger.get_group(id);
  if (!rec) return rec.status();
  if (!rec->has_value()) return static_cast<GroupState*>(nullptr);
  GroupState state;
  state.record = std::move(**rec);
  return &groups_.emplace(id, std::move(state)).first->second;
}

GroupState& GroupTable::create(proto::GroupRecord record) {
  const Id id = record.id;
  GroupState state;
  state.record = std::move(record);
  GroupState& g = groups_.emplace(id, std::move(state)).first->second;
  mark(g);
  return g;
}

void GroupTable::add_tasks(GroupState& g, const proto::Submit& submit, uint64_t now_unix_ms) {
  proto::GroupRecord& r = g.record;
  r.received += static_cast<uint32_t>(submit.tasks.size());
  if (submit.chunks) {
    // The chunk's bit is written with its tasks and its idempotency record, in this turn's
    // transaction: after a restart the group knows exactly which chunks it still lacks.
    r.add_chunk(submit.chunk);
    r.sealed = r.chunks_received() == r.chunks;
  } else {
    r.total += static_cast<uint32_t>(submit.tasks.size());
    r.sealed = submit.seal;
  }
  if (r.ready() && !r.finished_ms) r.finished_ms = now_unix_ms;
  mark(g);
}

void GroupTable::enqueue(GroupState& g, size_t queue, uint64_t key, const Id& task) {
  if (g.record.parallel > 0 && g.admitted >= g.record.parallel) {
    g.held.emplace(key, HeldTask{queue, task});
    return;
  }
  ++g.admitted;
  tasks_.ready(queue).push(key, task, g.record.id);
}

void GroupTable::started(GroupState& g) {
  ++g.record.running;
  mark(g);
}

void GroupTable::stopped(GroupState& g) {
  if (g.record.running > 0) --g.record.running;
  mark(g);
}

void GroupTable::ended(GroupState& g, TaskState end, bool admitted, uint64_t now_unix_ms) {
  proto::GroupRecord& r = g.record;
  (end == TaskState::kSucceeded ? r.succeeded : end == TaskState::kFailed ? r.failed : r.revoked)++;
  if (admitted && g.admitted > 0) --g.admitted;
  if (r.ready() && !r.finished_ms) r.finished_ms = now_unix_ms;
  mark(g);
  admit_held(g);
}

void GroupTable::backing_off(GroupState& g, bool admitted) {
  if (admitted && g.admitted > 0) --g.admitted;
  mark(g);
  admit_held(g);
}

void GroupTable::reopened(GroupState& g, TaskState was) {
  uint32_t& counter = was == TaskState::kFailed ? g.record.failed : g.record.revoked;
  if (counter > 0) --counter;
  g.record.finished_ms = 0;
  mark(g);
}

bool GroupTable::unhold(GroupState& g, uint64_t key) { return g.held.erase(key) > 0; }

std::string revoked_error(const proto::GroupRecord& r) {
  if (!r.budget_spent_ms) return "revoked: its group was revoked";
  if (r.budget_tokens && r.spent_tokens >= r.budget_tokens)
    return "BudgetExceeded: batch tokens: its group's tasks spent " + std::to_string(r.spent_tokens) + " of its " +
           std::to_string(r.budget_tokens) + " tokens";
  return "BudgetExceeded: batch run time: its group's tasks ran " + std::to_string(r.spent_run_ms / 1000) + " s of its " +
         std::to_string(r.budget_run_ms / 1000) + " s";
}

bool over_budget(const proto::GroupRecord& r) {
  return (r.budget_tokens && r.spent_tokens >= r.budget_tokens) || (r.budget_run_ms && r.spent_run_ms >= r.budget_run_ms);
}

std::vector<Id> GroupTable::revoke(GroupState& g, uint64_t now_unix_ms) {
  if (!g.record.revoked_ms) {
    g.record.revoked_ms = now_unix_ms;
    // Its missing chunks will not come: it may be complete now.
    if (g.record.ready() && !g.record.finished_ms) g.record.finished_ms = now_unix_ms;
    mark(g);
  }
  std::vector<Id> out;
  for (auto& [key, held] : g.held) out.push_back(held.task);
  g.held.clear();
  return out;
}

std::vector<Id> GroupTable::unhold_queues(const std::vector<size_t>& queues) {
  std::vector<Id> out;
  for (auto& [gid, g] : groups_)
    for (auto it = g.held.begin(); it != g.held.end();) {
      if (std::find(queues.begin(), queues.end(), it->second.queue) != queues.end()) {
        out.push_back(it->second.task);
        it = g.held.erase(it);
      } else {
        ++it;
      }
    }
  return out;
}

void GroupTable::recount_running(const std::unordered_map<Id, LeaseState, IdHash>& leases) {
  for (auto& [id, g] : groups_) g.record.running = 0;
  for (const auto& [task, lease] : leases)
    if (auto g = groups_.find(lease.group); g != groups_.end()) ++g->second.record.running;
}

void GroupTable::mark(GroupState& g) {
  if (!g.dirty) {
    g.dirty = true;
    dirty_.push_back(g.record.id);
  }
}

void GroupTable::admit_held(GroupState& g) {
  while (!g.held.empty() && (g.record.parallel == 0 || g.admitted < g.record.parallel)) {
    auto it = g.held.begin();
    tasks_.ready(it->second.queue).push(it->first, it->second.task, g.record.id);
    ++g.admitted;
    g.held.erase(it);
  }
}

Status GroupTable::write(Ledger& ledger, bool expire, const std::function<void(proto::Event)>& emit) {
  for (const Id& id : dirty_) {
    auto it = groups_.find(id);
    if (it == groups_.end()) continue;
    GroupState& g = it->second;
    g.dirty = false;
    if (Status s = ledger.put_group(g.record); !s) return s;
    if (expire && g.record.ready() && g.record.finished_ms)
      if (Status s = ledger.put_expiry(g.record.finished_ms, Ledger::Expiring::kGroup, id.bytes()); !s) return s;
    // Followers get the record as it is now: they apply it instead of counting for themselves.
    proto::Event ev;
    ev.type = proto::EventType::kGroupUpdated;
    ev.group = id;
    proto::GroupRecord shown = g.record;
    shown.chunks_present.clear();
    ev.group_record.push_back(std::move(shown));
    emit(std::move(ev));
    if (g.record.ready() && g.held.empty() && g.admitted == 0) groups_.erase(it);
  }
  dirty_.clear();
  return Status::ok();
}

std::vector<size_t> GroupTable::held_per_queue() const {
  std::vector<size_t> out(tasks_.queue_count(), 0);
  for (const auto& [gid, g] : groups_)
    for (const auto& [key, held] : g.held) ++out[held.queue];
  return out;
}

void GroupTable::clear() {
  groups_.clear();
  dirty_.clear();
}

}  // namespace zb::router
