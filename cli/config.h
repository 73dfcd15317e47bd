// Configuration of the long-running commands: flags, then ZBATCH_* environment variables
// (both handled by CLI11), then a TOML file (--config), then defaults. Parsed once into the
// typed options of each component; unknown keys and bad values are precise start-up errors.
#pragma once

#include <string>
#include <string_view>

#include <CLI/CLI.hpp>

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
// kinds of work (SeedKindsConfig in worker/worker.h). zbatch.example.toml documents every key.
Status apply_config_file(const std::string& path, const std::string& section, CLI::App& cmd,
                         std::vector<QueueConfig>* queues,
                         std::vector<ProcessHandlerConfig>* handlers = nullptr,
                         SeedKindsConfig* kinds = nullptr);
// The same for TOML text; `path` names it in messages. Never throws, whatever the text.
Status apply_config_text(std::string_view text, const std::string& path, const std::string& section, CLI::App& cmd,
                         std::vector<QueueConfig>* queues,
                         std::vector<ProcessHandlerConfig>* handlers = nullptr,
                         SeedKindsConfig* kinds = nullptr);

// "fsync" → true, "nosync" → false.
Result<bool> parse_durability(const std::string& text);

}  // namespace zb::cli
