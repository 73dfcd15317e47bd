// The long-running commands zbatch router | worker | store, and the flags `up` shares with
// them (cli/serve.h).
#include <mutex>
#include <filesystem>
#include <iostream>
#include <thread>

#include "cli/commands.h"
#include "cli/config.h"
#include "cli/curve_flags.h"
#include "cli/serve.h"
#include "cli/service_notify.h"
#include "cli/signals.h"
#include "client/client.h"
#include "common/log.h"

namespace zb::cli {

void check(const Status& s) {
  if (!s) fail(s.code() == Code::kBadRequest ? kExitUsage : kExitFailed, s.message());
}

void add_router_flags(CLI::App* cmd, RouterFlags& f) {
  add_router_curve_flags(cmd, f.curve);
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
  cmd->add_option("--result-ttl", f.result_ttl_s,
                  "Seconds finished tasks and groups are kept (default 86400; 0 = forever)")
      ->envname("ZBATCH_RESULT_TTL");
  cmd->add_option("--event-retention", f.event_retention,
                  "Events kept in the router's log beyond what the store confirmed (default 1000000)")
      ->check(CLI::Range(uint64_t{1000}, uint64_t{1} << 40))
      ->envname("ZBATCH_EVENT_RETENTION");
  cmd->add_option("--min-free-mb", f.min_free_mb,
                  "MiB the data folder's filesystem keeps free: below it new tasks are refused (507 storage_full) "
                  "while results, status and control go on (default 64; 0 = only after a write failed)")
      ->check(CLI::Range(uint64_t{0}, uint64_t{1} << 30))
      ->envname("ZBATCH_MIN_FREE_MB");
  cmd->add_option("--config", f.config, "TOML configuration file (default: none)")->envname("ZBATCH_CONFIG");
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
  o.result_ttl_ms = f.result_ttl_s * 1000;
  o.event_retention = f.event_retention;
  o.min_free_bytes = f.min_free_mb << 20;
  o.queues = std::move(queues);
  o.curve_secret_file = f.curve.secret_file;
  o.curve_allow_file = f.curve.allow_file;
  o.insecure_plaintext = f.curve.insecure_plaintext;
  return o;
}

void reload(const CLI::App& cmd, const std::string& config_path, ServiceNotifier& notifier) {
  notifier.reloading();
  if (config_path.empty()) {
    spdlog::info("reload config=none: nothing to re-read");
  } else if (Status s = apply_log_level(cmd, config_path); !s) {
    spdlog::error("reload failed, settings unchanged reason=\"{}\"", s.message());
  }
  notifier.reloaded();
}

ServiceProbes http_probes(const std::string& http, bool tls) {
  return {[http, tls] { return http_probe(http, "/readyz", 1000, tls) == 200; },
          [http, tls] { return http_probe(http, "/healthz", 1000, tls) == 200; }};
}

uint32_t shutdown_timeout_ms(double seconds) {
  if (!(seconds >= 0) || seconds > 86400)
    fail(kExitUsage, "--shutdown-timeout must be 0..86400 seconds, got " + std::to_string(seconds));
  return static_cast<uint32_t>(seconds * 1000);
}

void add_shutdown_timeout_flag(CLI::App* cmd, double& seconds) {
  cmd->add_option("--shutdown-timeout", seconds,
                  "Warm shutdown: seconds running tasks may go on after SIGTERM/SIGINT before they are "
                  "cancelled and requeued (default 30; a second signal cancels at once)")
      ->envname("ZBATCH_SHUTDOWN_TIMEOUT");
}

void add_auth_flags(CLI::App* cmd, StoreOptions& o) {
  cmd->add_option("--auth-basic", o.auth_basic,
                  "USER:PASSWORD[:ROLE] for HTTP basic authentication, repeatable (role default admin; default: none)")
      ->allow_extra_args(false)
      ->default_str("")
      ->envname("ZBATCH_AUTH_BASIC");
  cmd->add_option("--auth-token", o.auth_token,
                  "[ROLE:]TOKEN bearer token of 16+ characters, repeatable (role default admin; default: none)")
      ->allow_extra_args(false)
      ->default_str("")
      ->envname("ZBATCH_AUTH_TOKEN");
  cmd->add_option("--auth-file", o.auth_file,
                  "TOML file of credentials: [[token]] token, role and [[user]] name, password, role (default: none)")
      ->envname("ZBATCH_AUTH_FILE");
  cmd->add_option("--auth-max-failures", o.auth_max_failures,
                  "Failed authentications from one client (IPv4 address, IPv6 /64) within --auth-lockout that lock "
                  "it out with 429 for --auth-lockout (default 10)")
      ->check(CLI::Range(1u, 1000000u))
      ->envname("ZBATCH_AUTH_MAX_FAILURES");
  cmd->add_option("--auth-lockout", o.auth_lockout_s,
                  "Seconds: the window that --auth-max-failures counts in, and the lockout after it (default 60)")
      ->check(CLI::Range(1u, 86400u))
      ->envname("ZBATCH_AUTH_LOCKOUT");
  cmd->add_flag("--no-auth", o.auth_disabled, "Serve a non-loopback --http address without authentication")
      ->envname("ZBATCH_NO_AUTH");
}

void add_http_flags(CLI::App* cmd, StoreOptions& o) {
  cmd->add_option("--tls-cert", o.tls_cert, "PEM certificate (chain): serve HTTPS, with --tls-key (default: none, HTTP)")
      ->envname("ZBATCH_TLS_CERT");
  cmd->add_option("--tls-key", o.tls_key, "PEM private key of --tls-cert (default: none)")->envname("ZBATCH_TLS_KEY");
  cmd->add_option("--http-threads", o.http_threads, "Request threads; they only see whole requests (default 32)")
      ->check(CLI::Range(1u, 1024u))
      ->envname("ZBATCH_HTTP_THREADS");
  cmd->add_option("--max-streams", o.max_streams,
                  "Event streams (GET /api/v1/events) at once, each on a thread of its own; more get 503 (default 256)")
      ->check(CLI::Range(1u, 100000u))
      ->envname("ZBATCH_MAX_STREAMS");
  cmd->add_option("--stream-retention", o.stream_retention,
                  "Events the store keeps on disk for /api/v1/events streams that resume or fall behind; older "
                  "ones are announced as an event: gap (default 200000)")
      ->check(CLI::Range(uint64_t{100}, uint64_t{1} << 32))
      ->envname("ZBATCH_STREAM_RETENTION");
  cmd->add_option("--max-connections", o.max_connections,
                  "HTTP connections at once; more are closed when accepted (default 0: the open-file limit, raised "
                  "to its maximum at start, less 512)")
      ->envname("ZBATCH_MAX_CONNECTIONS");
  cmd->add_option("--max-connections-per-client", o.max_connections_per_client,
                  "HTTP connections from one client (IPv4 address, IPv6 /64); more are closed when accepted "
                  "(default 1024)")
      ->check(CLI::Range(1u, 10000000u))
      ->envname("ZBATCH_MAX_CONNECTIONS_PER_CLIENT");
  cmd->add_option("--request-timeout", o.request_timeout_s,
                  "Seconds for a request's head and body to arrive from its first byte (else 408), and for its "
                  "answer to be taken (default 30)")
      ->envname("ZBATCH_REQUEST_TIMEOUT");
  cmd->add_option("--idle-timeout", o.idle_timeout_s,
                  "Seconds a connection may stay silent before or between requests (default 60)")
      ->envname("ZBATCH_IDLE_TIMEOUT");
  cmd->add_option("--webhook-secret-file", o.webhook_secret_file,
                  "File whose first line is the HMAC secret of completion webhooks (default: DATA/store/webhook_secret, "
                  "generated on first start)")
      ->envname("ZBATCH_WEBHOOK_SECRET_FILE");
  cmd->add_option("--webhook-max-attempts", o.webhook_max_attempts,
                  "Attempts per webhook delivery before it is given up (default 8)")
      ->check(CLI::Range(1u, 100u))
      ->envname("ZBATCH_WEBHOOK_MAX_ATTEMPTS");
  cmd->add_option("--webhook-backoff", o.webhook_backoff_s,
                  "Seconds before a webhook's first retry, doubled at each one, with jitter (default 30)")
      ->envname("ZBATCH_WEBHOOK_BACKOFF");
  cmd->add_option("--webhook-timeout", o.webhook_timeout_s,
                  "Seconds to connect, and for each read or write, of a webhook delivery (default 10)")
      ->envname("ZBATCH_WEBHOOK_TIMEOUT");
  cmd->add_option("--webhook-allow", o.webhook_allow,
                  "Host, IP address or CIDR that webhook URLs may name, repeatable (default: any host)")
      ->allow_extra_args(false)
      ->default_str("")
      ->envname("ZBATCH_WEBHOOK_ALLOW");
}

namespace {

std::vector<std::string> split(const std::string& list) {
  std::vector<std::string> out;
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

struct WorkerFlags {
  std::string router = "tcp://127.0.0.1:5556";
  std::string queues;
  uint32_t concurrency = 0;
  std::string hostname;
  uint32_t prefetch = 0;  // 0: auto (WorkerOptions::prefetch_multiplier unset)
  uint32_t heartbeat_ms = 1000;
  std::string autoscale;
  uint32_t autoscale_idle_ms = 10000;
  double shutdown_timeout_s = 30;
  PeerCurveFlags curve;
  std::string config;
};

// "MAX,MIN" (Celery's --autoscale) or "MAX" (MIN = 1).
void parse_autoscale(const std::string& text, WorkerOptions& o) {
  if (text.empty()) return;
  auto parts = split(text);
  auto number = [&](const std::string& p) -> uint32_t {
    try {
      size_t used = 0;
      unsigned long v = std::stoul(p, &used);
      if (used == p.size() && v <= 1024) return static_cast<uint32_t>(v);
    } catch (const std::exception&) {
    }
    fail(kExitUsage, "--autoscale must be MAX,MIN (0..1024), got '" + text + "'");
    return 0;
  };
  if (parts.empty() || parts.size() > 2) fail(kExitUsage, "--autoscale must be MAX,MIN, got '" + text + "'");
  o.autoscale_max = number(parts[0]);
  o.autoscale_min = parts.size() == 2 ? number(parts[1]) : 1;
  if (o.autoscale_max == 0 || o.autoscale_min > o.autoscale_max)
    fail(kExitUsage, "--autoscale needs 1 <= MAX and MIN <= MAX, got '" + text + "'");
}

WorkerOptions worker_options(const WorkerFlags& f) {
  WorkerOptions o;
  o.router = f.router;
  o.queues = split(f.queues);
  o.concurrency = f.concurrency;
  o.name = f.hostname;
  if (f.prefetch != 0) o.prefetch_multiplier = f.prefetch;
  o.heartbeat_ms = f.heartbeat_ms;
  o.autoscale_idle_ms = f.autoscale_idle_ms;
  o.shutdown_timeout_ms = shutdown_timeout_ms(f.shutdown_timeout_s);
  o.curve = peer_keys(f.curve);
  o.insecure_plaintext = f.curve.insecure_plaintext;
  parse_autoscale(f.autoscale, o);
  return o;
}

void add_worker_flags(CLI::App* cmd, WorkerFlags& f) {
  cmd->add_option("--router", f.router, "The router's worker endpoint")->envname("ZBATCH_WORKER_ROUTER");
  add_peer_curve_flags(cmd, f.curve);
  cmd->add_option("-Q,--queues", f.queues, "Queues to serve, comma-separated (default: all)")->envname("ZBATCH_QUEUES");
  cmd->add_option("-c,--concurrency", f.concurrency, "Execution slots (default: CPUs)")->envname("ZBATCH_CONCURRENCY");
  cmd->add_option("--hostname", f.hostname, "Worker name, name@host (default zbatch@<host>)")->envname("ZBATCH_HOSTNAME");
  cmd->add_option("--prefetch-multiplier", f.prefetch, "Most tasks held per slot, a cap (default 0: up to 256, the router sizing each worker's window from measured task times)")->envname("ZBATCH_PREFETCH_MULTIPLIER");
  cmd->add_option("--heartbeat-ms", f.heartbeat_ms, "Heartbeat interval")->envname("ZBATCH_HEARTBEAT_MS");
  cmd->add_option("--autoscale", f.autoscale, "MAX,MIN: grow slots under backlog, shrink when idle (default: off, -c slots)")
      ->envname("ZBATCH_AUTOSCALE");
  cmd->add_option("--autoscale-idle-ms", f.autoscale_idle_ms, "Idle time before autoscale removes a slot (default 10000)")
      ->envname("ZBATCH_AUTOSCALE_IDLE_MS");
  add_shutdown_timeout_flag(cmd, f.shutdown_timeout_s);
  cmd->add_option("--config", f.config, "TOML configuration file ([worker] and [[handler]]; default: none)")->envname("ZBATCH_CONFIG");
}

struct StoreFlags {
  StoreOptions options;
  std::string data = "zbatch-data";
  PeerCurveFlags curve;
  std::string config;
};

void add_store_flags(CLI::App* cmd, StoreFlags& f) {
  StoreOptions& o = f.options;
  add_peer_curve_flags(cmd, f.curve);
  cmd->add_option("--router", o.router, "The router's frontend endpoint")->envname("ZBATCH_ROUTER");
  cmd->add_option("--events", o.events, "The router's events endpoint")->envname("ZBATCH_EVENTS");
  cmd->add_option("--data", f.data, "Data folder")->envname("ZBATCH_DATA");
  cmd->add_option("--http", o.http, "HTTP HOST:PORT (default 127.0.0.1:8000)")->envname("ZBATCH_HTTP");
  cmd->add_option("--max-body-bytes", o.max_body_bytes, "Largest HTTP request body (default 32 MiB)")
      ->envname("ZBATCH_MAX_BODY_BYTES");
  cmd->add_option("--max-batch-tasks", o.max_batch_tasks, "Most tasks in one HTTP batch (default 100000)")
      ->envname("ZBATCH_MAX_BATCH_TASKS");
  add_auth_flags(cmd, o);
  add_http_flags(cmd, o);
  cmd->add_option("--config", f.config, "TOML configuration file (default: none)")->envname("ZBATCH_CONFIG");
}

}  // namespace

std::shared_ptr<void> add_command_flags(const std::string& command, CLI::App* cmd) {
  if (command == "router") {
    auto f = std::make_shared<RouterFlags>();
    add_router_flags(cmd, *f);
    return f;
  }
  if (command == "worker") {
    auto f = std::make_shared<WorkerFlags>();
    add_worker_flags(cmd, *f);
    return f;
  }
  if (command == "store") {
    auto f = std::make_shared<StoreFlags>();
    add_store_flags(cmd, *f);
    return f;
  }
  return add_up_flags(cmd);
}

void add_serve_commands(CLI::App& app) {
  // zbatch router
  {
    auto* cmd = app.add_subcommand("router", "Run the dispatcher (durable queues, LMDB)");
    auto f = std::make_shared<RouterFlags>();
    add_router_flags(cmd, *f);
    cmd->callback([cmd, f] {
      ServiceNotifier notifier;
      StopTargets stops;
      SignalWatcher signals([&](int n, int) { notifier.stopping(); stops.on_signal(n); },
                            [&] { reload(*cmd, f->config, notifier); });
      std::vector<QueueConfig> queues = default_queue_configs();
      std::vector<proto::ScheduleSpec> schedules;
      std::vector<PoolConfig> pools;
      if (!f->config.empty())
        check(apply_config_file(f->config, "router", *cmd, &queues, nullptr, nullptr, &schedules, &pools));
      if (!f->config.empty()) check(apply_log_level(*cmd, f->config));
      RouterOptions options = router_options(*f, f->data, std::move(queues));
      options.schedules = std::move(schedules);
      options.pools = std::move(pools);
      // Under systemd, readiness and the watchdog are a ping answered by the router's own loop,
      // over an in-process frontend of its own (plaintext; CURVE would need a client key in the
      // allow-list, so with CURVE the router is ready once bound and the watchdog only shows
      // that the process runs).
      const bool ping_probe = notifier.enabled() && f->curve.secret_file.empty();
      const std::string probe_endpoint = "inproc://zbatch-service-probe";
      if (ping_probe) options.frontend += "," + probe_endpoint;
      zmq::context_t context(1);
      auto router = Router::create(options, &context);
      check(router.status());
      stops.set_router(router->get());
      ServiceProbes probes{[] { return true; }, [] { return true; }};
      if (ping_probe) {
        auto client = std::make_shared<std::unique_ptr<Client>>();
        auto ping = [client, &context, probe_endpoint] {
          if (!*client) {
            ClientOptions co;
            co.router = probe_endpoint;
            co.timeout = std::chrono::milliseconds(2000);
            auto c = Client::connect(co, &context);
            if (!c) return false;
            *client = std::move(c.value());
          }
          return (*client)->ping().is_ok();
        };
        probes = {ping, ping};
      }
      notifier.start("router frontend=" + f->frontend, std::move(probes));
      const Status ran = (*router)->run();
      notifier.join();
      stops.clear();
      check(ran);
    });
  }
  // zbatch worker
  {
    auto* cmd = app.add_subcommand("worker", "Run tasks from the router's queues");
    auto f = std::make_shared<WorkerFlags>();
    add_worker_flags(cmd, *f);
    cmd->callback([cmd, f] {
      ServiceNotifier notifier;
      StopTargets stops;
      SignalWatcher signals([&](int n, int) { notifier.stopping(); stops.on_signal(n); },
                            [&] { reload(*cmd, f->config, notifier); });
      std::vector<ProcessHandlerConfig> handlers;
      SeedKindsConfig kinds;
      if (!f->config.empty()) check(apply_config_file(f->config, "worker", *cmd, nullptr, &handlers, &kinds));
      if (!f->config.empty()) check(apply_log_level(*cmd, f->config));
      WorkerOptions options = worker_options(*f);
      options.process_handlers = std::move(handlers);
      options.kinds = std::move(kinds);
      auto worker = Worker::create(options);
      check(worker.status());
      stops.add_worker(worker->get());
      // A worker serves once it runs: it connects (and reconnects) to the router by itself.
      notifier.start("worker router=" + f->router, {[] { return true; }, [] { return true; }});
      const Status ran = (*worker)->run();
      notifier.join();
      stops.clear();
      check(ran);
    });
  }
  // zbatch store
  {
    auto* cmd = app.add_subcommand("store", "Run the status store and HTTP API");
    auto sf = std::make_shared<StoreFlags>();
    add_store_flags(cmd, *sf);
    cmd->callback([cmd, sf] {
      if (!sf->config.empty()) check(apply_config_file(sf->config, "store", *cmd, nullptr));
      if (!sf->config.empty()) check(apply_log_level(*cmd, sf->config));
      StoreOptions o = sf->options;
      o.data_dir = sf->data + "/store";
      o.curve = peer_keys(sf->curve);
      o.insecure_plaintext = sf->curve.insecure_plaintext;
      ServiceNotifier notifier;
      StopTargets stops;
      SignalWatcher signals([&](int n, int) { notifier.stopping(); stops.on_signal(n); },
                            [&] { reload(*cmd, sf->config, notifier); });
      auto store = Store::create(o);
      check(store.status());
      stops.set_store(store->get());
      // Ready once /readyz answers 200: listening, and caught up with the router's events.
      notifier.start("store http=" + o.http, http_probes(o.http, !o.tls_cert.empty()));
      const Status ran = (*store)->run();
      notifier.join();
      stops.clear();
      check(ran);
    });
  }
}

}  // namespace zb::cli
