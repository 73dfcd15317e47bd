// The HTTP API (internal to store/): the batch guide's /batch/celery/... endpoints, the same
// under /batch/..., the generic /api/v1/..., /metrics, /healthz and /readyz.
// Every error is JSON {"error": {"code", "message"}}.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include <httplib.h>

#include "client/client.h"
#include "store/auth.h"
#include "store/event_hub.h"
#include "store/follower.h"
#include "store/http_server.h"
#include "store/status_db.h"

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
                    const HttpLimits& limits, const Authenticator& auth);

// GET /api/v1/events: Server-Sent Events, `id:` = the event's sequence number. Resumes after
// `Last-Event-ID` (or ?after=N) from the hub's ring, else the DB's stream log, else the
// router's log; what none holds is one `event: gap` frame. ?group=ID and ?queue=NAME filter. Each stream holds a stream
// thread of its own (never a request thread), and at most `max_streams` run at once (503
// beyond). A comment line every 15 s keeps proxies open and finds dead clients.
void install_event_stream(HttpServer& server, EventHub& hub, StatusDb& db, ClientPool& pool,
                          const std::atomic<bool>& stopping, size_t max_streams);

}  // namespace zb::store
