#include "store/cluster_view.h"

namespace zb::store {
namespace {

constexpr auto kFresh = std::chrono::seconds(1);
constexpr auto kAskAgainAfter = std::chrono::milliseconds(100);

// The router's reply to `op`; kUnavailable when it did not answer or answered another operation.
template <typename Reply>
Result<Reply> ask(const ClusterView::Ask& ask_router, proto::ControlOp op) {
  const std::string name(proto::control_op_name(op));
  auto reply = ask_router(op);
  if (!reply)
    return Status(Code::kUnavailable, "cannot check the submission against the router (" + name +
                                          "): " + reply.status().message());
  auto* r = std::get_if<Reply>(&*reply);
  if (!r) return Status(Code::kUnavailable, "the router's " + name + " reply is of another operation");
  return std::move(*r);
}

}  // namespace

Result<ClusterView::Registry> ClusterView::fetch_registry() {
  auto reply = ask<proto::InspectRegisteredReply>(ask_, proto::ControlOp::kInspectRegistered);
  if (!reply) return reply.status();
  Registry r;
  r.fetched = Clock::now();
  for (const auto& w : reply->workers) {
    r.test_profiles.insert(w.test_profiles.begin(), w.test_profiles.end());
    r.mcp_servers.insert(w.mcp_servers.begin(), w.mcp_servers.end());
  }
  return r;
}

Result<ClusterView::Queues> ClusterView::fetch_queues() {
  auto reply = ask<proto::InspectQueuesReply>(ask_, proto::ControlOp::kInspectQueues);
  if (!reply) return reply.status();
  Queues q;
  q.fetched = Clock::now();
  for (const auto& e : reply->queues) q.default_kinds[e.name] = e.default_kind;
  return q;
}

Result<std::optional<std::string>> ClusterView::default_kind(const std::string& queue) {
  std::unique_lock lock(mu_);
  const auto now = Clock::now();
  if (!queues_ || now - queues_->fetched > kFresh ||
      (!queues_->default_kinds.count(queue) && now - queues_->fetched > kAskAgainAfter)) {
    lock.unlock();
    auto fresh = fetch_queues();
    if (!fresh) return fresh.status();
    lock.lock();
    queues_ = std::move(fresh.value());
  }
  auto it = queues_->default_kinds.find(queue);
  if (it == queues_->default_kinds.end()) return std::optional<std::string>();
  return std::optional<std::string>(it->second);
}

Result<std::set<std::string>> ClusterView::announced(Announced what, const std::string& wanted) {
  auto names = [what](const Registry& r) -> const std::set<std::string>& {
    return what == Announced::kTestProfiles ? r.test_profiles : r.mcp_servers;
  };
  std::unique_lock lock(mu_);
  const auto now = Clock::now();
  if (!registry_ || now - registry_->fetched > kFresh ||
      (!names(*registry_).count(wanted) && now - registry_->fetched > kAskAgainAfter)) {
    lock.unlock();
    auto fresh = fetch_registry();
    if (!fresh) return fresh.status();
    lock.lock();
    registry_ = std::move(fresh.value());
  }
  return names(*registry_);
}

}  // namespace zb::store
