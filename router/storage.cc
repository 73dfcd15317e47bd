// The room the data folder has, and what happens when it runs out: submissions are refused
// (storage_full) before the filesystem is full, and a turn whose commit fails anyway is rolled
// back instead of ending the router.
#include <sys/statvfs.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/clock.h"
#include "common/log.h"
#include "router/router_impl.h"

namespace zb {
namespace {

// How often the free space is measured: a turn writes at most a few MiB, so the reserve is
// crossed by little between two measurements.
constexpr uint64_t kCheckIntervalMs = 100;
constexpr uint64_t kNearReserveBytes = 16ull << 20;
// Free space kept in the LMDB map before each turn, so a turn never hits MDB_MAP_FULL: a
// quarter of the maximum map, at most 256 MiB (a turn writes far less).
uint64_t turn_headroom_bytes(uint64_t max_map_bytes) { return std::min<uint64_t>(256ull << 20, max_map_bytes / 4); }
// After a failed commit: the room that must come back before submissions are accepted again,
// and the bounds of the hold after which they are tried anyway (it doubles per failure).
constexpr uint64_t kRoomAfterFailure = 1ull << 20;
constexpr uint64_t kHoldMinMs = 1000, kHoldMaxMs = 60'000;
// The pause of the backend after a rollback, doubling per failure: shorter than the grace the
// re-registering workers have to re-claim their tasks.
constexpr uint64_t kBackendPauseMinMs = 100, kBackendPauseMaxMs = 2000;

std::string mib(uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return text;
}

// Bytes an unprivileged writer may still use on the filesystem holding `dir`.
Result<uint64_t> free_bytes(const std::string& dir) {
  struct statvfs st;
  if (::statvfs(dir.c_str(), &st) != 0)
    return Status(Code::kIo, "statvfs " + dir + ": " + std::strerror(errno));
  return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
}

}  // namespace

void Router::Impl::check_storage(uint64_t now) {
  Status map = ledger->env().ensure_free(turn_headroom_bytes(options.max_map_bytes));
  storage.map_full = !map;
  // Near the reserve, free space is measured every turn: a few turns of submissions between two
  // timed checks could otherwise write past it. Far from it, a statvfs every 100 ms is enough.
  const bool near_reserve = storage.free_bytes < 2 * storage.reserve_bytes + kNearReserveBytes;
  if (now >= storage.next_check_ms || near_reserve) {
    storage.next_check_ms = now + kCheckIntervalMs;
    if (auto free = free_bytes(options.data_dir)) storage.free_bytes = *free;
    else spdlog::warn("router storage check failed reason=\"{}\"", free.status().message());
  }
  storage.disk_low = storage.reserve_bytes && storage.free_bytes < storage.reserve_bytes;
  if (storage.write_failed &&
      (storage.free_bytes >= storage.failed_free_bytes + std::max(storage.reserve_bytes, kRoomAfterFailure) ||
       now >= storage.hold_until_ms))
    storage.write_failed = false;

  const std::string& dir = options.data_dir;
  std::string refusal;
  if (storage.map_full)
    refusal = "storage full: the LMDB map in " + dir + " cannot grow (" + map.message() +
              "); new tasks are refused until finished ones expire";
  else if (storage.disk_low)
    refusal = "storage full: the data folder " + dir + " has " + mib(storage.free_bytes) +
              " free, below the reserve of " + mib(storage.reserve_bytes) +
              " (--min-free-mb); new tasks are refused until space returns";
  else if (storage.write_failed)
    refusal = "storage full: writing the data folder " + dir + " failed (" + storage.failure + ") with " +
              mib(storage.free_bytes) + " free; new tasks are refused until space returns";
  if (refusal.empty() != storage.refusal.empty()) {
    if (refusal.empty())
      spdlog::info("router storage ok: accepting new tasks data={} free={}", dir, mib(storage.free_bytes));
    else
      spdlog::error("router refusing new tasks reason=\"{}\"", refusal);
  }
  storage.refusal = std::move(refusal);
  router::Health& health = core->health;
  health.storage_full = !storage.refusal.empty();
  health.storage_refusal = storage.refusal;
  health.storage_free_bytes = storage.free_bytes;
  health.storage_reserve_bytes = storage.reserve_bytes;
  health.storage_failed_commits = storage.failed_commits;
  health.db_used_bytes = ledger->env().used_bytes();
  health.db_map_bytes = ledger->env().map_bytes();
  health.unknown_keys = zap ? zap->refused() : 0;
}

void Router::Impl::commit_succeeded() {
  if (!storage.write_failed) storage.consecutive_failures = 0;
}

Status Router::Impl::roll_back_turn(const Status& cause) {
  const uint64_t now = now_steady_ms();
  ledger->abort();
  ++storage.failed_commits;
  const uint32_t doublings = std::min<uint32_t>(storage.consecutive_failures++, 6);
  if (auto free = free_bytes(options.data_dir)) storage.free_bytes = *free;
  storage.write_failed = true;
  storage.failed_free_bytes = storage.free_bytes;
  storage.failure = cause.message();
  storage.hold_until_ms = now + std::min(kHoldMaxMs, kHoldMinMs << doublings);
  storage.backend_resume_ms =
      now + std::min<uint64_t>({kBackendPauseMaxMs, kBackendPauseMinMs << doublings, options.reclaim_grace_ms / 2});
  spdlog::error("router turn rolled back data={} free={} failures={} reason=\"{}\": state reloaded from disk, "
                "workers re-register, nothing of the turn was acknowledged",
                options.data_dir, mib(storage.free_bytes), storage.failed_commits, cause.to_string());

  stats.submitted = turn_start.submitted;
  stats.succeeded = turn_start.succeeded;
  stats.failed = turn_start.failed;

  // Nothing the turn produced is sent: its events never happened, workers get no tasks and no
  // acknowledgements (their results come again), and each request of the turn is answered
  // storage_full, except the waits it answered, which wait on.
  router::Effects& effects = core->effects();
  std::vector<router::Outgoing> replies;
  for (auto& out : effects.messages) {
    if (out.backend) continue;
    const uint64_t corr = std::visit([](const auto& m) -> uint64_t {
      if constexpr (requires { m.corr; }) return m.corr;
      else return 0;
    }, out.message);
    if (std::holds_alternative<proto::Error>(out.message)) {
      replies.push_back(std::move(out));
      continue;
    }
    const bool wait_reply = std::any_of(effects.answered_waiters.begin(), effects.answered_waiters.end(),
                                        [&](const router::Waiter& w) { return w.routing_id == out.routing_id && w.corr == corr; });
    if (wait_reply) continue;
    replies.push_back({false, out.routing_id,
                       proto::Error{corr, static_cast<int32_t>(Code::kStorageFull),
                                    "storage full: the router could not write its data folder " + options.data_dir +
                                        " (" + cause.message() + ") with " + mib(storage.free_bytes) +
                                        " free; nothing of this request was done, retry later"}});
  }
  std::vector<router::Waiter> waiters = core->take_waiters();
  const std::vector<std::string> workers = core->worker_ids();
  const router::Health health = core->health;
  core.reset();  // it refers to the ledger, which may be opened again

  // LMDB is as it was before the turn; the meta it kept in memory is read back (an environment
  // LMDB declared unusable is opened again).
  if (Status s = ledger->reload_meta(); !s) {
    spdlog::error("router reopening data={} reason=\"{}\"", options.data_dir, s.to_string());
    ledger.reset();
    auto opened = router::Ledger::open(options.data_dir, env_options);
    if (!opened) return opened.status();
    ledger.emplace(std::move(opened.value()));
  }

  // The core is rebuilt from LMDB exactly as at a start (queues, leases as orphans, groups,
  // the ETA heap); workers register again (Paranoid Pirate: Disconnect, then READY naming
  // what they run and the results not acknowledged).
  core.emplace(options, *ledger, stats);
  core->health = health;
  unreachable.clear();
  if (Status s = core->recover(); !s) return s;
  // Waiters count again what is unfinished on disk; one with nothing left is answered next turn.
  core->adopt_waiters(std::move(waiters));
  router::Effects& fresh = core->effects();
  fresh.messages = std::move(replies);
  for (const auto& rid : workers)
    fresh.messages.push_back(
        {true, rid, proto::Disconnect{"the router reloaded its state after a failed write: send READY"}});
  flush();
  return Status::ok();
}

}  // namespace zb
