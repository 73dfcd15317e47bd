// zbatch config [FILE | --defaults | --keys]: checks a configuration file and prints the whole
// configuration it gives (every section, over the built-in defaults), or the defaults alone,
// or every key the file may hold.
#include <iostream>

#include <nlohmann/json.hpp>

#include "common/text.h"
#include "cli/commands.h"
#include "cli/config.h"
#include "common/control_json.h"

namespace zb::cli {
namespace {

using nlohmann::json;

const char* const kCommands[] = {"router", "worker", "store", "up"};

json queue_json(const QueueConfig& q) {
  return {{"name", q.name}, {"priority", q.priority}, {"handler", q.default_kind},
          {"max_retries", q.max_retries}, {"retry_backoff_ms", q.retry_backoff_ms},
          {"retry_backoff_max_ms", q.retry_backoff_max_ms}, {"retry_jitter", q.retry_jitter},
          {"retry_on", q.retry_on}, {"soft_time_limit_ms", q.soft_time_limit_ms},
          {"time_limit_ms", q.time_limit_ms}, {"rate_limit", q.rate_limit}, {"acks_late", q.acks_late},
          {"fair", q.fair}, {"pool", q.pool}};
}

json limits_json(const ResourceLimits& l) {
  return {{"cpu_time_s", l.cpu_time_s}, {"address_space_bytes", l.address_space_bytes},
          {"file_size_bytes", l.file_size_bytes}, {"processes", l.processes}, {"open_files", l.open_files}};
}

json handler_json(const ProcessHandlerConfig& h) {
  return {{"kind", h.kind}, {"type", h.mode == ProcessHandlerConfig::Mode::kExec ? "exec" : "pool"},
          {"argv", h.argv}, {"env", h.env}, {"cwd", h.cwd}, {"stdout_limit", h.stdout_limit},
          {"stderr_limit", h.stderr_limit}, {"term_grace_ms", h.term_grace_ms},
          {"max_tasks_per_child", h.max_tasks_per_child}, {"max_memory_bytes", h.max_memory_bytes},
          {"limits", limits_json(h.limits)}};
}

json kinds_json(const SeedKindsConfig& k) {
  json out;
  out["ollama"] = {{"host", k.ollama.host}, {"hosts", k.ollama.hosts}, {"model", k.ollama.model}, {"system", k.ollama.system},
                   {"connect_timeout_ms", k.ollama.connect_timeout_ms},
                   {"read_timeout_ms", k.ollama.read_timeout_ms}, {"max_steps", k.ollama.max_steps},
                   {"max_tokens", k.ollama.max_tokens}, {"max_time_ms", k.ollama.max_time_ms},
                   {"seed_dir", k.ollama.seed_dir}};
  out["validation"] = {{"workspace", k.validation.workspace}, {"timeout_ms", k.validation.timeout_ms},
                       {"limits", limits_json(k.validation.limits)}};
  out["test_profiles"] = json::array();
  for (const auto& p : k.test_profiles)
    out["test_profiles"].push_back({{"name", p.name}, {"argv", p.argv}, {"env", p.env}, {"cwd", p.cwd},
                                    {"junit", p.junit}, {"timeout_ms", p.timeout_ms}, {"log_tail", p.log_tail},
                                    {"limits", limits_json(p.limits)}});
  out["mcp_servers"] = json::array();
  for (const auto& m : k.mcp_servers)
    out["mcp_servers"].push_back({{"name", m.name}, {"argv", m.argv}, {"url", m.url}, {"env", m.env}, {"cwd", m.cwd},
                                  {"connect_timeout_ms", m.connect_timeout_ms}, {"call_timeout_ms", m.call_timeout_ms},
                                  {"limits", limits_json(m.limits)}});
  return out;
}

// The configuration `path` gives (every section), or the defaults when `path` is empty.
json effective(const std::string& path) {
  json out;
  std::vector<QueueConfig> queues = default_queue_configs();
  std::vector<ProcessHandlerConfig> handlers;
  SeedKindsConfig kinds;
  std::vector<proto::ScheduleSpec> schedules;
  std::vector<PoolConfig> pools;
  // Each command section is applied to, and checked against, the flags of its own command.
  for (const std::string command : kCommands) {
    CLI::App scratch;
    scratch.option_defaults()->always_capture_default();
    auto* sub = scratch.add_subcommand(command);
    auto keep = add_command_flags(command, sub);
    if (!path.empty()) {
      queues = default_queue_configs();
      handlers.clear();
      kinds = SeedKindsConfig{};
      schedules.clear();
      pools.clear();
      if (Status s = apply_config_file(path, command, *sub, &queues, &handlers, &kinds, &schedules, &pools); !s)
        fail(s.code() == Code::kBadRequest ? kExitUsage : kExitFailed, s.message());
    }
    out[command] = section_values(*sub);
  }
  out["queues"] = json::array();
  for (const auto& q : queues) out["queues"].push_back(queue_json(q));
  out["handlers"] = json::array();
  for (const auto& h : handlers) out["handlers"].push_back(handler_json(h));
  out.update(kinds_json(kinds));
  out["schedules"] = json::array();
  for (const auto& sc : schedules) out["schedules"].push_back(schedule_spec_json(sc));
  out["pools"] = json::array();
  for (const auto& p : pools)
    out["pools"].push_back({{"name", p.name}, {"model", p.model}, {"hosts", p.hosts}, {"parallel", p.parallel}});
  return out;
}

json keys() {
  json out;
  for (const std::string command : kCommands) {
    CLI::App scratch;
    auto* sub = scratch.add_subcommand(command);
    auto keep = add_command_flags(command, sub);
    out[command] = section_keys(*sub);
  }
  for (const auto& [table, names] : table_keys()) out[table] = names;
  return out;
}

}  // namespace

void add_config_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "config", "Check a TOML configuration file and print the whole configuration it gives");
  cmd->footer("\nThe output is every section (router, worker, store, up, queues, handlers, kinds) of the file over the\n"
              "built-in defaults; flags and ZBATCH_* environment variables are not applied.");
  auto path = std::make_shared<std::string>();
  auto defaults = std::make_shared<bool>(false);
  auto list_keys = std::make_shared<bool>(false);
  auto* file = cmd->add_option("file", *path, "The file (default: none, see --defaults)");
  cmd->add_flag("--defaults", *defaults, "Print the built-in defaults (the configuration without a file)")->excludes(file);
  cmd->add_flag("--keys", *list_keys, "Print every key each section of the file accepts")->excludes(file);
  auto json_out = std::make_shared<bool>(false);
  cmd->add_flag("--json", *json_out, "Accepted for symmetry: the output is always JSON");
  cmd->callback([path, defaults, list_keys, json_out] {
    if (*list_keys) {
      std::cout << json_text(keys(), 2) << std::endl;
      return;
    }
    if (path->empty() && !*defaults) fail(kExitUsage, "config needs a FILE, or --defaults, or --keys");
    std::cout << json_text(effective(*path), 2) << std::endl;
  });
}

}  // namespace zb::cli
