// Webhooks over HTTP: the checks and records around a submission's webhook, and the list of
// recent deliveries (GET /api/v1/webhooks/deliveries).
#include <nlohmann/json.hpp>

#include "store/http_api.h"
#include "store/http_json.h"

namespace zb::store {
namespace {

using nlohmann::json;

constexpr size_t kMaxListed = 1000;

json hook_json(const Hook& h) {
  json out{{"kind", h.kind == HookKind::kTask ? "task" : "group"},
           {h.kind == HookKind::kTask ? "task_id" : "group_id", h.id.to_string()},
           {"url", h.url},
           {"state", std::string(hook_state_name(h.state))},
           {"attempts", h.attempts},
           {"delivery_id", h.delivery.empty() ? json(nullptr) : json(h.delivery)},
           {"last_status", h.last_status ? json(h.last_status) : json(nullptr)},
           {"last_error", h.last_error.empty() ? json(nullptr) : json(h.last_error)},
           {"created_ms", h.created_ms},
           {"next_attempt_ms", h.state == HookState::kPending ? json(h.next_ms) : json(nullptr)},
           {"finished_ms", h.finished_ms ? json(h.finished_ms) : json(nullptr)}};
  return out;
}

}  // namespace

std::optional<json> webhook_view(const Api& api, HookKind kind, const Id& id) {
  auto h = api.webhooks.find(kind, id);
  if (!h) return std::nullopt;
  return json{{"url", h->url}, {"state", std::string(hook_state_name(h->state))}, {"attempts", h->attempts},
              {"last_error", h->last_error.empty() ? json(nullptr) : json(h->last_error)}};
}

Status check_webhook(const Api& api, const std::string& url) {
  if (url.empty()) return Status::ok();
  return api.webhooks.allowed(url);
}

Status record_webhook(const Api& api, HookKind kind, const Id& id, const std::string& url) {
  if (url.empty()) return Status::ok();
  Status s = api.webhooks.add(kind, id, url);
  if (!s)
    return Status(s.code() == Code::kStorageFull ? Code::kStorageFull : Code::kInternal,
                  "the submission was accepted (" + id.to_string() + ") but its webhook could not be recorded: " +
                      s.message() + "; submit again with the same idempotency key to record it");
  return s;
}

void install_webhook_routes(HttpServer& server, const Api& api) {
  server.Get("/api/v1/webhooks/deliveries", [api](const httplib::Request& req, httplib::Response& res) {
    auto limit = query_size(req, "limit", 100, kMaxListed);
    if (!limit) return send_error(res, limit.status());
    auto hooks = api.webhooks.list(*limit);
    if (!hooks) return send_error(res, hooks.status());
    json list = json::array();
    for (const auto& h : *hooks) list.push_back(hook_json(h));
    send_json(res, 200, json{{"deliveries", list}});
  });
}

}  // namespace zb::store
