// The JSON view of the router's control replies (common/protocol.h, ControlResult): what the
// HTTP API answers for inspection and control (docs/openapi.yaml) and what the command line's
// `--json` prints, so a script reads the same fields from either. router/router.h lists the
// fields of each operation's reply.
//
// Text from peers (worker names, errors) goes in as it is; write the JSON with json_text()
// (common/text.h), which replaces bytes that are not UTF-8.
#pragma once

#include <nlohmann/json.hpp>

#include "common/protocol.h"

namespace zb {

// The reply's object; null for an empty (monostate) reply.
nlohmann::json control_json(const proto::ControlResult& reply);

// A schedule (docs/SCHEDULES.md): its spec, and its row with state and recent firings.
nlohmann::json schedule_spec_json(const proto::ScheduleSpec& spec);
nlohmann::json schedule_json(const proto::ScheduleRow& row);
// The body of POST /api/v1/schedules: {"name", "cron"+"timezone" | "every_s"/"every_ms",
// "catch_up", "overlap", "task": {"queue", "kind", "payload" (any JSON), "priority",
// "max_retries", "soft_limit_ms", "hard_limit_ms", "ref"}}, checked whole
// (proto::check_schedule_spec); an unknown field is refused by name.
Result<proto::ScheduleSpec> schedule_spec_from_json(const nlohmann::json& body);

}  // namespace zb
