// JSON helpers shared by the HTTP routes (internal to store/): replies, errors, bodies,
// query parameters and the JSON views of tasks and groups.
#pragma once

#include <string>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "common/status.h"
#include "store/status_db.h"

namespace zb::store {

int http_status(Code code);
void send_json(httplib::Response& res, int status, const nlohmann::json& body);
// {"error": {"code", "message"}} with the HTTP status of the code.
void send_error(httplib::Response& res, const Status& s);
// The body as JSON: 400 for invalid JSON or nesting deeper than 64.
Result<nlohmann::json> parse_body(const httplib::Request& req);
// The seed's status words: pending, running, retrying, completed, failed, revoked.
std::string seed_status(TaskState s);
nlohmann::json json_or_text(const std::string& text);
nlohmann::json task_json(const TaskStatus& t, bool with_payload);
TaskStatus from_record(const proto::TaskRecord& r);
nlohmann::json group_counts(const GroupStatus& g);
// A non-negative integer query parameter, `fallback` when absent, capped at `max`.
Result<size_t> query_size(const httplib::Request& req, const char* name, size_t fallback, size_t max);

}  // namespace zb::store
