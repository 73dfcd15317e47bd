// The store process: the event follower on one thread, the HTTP server on its own pool.
#include "store/store.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "common/log.h"
#include "common/wire.h"
#include "store/auth.h"
#include "store/dashboard.h"
#include "store/event_hub.h"
#include "store/follower.h"
#include "store/http_api.h"
#include "store/status_db.h"

namespace zb {

namespace {

// Why HOST:PORT cannot be bound, found by trying it (cpp-httplib reports only failure).
std::string bind_failure(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found); rc != 0)
    return std::string("cannot resolve '") + host + "': " + ::gai_strerror(rc);
  std::string reason = "unknown reason";
  for (addrinfo* a = found; a; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      reason = std::strerror(errno);
      continue;
    }
    int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    const bool bound = ::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 1) == 0;
    reason = bound ? "the port was taken and released meanwhile" : std::strerror(errno);
    ::close(fd);
    if (!bound) break;
  }
  ::freeaddrinfo(found);
  return reason;
}

}  // namespace

struct Store::Impl {
  StoreOptions options;
  wire::ContextRef context;
  std::optional<store::StatusDb> db;
  store::EventHub hub;
  std::unique_ptr<store::Follower> follower;
  std::unique_ptr<store::ClientPool> pool;
  std::unique_ptr<store::Authenticator> auth;  // outlives the server's handlers
  httplib::Server http;
  std::string host;
  int port = 0;
  std::atomic<bool> stopping{false};
};

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

Result<std::unique_ptr<Store>> Store::create(StoreOptions options, zmq::context_t* context) {
  auto impl = std::make_unique<Impl>();
  const auto colon = options.http.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return Status(Code::kBadRequest, "--http must be HOST:PORT, got '" + options.http + "'");
  impl->host = options.http.substr(0, colon);
  try {
    impl->port = std::stoi(options.http.substr(colon + 1));
  } catch (const std::exception&) {
    impl->port = -1;
  }
  if (options.max_body_bytes < 1024) return Status(Code::kBadRequest, "--max-body-bytes must be >= 1024");
  if (options.max_batch_tasks < 1 || options.max_batch_tasks > 100000)
    return Status(Code::kBadRequest, "--max-batch-tasks must be between 1 and 100000, got " +
                                         std::to_string(options.max_batch_tasks));
  if (impl->port <= 0 || impl->port > 65535)
    return Status(Code::kBadRequest, "--http port must be 1..65535, got '" + options.http.substr(colon + 1) + "'");
  if (Status s = store::check_auth(impl->host, {options.auth_basic, options.auth_token}, options.auth_disabled); !s)
    return s;
  for (auto [ep, what] : {std::pair{&options.router, "--router"}, {&options.events, "--events"}})
    if (Status s = curve::check_endpoints(*ep, options.curve.enabled(), options.insecure_plaintext, what); !s) return s;
  impl->options = std::move(options);
  impl->context = wire::ContextRef(context);
  auto db = store::StatusDb::open(impl->options.data_dir);
  if (!db) return db.status();
  impl->db.emplace(std::move(db.value()));
  impl->follower = std::make_unique<store::Follower>(*impl->db, impl->hub, impl->context.get(), impl->options.router,
                                                     impl->options.events, impl->options.curve);
  impl->pool = std::make_unique<store::ClientPool>(impl->context.get(), impl->options.router,
                                                   std::chrono::milliseconds(impl->options.router_timeout_ms),
                                                   impl->options.curve);
  // A keep-alive connection holds a pool thread between its requests (and an event stream for
  // its whole life), so the pool is sized for concurrent connections, not for CPU.
  impl->http.new_task_queue = [] { return new httplib::ThreadPool(64); };
  impl->http.set_keep_alive_max_count(1000);
  impl->http.set_tcp_nodelay(true);  // headers and body go out as separate writes
  impl->http.set_read_timeout(5, 0);
  impl->http.set_write_timeout(5, 0);
  store::HttpLimits limits;
  limits.max_body_bytes = impl->options.max_body_bytes;
  limits.max_batch_tasks = impl->options.max_batch_tasks;
  impl->auth = std::make_unique<store::Authenticator>(store::AuthOptions{impl->options.auth_basic, impl->options.auth_token});
  store::install_routes(impl->http, *impl->db, *impl->follower, *impl->pool, limits, *impl->auth);
  store::install_dashboard(impl->http, *impl->db, *impl->pool);
  store::install_event_stream(impl->http, impl->hub, *impl->pool, impl->stopping);
  // SO_REUSEADDR only: cpp-httplib's default adds SO_REUSEPORT, which lets a second store
  // bind the same port and silently split the requests between two clusters.
  impl->http.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  if (!impl->http.bind_to_port(impl->host.c_str(), impl->port))
    return Status(Code::kIo, "cannot listen on http://" + impl->options.http + ": " +
                                 bind_failure(impl->host, impl->port));
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

Status Store::run() {
  Impl& s = *impl_;
  spdlog::info("store listening http=http://{} router={} events={} data={} auth={}", s.options.http, s.options.router,
               s.options.events, s.options.data_dir,
               !s.options.auth_basic.empty() ? (s.options.auth_token.empty() ? "basic" : "basic+token")
               : !s.options.auth_token.empty() ? "token" : "off");
  std::thread follower([&] { s.follower->run(s.stopping); });
  std::thread http([&] { s.http.listen_after_bind(); });
  while (!s.stopping.load()) {
    zmq::pollitem_t none{nullptr, -1, 0, 0};
    wire::poll(&none, 0, std::chrono::milliseconds(100));  // stop() is a flag: look every 100 ms
  }
  s.http.stop();
  http.join();
  follower.join();
  spdlog::info("store stopped");
  return Status::ok();
}

void Store::stop() { impl_->stopping.store(true); }

}  // namespace zb
