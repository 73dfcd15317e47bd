// The groups with unfinished tasks, and the only place group counters change.
//
// A group's record (proto::GroupRecord) holds its counters, so its status is one read. A task
// of a group with `parallel = N` is admitted into its ready queue only while fewer than N of
// the group's tasks are admitted (queued or leased); the others are held here, in order, and
// admitted as tasks finish or go back to waiting for a retry backoff. Each group changed in a
// turn is written once at the end of it, together with its `group-updated` event.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <unordered_map>
#include <vector>

#include "common/protocol.h"
#include "router/ledger.h"
#include "router/task_table.h"

namespace zb::router {

struct HeldTask {
  size_t queue = 0;
  Id task;
};

struct GroupState {
  proto::GroupRecord record;
  uint32_t admitted = 0;                // tasks in a ready queue or leased (bounded by parallel)
  std::map<uint64_t, HeldTask> held;    // order key → task waiting for room
  bool dirty = false;
};

// The error a task of a revoked group ends with: "revoked: its group was revoked", or, for a
// group whose budget ran out, "BudgetExceeded: batch tokens: ..." (or "batch run time").
std::string revoked_error(const proto::GroupRecord& record);
// The group's budget is spent (and it has one).
bool over_budget(const proto::GroupRecord& record);

class GroupTable {
 public:
  explicit GroupTable(TaskTable& tasks) : tasks_(tasks) {}

  // The group, read from the ledger on first use; nullptr when there is no such group.
  Result<GroupState*> find(Ledger& ledger, const Id& id);
  // A group its first submission creates (not yet in the ledger).
  GroupState& create(proto::GroupRecord record);

  // A submission added its tasks (a numbered chunk, or unnumbered tasks that may seal it).
  void add_tasks(GroupState& g, const proto::Submit& submit, uint64_t now_unix_ms);
  // Puts a task of the group into its ready queue, or holds it while the group has
  // `parallel` tasks admitted.
  void enqueue(GroupState& g, size_t queue, uint64_t key, const Id& task);
  // A task of the group was leased to a worker (or re-claimed by the one running it).
  void started(GroupState& g);
  // A leased task stopped running without ending: its worker was lost or returned it, it was
  // terminated, or it goes back to waiting.
  void stopped(GroupState& g);
  // A task ended as `end` (succeeded, failed or revoked). `admitted`: it held a place in the
  // allowance, which passes to the next held task.
  void ended(GroupState& g, TaskState end, bool admitted, uint64_t now_unix_ms);
  // A task waits out a retry backoff: it gives its place in the allowance to a held task.
  void backing_off(GroupState& g, bool admitted);
  // A failed or revoked task runs again (an explicit retry): the group is not done any more.
  void reopened(GroupState& g, TaskState was);
  // Takes a held task out (revoked): false when it was not held.
  bool unhold(GroupState& g, uint64_t key);
  // The whole group was revoked (revoke.group): it takes no more tasks; its held ones are
  // taken out and returned, to be revoked by the caller.
  std::vector<Id> revoke(GroupState& g, uint64_t now_unix_ms);
  // Each group active here (with unfinished tasks, or changed this turn).
  template <typename F>
  void for_each(F&& fn) {
    for (auto& [id, g] : groups_) fn(g);
  }
  // Takes out every held task of these queues (purge).
  std::vector<Id> unhold_queues(const std::vector<size_t>& queues);
  // After a restart: a leased task holds a place in the allowance; `running` is counted
  // again from the leases that survived.
  void recovered_lease(GroupState& g) { ++g.admitted; }
  void recount_running(const std::unordered_map<Id, LeaseState, IdHash>& leases);

  // Writes each group changed this turn once, emits its record, and forgets groups that are
  // done. `expire`: a finished group is noted for the result TTL.
  Status write(Ledger& ledger, bool expire, const std::function<void(proto::Event)>& emit);

  size_t size() const { return groups_.size(); }
  // The group when it is active here (nullptr: finished and written, or unknown).
  const GroupState* active(const Id& id) const {
    auto it = groups_.find(id);
    return it == groups_.end() ? nullptr : &it->second;
  }
  // Held tasks per queue (inspect.queues' depth).
  std::vector<size_t> held_per_queue() const;
  void clear();
  // The group's record changed: written (with its group-updated event) at the end of the turn.
  void mark(GroupState& g);

 private:
  void admit_held(GroupState& g);

  TaskTable& tasks_;
  std::unordered_map<Id, GroupState, IdHash> groups_;
  std::vector<Id> dirty_;
};

}  // namespace zb::router
