#include "store/cluster_view.h"

#include <nlohmann/json.hpp>

namespace zb::store {
namespace {

using nlohmann::json;

constexpr auto kFresh = std::chrono::seconds(1);
constexpr auto kAskAgainAfter = std::chrono::milliseconds(100);

// A control reply as JSON; kUnavailable when the router did not answer or answered nonsense.
Result<json> ask(const ClusterView::Ask& ask_router, const char* op) {
  auto reply = ask_router(op);
  if (!reply)
    return Status(Code::kUnavailable, std::string("cannot check the submission against the router (") + op +
                                          "): " + reply.status().message());
  json j = json::parse(*reply, nullptr, false);
  if (!j.is_object()) return Status(Code::kUnavailable, std::string("the router's ") + op + " reply is not a JSON object");
  return j;
}

void add_names(const json& worker, const char* key, std::set<std::string>& into) {
  auto it = worker.find(key);
  if (it == worker.end() || !it->is_array()) return;
  for (const auto& name : *it)
    if (name.is_string()) into.insert(name.get<std::string>());
}

}  // namespace

Result<ClusterView::Registry> ClusterView::fetch_registry() {
  auto reply = ask(ask_, "inspect.registered");
  if (!reply) return reply.status();
  Registry r;
  r.fetched = Clock::now();
  if (auto workers = reply->find("workers"); workers != reply->end() && workers->is_array()) {
    for (const auto& w : *workers) {
      if (!w.is_object()) continue;
      add_names(w, "test_profiles", r.test_profiles);
      add_names(w, "mcp_servers", r.mcp_servers);
    }
  }
  return r;
}

Result<ClusterView::Queues> ClusterView::fetch_queues() {
  auto reply = ask(ask_, "inspect.queues");
  if (!reply) return reply.status();
  Queues q;
  q.fetched = Clock::now();
  if (auto queues = reply->find("queues"); queues != reply->end() && queues->is_array()) {
    for (const auto& e : *queues) {
      if (!e.is_object() || !e.contains("name") || !e["name"].is_string()) continue;
      const json kind = e.value("default_kind", json());
      q.default_kinds[e["name"].get<std::string>()] = kind.is_string() ? kind.get<std::string>() : std::string();
    }
  }
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
