#include <set>
#include <string>

#include "router/router.h"

namespace zb {

Status check_queue_config(const QueueConfig& q) {
  if (q.name.empty()) return Status(Code::kBadRequest, "a queue has an empty name");
  auto bad = [&](const char* what) { return Status(Code::kBadRequest, "queue '" + q.name + "': " + what); };
  if (!(q.rate_limit >= 0) || q.rate_limit > 1e9) return bad("rate_limit must be between 0 and 1e9 tasks/s");
  if (q.time_limit_ms && q.soft_time_limit_ms > q.time_limit_ms) return bad("soft_time_limit must not exceed time_limit");
  if (q.retry_backoff_max_ms < q.retry_backoff_ms) return bad("retry_backoff_max must be >= retry_backoff");
  return Status::ok();
}

Status check_queue_configs(const std::vector<QueueConfig>& queues) {
  std::set<std::string> names;
  for (const auto& q : queues) {
    if (q.name.empty()) return Status(Code::kBadRequest, "a queue has an empty name");
    if (!names.insert(q.name).second) return Status(Code::kBadRequest, "queue '" + q.name + "' is declared twice");
  }
  for (const auto& q : queues)
    if (Status s = check_queue_config(q); !s) return s;
  return Status::ok();
}

Status check_pools(const std::vector<PoolConfig>& pools, const std::vector<QueueConfig>& queues) {
  std::set<std::string> names;
  for (const auto& p : pools) {
    if (p.name.empty()) return Status(Code::kBadRequest, "a pool has an empty name");
    auto bad = [&](const char* what) { return Status(Code::kBadRequest, "pool '" + p.name + "': " + what); };
    if (!names.insert(p.name).second) return bad("is declared twice");
    if (p.model.empty()) return bad("needs a model");
    if (p.hosts.empty() || p.hosts.size() > 64) return bad("needs 1 to 64 hosts");
    if (std::set<std::string>(p.hosts.begin(), p.hosts.end()).size() != p.hosts.size()) return bad("names a host twice");
    for (const auto& h : p.hosts)
      if (h.empty()) return bad("has an empty host");
    if (p.parallel < 1 || p.parallel > 1024) return bad("parallel must be 1..1024");
  }
  for (const auto& q : queues)
    if (!q.pool.empty() && !names.count(q.pool))
      return Status(Code::kBadRequest, "queue '" + q.name + "': pool '" + q.pool + "' is not declared");
  return Status::ok();
}

}  // namespace zb
