// The HTTP API (internal to store/): the batch guide's /batch/celery/... endpoints, the same
// under /batch/..., the generic /api/v1/..., /metrics, /healthz and /readyz.
// Every error is JSON {"error": {"code", "message"}}.
//
// install_routes() installs the checks every request passes (credentials, body limits), the
// JSON error answers, and the routes by resource, each from its file: batch_routes.cc (the
// seed's batches, groups), task_routes.cc (tasks), control_routes.cc (inspection and
// control forwarded to the router), metrics_routes.cc (/metrics and the probes). What they
// share is here: the client pool and the answers to a submission.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "client/client.h"
#include "store/auth.h"
#include "store/cluster_view.h"
#include "store/event_hub.h"
#include "store/follower.h"
#include "store/http_server.h"
#include "store/read_your_writes.h"
#include "store/status_db.h"
#include "store/webhooks.h"

namespace zb::store {

struct HttpLimits {
  size_t max_body_bytes = 32u << 20;
  size_t max_batch_tasks = 100000;
  size_t max_group_results = 1000;  // results per group page
};

// Clients to the router's frontend, one per concurrent request (a Client is single-threaded).
class ClientPool {
 public:
  ClientPool(zmq::context_t& context, std::string router, std::chrono::milliseconds timeout,
             curve::ClientKeys curve = {})
      : context_(context), router_(std::move(router)), timeout_(timeout), curve_(std::move(curve)) {}
  // Runs `fn` with a client borrowed for the call.
  template <typename Fn>
  auto with(Fn&& fn) {
    std::unique_ptr<Client> c = take();
    auto result = fn(*c);
    give(std::move(c));
    return result;
  }

 private:
  std::unique_ptr<Client> take();
  void give(std::unique_ptr<Client> c);
  zmq::context_t& context_;
  std::string router_;
  std::chrono::milliseconds timeout_;
  curve::ClientKeys curve_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Client>> idle_;
};

// Installs every route on `server`; `auth` admits each request first.
void install_routes(HttpServer& server, StatusDb& db, Follower& follower, ClientPool& pool,
                    const HttpLimits& limits, const Authenticator& auth, Webhooks& webhooks);

// What the routes work with. Cheap to copy: handlers capture it by value, and what it refers to
// (owned by the store) outlives the server.
struct Api {
  StatusDb& db;
  Follower& follower;
  ClientPool& pool;
  HttpLimits limits;
  std::shared_ptr<ClusterView> cluster;  // what the submission checks ask the router, cached
  std::shared_ptr<ReadYourWrites> writes;  // the sequences this store's submissions were acknowledged with
  Webhooks& webhooks;
};

// A submission's webhook: checked against the allow-list before the submission is sent, and
// recorded after the router's acknowledgement, before the answer (store/webhooks.h).
Status check_webhook(const Api& api, const std::string& url);
Status record_webhook(const Api& api, HookKind kind, const Id& id, const std::string& url);
// {url, state, attempts, last_error} of the target's webhook, for its API view; nullopt: none.
std::optional<nlohmann::json> webhook_view(const Api& api, HookKind kind, const Id& id);
// GET /api/v1/webhooks/deliveries.
void install_webhook_routes(HttpServer& server, const Api& api);

// POST /batch[/celery]/<endpoint>, GET /batch[/celery]/group/{id}, GET /api/v1/groups/{id}.
void install_batch_routes(HttpServer& server, const Api& api);
// GET /api/v1/groups/{id}/export: a whole group's tasks as JSON lines or CSV, streamed.
void install_export_routes(HttpServer& server, const Api& api);
// POST /api/v1/tasks, GET /api/v1/tasks/{id}, GET /batch[/celery]/task/{id}.
void install_task_routes(HttpServer& server, const Api& api);
// Inspection, purge, dead letters, revoke, retry and the worker actions, forwarded to the router.
void install_control_routes(HttpServer& server, ClientPool& pool);
// GET /metrics (Prometheus text), /healthz and /readyz.
void install_metrics_routes(HttpServer& server, const Api& api);

// The submission's idempotency key: the Idempotency-Key header, else the body's
// "idempotency_key", else a new random one, so that every submission can be repeated safely.
Result<std::string> submission_key(const httplib::Request& req, const nlohmann::json& body);
// Every answer to a submission names its key (header and body), so the caller can repeat it.
void send_submitted(httplib::Response& res, int status, nlohmann::json body, const std::string& key);
// A submission that was not acknowledged. outcome_unknown (504): it was sent and no answer
// came, so it may or may not have been accepted; unavailable (503): it never reached the
// router, nothing was accepted. Other refusals (409 for a key reused with another body, 422,
// 507, ...) keep the router's code and message.
void send_submission_error(httplib::Response& res, const Status& s, const std::string& key);

// GET /api/v1/events: Server-Sent Events, `id:` = the event's sequence number. Resumes after
// `Last-Event-ID` (or ?after=N) from the hub's ring, else the DB's stream log, else the
// router's log; what none holds is one `event: gap` frame. ?group=ID and ?queue=NAME filter. Each stream holds a stream
// thread of its own (never a request thread), and at most `max_streams` run at once (503
// beyond). A comment line every 15 s keeps proxies open and finds dead clients.
void install_event_stream(HttpServer& server, EventHub& hub, StatusDb& db, ClientPool& pool,
                          const std::atomic<bool>& stopping, size_t max_streams);

// GET /api/v1/tasks/{id}/stream: the task's live output as Server-Sent Events (`event:
// output`, `id:` its position), then `event: end` once the task has ended; resumes after
// Last-Event-ID (or ?after=N); an `event: gap` says what the store no longer holds. At most
// `max_streams` at once (503 beyond), apart from the event streams' own count.
class OutputHub;
void install_task_stream(HttpServer& server, OutputHub& hub, StatusDb& db, ClientPool& pool,
                         const std::atomic<bool>& stopping, size_t max_streams);

}  // namespace zb::store
