// The seed's four kinds of work (internal to worker/): agent (Ollama), validate, test, mcp.
// Configuration and task formats: SeedKindsConfig in worker/worker.h, docs/KINDS.md.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "worker/worker.h"

namespace zb::worker {

// The agent kind: its [ollama] settings, and the validation and test profiles its tools use.
Handler make_agent_handler(const SeedKindsConfig& kinds);
Handler make_validate_handler(ValidationConfig config);
Handler make_test_handler(std::vector<TestProfile> profiles);
// `max_sessions` bounds the server processes kept per server (one per slot).
Handler make_mcp_handler(std::vector<McpServerConfig> servers, uint32_t max_sessions);

// The task payload as a JSON object, or a failed HandlerResult saying why not.
std::optional<nlohmann::json> payload_object(const TaskContext& ctx, HandlerResult& error);

}  // namespace zb::worker
