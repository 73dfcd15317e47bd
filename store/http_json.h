// JSON helpers shared by the HTTP routes (internal to store/): replies, errors, bodies,
// query parameters and the JSON views of tasks and groups.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "common/status.h"
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
// The seed's status words: pending, running, retrying, completed, failed, revoked.
std::string seed_status(TaskState s);
nlohmann::json json_or_text(const std::string& text);
nlohmann::json task_json(const TaskStatus& t, bool with_payload);
TaskStatus from_record(const proto::TaskRecord& r);
nlohmann::json group_counts(const GroupStatus& g);
// A non-negative integer query parameter, `fallback` when absent, capped at `max`.
Result<size_t> query_size(const httplib::Request& req, const char* name, size_t fallback, size_t max);

}  // namespace zb::store
