// What the long-running commands share (internal to the command line): the router's flags
// (`router` and `up`), the HTTP store's (`store` and `up`), the warm shutdown's bound (`worker`
// and `up`), and how a start-up error ends the command. serve.cc defines them; up.cc uses them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli/curve_flags.h"
#include "cli/service_notify.h"
#include "common/status.h"
#include "router/router.h"
#include "store/store.h"

namespace zb::cli {

// A failed start-up step ends the command: kExitUsage for a bad request, else kExitFailed.
void check(const Status& s);

struct RouterFlags {
  std::string data = "zbatch-data";
  std::string frontend = "tcp://127.0.0.1:5555", backend = "tcp://127.0.0.1:5556",
              events = "tcp://127.0.0.1:5557";
  std::string durability = "fsync";
  uint32_t heartbeat_ms = 1000, reclaim_grace_ms = 5000;
  int events_hwm = 100000;
  uint64_t result_ttl_s = 86400;
  uint64_t event_retention = 1'000'000;
  uint64_t min_free_mb = 64;
  RouterCurveFlags curve;
  std::string config;
};

void add_router_flags(CLI::App* cmd, RouterFlags& f);
// The router's options from its flags, with its data folder and queues.
RouterOptions router_options(const RouterFlags& f, const std::string& data_dir, std::vector<QueueConfig> queues);

// SIGHUP (systemd's ExecReload): RELOADING=1, the log level from `[log] level` of the
// --config file (cli/config.h apply_log_level), READY=1. Everything else needs a restart.
void reload(const CLI::App& cmd, const std::string& config_path, ServiceNotifier& notifier);
// Readiness (GET /readyz: 200 once caught up) and liveness (GET /healthz) of the HTTP store
// at `http`; with `tls`, that the port accepts connections.
ServiceProbes http_probes(const std::string& http, bool tls);

// --shutdown-timeout in seconds (fractions allowed) as the worker's milliseconds.
uint32_t shutdown_timeout_ms(double seconds);
// Warm shutdown's bound: running tasks go on this long after SIGTERM, then are requeued.
void add_shutdown_timeout_flag(CLI::App* cmd, double& seconds);

// Dashboard and API authentication; the values are never logged. ROLE: read, submit or admin.
void add_auth_flags(CLI::App* cmd, StoreOptions& o);
// HTTPS, and what the HTTP server holds for its clients (docs/SECURITY.md).
void add_http_flags(CLI::App* cmd, StoreOptions& o);

// The options of `zbatch up` added to `cmd`, bound to storage the handle keeps (up.cc).
std::shared_ptr<void> add_up_flags(CLI::App* cmd);

}  // namespace zb::cli
