// Result expiry: finished tasks, finished groups and idempotency keys are deleted once the
// result TTL has passed since they finished. Deleted pages go back to LMDB's free list, so a
// router that keeps running tasks keeps a bounded file.
#include "common/log.h"
#include "router/router_impl.h"

namespace zb {
namespace {

constexpr size_t kExpirePerSecond = 50000;

}  // namespace

void Router::Impl::expire_results(uint64_t now_unix) {
  if (!options.result_ttl_ms || now_unix < options.result_ttl_ms) return;
  using Expiring = router::Ledger::Expiring;
  size_t tasks = 0, groups_gone = 0;
  auto swept = ledger->sweep_expired(
      now_unix - options.result_ttl_ms, kExpirePerSecond,
      [&](Expiring kind, std::string_view key, uint64_t at) -> Status {
        if (kind == Expiring::kIdem) return ledger->del_idem(std::string(key));
        auto id = Id::from_bytes(key);
        if (!id) return Status(Code::kIo, "corrupt expiry entry");
        if (kind == Expiring::kTask) {
          // A task retried after it finished has a newer finish time: this entry is stale.
          auto rec = ledger->get_task(*id);
          if (!rec) return rec.status();
          if (!rec->has_value() || !is_terminal((*rec)->state) || (*rec)->finished_ms != at) return Status::ok();
          if (Status s = ledger->del_dead(*id); !s) return s;
          ++tasks;
          return ledger->del_task(*id);
        }
        if (auto live = groups.find(*id); live != groups.end()) return Status::ok();  // still active
        auto rec = ledger->get_group(*id);
        if (!rec) return rec.status();
        if (!rec->has_value() || !(*rec)->ready() || (*rec)->finished_ms != at) return Status::ok();
        ++groups_gone;
        return ledger->del_group(*id);
      });
  if (!swept) return fail_turn(swept.status());
  if (*swept) {
    // Followers (the store) delete what finished up to the same instant.
    proto::Event ev;
    ev.type = proto::EventType::kResultsExpired;
    ev.before_ms = now_unix - options.result_ttl_ms;
    emit(std::move(ev));
    dirty = true;
    spdlog::debug("router expired tasks={} groups={} entries={}", tasks, groups_gone, *swept);
  }
}

}  // namespace zb
