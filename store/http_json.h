// JSON helpers shared by the HTTP routes (internal to store/): replies, errors, bodies,
// query parameters. The JSON views of tasks and groups are common/task_json.h.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "common/status.h"
#include "common/task_json.h"
#include "store/status_db.h"

namespace zb::store {

int http_status(Code code);
void send_json(httplib::Response& res, int status, const nlohmann::json& body);
// {"error": {"code", "message"}} with the HTTP status of the code.
void send_error(httplib::Response& res, const Status& s);
// A request body's text as a JSON object: 400 for invalid JSON, a value that is not an
// object, or nesting deeper than 64 (refused before the parser sees it).
Result<nlohmann::json> parse_json_body(std::string_view text);
// A body that may be left out (control requests): {} when empty or only blanks, else as above.
Result<nlohmann::json> parse_optional_json_body(std::string_view text);
// The same for a request's body.
Result<nlohmann::json> parse_body(const httplib::Request& req);
Result<nlohmann::json> parse_optional_body(const httplib::Request& req);
// "where.key", or "key" at the top level (where = "").
std::string field_path(const std::string& where, std::string_view key);
// 400 for the first member of `object` not in `allowed`, named by its path, with the nearest
// allowed name when one is close: `tasks[0].queu: unknown field, did you mean "queue"? (a task
// takes queue, kind, ...)`. `what` names the object in that message ("a task").
Status known_fields(const nlohmann::json& object, std::span<const std::string_view> allowed, const std::string& where,
                    std::string_view what);
// The task view (common/task_json.h) of a task as the store keeps it.
nlohmann::json task_status_json(const TaskStatus& t, bool with_payload);
// The router's record of a task as the store keeps it (runtime_us 0: the store measures it).
TaskStatus from_record(const proto::TaskRecord& r);
// A non-negative integer query parameter, `fallback` when absent, capped at `max`.
Result<size_t> query_size(const httplib::Request& req, const char* name, size_t fallback, size_t max);

}  // namespace zb::store
