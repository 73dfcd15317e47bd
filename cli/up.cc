// zbatch up: the router, a pool of workers and the HTTP store in one process, on inproc://
// endpoints beside the configured ones. On a stop the store stops taking requests and
// finishes those in flight, the workers drain (warm shutdown), then the router finishes its
// turn and closes.
#include <unistd.h>

#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cli/commands.h"
#include "cli/config.h"
#include "cli/serve.h"
#include "cli/signals.h"
#include "common/log.h"

namespace zb::cli {
namespace {

struct UpFlags {
  RouterFlags router;
  StoreOptions store;  // auth, HTTPS and HTTP limits
  std::string http = "127.0.0.1:8000";
  uint32_t workers = 1, concurrency = 0, prefetch = 0;
  double shutdown_timeout_s = 30;
};

void bind_up_flags(CLI::App* cmd, UpFlags& f) {
  add_router_flags(cmd, f.router);
  cmd->add_option("--http", f.http, "HTTP HOST:PORT")->envname("ZBATCH_HTTP");
  add_auth_flags(cmd, f.store);
  add_http_flags(cmd, f.store);
  cmd->add_option("--workers", f.workers, "Worker threads (each with -c slots)")->envname("ZBATCH_WORKERS");
  cmd->add_option("-c,--concurrency", f.concurrency, "Slots per worker (default: CPUs)")->envname("ZBATCH_CONCURRENCY");
  cmd->add_option("--prefetch-multiplier", f.prefetch, "Most tasks held per slot, a cap (default 0: up to 256, the router sizing each worker's window from measured task times)")->envname("ZBATCH_PREFETCH_MULTIPLIER");
  add_shutdown_timeout_flag(cmd, f.shutdown_timeout_s);
}

const std::string kFrontend = "inproc://zbatch-frontend", kBackend = "inproc://zbatch-backend",
                  kEvents = "inproc://zbatch-events";

// What the configuration file adds to the flags: queues, process handlers, seed kinds.
struct UpConfig {
  std::vector<QueueConfig> queues = default_queue_configs();
  std::vector<ProcessHandlerConfig> handlers;
  SeedKindsConfig kinds;
  std::vector<proto::ScheduleSpec> schedules;
  std::vector<PoolConfig> pools;
};

std::string host_name() {
  char buf[256] = {};
  ::gethostname(buf, sizeof buf - 1);
  return std::string(buf);
}

std::unique_ptr<Router> create_router(const UpFlags& u, const UpConfig& config, zmq::context_t& context) {
  RouterFlags local = u.router;
  local.frontend += "," + kFrontend;
  local.backend += "," + kBackend;
  local.events += "," + kEvents;
  RouterOptions options = router_options(local, u.router.data + "/router", config.queues);
  options.schedules = config.schedules;
  options.pools = config.pools;
  auto router = Router::create(std::move(options), &context);
  check(router.status());
  return std::move(router.value());
}

// u.workers workers named up-1@host, up-2@host, ..., each serving every queue.
std::vector<std::unique_ptr<Worker>> create_workers(const UpFlags& u, const UpConfig& config, zmq::context_t& context) {
  std::vector<std::unique_ptr<Worker>> pool;
  for (uint32_t i = 0; i < u.workers; ++i) {
    WorkerOptions wo;
    wo.router = kBackend;
    wo.concurrency = u.concurrency;
    if (u.prefetch != 0) wo.prefetch_multiplier = u.prefetch;
    wo.heartbeat_ms = u.router.heartbeat_ms;
    wo.shutdown_timeout_ms = shutdown_timeout_ms(u.shutdown_timeout_s);
    wo.process_handlers = config.handlers;
    wo.kinds = config.kinds;
    for (const auto& q : config.queues) wo.queues.push_back(q.name);
    wo.name = "up-" + std::to_string(i + 1) + "@" + host_name();
    auto w = Worker::create(wo, &context);
    check(w.status());
    pool.push_back(std::move(w.value()));
  }
  return pool;
}

std::unique_ptr<Store> create_store(const UpFlags& u, zmq::context_t& context) {
  StoreOptions so = u.store;
  so.router = kFrontend;
  so.events = kEvents;
  so.data_dir = u.router.data + "/store";
  so.http = u.http;
  auto store = Store::create(so, &context);
  check(store.status());  // a port that cannot be bound is a start-up error, as for the router
  return std::move(store.value());
}

void announce(const UpFlags& u) {
  const RouterFlags& f = u.router;
  std::cout << "zbatch up: router " << f.frontend << " (workers " << f.backend << ", events " << f.events << "), "
            << u.workers << " worker(s), HTTP " << (u.store.tls_cert.empty() ? "http://" : "https://") << u.http
            << ", data " << f.data << std::endl;
}

// Runs each component on a thread of its own until a stop; the router stops last, since the
// workers' final results need it.
Status run_all(const UpFlags& u, Router& router, std::vector<std::unique_ptr<Worker>>& pool, Store& store,
               StopTargets& stops) {
  std::vector<std::thread> threads;
  Status router_status;
  threads.emplace_back([&] {
    router_status = router.run();
    if (!router_status) stops.on_signal(1);  // the router failed: the rest stops too
  });
  for (auto& w : pool) threads.emplace_back([&w] {
    if (Status s = w->run(); !s) spdlog::error("up worker stopped reason=\"{}\"", s.message());
  });
  threads.emplace_back([&] {
    if (Status s = store.run(); !s) spdlog::error("up store stopped reason=\"{}\"", s.message());
  });
  announce(u);
  for (size_t i = 1; i < threads.size(); ++i) threads[i].join();
  router.stop();
  threads[0].join();
  return router_status;
}

void run_up(CLI::App& cmd, const UpFlags& u) {
  ServiceNotifier notifier;
  StopTargets stops(/*router_last=*/true);
  SignalWatcher signals([&](int n, int) { notifier.stopping(); stops.on_signal(n); },
                        [&] { reload(cmd, u.router.config, notifier); });
  UpConfig config;
  if (!u.router.config.empty())
    check(apply_config_file(u.router.config, "up", cmd, &config.queues, &config.handlers, &config.kinds,
                            &config.schedules, &config.pools));
  if (!u.router.config.empty()) check(apply_log_level(cmd, u.router.config));
  if (u.workers < 1 || u.workers > 64) fail(kExitUsage, "--workers must be between 1 and 64, got " + std::to_string(u.workers));
  zmq::context_t context(2);
  auto router = create_router(u, config, context);
  auto pool = create_workers(u, config, context);
  auto store = create_store(u, context);
  stops.set_router(router.get());
  for (auto& w : pool) stops.add_worker(w.get());
  stops.set_store(store.get());
  // Ready once the store's /readyz answers 200: the HTTP port serves and the store has caught
  // up with the router, in this process; its /healthz is the watchdog's probe.
  notifier.start("up http=" + u.http, http_probes(u.http, !u.store.tls_cert.empty()));
  const Status ran = run_all(u, *router, pool, *store, stops);
  notifier.join();
  stops.clear();
  spdlog::info("up stopped");
  check(ran);
}

}  // namespace

std::shared_ptr<void> add_up_flags(CLI::App* cmd) {
  auto f = std::make_shared<UpFlags>();
  bind_up_flags(cmd, *f);
  return f;
}

void add_up_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("up", "Router, workers and store in one process");
  auto u = std::make_shared<UpFlags>();
  bind_up_flags(cmd, *u);
  cmd->callback([cmd, u] { run_up(*cmd, *u); });
}

}  // namespace zb::cli
