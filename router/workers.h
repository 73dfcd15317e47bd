// The worker sessions the router knows (Paranoid Pirate): who is connected by which routing
// id, what each serves and may hold, when each was last heard from, and the rotation that
// spreads dispatch over them.
//
// Credit. A worker announces a cap (Ready.capacity: slots × prefetch); the router hands it at
// most its *window* of tasks, sized as bandwidth × delay: enough to keep its slots busy across
// one router round trip (credit_window). Short tasks get a deep window and flow at the rate
// the round trip allows; long ones get about one per slot, so few wait behind a long task.
// What still waits (reserved behind busy slots, `overdue`) is taken back for a worker with a
// free slot (work stealing, router/dispatch.cc).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/id.h"
#include "common/protocol.h"

namespace zb::router {

// A reserved task waits this long at least before it counts as waiting behind busy slots.
inline constexpr uint64_t kStealAfterUs = 5'000;

// The credit window of a worker with `slots` slots that announced `capacity`: slots + twice
// the tasks its slots finish during one round trip (2 × slots × rtt / task time), at least
// `slots`, at most `capacity`. Before both times are measured (0): two per slot.
uint32_t credit_window(uint32_t slots, uint32_t capacity, double rtt_us, double task_us);

// True when a reserved task has waited longer than its place in line explains: reserved for
// more than kStealAfterUs and more than twice the time the `ahead` tasks before it and itself
// take on `slots` slots of `task_us` each. Later tasks of the same worker (younger, more
// ahead) are never overdue before earlier ones.
bool overdue(uint64_t reserved_us, size_t ahead, uint32_t slots, double task_us);
// How long a task reserved `reserved_us` ago still has until it is overdue (0: it is).
uint64_t us_until_overdue(uint64_t reserved_us, size_t ahead, uint32_t slots, double task_us);

// A smoothed measure (EWMA, gain 1/8 as TCP's SRTT): the first sample is taken as it is.
inline void smooth(double& mean, double sample) { mean = mean <= 0 ? sample : mean + (sample - mean) / 8; }

struct WorkerSession {
  std::string routing_id;
  Id session;
  std::string name;
  std::string hostname;
  uint32_t pid = 0;
  std::vector<size_t> queues;  // queue indices, served in priority order
  std::vector<std::string> kinds;
  std::vector<std::string> test_profiles;  // as announced in READY, listed by inspect.registered
  std::vector<std::string> mcp_servers;
  uint32_t concurrency = 0;
  uint32_t capacity = 0;
  std::unordered_set<Id, IdHash> leased;
  uint64_t expiry_ms = 0;  // steady clock
  uint64_t last_seen_unix_ms = 0;
  uint64_t online_unix_ms = 0;
  uint64_t processed = 0;
  uint64_t failed = 0;
  uint32_t busy = 0;
  bool draining = false;  // sent Bye: no more tasks
  // The credit window and what sizes it: the round trip (dispatch → its Started, for tasks
  // sent to a free slot) and the task run time, both smoothed.
  uint32_t window = 0;
  double rtt_us = 0;
  double task_us = 0;
  // Time per task per slot as its results arrive while it is kept busy (smoothed), and when
  // they last arrived (steady µs).
  double service_us = 0;
  uint64_t last_results_us = 0;
  // Tasks recalled from other workers for this one, on their way back (they count as credit).
  std::vector<proto::Claim> incoming;
  // As its heartbeats report them (0: not yet).
  uint32_t rss_kb = 0, load_milli = 0;
  // Live output it may still forward (bytes, a bucket refilled at kOutputBytesPerSecond) and
  // when the bucket was last filled (steady ms).
  double output_budget = 0;
  uint64_t output_filled_ms = 0;

  void note_round_trip(double sample_us) {
    smooth(rtt_us, sample_us);
    update_window();
  }
  // Time per task per slot: the run time, or the pace results arrive at when that is slower.
  double pace_us() const { return std::max(task_us, service_us); }
  void update_window() { window = credit_window(concurrency, capacity, rtt_us, pace_us()); }
  bool has_credit() const { return !draining && leased.size() + incoming.size() < window; }
  // A task sent now starts at once: a slot is free (and none is taken by one on its way).
  bool has_free_slot() const { return !draining && leased.size() + incoming.size() < concurrency; }
  bool serves(size_t queue) const;
};

class WorkerRegistry {
 public:
  WorkerSession* find(const std::string& routing_id);
  const WorkerSession* find(const std::string& routing_id) const;
  WorkerSession* find_session(const Id& session);
  WorkerSession* find_name(const std::string& name);
  WorkerSession& add(WorkerSession w);
  void remove(std::string routing_id);
  // Routing ids of sessions silent past their expiry.
  std::vector<std::string> expired(uint64_t now_steady_ms) const;

  bool empty() const { return sessions_.empty(); }
  size_t size() const { return sessions_.size(); }
  // In the order they came online (inspect, dispatch rotation).
  const std::vector<std::string>& order() const { return order_; }
  // Visits the sessions from this round's starting point; the next round starts one later.
  template <typename F>
  void for_each_in_rotation(F&& fn) {
    for (size_t i = 0; i < order_.size(); ++i) fn(sessions_.at(order_[(rotation_ + i) % order_.size()]));
  }
  void rotate() { rotation_ = order_.empty() ? 0 : (rotation_ + 1) % order_.size(); }
  // Every session, in no particular order.
  std::unordered_map<std::string, WorkerSession>& all() { return sessions_; }
  const std::unordered_map<std::string, WorkerSession>& all() const { return sessions_; }
  void clear();

 private:
  std::unordered_map<std::string, WorkerSession> sessions_;  // by routing id
  std::vector<std::string> order_;
  size_t rotation_ = 0;
};

}  // namespace zb::router
