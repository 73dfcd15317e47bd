#include "router/workers.h"

#include <algorithm>
#include <cmath>

namespace zb::router {

uint32_t credit_window(uint32_t slots, uint32_t capacity, double rtt_us, double task_us) {
  slots = std::max<uint32_t>(slots, 1);
  double want = 2.0 * slots;
  // Twice the product (BBR's gain): the round trip is measured on tasks sent to a free slot,
  // and a loaded router's turns (bigger commits) take longer.
  if (rtt_us > 0 && task_us > 0) want = slots + std::ceil(2.0 * slots * rtt_us / std::max(task_us, 1.0));
  want = std::max<double>(want, slots);
  return static_cast<uint32_t>(std::min<double>(want, capacity));
}

namespace {
double overdue_after_us(size_t ahead, uint32_t slots, double task_us) {
  return std::max<double>(kStealAfterUs, 2.0 * static_cast<double>(ahead + 1) * std::max(task_us, 0.0) /
                                             std::max<uint32_t>(slots, 1));
}
}  // namespace

bool overdue(uint64_t reserved_us, size_t ahead, uint32_t slots, double task_us) {
  return static_cast<double>(reserved_us) > overdue_after_us(ahead, slots, task_us);
}

uint64_t us_until_overdue(uint64_t reserved_us, size_t ahead, uint32_t slots, double task_us) {
  const double left = overdue_after_us(ahead, slots, task_us) - static_cast<double>(reserved_us);
  return left < 0 ? 0 : static_cast<uint64_t>(left) + 1;
}

bool WorkerSession::serves(size_t queue) const {
  return std::find(queues.begin(), queues.end(), queue) != queues.end();
}

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
