// The configuration file: TOML text → typed configuration (cli::apply_config_text), against
// options of the same names and types as cli/serve.cc's flags. The section applied is
// [router], [worker], [store] or [up] by the input's length modulo 4, so mutations reach each
// at a quarter of the cost of all four. Success must leave only configurations the
// components accept; failure must be a "config <file>: ..." message.
#include <cmath>

#include "cli/config.h"
#include "tests/fuzz/fuzz.h"

namespace {

using namespace zb;

struct Flags {
  std::string data, frontend, backend, events, durability, config, router, queues, hostname, autoscale, http;
  std::string auth_basic, auth_token;
  uint32_t heartbeat_ms = 1000, reclaim_grace_ms = 5000, concurrency = 0, prefetch = 0, autoscale_idle_ms = 10000;
  uint32_t workers = 1;
  int events_hwm = 100000;
  uint64_t result_ttl_s = 86400, event_retention = 1'000'000;
  size_t max_body_bytes = 32u << 20, max_batch_tasks = 100000;
  double shutdown_timeout_s = 30;
  bool no_auth = false;
};

void add_router(CLI::App* cmd, Flags& f) {
  cmd->add_option("--data", f.data);
  cmd->add_option("--frontend", f.frontend);
  cmd->add_option("--backend", f.backend);
  cmd->add_option("--events", f.events);
  cmd->add_option("--durability", f.durability);
  cmd->add_option("--heartbeat-ms", f.heartbeat_ms);
  cmd->add_option("--reclaim-grace-ms", f.reclaim_grace_ms);
  cmd->add_option("--events-hwm", f.events_hwm)->check(CLI::Range(1, 10000000));
  cmd->add_option("--result-ttl", f.result_ttl_s);
  cmd->add_option("--event-retention", f.event_retention)->check(CLI::Range(uint64_t{1000}, uint64_t{1} << 40));
  cmd->add_option("--config", f.config);
}

void add_auth(CLI::App* cmd, Flags& f) {
  cmd->add_option("--auth-basic", f.auth_basic);
  cmd->add_option("--auth-token", f.auth_token);
  cmd->add_flag("--no-auth", f.no_auth);
}

void add_section_flags(const std::string& section, CLI::App* cmd, Flags& f) {
  if (section == "router") {
    add_router(cmd, f);
  } else if (section == "worker") {
    cmd->add_option("--router", f.router);
    cmd->add_option("-Q,--queues", f.queues);
    cmd->add_option("-c,--concurrency", f.concurrency);
    cmd->add_option("--hostname", f.hostname);
    cmd->add_option("--prefetch-multiplier", f.prefetch);
    cmd->add_option("--heartbeat-ms", f.heartbeat_ms);
    cmd->add_option("--autoscale", f.autoscale);
    cmd->add_option("--autoscale-idle-ms", f.autoscale_idle_ms);
    cmd->add_option("--shutdown-timeout", f.shutdown_timeout_s);
    cmd->add_option("--config", f.config);
  } else if (section == "store") {
    cmd->add_option("--router", f.router);
    cmd->add_option("--events", f.events);
    cmd->add_option("--data", f.data);
    cmd->add_option("--http", f.http);
    cmd->add_option("--max-body-bytes", f.max_body_bytes);
    cmd->add_option("--max-batch-tasks", f.max_batch_tasks);
    add_auth(cmd, f);
    cmd->add_option("--config", f.config);
  } else {
    add_router(cmd, f);
    cmd->add_option("--http", f.http);
    add_auth(cmd, f);
    cmd->add_option("--workers", f.workers);
    cmd->add_option("-c,--concurrency", f.concurrency);
    cmd->add_option("--prefetch-multiplier", f.prefetch);
    cmd->add_option("--shutdown-timeout", f.shutdown_timeout_s);
  }
}

// A few of the seed's queues, so [[queue]] tables that name one start from it.
std::vector<QueueConfig> seed_queues() {
  std::vector<QueueConfig> out;
  for (const auto& q : kDefaultQueues) {
    QueueConfig c;
    c.name = std::string(q.name);
    c.priority = q.priority;
    out.push_back(c);
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string kSections[] = {"router", "worker", "store", "up"};
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::string& section = kSections[size % 4];
  CLI::App app;
  CLI::App* cmd = app.add_subcommand(section);
  Flags flags;
  add_section_flags(section, cmd, flags);
  std::vector<QueueConfig> queues = seed_queues();
  std::vector<ProcessHandlerConfig> handlers;
  SeedKindsConfig kinds;
  const Status s = cli::apply_config_text(text, "fuzz.toml", section, *cmd, &queues, &handlers, &kinds);
  if (!s) {
    FUZZ_CHECK(s.code() == Code::kBadRequest);
    FUZZ_CHECK(s.message().starts_with("config fuzz.toml: "));
    return 0;
  }
  for (const auto& q : queues) {
    FUZZ_CHECK(!q.name.empty());
    FUZZ_CHECK(!q.time_limit_ms || q.soft_time_limit_ms <= q.time_limit_ms);
    FUZZ_CHECK(q.retry_backoff_max_ms >= q.retry_backoff_ms);
    FUZZ_CHECK(q.rate_limit == 0 || (std::isfinite(q.rate_limit) && q.rate_limit >= 1.0 / 86400 && q.rate_limit <= 1e9));
  }
  for (const auto& h : handlers) {
    FUZZ_CHECK(!h.kind.empty());
    FUZZ_CHECK(!h.argv.empty());
    FUZZ_CHECK(h.stdout_limit > 0 && h.stderr_limit > 0 && h.max_tasks_per_child > 0);
  }
  for (const auto& p : kinds.test_profiles) FUZZ_CHECK(!p.name.empty() && !p.argv.empty() && p.timeout_ms > 0);
  for (const auto& m : kinds.mcp_servers) FUZZ_CHECK(!m.name.empty() && !m.argv.empty() && m.call_timeout_ms > 0);
  FUZZ_CHECK(kinds.ollama.connect_timeout_ms > 0 && kinds.ollama.read_timeout_ms > 0);
  FUZZ_CHECK(kinds.validation.timeout_ms > 0);
  return 0;
}
