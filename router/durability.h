// Acknowledged means durable, with the fsync off the loop's critical path (internal to router/).
//
// The loop commits each turn without a sync (LMDB's MDB_NOSYNC) and tells Durability which
// transaction it committed. Durability's thread makes every commit since its last round
// durable with one fdatasync (group commit) and publishes the newest durable transaction id;
// the loop holds a turn's acknowledgements (client replies, result acks, events) until then.
// While one sync runs, the loop goes on: turn N+1 is processed while turn N is synced.
//
// A sync per round instead of per commit changes what an OS crash (not a process crash: the
// page cache survives that) may leave on disk: LMDB writes a commit's pages and then its meta
// page without a barrier between them, so the newest meta page on disk could name pages that
// never reached it. The newest durable commit D is therefore kept restorable:
//   - a read transaction pins D, so LMDB does not reuse D's pages for later commits;
//   - after D's pages are synced, D's meta page is copied into the file `durable` (two
//     checksummed slots, synced too), with the id of the running kernel's boot;
//   - at start-up, before LMDB is opened: if the machine booted again since `durable` was
//     written (a crash of the OS or of the power) and LMDB's newest commit is past D, D's meta
//     page is written back over both meta pages. What is lost was never acknowledged.
// After a process crash on the same boot, the page cache holds every commit and LMDB's newest
// meta page is kept.
//
// This relies on LMDB 0.9's file format (meta pages 0 and 1; the meta after a 16-byte page
// header: magic, version, ..., last page, txnid); restore() checks magic and version and
// refuses a file it does not recognise.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/lmdb.h"
#include "common/protocol.h"
#include "common/status.h"

namespace zb::router {

// The part of an LMDB meta page after its header (MDB_meta in LMDB 0.9).
inline constexpr size_t kLmdbMetaBytes = 136;

struct RestoreReport {
  bool restored = false;
  bool machine_restarted = false;  // another boot wrote the durable record (restored or not)
  uint64_t durable_txn = 0;  // the commit restored to
  uint64_t dropped_txn = 0;  // the newest commit on disk before (not acknowledged)
};

// The id of the running kernel's boot (/proc/sys/kernel/random/boot_id), or ZBATCH_BOOT_ID
// when set (to exercise the restart-after-OS-crash path in tests). Empty when unknown.
std::string current_boot_id();

class Durability {
 public:
  // Before LMDB is opened in `dir`: restores the durable commit's meta page when the machine
  // booted since it was recorded and LMDB's newest commit is past it. Nothing to do without a
  // record (a new folder) or on the same boot.
  static Result<RestoreReport> restore(const std::string& dir, const std::string& boot_id);

  // After LMDB is opened and before anything is written: syncs what is there, records it as
  // durable and starts the sync thread.
  static Result<std::unique_ptr<Durability>> start(lmdb::Env& env, const std::string& dir,
                                                   const std::string& boot_id);
  ~Durability();  // syncs and records the last commit, then stops the thread

  // The loop, after each successful commit of transaction `txn`: pins it, copies its meta
  // page, and asks for a sync.
  void committed(uint64_t txn);
  // The newest transaction whose pages and record are on disk.
  uint64_t durable() const { return durable_.load(std::memory_order_acquire); }
  // Readable (eventfd) when durable() advanced; drain() empties it.
  int wake_fd() const { return wake_fd_; }
  void drain();
  // The sync thread's failure (sticky): the router must stop, nothing more is acknowledged.
  Status error() const;
  // Waits until `txn` is durable, the thread failed, or the timeout passed.
  bool wait(uint64_t txn, int timeout_ms);

  uint64_t syncs() const { return syncs_.load(std::memory_order_relaxed); }
  // How long the syncs took (proto::DurationHistogram's buckets).
  proto::DurationHistogram sync_time() const;

 private:
  struct Request {
    uint64_t txn = 0;
    MDB_txn* pin = nullptr;
    unsigned char meta[kLmdbMetaBytes] = {};
  };
  Durability(MDB_env* env, int record_fd, int wake_fd, const std::string& boot_id);
  void loop();
  Status sync_and_record(Request& request);
  Status write_record(uint64_t txn, const unsigned char* meta);
  bool copy_meta(uint64_t txn, unsigned char* out) const;

  MDB_env* env_;  // the Ledger's (an lmdb::Env moves with its Ledger; the MDB_env does not)
  int record_fd_ = -1;
  int wake_fd_ = -1;
  std::string boot_id_;
  size_t page_bytes_ = 0;
  uint64_t record_writes_ = 0;  // slot of the next record: writes % 2

  mutable std::mutex mu_;
  std::condition_variable cv_;      // a request, or stopping
  std::condition_variable done_cv_; // durable advanced or failed
  Request pending_;                 // newest request not taken yet (pending_.txn == 0: none)
  bool stopping_ = false;
  Status error_ = Status::ok();
  MDB_txn* durable_pin_ = nullptr;  // pins the recorded commit (sync thread only)
  std::atomic<uint64_t> durable_{0};
  std::atomic<uint64_t> syncs_{0};
  std::array<std::atomic<uint64_t>, proto::kDurationBoundsUs.size() + 1> sync_buckets_{};
  std::atomic<uint64_t> sync_sum_us_{0};
  std::thread thread_;
};

}  // namespace zb::router
