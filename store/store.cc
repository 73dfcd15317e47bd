// The store process: the event follower on one thread, the HTTP server on its own threads.
#include "store/store.h"

#include <sys/resource.h>

#include <cmath>
#include <thread>

#include "common/log.h"
#include "common/task.h"
#include "common/task_json.h"
#include "common/wire.h"
#include "store/auth.h"
#include "store/dashboard.h"
#include "store/event_hub.h"
#include "store/follower.h"
#include "store/http_api.h"
#include "store/http_json.h"
#include "store/http_server.h"
#include "store/net_address.h"
#include "store/status_db.h"
#include "store/tls.h"
#include "store/webhooks.h"

namespace zb {

namespace {

// Descriptors kept for everything but HTTP connections: LMDB, ZeroMQ sockets (one client per
// concurrent request), log files.
constexpr rlim_t kReservedFds = 512;

// Raises the soft open-file limit to the hard one (idle HTTP connections each hold one), and
// returns the soft limit in force.
rlim_t raise_open_file_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 1024;
  if (limit.rlim_cur < limit.rlim_max) {
    const rlim_t before = limit.rlim_cur;
    limit.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &limit) == 0)
      spdlog::info("store raised open-file limit from={} to={}", before, limit.rlim_cur);
    else
      ::getrlimit(RLIMIT_NOFILE, &limit);
  }
  return limit.rlim_cur;
}

Result<std::chrono::milliseconds> seconds_flag(double seconds, const char* flag) {
  if (!(seconds >= 0.1) || seconds > 86400)
    return Status(Code::kBadRequest, std::string(flag) + " must be 0.1..86400 seconds, got " + std::to_string(seconds));
  return std::chrono::milliseconds(static_cast<int64_t>(std::llround(seconds * 1000)));
}

// A webhook's target once it is complete: the API's view of it (GET /api/v1/tasks/{id}, or the
// counters of GET /api/v1/groups/{id} without the task list) and the event.
std::optional<std::string> completed_target(store::StatusDb& db, store::HookKind kind, const Id& id) {
  if (kind == store::HookKind::kTask) {
    auto t = db.task(id);
    if (!t || !t->has_value() || !is_terminal((*t)->state)) return std::nullopt;
    nlohmann::json body = store::task_status_json(**t, true);
    body["event"] = "task.completed";
    return body.dump();
  }
  auto g = db.group(id);
  if (!g || !g->has_value() || !(*g)->ready()) return std::nullopt;
  nlohmann::json body = group_json(**g);
  body["created_ms"] = (*g)->created_ms;
  body["finished_ms"] = (*g)->finished_ms;
  body["event"] = "group.completed";
  return body.dump();
}

}  // namespace

struct Store::Impl {
  StoreOptions options;
  wire::ContextRef context;
  std::optional<store::StatusDb> db;
  store::EventHub hub;
  store::OutputHub output;
  std::unique_ptr<store::Follower> follower;
  std::unique_ptr<store::ClientPool> pool;
  std::unique_ptr<store::TlsContext> tls;
  std::unique_ptr<store::HttpServer> http;
  std::unique_ptr<store::Authenticator> auth;  // used by the server's handlers
  std::unique_ptr<store::Webhooks> webhooks;
  std::atomic<bool> stopping{false};
  ~Impl() { http.reset(); }  // the server's handlers refer to the rest
};

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

Result<std::unique_ptr<Store>> Store::create(StoreOptions options, zmq::context_t* context) {
  auto impl = std::make_unique<Impl>();
  auto where = store::parse_host_port(options.http);
  if (!where) return where.status();
  if (options.max_body_bytes < 1024) return Status(Code::kBadRequest, "--max-body-bytes must be >= 1024");
  if (options.max_batch_tasks < 1 || options.max_batch_tasks > 100000)
    return Status(Code::kBadRequest, "--max-batch-tasks must be between 1 and 100000, got " +
                                         std::to_string(options.max_batch_tasks));
  if (options.http_threads < 1 || options.http_threads > 1024)
    return Status(Code::kBadRequest, "--http-threads must be 1..1024, got " + std::to_string(options.http_threads));
  if (options.max_streams < 1 || options.max_streams > 100000)
    return Status(Code::kBadRequest, "--max-streams must be 1..100000, got " + std::to_string(options.max_streams));
  if (options.stream_retention < 100 || options.stream_retention > (uint64_t{1} << 32))
    return Status(Code::kBadRequest,
                  "--stream-retention must be 100..4294967296 events, got " + std::to_string(options.stream_retention));
  if (options.max_connections_per_client < 1)
    return Status(Code::kBadRequest, "--max-connections-per-client must be >= 1");
  auto request_timeout = seconds_flag(options.request_timeout_s, "--request-timeout");
  if (!request_timeout) return request_timeout.status();
  auto idle_timeout = seconds_flag(options.idle_timeout_s, "--idle-timeout");
  if (!idle_timeout) return idle_timeout.status();
  if (options.tls_cert.empty() != options.tls_key.empty())
    return Status(Code::kBadRequest, "--tls-cert and --tls-key go together");
  store::AuthOptions auth_options{options.auth_token, options.auth_basic, options.auth_file, options.auth_disabled,
                                  options.auth_max_failures, options.auth_lockout_s};
  auto credentials = store::load_credentials(auth_options);
  if (!credentials) return credentials.status();
  if (!options.tls_cert.empty()) {
    auto tls = store::TlsContext::load(options.tls_cert, options.tls_key);
    if (!tls) return tls.status();
    impl->tls = std::move(tls.value());
  }

  const rlim_t open_files = raise_open_file_limit();
  const size_t fd_room = open_files > 2 * kReservedFds ? open_files - kReservedFds : open_files / 2;
  store::HttpServerOptions http;
  http.framing.max_body_bytes = options.max_body_bytes;
  http.request_threads = options.http_threads;
  http.max_streams = options.max_streams;
  http.max_connections = options.max_connections ? std::min<size_t>(options.max_connections, fd_room) : fd_room;
  http.max_connections_per_client = options.max_connections_per_client;
  http.max_buffered_bytes = std::max<size_t>(http.max_buffered_bytes, 4 * options.max_body_bytes);
  http.request_timeout = *request_timeout;
  http.idle_timeout = *idle_timeout;
  if (options.max_connections > fd_room)
    spdlog::warn("store http max_connections={} is above what the open-file limit allows ({} - {} reserved): using {}",
                 options.max_connections, open_files, kReservedFds, fd_room);
  impl->http = std::make_unique<store::HttpServer>(http);
  // Bound first, so that the loopback decision is made on the address actually bound.
  if (Status s = impl->http->listen(*where, impl->tls.get()); !s) return s;
  if (Status s = store::check_exposure(options.http, impl->http->bound(), impl->http->loopback(), *credentials,
                                       options.auth_disabled, impl->tls != nullptr);
      !s)
    return s;
  for (auto [ep, what] : {std::pair{&options.router, "--router"}, {&options.events, "--events"}})
    if (Status s = curve::check_endpoints(*ep, options.curve.enabled(), options.insecure_plaintext, what); !s) return s;
  impl->options = std::move(options);
  impl->context = wire::ContextRef(context);
  auto db = store::StatusDb::open(impl->options.data_dir);
  if (!db) return db.status();
  impl->db.emplace(std::move(db.value()));
  impl->db->set_stream_retention(impl->options.stream_retention);
  store::WebhookOptions hook_options{impl->options.webhook_secret_file, impl->options.webhook_max_attempts,
                                     impl->options.webhook_backoff_s, impl->options.webhook_timeout_s,
                                     impl->options.webhook_allow};
  auto webhooks = store::Webhooks::open(impl->options.data_dir, std::move(hook_options),
                                        [db = &*impl->db](store::HookKind kind, const Id& id) {
                                          return completed_target(*db, kind, id);
                                        });
  if (!webhooks) return webhooks.status();
  impl->webhooks = std::move(webhooks.value());
  impl->hub.set_max_events(std::min<uint64_t>(store::kRingEvents, impl->options.stream_retention));
  impl->follower = std::make_unique<store::Follower>(*impl->db, impl->hub, impl->context.get(), impl->options.router,
                                                     impl->options.events, impl->options.curve);
  impl->follower->set_output(&impl->output);
  impl->pool = std::make_unique<store::ClientPool>(impl->context.get(), impl->options.router,
                                                   std::chrono::milliseconds(impl->options.router_timeout_ms),
                                                   impl->options.curve);
  store::HttpLimits limits;
  limits.max_body_bytes = impl->options.max_body_bytes;
  limits.max_batch_tasks = impl->options.max_batch_tasks;
  impl->auth = std::make_unique<store::Authenticator>(std::move(credentials.value()), impl->http->routes(),
                                                      impl->options.auth_max_failures,
                                                      std::chrono::seconds(impl->options.auth_lockout_s));
  store::install_routes(*impl->http, *impl->db, *impl->follower, *impl->pool, limits, *impl->auth, *impl->webhooks);
  store::install_dashboard(*impl->http, *impl->db);
  store::install_event_stream(*impl->http, impl->hub, *impl->db, *impl->pool, impl->stopping, impl->options.max_streams);
  store::install_task_stream(*impl->http, impl->output, *impl->db, *impl->pool, impl->stopping,
                             impl->options.max_streams);
  if (Status s = impl->http->routes().complete(); !s) return s;
  spdlog::info("store http limits max_connections={} max_connections_per_client={} open_files={} http_threads={} "
               "max_streams={} stream_retention={} request_timeout_s={} idle_timeout_s={} max_body_bytes={}",
               http.max_connections, http.max_connections_per_client, open_files, http.request_threads,
               http.max_streams, impl->options.stream_retention, impl->options.request_timeout_s, impl->options.idle_timeout_s,
               http.framing.max_body_bytes);
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

Status Store::run() {
  Impl& s = *impl_;
  spdlog::info("store listening http={}://{} router={} events={} data={} auth=\"{}\"", s.tls ? "https" : "http",
               s.http->bound(), s.options.router, s.options.events, s.options.data_dir, s.auth->summary());
  std::thread follower([&] { s.follower->run(s.stopping); });
  std::thread http([&] { s.http->run(); });
  std::thread webhooks([&] { s.webhooks->run(s.stopping); });
  while (!s.stopping.load()) {
    zmq::pollitem_t none{nullptr, -1, 0, 0};
    wire::poll(&none, 0, std::chrono::milliseconds(100));  // stop() is a flag: look every 100 ms
  }
  s.http->stop();
  http.join();
  follower.join();
  webhooks.join();
  spdlog::info("store stopped");
  return Status::ok();
}

void Store::stop() { impl_->stopping.store(true); }

}  // namespace zb
