// The long-running commands: zbatch router | worker | store | up.
#include <csignal>
#include <filesystem>
#include <iostream>
#include <thread>

#include "cli/commands.h"
#include "cli/config.h"
#include "common/log.h"

namespace zb::cli {
namespace {

// What a signal stops. Set before the handlers are installed; read in the handler only.
std::atomic<Router*> g_router{nullptr};
std::atomic<Worker*> g_workers[64];
std::atomic<Store*> g_store{nullptr};
std::atomic<int> g_signals{0};

void on_signal(int) {
  const int n = g_signals.fetch_add(1) + 1;
  if (n > 2) std::_Exit(130);  // a third signal: leave now
  for (auto& w : g_workers)
    if (Worker* p = w.load()) p->stop();  // first warm, second cold
  if (Store* s = g_store.load()) s->stop();
  // With workers in this process (`up`), the router stops after them: their last results
  // need it. `up` stops it once the workers are done.
  if (!g_workers[0].load())
    if (Router* r = g_router.load()) r->stop();
}

void install_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

void check(const Status& s) {
  if (!s) fail(s.code() == Code::kBadRequest ? kExitUsage : kExitFailed, s.message());
}

std::vector<std::string> split(const std::string& list) {
  std::vector<std::string> out;
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

struct RouterFlags {
  std::string data = "zbatch-data";
  std::string frontend = "tcp://127.0.0.1:5555", backend = "tcp://127.0.0.1:5556",
              events = "tcp://127.0.0.1:5557";
  std::string durability = "fsync";
  uint32_t heartbeat_ms = 1000, reclaim_grace_ms = 5000;
  int events_hwm = 100000;
  std::string config;
};

void add_router_flags(CLI::App* cmd, RouterFlags& f) {
  cmd->add_option("--data", f.data, "Data folder (LMDB)")->envname("ZBATCH_DATA");
  cmd->add_option("--frontend", f.frontend, "Client endpoint(s), comma-separated")->envname("ZBATCH_FRONTEND");
  cmd->add_option("--backend", f.backend, "Worker endpoint(s), comma-separated")->envname("ZBATCH_BACKEND");
  cmd->add_option("--events", f.events, "Event PUB endpoint(s), comma-separated")->envname("ZBATCH_EVENTS");
  cmd->add_option("--durability", f.durability, "fsync (default) or nosync")->envname("ZBATCH_DURABILITY");
  cmd->add_option("--heartbeat-ms", f.heartbeat_ms, "Heartbeat interval")->envname("ZBATCH_HEARTBEAT_MS");
  cmd->add_option("--reclaim-grace-ms", f.reclaim_grace_ms,
                  "After a restart, how long running tasks wait for their worker to re-claim them")
      ->envname("ZBATCH_RECLAIM_GRACE_MS");
  cmd->add_option("--events-hwm", f.events_hwm,
                  "Event batches queued per subscriber before the PUB drops (the store replays drops)")
      ->check(CLI::Range(1, 10000000))
      ->envname("ZBATCH_EVENTS_HWM");
  cmd->add_option("--config", f.config, "TOML configuration file")->envname("ZBATCH_CONFIG");
}

RouterOptions router_options(const RouterFlags& f, const std::string& data_dir, std::vector<QueueConfig> queues) {
  RouterOptions o;
  o.data_dir = data_dir;
  o.frontend = f.frontend;
  o.backend = f.backend;
  o.events = f.events;
  auto durable = parse_durability(f.durability);
  check(durable.status());
  o.fsync = *durable;
  o.heartbeat_ms = f.heartbeat_ms;
  o.reclaim_grace_ms = f.reclaim_grace_ms;
  o.events_hwm = f.events_hwm;
  o.queues = std::move(queues);
  return o;
}

struct WorkerFlags {
  std::string router = "tcp://127.0.0.1:5556";
  std::string queues;
  uint32_t concurrency = 0;
  std::string hostname;
  uint32_t prefetch = 4;
  uint32_t heartbeat_ms = 1000;
  std::string config;
};

WorkerOptions worker_options(const WorkerFlags& f) {
  WorkerOptions o;
  o.router = f.router;
  o.queues = split(f.queues);
  o.concurrency = f.concurrency;
  o.name = f.hostname;
  o.prefetch_multiplier = f.prefetch;
  o.heartbeat_ms = f.heartbeat_ms;
  return o;
}

}  // namespace

void add_serve_commands(CLI::App& app) {
  // zbatch router
  {
    auto* cmd = app.add_subcommand("router", "Run the dispatcher (durable queues, LMDB)");
    auto f = std::make_shared<RouterFlags>();
    add_router_flags(cmd, *f);
    cmd->callback([cmd, f] {
      std::vector<QueueConfig> queues = default_queue_configs();
      if (!f->config.empty()) check(apply_config_file(f->config, "router", *cmd, &queues));
      auto router = Router::create(router_options(*f, f->data, std::move(queues)));
      check(router.status());
      g_router = router->get();
      install_signals();
      check((*router)->run());
      g_router = nullptr;
    });
  }
  // zbatch worker
  {
    auto* cmd = app.add_subcommand("worker", "Run tasks from the router's queues");
    auto f = std::make_shared<WorkerFlags>();
    cmd->add_option("--router", f->router, "The router's worker endpoint")->envname("ZBATCH_WORKER_ROUTER");
    cmd->add_option("-Q,--queues", f->queues, "Queues to serve, comma-separated (default: all)")->envname("ZBATCH_QUEUES");
    cmd->add_option("-c,--concurrency", f->concurrency, "Execution slots (default: CPUs)")->envname("ZBATCH_CONCURRENCY");
    cmd->add_option("--hostname", f->hostname, "Worker name, name@host (default zbatch@<host>)")->envname("ZBATCH_HOSTNAME");
    cmd->add_option("--prefetch-multiplier", f->prefetch, "Tasks held per slot (default 4)")->envname("ZBATCH_PREFETCH_MULTIPLIER");
    cmd->add_option("--heartbeat-ms", f->heartbeat_ms, "Heartbeat interval")->envname("ZBATCH_HEARTBEAT_MS");
    cmd->add_option("--config", f->config, "TOML configuration file")->envname("ZBATCH_CONFIG");
    cmd->callback([cmd, f] {
      if (!f->config.empty()) check(apply_config_file(f->config, "worker", *cmd, nullptr));
      auto worker = Worker::create(worker_options(*f));
      check(worker.status());
      g_workers[0] = worker->get();
      install_signals();
      check((*worker)->run());
      g_workers[0] = nullptr;
    });
  }
  // zbatch store
  {
    auto* cmd = app.add_subcommand("store", "Run the status store and HTTP API");
    auto o = std::make_shared<StoreOptions>();
    auto config = std::make_shared<std::string>();
    auto data = std::make_shared<std::string>("zbatch-data");
    cmd->add_option("--router", o->router, "The router's frontend endpoint")->envname("ZBATCH_ROUTER");
    cmd->add_option("--events", o->events, "The router's events endpoint")->envname("ZBATCH_EVENTS");
    cmd->add_option("--data", *data, "Data folder")->envname("ZBATCH_DATA");
    cmd->add_option("--http", o->http, "HTTP HOST:PORT (default 127.0.0.1:8000)")->envname("ZBATCH_HTTP");
    cmd->add_option("--max-body-bytes", o->max_body_bytes, "Largest HTTP request body (default 32 MiB)")
        ->envname("ZBATCH_MAX_BODY_BYTES");
    cmd->add_option("--max-batch-tasks", o->max_batch_tasks, "Most tasks in one HTTP batch (default 100000)")
        ->envname("ZBATCH_MAX_BATCH_TASKS");
    cmd->add_option("--config", *config, "TOML configuration file")->envname("ZBATCH_CONFIG");
    cmd->callback([cmd, o, config, data] {
      if (!config->empty()) check(apply_config_file(*config, "store", *cmd, nullptr));
      o->data_dir = *data + "/store";
      auto store = Store::create(*o);
      check(store.status());
      g_store = store->get();
      install_signals();
      check((*store)->run());
      g_store = nullptr;
    });
  }
  // zbatch up
  {
    auto* cmd = app.add_subcommand("up", "Router, workers and store in one process");
    auto f = std::make_shared<RouterFlags>();
    add_router_flags(cmd, *f);
    auto http = std::make_shared<std::string>("127.0.0.1:8000");
    auto workers = std::make_shared<uint32_t>(1);
    auto concurrency = std::make_shared<uint32_t>(0);
    auto prefetch = std::make_shared<uint32_t>(4);
    cmd->add_option("--http", *http, "HTTP HOST:PORT")->envname("ZBATCH_HTTP");
    cmd->add_option("--workers", *workers, "Worker threads (each with -c slots)")->envname("ZBATCH_WORKERS");
    cmd->add_option("-c,--concurrency", *concurrency, "Slots per worker (default: CPUs)")->envname("ZBATCH_CONCURRENCY");
    cmd->add_option("--prefetch-multiplier", *prefetch, "Tasks held per slot")->envname("ZBATCH_PREFETCH_MULTIPLIER");
    cmd->callback([cmd, f, http, workers, concurrency, prefetch] {
      std::vector<QueueConfig> queues = default_queue_configs();
      if (!f->config.empty()) check(apply_config_file(f->config, "up", *cmd, &queues));
      if (*workers < 1 || *workers > 64) fail(kExitUsage, "--workers must be between 1 and 64, got " + std::to_string(*workers));
      zmq::context_t context(2);
      const std::string fe = "inproc://zbatch-frontend", be = "inproc://zbatch-backend", ev = "inproc://zbatch-events";
      RouterFlags local = *f;
      local.frontend += "," + fe;
      local.backend += "," + be;
      local.events += "," + ev;
      auto router = Router::create(router_options(local, f->data + "/router", queues), &context);
      check(router.status());
      std::vector<std::unique_ptr<Worker>> pool;
      for (uint32_t i = 0; i < *workers; ++i) {
        WorkerOptions wo;
        wo.router = be;
        wo.concurrency = *concurrency;
        wo.prefetch_multiplier = *prefetch;
        wo.heartbeat_ms = f->heartbeat_ms;
        for (const auto& q : queues) wo.queues.push_back(q.name);
        wo.name = "up-" + std::to_string(i + 1) + "@" + [] {
          char buf[256] = {};
          ::gethostname(buf, sizeof buf - 1);
          return std::string(buf);
        }();
        auto w = Worker::create(wo, &context);
        check(w.status());
        pool.push_back(std::move(w.value()));
      }
      StoreOptions so;
      so.router = fe;
      so.events = ev;
      so.data_dir = f->data + "/store";
      so.http = *http;
      auto store = Store::create(so, &context);
      if (!store) spdlog::warn("up store unavailable reason=\"{}\"", store.status().message());

      g_router = router->get();
      for (size_t i = 0; i < pool.size(); ++i) g_workers[i] = pool[i].get();
      if (store) g_store = store->get();
      install_signals();
      std::vector<std::thread> threads;
      Status router_status;
      threads.emplace_back([&] { router_status = (*router)->run(); });
      for (auto& w : pool) threads.emplace_back([&w] {
        if (Status s = w->run(); !s) spdlog::error("up worker stopped reason=\"{}\"", s.message());
      });
      if (store) threads.emplace_back([&] {
        if (Status s = (*store)->run(); !s) spdlog::error("up store stopped reason=\"{}\"", s.message());
      });
      std::cout << "zbatch up: router " << f->frontend << " (workers " << f->backend << ", events "
                << f->events << "), " << *workers << " worker(s)"
                << (store ? ", HTTP http://" + *http : std::string(", no HTTP store")) << ", data "
                << f->data << std::endl;
      // The router stops last: the workers' final results need it.
      for (size_t i = 1; i < threads.size(); ++i) threads[i].join();
      (*router)->stop();
      threads[0].join();
      for (auto& w : g_workers) w = nullptr;
      g_router = nullptr;
      g_store = nullptr;
      check(router_status);
    });
  }
}

}  // namespace zb::cli
