// Control bodies of the HTTP API (internal to store/): what POST /api/v1/purge,
// /api/v1/dead/retry, /api/v1/tasks/{id}/revoke|retry, /api/v1/groups/{id}/revoke and
// /api/v1/workers/{name}/shutdown|pool take, turned into the arguments of the router's control
// operation (common/protocol.h). Pure: the routes parse the body (store/http_json.h), call
// these, and send the result.
//
// A field outside the request's schema is a 400 naming it (with the nearest allowed name); a
// field of the wrong type, a task id that is not one, a limit or pool delta outside what
// proto::check_control allows is a 400 naming it. What only the router knows (whether a queue
// is declared, a task exists, a worker is online) is left to the router.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/protocol.h"
#include "common/status.h"

namespace zb::store {

// POST /api/v1/purge {"queue"?: string}.
Result<proto::PurgeArgs> purge_args(const nlohmann::json& body);
// POST /api/v1/dead/retry {"queue"?: string, "limit"?: 1..100000}.
Result<proto::RetryFailedArgs> dead_retry_args(const nlohmann::json& body);
// POST /api/v1/tasks/{task}/revoke {"terminate"?: bool} (op "revoke") and /retry {} (op
// "retry").
Result<proto::TaskArgs> task_control_args(std::string_view op, const std::string& task, const nlohmann::json& body);
// POST /api/v1/groups/{id}/revoke {"terminate": bool}.
Result<proto::GroupArgs> group_revoke_args(const std::string& group, const nlohmann::json& body);
// POST /api/v1/workers/{worker}/shutdown {} (action "shutdown") and /pool {"delta": N}
// (action "pool", delta required).
Result<proto::WorkerArgs> worker_control_args(std::string_view action, const std::string& worker,
                                              const nlohmann::json& body);

}  // namespace zb::store
