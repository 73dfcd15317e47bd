// The router around its core (internal to router/): sockets, the loop and its turn, the
// turn's transaction, what the data folder has room for, and sending what a committed turn
// produced. router/core.h holds everything the router decides.
#pragma once

#include <atomic>
#include <deque>
#include <unordered_map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "common/wire.h"
#include "router/core.h"
#include "router/ledger.h"
#include "router/router.h"
#include "router/zap.h"

namespace zb {

namespace router {

// The room the data folder has (storage.cc). Submissions are refused (storage_full) while
// the map cannot grow, while the filesystem has less than the reserve free, and for a while
// after a commit failed.
struct Storage {
  uint64_t reserve_bytes = 0;  // RouterOptions::min_free_bytes
  uint64_t free_bytes = 0;     // free to unprivileged writers (statvfs f_bavail), last check
  uint64_t next_check_ms = 0;  // steady clock
  bool map_full = false;
  bool disk_low = false;
  // A commit failed: refused until free space grew by max(reserve, 1 MiB) from
  // `failed_free_bytes` or `hold_until_ms` passed (then a probe; the hold doubles per failure).
  bool write_failed = false;
  uint64_t failed_free_bytes = 0;
  uint64_t hold_until_ms = 0;
  uint32_t consecutive_failures = 0;
  uint64_t failed_commits = 0;  // turns rolled back, for inspect.stats
  std::string failure;          // the error of the last failed commit
  // After a rollback the backend is not read until then: workers re-register after the pause
  // instead of meeting the same full disk at once.
  uint64_t backend_resume_ms = 0;
  std::string refusal;  // why submissions are refused now (empty: accepted)
};

}  // namespace router

struct Router::Impl {
  RouterOptions options;
  wire::ContextRef context;
  std::unique_ptr<router::ZapHandler> zap;  // CURVE on: who may connect (closed before the context)
  std::optional<zmq::socket_t> frontend, backend, events;
  int lock_fd = -1;
  std::optional<router::Ledger> ledger;
  std::atomic<bool> stopping{false};
  router::Stats stats;
  std::optional<router::Core> core;  // rebuilt from LMDB when a turn is rolled back
  router::Storage storage;
  lmdb::EnvOptions env_options;

  // What a rolled-back turn must undo beyond LMDB: counters.
  struct TurnStart {
    uint64_t submitted = 0, succeeded = 0, failed = 0;
  } turn_start;
  std::vector<std::string> unreachable;  // workers a send failed to reach
  // What committed turns produced, held until their commit is durable (router/durability.h):
  // replies, commands to workers, result acks and events. Tasks go out at once (but after a
  // held command to the same worker, and at-most-once tasks only once durable).
  struct Held {
    uint64_t txn = 0;  // sent once ledger->durable() >= txn
    uint64_t seq = 0;  // the event log's seq at that commit (SubmitAck.seq, hugz)
    std::vector<router::Outgoing> messages;
    std::vector<std::pair<std::string, std::vector<proto::Claim>>> acks;
    std::vector<std::pair<std::string, std::vector<proto::Assignment>>> tasks;
    router::PackedEvents events;
  };
  std::deque<Held> held;
  std::unordered_map<std::string, uint32_t> held_commands;  // routing id → held backend messages
  uint64_t published_seq = 0;  // the newest event seq sent on the events socket (hugz)
  uint64_t last_publish_ms = 0;
  uint64_t next_heartbeat_ms = 0;
  uint64_t next_housekeeping_ms = 0;

  // router.cc
  Status open();
  Status run_loop();
  Status turn(bool frontend_ready, bool backend_ready);
  // Sends what the committed turn produced: replies, result acks, tasks, then the events; what
  // needs a durable commit is held until then (release_durable()).
  void flush();
  void release_durable();
  void send_held(Held& h);
  void send_heartbeats(uint64_t now);

  // storage.cc
  // Measures the folder's free space (at most every 100 ms) and the map; tells the core
  // whether submissions are refused.
  void check_storage(uint64_t now);
  // A turn whose transaction failed: rolled back, the core rebuilt from what is on disk (as
  // at a start), workers asked to register again, requests of the turn answered with
  // storage_full. Not fatal unless the data folder cannot even be read back.
  Status roll_back_turn(const Status& cause);
  void commit_succeeded();
};

}  // namespace zb
