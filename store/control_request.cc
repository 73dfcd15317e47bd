#include "store/control_request.h"

#include <array>
#include <span>

#include "store/http_json.h"

namespace zb::store {

using nlohmann::json;

Result<proto::PurgeArgs> purge_args(const json& body) {
  static constexpr std::array<std::string_view, 1> kFields = {"queue"};
  if (Status s = known_fields(body, kFields, "", "a purge"); !s) return s;
  proto::PurgeArgs args;
  if (auto it = body.find("queue"); it != body.end()) {
    if (!it->is_string()) return Status(Code::kBadRequest, "queue: must be a string");
    args.queue = it->get<std::string>();
  }
  return args;
}

Result<proto::RetryFailedArgs> dead_retry_args(const json& body) {
  static constexpr std::array<std::string_view, 2> kFields = {"queue", "limit"};
  if (Status s = known_fields(body, kFields, "", "a retry of dead letters"); !s) return s;
  proto::RetryFailedArgs args;
  if (auto it = body.find("queue"); it != body.end()) {
    if (!it->is_string()) return Status(Code::kBadRequest, "retry.failed: queue must be a string");
    args.queue = it->get<std::string>();
  }
  if (auto it = body.find("limit"); it != body.end()) {
    if (!it->is_number_unsigned() || it->get<uint64_t>() == 0 || it->get<uint64_t>() > proto::kMaxControlLimit)
      return Status(Code::kBadRequest, "retry.failed: limit must be 1.." + std::to_string(proto::kMaxControlLimit));
    args.limit = static_cast<uint32_t>(it->get<uint64_t>());
  }
  return args;
}

Result<proto::TaskArgs> task_control_args(std::string_view op, const std::string& task, const json& body) {
  static constexpr std::array<std::string_view, 1> kRevokeFields = {"terminate"};
  const auto fields = op == "revoke" ? std::span<const std::string_view>(kRevokeFields) : std::span<const std::string_view>();
  if (Status s = known_fields(body, fields, "", "a " + std::string(op)); !s) return s;
  proto::TaskArgs args;
  if (auto it = body.find("terminate"); it != body.end()) {
    if (!it->is_boolean()) return Status(Code::kBadRequest, "terminate: must be true or false");
    args.terminate = it->get<bool>();
  }
  auto id = Id::parse(task);
  if (!id) return Status(Code::kBadRequest, std::string(op) + ": '" + task + "' is not a task id");
  args.task = *id;
  return args;
}

Result<proto::GroupArgs> group_revoke_args(const std::string& group, const json& body) {
  static constexpr std::array<std::string_view, 1> kFields = {"terminate"};
  if (Status s = known_fields(body, kFields, "", "a group revoke"); !s) return s;
  proto::GroupArgs args;
  if (auto it = body.find("terminate"); it != body.end()) {
    if (!it->is_boolean()) return Status(Code::kBadRequest, "terminate: must be true or false");
    args.terminate = it->get<bool>();
  }
  auto id = Id::parse(group);
  if (!id) return Status(Code::kBadRequest, "revoke.group: '" + group.substr(0, 64) + "' is not a group id");
  args.group = *id;
  return args;
}

Result<proto::WorkerArgs> worker_control_args(std::string_view action, const std::string& worker, const json& body) {
  static constexpr std::array<std::string_view, 1> kPoolFields = {"delta"};
  const bool pool = action == "pool";
  const auto fields = pool ? std::span<const std::string_view>(kPoolFields) : std::span<const std::string_view>();
  if (Status s = known_fields(body, fields, "", "a worker " + std::string(action)); !s) return s;
  proto::WorkerArgs args{worker, 0};
  if (worker.empty()) return Status(Code::kBadRequest, "worker." + std::string(action) + ": worker must be a worker name");
  if (pool) {
    auto it = body.find("delta");
    if (it == body.end()) return Status(Code::kBadRequest, "delta: required (the body is {\"delta\": N})");
    const bool in_range = it->is_number_integer() && !(it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(proto::kMaxPoolDelta)) &&
                          it->get<int64_t>() != 0 && it->get<int64_t>() >= -proto::kMaxPoolDelta &&
                          it->get<int64_t>() <= proto::kMaxPoolDelta;
    if (!in_range)
      return Status(Code::kBadRequest, "worker.pool: delta must be a non-zero integer, -" +
                                           std::to_string(proto::kMaxPoolDelta) + ".." + std::to_string(proto::kMaxPoolDelta));
    args.delta = static_cast<int32_t>(it->get<int64_t>());
  }
  return args;
}

}  // namespace zb::store
