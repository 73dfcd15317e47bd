// Submission bodies of the HTTP API (internal to store/): the strict schemas of
// POST /api/v1/tasks (one task, or several as a group) and of the seed's batch endpoints
// (POST /batch[/celery]/<endpoint>), turned into the TaskSpecs of one Submit.
//
// - A field outside the schema is refused, named with its path and, inside `tasks`, the
//   task's index: `tasks[3].queu: unknown field, did you mean "queue"? ...`.
// - The group form's top-level scheduling fields (queue, kind, priority, max_retries,
//   countdown | eta, time_limit, soft_time_limit) apply to each of its tasks; a task's own
//   field overrides them (its countdown or eta replaces the group's time).
// - `eta` is unix seconds or an RFC 3339 / ISO 8601 date-time with a zone; `countdown` and
//   `eta` together are refused.
// - A task whose kind (its own, else its queue's default kind as the router declares it) is
//   one of the four seed kinds (agent, validate, test, mcp) is checked against what its handler
//   needs; a test profile or an MCP server must be announced by an online worker.
// - A seed task object is handed to its handler whole, so there the allowed fields are the
//   scheduling fields plus those of the kind; a kind other than the four takes any field.
// - `idempotency_key` is allowed at the top level; the caller reads it (with the header).
// - `traceparent` (a W3C trace context) is allowed on a task and at the group form's top level;
//   `unique_key` and `on_duplicate` ("refuse" | "existing") on a task.
// - `webhook` ({"url": "http(s)://..."}) is allowed at the top level, for the task or the group.
// - `budget` ({"tokens": N, "run_seconds": S}) at the top level of a group or batch.
// - Dependencies (docs/WORKFLOWS.md): `depends_on` (task ids, or ids of tasks of the same
//   request) and `when` on a task; `depends_on_group` on a single task; `chain: true` and
//   `callbacks` (task objects, with `when`) at the group form's top level.
// Any refusal is a 400 (413 for too many tasks) for the whole batch: nothing is sent. A router
// that cannot be asked about queues or workers is kUnavailable (nothing was sent either).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/protocol.h"
#include "common/status.h"
#include "store/cluster_view.h"

namespace zb::store {

struct Submission {
  std::vector<proto::TaskSpec> tasks;
  bool group = false;           // {"tasks": [...]}: the tasks form one group
  uint32_t parallel = 0;        // the group's concurrency cap; 0 = none
  std::string webhook_url;      // {"webhook": {"url"}} at the top level (store/webhooks.h); empty = none
  std::vector<proto::TaskSpec> callbacks;  // the group form's "callbacks" (a chord)
  uint64_t budget_tokens = 0, budget_run_ms = 0;  // "budget" (docs/kinds/agent.md); 0 = none
};

// A `traceparent` header (W3C Trace Context) is the trace of every task of the submission that
// names none of its own; a malformed one is a 400.
Status apply_traceparent(std::string_view header, Submission& submission);

// POST /api/v1/tasks.
Result<Submission> parse_api_submission(const nlohmann::json& body, ClusterView& cluster, size_t max_tasks);
// POST /batch[/celery]/<endpoint>, whose queue is `queue`.
Result<Submission> parse_seed_batch(const nlohmann::json& body, const std::string& queue, ClusterView& cluster,
                                    size_t max_tasks);

// An RFC 3339 / ISO 8601 date-time with a zone ("2026-12-01T18:00:00Z",
// "2026-12-01T20:00:00.250+02:00", "2026-12-01 18:00Z") as unix milliseconds.
Result<uint64_t> parse_datetime_ms(std::string_view text);

}  // namespace zb::store
