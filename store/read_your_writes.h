// Read your writes (internal to store/): a task or group submitted through this store is
// shown by it as soon as the router has acknowledged it, without asking the router anything.
//
// The router's acknowledgement of a submission carries the sequence number up to which its
// event log holds that submission's events (SubmitReceipt::seq, GroupReceipt::seq). The
// submission routes note each one here (acknowledged()); a read that does not find a task or
// group waits until the status DB has applied the highest noted sequence (and the router's
// head as the follower last heard it), bounded by a timeout, before it falls back to asking
// the router for its record.
//
// Thread-safe: every HTTP thread shares one.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>

#include "common/id.h"
#include "common/status.h"
#include "store/follower.h"
#include "store/status_db.h"

namespace zb::store {

class ReadYourWrites {
 public:
  ReadYourWrites(const StatusDb& db, const Follower& follower) : db_(db), follower_(follower) {}

  // A submission the router acknowledged with `seq`.
  void acknowledged(uint64_t seq);
  // The sequence a read waits for: the highest acknowledged one of the router's current log
  // (one noted before the store followed a new log counts for nothing), and the router's head
  // as the follower knows it.
  uint64_t target() const;
  // Waits (at most `timeout`) until the status DB has applied target(); true when it has. What
  // the store answers afterwards includes every submission it was acknowledged before the call.
  bool catch_up(std::chrono::milliseconds timeout = std::chrono::seconds(2)) const;

 private:
  const StatusDb& db_;
  const Follower& follower_;
  mutable std::mutex mu_;
  uint64_t log_ = 0;  // StatusDb::resets() when `seq_` was noted: the log it belongs to
  uint64_t seq_ = 0;  // the highest acknowledged sequence in that log
};

struct Api;

// The task: the store's, else after catching up, else the router's record (its 404 for a
// task it does not know).
Result<TaskStatus> read_task(const Api& api, const Id& id);

// The group's counters: the store's, else after catching up, else the router's record marked
// unsealed (the store cannot list its results yet, so it is not ready for the caller).
Result<GroupStatus> read_group(const Api& api, const Id& id);

}  // namespace zb::store
