// Result expiry: finished tasks, finished groups and idempotency keys are deleted once the
// result TTL has passed since they finished. Deleted pages go back to LMDB's free list, so a
// router that keeps running tasks keeps a bounded file.
#include "common/log.h"
#include "router/core.h"

namespace zb::router {
namespace {

constexpr size_t kExpirePerSecond = 50000;

}  // namespace

void Core::expire_results(uint64_t now_unix) {
  if (!options_.result_ttl_ms || now_unix < options_.result_ttl_ms) return;
  using Expiring = Ledger::Expiring;
  size_t tasks = 0, groups_gone = 0;
  auto swept = ledger_.sweep_expired(
      now_unix - options_.result_ttl_ms, kExpirePerSecond,
      [&](Expiring kind, std::string_view key, uint64_t at) -> Status {
        if (kind == Expiring::kIdem) return ledger_.del_idem(std::string(key));
        auto id = Id::from_bytes(key);
        if (!id) return Status(Code::kIo, "corrupt expiry entry");
        if (kind == Expiring::kTask) {
          // A task retried after it finished has a newer finish time: this entry is stale.
          auto rec = ledger_.get_task(*id);
          if (!rec) return rec.status();
          if (!rec->has_value() || !is_terminal((*rec)->state) || (*rec)->finished_ms != at) return Status::ok();
          if (Status s = ledger_.del_dead(*id); !s) return s;
          ++tasks;
          return ledger_.del_task(*id);
        }
        if (groups_.active(*id)) return Status::ok();  // still active
        auto rec = ledger_.get_group(*id);
        if (!rec) return rec.status();
        if (!rec->has_value() || !(*rec)->ready() || (*rec)->finished_ms != at) return Status::ok();
        ++groups_gone;
        if ((*rec)->indexed)
          if (Status s = ledger_.del_members(*id); !s) return s;
        return ledger_.del_group(*id);
      });
  if (!swept) return fail_turn(swept.status());
  if (*swept) {
    // Followers (the store) delete what finished up to the same instant.
    proto::Event ev;
    ev.type = proto::EventType::kResultsExpired;
    ev.before_ms = now_unix - options_.result_ttl_ms;
    emit(std::move(ev));
    dirty_ = true;
    spdlog::debug("router expired tasks={} groups={} entries={}", tasks, groups_gone, *swept);
  }
}

}  // namespace zb::router
