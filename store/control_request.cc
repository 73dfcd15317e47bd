#include "store/control_request.h"

#include <array>
#include <span>

#include "store/http_json.h"

namespace zb::store {

using nlohmann::json;

Result<json> purge_args(const json& body) {
  static constexpr std::array<std::string_view, 1> kFields = {"queue"};
  if (Status s = known_fields(body, kFields, "", "a purge"); !s) return s;
  json args = json::object();
  if (auto it = body.find("queue"); it != body.end()) {
    if (!it->is_string()) return Status(Code::kBadRequest, "queue: must be a string");
    args["queue"] = *it;
  }
  return args;
}

Result<json> dead_retry_args(const json& body) {
  static constexpr std::array<std::string_view, 2> kFields = {"queue", "limit"};
  if (Status s = known_fields(body, kFields, "", "a retry of dead letters"); !s) return s;
  return body;
}

Result<json> task_control_args(std::string_view op, const std::string& task, const json& body) {
  static constexpr std::array<std::string_view, 1> kRevokeFields = {"terminate"};
  const auto fields = op == "revoke" ? std::span<const std::string_view>(kRevokeFields) : std::span<const std::string_view>();
  if (Status s = known_fields(body, fields, "", "a " + std::string(op)); !s) return s;
  json args = {{"task", task}};
  if (auto it = body.find("terminate"); it != body.end()) {
    if (!it->is_boolean()) return Status(Code::kBadRequest, "terminate: must be true or false");
    args["terminate"] = *it;
  }
  return args;
}

Result<json> worker_control_args(std::string_view action, const std::string& worker, const json& body) {
  static constexpr std::array<std::string_view, 1> kPoolFields = {"delta"};
  const bool pool = action == "pool";
  const auto fields = pool ? std::span<const std::string_view>(kPoolFields) : std::span<const std::string_view>();
  if (Status s = known_fields(body, fields, "", "a worker " + std::string(action)); !s) return s;
  json args{{"worker", worker}};
  if (pool) {
    auto it = body.find("delta");
    if (it == body.end()) return Status(Code::kBadRequest, "delta: required (the body is {\"delta\": N})");
    args["delta"] = *it;
  }
  return args;
}

}  // namespace zb::store
