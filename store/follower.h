// Follows the router's event log into the status DB: the ZeroMQ Guide's Clone pattern
// (internal to store/).
//
// Subscribes first, then replays from the last applied sequence over the frontend until it
// has caught up, then applies live EVENT_BATCHes. A sequence gap, a HUGZ announcing events it
// has not seen, a new log id or a silent router all lead back to a replay. Applied sequences
// are confirmed to the router so it may trim its log.
#pragma once

#include "common/curve.h"

#include <atomic>
#include <string>

#include <zmq.hpp>

#include "client/client.h"
#include "store/event_hub.h"
#include "store/task_output.h"
#include "store/status_db.h"

namespace zb::store {

class Follower {
 public:
  Follower(StatusDb& db, EventHub& hub, zmq::context_t& context, std::string router, std::string events,
           curve::ClientKeys curve = {});
  // Where live output (proto::Output) goes; none: it is dropped. Before run().
  void set_output(OutputHub* output) { output_ = output; }
  // Runs until `stopping` is set.
  void run(const std::atomic<bool>& stopping);
  bool caught_up() const { return caught_up_.load(); }
  uint64_t head_seq() const { return head_.load(); }
  // Waits (at most `timeout`) for the DB to have applied `seq`.
  void wait_applied(uint64_t seq, std::chrono::milliseconds timeout) const {
    if (db_.applied() < seq) hub_.wait(db_.applied(), timeout);
  }

 private:
  // Replays until the DB holds everything the router has; false if the router did not answer.
  bool sync();
  void confirm(bool force);

  StatusDb& db_;
  EventHub& hub_;
  OutputHub* output_ = nullptr;
  zmq::context_t& context_;
  std::string router_, events_;
  curve::ClientKeys curve_;
  std::unique_ptr<Client> client_;
  std::atomic<bool> caught_up_{false};
  std::atomic<uint64_t> head_{0};
  uint64_t confirmed_ = 0;
  uint64_t last_confirm_ms_ = 0;
};

}  // namespace zb::store
