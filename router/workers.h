// The worker sessions the router knows (Paranoid Pirate): who is connected by which routing
// id, what each serves and may hold, when each was last heard from, and the rotation that
// spreads dispatch over them.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/id.h"

namespace zb::router {

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

  bool has_credit() const { return !draining && leased.size() < capacity; }
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
