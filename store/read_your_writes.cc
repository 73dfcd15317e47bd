#include "store/read_your_writes.h"

#include <algorithm>

#include "store/http_api.h"
#include "store/http_json.h"

namespace zb::store {

void ReadYourWrites::acknowledged(uint64_t seq) {
  const uint64_t log = db_.resets();
  std::lock_guard lock(mu_);
  if (log != log_) {
    log_ = log;
    seq_ = 0;
  }
  seq_ = std::max(seq_, seq);
}

uint64_t ReadYourWrites::target() const {
  const uint64_t log = db_.resets();
  uint64_t seq = 0;
  {
    std::lock_guard lock(mu_);
    if (log == log_) seq = seq_;
  }
  return std::max(seq, follower_.head_seq());
}

bool ReadYourWrites::catch_up(std::chrono::milliseconds timeout) const {
  const uint64_t target = this->target();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (db_.applied() < target) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) break;
    follower_.wait_applied(target, std::min(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now),
                                            std::chrono::milliseconds(50)));
  }
  return db_.applied() >= target;
}


Result<TaskStatus> read_task(const Api& api, const Id& id) {
  auto t = api.db.task(id);
  if (!t) return t.status();
  if (t->has_value()) return std::move(**t);
  // Not applied here yet: catch up with the router's log rather than answer the router's
  // record, which the store's own, older copy would contradict on the next read (a task seen
  // failed, then running again).
  if (api.writes->catch_up()) {
    t = api.db.task(id);
    if (!t) return t.status();
    if (t->has_value()) return std::move(**t);
  }
  // Still not here: the store is far behind (the router's record, read-your-writes), or no
  // such task (the router's 404).
  auto rec = api.pool.with([&](Client& c) { return c.status(id); });
  if (!rec) return rec.status();
  return from_record(*rec);
}

Result<GroupStatus> read_group(const Api& api, const Id& id) {
  auto g = api.db.group(id);
  if (!g) return g.status();
  if (!g->has_value()) {
    // Not applied here yet: catch up first, so that counters and results come from one
    // consistent view.
    api.writes->catch_up();
    g = api.db.group(id);
    if (!g) return g.status();
  }
  if (g->has_value()) return std::move(**g);
  auto rec = api.pool.with([&](Client& c) { return c.group(id); });
  if (!rec) return rec.status();
  GroupStatus group;
  group.id = rec->id;
  group.total = rec->total;
  group.succeeded = rec->succeeded;
  group.failed = rec->failed;
  group.revoked = rec->revoked;
  group.running = rec->running;
  group.parallel = rec->parallel;
  group.sealed = false;
  return group;
}

}  // namespace zb::store
