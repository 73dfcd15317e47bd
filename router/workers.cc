#include "router/workers.h"

#include <algorithm>

namespace zb::router {

WorkerSession* WorkerRegistry::find(const std::string& routing_id) {
  auto it = sessions_.find(routing_id);
  return it == sessions_.end() ? nullptr : &it->second;
}

const WorkerSession* WorkerRegistry::find(const std::string& routing_id) const {
  auto it = sessions_.find(routing_id);
  return it == sessions_.end() ? nullptr : &it->second;
}

WorkerSession* WorkerRegistry::find_session(const Id& session) {
  for (auto& [rid, w] : sessions_)
    if (w.session == session) return &w;
  return nullptr;
}

WorkerSession* WorkerRegistry::find_name(const std::string& name) {
  for (auto& [rid, w] : sessions_)
    if (w.name == name) return &w;
  return nullptr;
}

WorkerSession& WorkerRegistry::add(WorkerSession w) {
  const std::string rid = w.routing_id;
  order_.push_back(rid);
  return sessions_.insert_or_assign(rid, std::move(w)).first->second;
}

void WorkerRegistry::remove(std::string routing_id) {
  sessions_.erase(routing_id);
  order_.erase(std::remove(order_.begin(), order_.end(), routing_id), order_.end());
}

std::vector<std::string> WorkerRegistry::expired(uint64_t now_steady_ms) const {
  std::vector<std::string> out;
  for (const auto& [rid, w] : sessions_)
    if (w.expiry_ms <= now_steady_ms) out.push_back(rid);
  return out;
}

void WorkerRegistry::clear() {
  sessions_.clear();
  order_.clear();
  rotation_ = 0;
}

}  // namespace zb::router
