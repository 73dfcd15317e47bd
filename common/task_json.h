// The JSON view of a task and of a group: what the HTTP API answers (docs/openapi.yaml, schemas
// Task and GroupCounters) and what `zbatch status|wait|group --json` prints, from the records the
// router keeps. One view, so a script reads the same fields from either.
//
// Text from peers (results, errors, worker names) goes in as it is; write the JSON with
// json_text() (common/text.h), which replaces bytes that are not UTF-8.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "common/protocol.h"
#include "common/task.h"

namespace zb {

// The batch guide's status words: pending, running, retrying, completed, failed, revoked.
std::string seed_status(TaskState s);

// A result (or payload) text as the JSON it holds, the text itself when it is not JSON, null
// when it is empty.
nlohmann::json json_or_text(const std::string& text);

// task_id, id (the caller's ref, null when none), status (seed_status), state, queue, kind,
// attempt, group_id, worker, result, error (null when none), created_ms, started_ms,
// finished_ms, runtime_us (the handler's run time where it was measured, else 0); and payload
// when `with_payload`.
nlohmann::json task_json(const proto::TaskRecord& task, bool with_payload = false, uint64_t runtime_us = 0);

// group_id, total, completed, successful, failed, revoked, running, parallel, progress (percent
// completed, one decimal; 100 for an empty sealed group) and ready.
nlohmann::json group_json(const proto::GroupRecord& group);

}  // namespace zb
