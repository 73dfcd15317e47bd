// Control bodies of the HTTP API (internal to store/): what POST /api/v1/purge,
// /api/v1/dead/retry, /api/v1/tasks/{id}/revoke|retry and /api/v1/workers/{name}/shutdown|pool
// take, turned into the arguments of the router's control operation. Pure: the routes parse the
// body (store/http_json.h), call these, and forward the result.
//
// A field outside the request's schema is a 400 naming it (with the nearest allowed name); a
// field of the wrong type is a 400 naming it. Values the router owns (a queue's existence, a
// retry limit's range, a pool delta's range) are left to the router, which checks them.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace zb::store {

// POST /api/v1/purge {"queue"?: string}: {"queue"?}.
Result<nlohmann::json> purge_args(const nlohmann::json& body);
// POST /api/v1/dead/retry {"queue"?, "limit"?}: the body itself.
Result<nlohmann::json> dead_retry_args(const nlohmann::json& body);
// POST /api/v1/tasks/{task}/revoke {"terminate"?: bool} (op "revoke") and /retry {} (op
// "retry"): {"task", "terminate"?}.
Result<nlohmann::json> task_control_args(std::string_view op, const std::string& task, const nlohmann::json& body);
// POST /api/v1/workers/{worker}/shutdown {} (action "shutdown") and /pool {"delta": N}
// (action "pool", delta required): {"worker", "delta"?}.
Result<nlohmann::json> worker_control_args(std::string_view action, const std::string& worker,
                                           const nlohmann::json& body);

}  // namespace zb::store
