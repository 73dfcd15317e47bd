// Configuration of the long-running commands: flags, then ZBATCH_* environment variables
// (both handled by CLI11), then a TOML file (--config), then defaults. Parsed once into the
// typed options of each component; unknown keys and bad values are precise start-up errors.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common/status.h"
#include "router/router.h"
#include "store/store.h"
#include "worker/worker.h"

namespace zb::cli {

// Applies `[section]` of the TOML file at `path` to every option of `cmd` that neither a
// flag nor an environment variable set. Keys are the long flag names with '-' or '_'.
// `[[queue]]` tables declare or override queues (keys: QueueConfig in router/router.h, times
// in seconds); `[[handler]]` tables declare process handlers (ProcessHandlerConfig in
// worker/worker.h). Both are always validated; they are returned where the pointer is set.
// `[ollama]`, `[validation]`, `[[test_profile]]` and `[[mcp_server]]` configure the seed's
// kinds of work (SeedKindsConfig in worker/worker.h). `[[schedule]]` tables declare periodic
// tasks (proto::ScheduleSpec; docs/SCHEDULES.md). `[[pool]]` tables declare model pools
// (PoolConfig in router/router.h), checked against the queues when they are asked for too.
// zbatch.example.toml documents every key
// and loads as the built-in defaults.
Status apply_config_file(const std::string& path, const std::string& section, CLI::App& cmd,
                         std::vector<QueueConfig>* queues,
                         std::vector<ProcessHandlerConfig>* handlers = nullptr,
                         SeedKindsConfig* kinds = nullptr,
                         std::vector<proto::ScheduleSpec>* schedules = nullptr,
                         std::vector<PoolConfig>* pools = nullptr);
// The same for TOML text; `path` names it in messages. Never throws, whatever the text.
Status apply_config_text(std::string_view text, const std::string& path, const std::string& section, CLI::App& cmd,
                         std::vector<QueueConfig>* queues,
                         std::vector<ProcessHandlerConfig>* handlers = nullptr,
                         SeedKindsConfig* kinds = nullptr,
                         std::vector<proto::ScheduleSpec>* schedules = nullptr,
                         std::vector<PoolConfig>* pools = nullptr);

// The file's sections: router, worker, store, up (the commands' flags), then the tables.
const std::vector<std::string>& config_sections();
// The keys of each table section ("queue", "handler", "ollama", "validation", "test_profile",
// "mcp_server", "schedule"): exactly what the parser accepts.
const std::map<std::string, std::vector<std::string>>& table_keys();
// The keys `[section]` of a command accepts: its options' long names with '_' ("help" and
// "config" excepted).
std::vector<std::string> section_keys(const CLI::App& cmd);
// Every such option of `cmd` with its value: what was applied to it (apply_config_file), else
// its default. Numbers are JSON numbers, flags booleans.
nlohmann::json section_values(const CLI::App& cmd);

// Logs the endpoint a parsed `zbatch worker` connects to and where it came from (flag,
// environment, config file, default); warns when it is the default while ZBATCH_ROUTER (the
// clients' variable, not read by workers) is set.
void report_worker_endpoint(const CLI::App& worker);

// Our log level names and Celery's (any case) → spdlog's.
Result<std::string> log_level_name(std::string text);
// `[log] level` of the file at `path` as spdlog's name; nullopt when the file does not set it.
Result<std::optional<std::string>> config_log_level(const std::string& path);
// Sets the process's log level from `[log] level` of the file at `path` (info when the file
// has none), unless --log-level or ZBATCH_LOG_LEVEL set it: at start and on every reload
// (SIGHUP). `cmd` is the running sub-command. An unreadable or bad file changes nothing.
Status apply_log_level(const CLI::App& cmd, const std::string& path);

// "fsync" → true, "nosync" → false.
Result<bool> parse_durability(const std::string& text);

}  // namespace zb::cli
