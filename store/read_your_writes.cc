#include "store/read_your_writes.h"

#include <chrono>

#include <nlohmann/json.hpp>

#include "store/http_json.h"

namespace zb::store {

bool catch_up(const Api& api) {
  auto ping = api.pool.with([&](Client& c) { return c.control("ping"); });
  if (!ping) return false;
  const nlohmann::json reply = nlohmann::json::parse(*ping, nullptr, false);
  const uint64_t head = reply.is_object() ? reply.value("head_seq", uint64_t{0}) : 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (api.db.applied() < head && std::chrono::steady_clock::now() < deadline)
    api.follower.wait_applied(head, std::chrono::milliseconds(50));
  return api.db.applied() >= head;
}

Result<TaskStatus> read_task(const Api& api, const Id& id) {
  auto t = api.db.task(id);
  if (!t) return t.status();
  if (t->has_value()) return std::move(**t);
  // Not applied here yet: catch up with the router's log rather than answer the router's
  // record, which the store's own, older copy would contradict on the next read (a task seen
  // failed, then running again).
  if (catch_up(api)) {
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
    catch_up(api);
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
