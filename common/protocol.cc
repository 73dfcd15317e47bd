#include "common/protocol.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <exception>
#include <new>

#include "common/cron.h"

namespace zb::proto {
namespace {

template <typename T>
void append(Frames& frames, const T& message) {
  frames.header = {'Z', 'B', static_cast<char>(kVersion), static_cast<char>(T::kCommand)};
  thread_local msgpack::sbuffer buffer;  // kept between messages: no allocation per message
  buffer.clear();
  msgpack::pack(buffer, message);
  frames.body.assign(buffer.data(), buffer.size());
  if (buffer.size() > (1u << 20)) ::free(buffer.release());  // a big one is not kept
}

Status claims_too_many(const char* name) {
  return Status(Code::kBadRequest, std::string(name) + ": truncated body (an array or map claims more elements than it holds)");
}

// Decodes `body` into T. Every msgpack failure becomes a Status naming the command.
template <typename T>
Result<Message> decode_as(std::string_view body) {
  const char* name = command_name(T::kCommand).data();
  if (body.size() > kMaxBodyBytes)
    return Status(Code::kTooLarge, std::string(name) + ": body of " + std::to_string(body.size()) +
                                       " bytes exceeds " + std::to_string(kMaxBodyBytes));
  // Limits: array, map, str, bin, ext, depth. Depth 8 covers our nesting (message → tasks →
  // task → field); a deeper body is hostile. Every element takes at least one byte, so no
  // array or map may claim more elements than the body has bytes: msgpack allocates room for
  // the claimed count up front, and five bytes must not make it allocate 24 MiB.
  const size_t most = std::min(kMaxItems, body.size());
  const msgpack::unpack_limit limits(most, std::min<size_t>(64, most), kMaxBodyBytes, kMaxBodyBytes, 0, 8);
  // One zone per thread, cleared after each body: a message costs no 8 KiB zone of its own;
  // what a big body made it grow is freed again (zone::clear keeps only its first chunk).
  thread_local msgpack::zone zone;
  struct Clear {
    msgpack::zone& z;
    ~Clear() { z.clear(); }
  } clear{zone};
  try {
    size_t offset = 0;
    msgpack::object root = msgpack::unpack(zone, body.data(), body.size(), offset, nullptr, nullptr, limits);
    if (offset != body.size())
      return Status(Code::kBadRequest, std::string(name) + ": " +
                                           std::to_string(body.size() - offset) +
                                           " trailing bytes after the body");
    if (root.type != msgpack::type::ARRAY)
      return Status(Code::kBadRequest, std::string(name) + ": body is not a msgpack array");
    T message;
    root.convert(message);
    if constexpr (std::is_same_v<T, Control>) {
      if (Status s = check_control(message); !s) return s;
    } else if constexpr (std::is_same_v<T, ControlReply>) {
      if (Status s = check_control_reply(message); !s) return s;
    }
    return Message(std::move(message));
  } catch (const msgpack::insufficient_bytes&) {
    return Status(Code::kBadRequest, std::string(name) + ": truncated body");
  } catch (const msgpack::array_size_overflow&) {
    if (most < kMaxItems) return claims_too_many(name);
    return Status(Code::kTooLarge, std::string(name) + ": an array has more than " + std::to_string(kMaxItems) + " elements");
  } catch (const msgpack::map_size_overflow&) {
    if (most < 64) return claims_too_many(name);
    return Status(Code::kTooLarge, std::string(name) + ": a map has more than 64 entries");
  } catch (const msgpack::depth_size_overflow&) {
    return Status(Code::kBadRequest, std::string(name) + ": body nested too deeply");
  } catch (const msgpack::size_overflow& e) {
    return Status(Code::kTooLarge, std::string(name) + ": msgpack limit exceeded (" + e.what() + ")");
  } catch (const msgpack::type_error&) {
    return Status(Code::kBadRequest, std::string(name) + ": a field has the wrong type");
  } catch (const std::bad_alloc&) {
    return Status(Code::kTooLarge, std::string(name) + ": body too large to decode");
  } catch (const std::exception& e) {
    return Status(Code::kBadRequest, std::string(name) + ": malformed body (" + e.what() + ")");
  }
}

constexpr std::string_view kControlOpNames[kControlOpCount] = {
    "ping",           "inspect.active", "inspect.reserved", "inspect.scheduled", "inspect.stats",
    "inspect.registered", "inspect.queues", "inspect.failed", "purge",          "revoke",
    "retry",          "retry.failed",   "worker.shutdown",  "worker.pool",    "revoke.group",
    "schedule.list",  "schedule.create", "schedule.pause", "schedule.resume", "schedule.delete", "schedule.run"};

Status bad_args(ControlOp op, const std::string& what) {
  return Status(Code::kBadRequest, std::string(control_op_name(op)) + ": " + what);
}

}  // namespace

std::string_view control_op_name(ControlOp op) {
  const auto i = static_cast<size_t>(op);
  return i < std::size(kControlOpNames) ? kControlOpNames[i] : "unknown";
}

std::optional<ControlOp> parse_control_op(std::string_view name) {
  for (size_t i = 0; i < std::size(kControlOpNames); ++i)
    if (kControlOpNames[i] == name) return static_cast<ControlOp>(i);
  return std::nullopt;
}

bool control_op_reads(ControlOp op) { return op <= ControlOp::kInspectFailed || op == ControlOp::kScheduleList; }

ControlArgs default_control_args(ControlOp op) {
  switch (op) {
    case ControlOp::kInspectFailed: return InspectFailedArgs{};
    case ControlOp::kRetryFailed: return RetryFailedArgs{};
    case ControlOp::kPurge: return PurgeArgs{};
    case ControlOp::kRevoke:
    case ControlOp::kRetry: return TaskArgs{};
    case ControlOp::kWorkerShutdown:
    case ControlOp::kWorkerPool: return WorkerArgs{};
    case ControlOp::kRevokeGroup: return GroupArgs{};
    case ControlOp::kScheduleCreate: return ScheduleSpec{};
    case ControlOp::kScheduleList:
    case ControlOp::kSchedulePause:
    case ControlOp::kScheduleResume:
    case ControlOp::kScheduleDelete:
    case ControlOp::kScheduleRun: return ScheduleArgs{};
    default: return std::monostate{};
  }
}

ControlResult default_control_result(ControlOp op) {
  switch (op) {
    case ControlOp::kPing: return PingReply{};
    case ControlOp::kInspectActive: return InspectActiveReply{};
    case ControlOp::kInspectReserved:
    case ControlOp::kInspectScheduled: return TaskListReply{};
    case ControlOp::kInspectStats: return InspectStatsReply{};
    case ControlOp::kInspectRegistered: return InspectRegisteredReply{};
    case ControlOp::kInspectQueues: return InspectQueuesReply{};
    case ControlOp::kInspectFailed: return InspectFailedReply{};
    case ControlOp::kPurge: return PurgeReply{};
    case ControlOp::kRevoke: return RevokeReply{};
    case ControlOp::kRetry: return RetryReply{};
    case ControlOp::kRetryFailed: return RetryFailedReply{};
    case ControlOp::kWorkerShutdown:
    case ControlOp::kWorkerPool: return WorkerCommandReply{};
    case ControlOp::kRevokeGroup: return RevokeGroupReply{};
    case ControlOp::kScheduleList: return ScheduleListReply{};
    case ControlOp::kScheduleCreate:
    case ControlOp::kSchedulePause:
    case ControlOp::kScheduleResume:
    case ControlOp::kScheduleDelete:
    case ControlOp::kScheduleRun: return ScheduleReply{};
  }
  return std::monostate{};
}

Control Control::make(ControlOp op, ControlArgs args) {
  Control c;
  c.op = std::string(control_op_name(op));
  c.args = std::move(args);
  return c;
}

Status check_control(const Control& control) {
  const auto op = parse_control_op(control.op);
  if (!op)
    return Status(Code::kBadRequest, "unknown control operation '" + control.op.substr(0, 64) + "'");
  if (control.args.index() != default_control_args(*op).index())
    return bad_args(*op, "its arguments are missing or of another operation");
  auto limit_ok = [](uint32_t limit) { return limit >= 1 && limit <= kMaxControlLimit; };
  const std::string limit_range = "limit must be 1.." + std::to_string(kMaxControlLimit);
  if (auto* a = std::get_if<InspectFailedArgs>(&control.args); a && !limit_ok(a->limit)) return bad_args(*op, limit_range);
  if (auto* a = std::get_if<RetryFailedArgs>(&control.args); a && !limit_ok(a->limit)) return bad_args(*op, limit_range);
  if (auto* a = std::get_if<TaskArgs>(&control.args); a && *op == ControlOp::kRetry && a->terminate)
    return bad_args(*op, "terminate is for revoke");
  if (auto* a = std::get_if<GroupArgs>(&control.args); a && a->group.is_nil())
    return bad_args(*op, "group must be a group id");
  if (auto* a = std::get_if<WorkerArgs>(&control.args)) {
    if (a->worker.empty()) return bad_args(*op, "worker must be a worker name");
    if (*op == ControlOp::kWorkerShutdown && a->delta != 0) return bad_args(*op, "takes no delta");
    if (*op == ControlOp::kWorkerPool && (a->delta == 0 || a->delta < -kMaxPoolDelta || a->delta > kMaxPoolDelta))
      return bad_args(*op, "delta must be a non-zero integer, -" + std::to_string(kMaxPoolDelta) + ".." +
                               std::to_string(kMaxPoolDelta));
  }
  if (auto* a = std::get_if<ScheduleArgs>(&control.args)) {
    if (*op != ControlOp::kScheduleList || !a->name.empty())
      if (Status s = check_schedule_name(a->name); !s) return bad_args(*op, s.message());
    if ((a->firings || a->before_ms) && (*op != ControlOp::kScheduleList || a->name.empty()))
      return bad_args(*op, "firings and before are for the list of one schedule");
    if (a->firings > kMaxFiringsListed)
      return bad_args(*op, "firings must be 1.." + std::to_string(kMaxFiringsListed));
  }
  if (auto* a = std::get_if<ScheduleSpec>(&control.args))
    if (Status s = check_schedule_spec(*a); !s) return bad_args(*op, s.message());
  return Status::ok();
}

Status check_schedule_name(const std::string& name) {
  if (name.empty() || name.size() > kMaxScheduleName)
    return Status(Code::kBadRequest, "a schedule name is 1.." + std::to_string(kMaxScheduleName) + " bytes");
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' || c == ':'))
      return Status(Code::kBadRequest, "a schedule name holds only letters, digits and _ - . :");
  return Status::ok();
}

Status check_schedule_spec(const ScheduleSpec& spec) {
  if (Status s = check_schedule_name(spec.name); !s) return s;
  const std::string who = "schedule '" + spec.name + "': ";
  if (spec.cron.empty() == (spec.every_ms == 0))
    return Status(Code::kBadRequest, who + "give either cron or every (an interval), not both");
  if (!spec.cron.empty()) {
    if (auto e = cron::parse(spec.cron); !e) return Status(Code::kBadRequest, who + e.status().message());
    if (spec.timezone.empty() || spec.timezone.size() > 128)
      return Status(Code::kBadRequest, who + "timezone must be a zone name such as UTC or Europe/Berlin");
  } else if (spec.every_ms < kMinScheduleIntervalMs || spec.every_ms > kMaxScheduleIntervalMs) {
    return Status(Code::kBadRequest, who + "every must be 1 s .. 366 days");
  }
  if (spec.catch_up != "one" && spec.catch_up != "all" && spec.catch_up != "none")
    return Status(Code::kBadRequest, who + "catch_up must be one, all or none");
  if (spec.overlap != "allow" && spec.overlap != "skip")
    return Status(Code::kBadRequest, who + "overlap must be allow or skip");
  if (spec.task.payload.size() > kMaxSchedulePayload)
    return Status(Code::kBadRequest, who + "payload is at most " + std::to_string(kMaxSchedulePayload) + " bytes");
  if (spec.task.priority < -1 || spec.task.priority > 255)
    return Status(Code::kBadRequest, who + "priority must be 0..255");
  if (spec.task.max_retries < -1) return Status(Code::kBadRequest, who + "max_retries must be >= 0");
  if (spec.task.unique_key.size() > kMaxUniqueKeyBytes)
    return Status(Code::kBadRequest, who + "unique_key is at most " + std::to_string(kMaxUniqueKeyBytes) + " bytes");
  if (spec.task.hard_limit_ms && spec.task.soft_limit_ms > spec.task.hard_limit_ms)
    return Status(Code::kBadRequest, who + "soft time limit must not exceed the hard time limit");
  if (spec.task.eta_ms || spec.task.countdown_ms)
    return Status(Code::kBadRequest, who + "a scheduled task takes no eta or countdown");
  return Status::ok();
}

Status check_control_reply(const ControlReply& reply) {
  const auto op = parse_control_op(reply.op);
  if (!op) return Status(Code::kBadRequest, "CONTROL_REPLY: unknown control operation '" + reply.op.substr(0, 64) + "'");
  if (reply.reply.index() != default_control_result(*op).index())
    return Status(Code::kBadRequest, "CONTROL_REPLY: " + reply.op + ": the reply of another operation");
  return Status::ok();
}

bool valid_traceparent(std::string_view h) {
  auto hex = [&](size_t from, size_t n, bool nonzero) {
    bool any = false;
    for (size_t i = from; i < from + n; ++i) {
      const char c = h[i];
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
      any = any || c != '0';
    }
    return any || !nonzero;
  };
  if (h.size() < 55 || h.size() > 512 || h[2] != '-' || h[35] != '-' || h[52] != '-') return false;
  if (!hex(0, 2, false) || h.substr(0, 2) == "ff") return false;
  if (h.substr(0, 2) == "00" ? h.size() != 55 : h.size() > 55 && h[55] != '-') return false;
  return hex(3, 32, true) && hex(36, 16, true) && hex(53, 2, false);
}

std::string_view trigger_name(Trigger trigger) {
  switch (trigger) {
    case Trigger::kSuccess: return "success";
    case Trigger::kFailure: return "failure";
    case Trigger::kAlways: return "always";
  }
  return "success";
}

std::optional<Trigger> parse_trigger(std::string_view name) {
  for (auto t : {Trigger::kSuccess, Trigger::kFailure, Trigger::kAlways})
    if (trigger_name(t) == name) return t;
  return std::nullopt;
}

std::string pack_dependencies(const Dependencies& deps) {
  msgpack::sbuffer buf;
  msgpack::pack(buf, deps);
  return std::string(buf.data(), buf.size());
}

std::optional<Dependencies> unpack_dependencies(std::string_view bytes) {
  if (bytes.empty()) return Dependencies{};
  try {
    auto handle = msgpack::unpack(bytes.data(), bytes.size());
    Dependencies d;
    handle.get().convert(d);
    if (d.when > static_cast<uint8_t>(Trigger::kAlways) || d.tasks.size() > kMaxDependencies) return std::nullopt;
    return d;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::string_view command_name(Command command) {
  switch (command) {
    case Command::kSubmit: return "SUBMIT";
    case Command::kGetTask: return "GET_TASK";
    case Command::kGetGroup: return "GET_GROUP";
    case Command::kWaitTasks: return "WAIT_TASKS";
    case Command::kControl: return "CONTROL";
    case Command::kReplay: return "REPLAY";
    case Command::kConfirm: return "CONFIRM";
    case Command::kSubmitAck: return "SUBMIT_ACK";
    case Command::kTaskInfo: return "TASK_INFO";
    case Command::kGroupInfo: return "GROUP_INFO";
    case Command::kControlReply: return "CONTROL_REPLY";
    case Command::kEventPage: return "EVENT_PAGE";
    case Command::kError: return "ERROR";
    case Command::kReady: return "READY";
    case Command::kWelcome: return "WELCOME";
    case Command::kTasks: return "TASKS";
    case Command::kResults: return "RESULTS";
    case Command::kResultsAck: return "RESULTS_ACK";
    case Command::kHeartbeat: return "HEARTBEAT";
    case Command::kDisconnect: return "DISCONNECT";
    case Command::kBye: return "BYE";
    case Command::kRevoke: return "REVOKE";
    case Command::kWorkerCommand: return "WORKER_COMMAND";
    case Command::kStarted: return "STARTED";
    case Command::kRecall: return "RECALL";
    case Command::kOutput: return "OUTPUT";
    case Command::kEventBatch: return "EVENT_BATCH";
    case Command::kHugz: return "HUGZ";
  }
  return "UNKNOWN";
}

std::string_view output_type_name(OutputType type) {
  switch (type) {
    case OutputType::kText: return "text";
    case OutputType::kStep: return "step";
    case OutputType::kLog: return "log";
  }
  return "unknown";
}

std::string_view event_type_name(EventType type) {
  switch (type) {
    case EventType::kTaskReceived: return "task-received";
    case EventType::kTaskScheduled: return "task-scheduled";
    case EventType::kTaskQueued: return "task-queued";
    case EventType::kTaskStarted: return "task-started";
    case EventType::kTaskSucceeded: return "task-succeeded";
    case EventType::kTaskFailed: return "task-failed";
    case EventType::kTaskRetried: return "task-retried";
    case EventType::kTaskRevoked: return "task-revoked";
    case EventType::kGroupUpdated: return "group-updated";
    case EventType::kWorkerOnline: return "worker-online";
    case EventType::kWorkerOffline: return "worker-offline";
    case EventType::kWorkerHeartbeat: return "worker-heartbeat";
    case EventType::kQueuePurged: return "queue-purged";
    case EventType::kResultsExpired: return "results-expired";
  }
  return "unknown";
}

Command command_of(const Message& message) {
  return std::visit([](const auto& m) { return std::decay_t<decltype(m)>::kCommand; }, message);
}

Frames encode(const Message& message) {
  Frames frames;
  std::visit([&](const auto& m) { append(frames, m); }, message);
  return frames;
}

Result<Message> decode(std::string_view header, std::string_view body) {
  if (header.size() != kHeaderSize || header[0] != 'Z' || header[1] != 'B')
    return Status(Code::kBadRequest, "not a zbatch message (bad header frame)");
  if (static_cast<uint8_t>(header[2]) != kVersion)
    return Status(Code::kBadVersion, "protocol version " +
                                         std::to_string(static_cast<uint8_t>(header[2])) +
                                         " not supported (this peer speaks " +
                                         std::to_string(kVersion) + ")");
  switch (static_cast<Command>(static_cast<uint8_t>(header[3]))) {
    case Command::kSubmit: return decode_as<Submit>(body);
    case Command::kGetTask: return decode_as<GetTask>(body);
    case Command::kGetGroup: return decode_as<GetGroup>(body);
    case Command::kWaitTasks: return decode_as<WaitTasks>(body);
    case Command::kControl: return decode_as<Control>(body);
    case Command::kReplay: return decode_as<Replay>(body);
    case Command::kConfirm: return decode_as<Confirm>(body);
    case Command::kSubmitAck: return decode_as<SubmitAck>(body);
    case Command::kTaskInfo: return decode_as<TaskInfo>(body);
    case Command::kGroupInfo: return decode_as<GroupInfo>(body);
    case Command::kControlReply: return decode_as<ControlReply>(body);
    case Command::kEventPage: return decode_as<EventPage>(body);
    case Command::kError: return decode_as<Error>(body);
    case Command::kReady: return decode_as<Ready>(body);
    case Command::kWelcome: return decode_as<Welcome>(body);
    case Command::kTasks: return decode_as<Tasks>(body);
    case Command::kResults: return decode_as<Results>(body);
    case Command::kResultsAck: return decode_as<ResultsAck>(body);
    case Command::kHeartbeat: return decode_as<Heartbeat>(body);
    case Command::kDisconnect: return decode_as<Disconnect>(body);
    case Command::kBye: return decode_as<Bye>(body);
    case Command::kRevoke: return decode_as<Revoke>(body);
    case Command::kWorkerCommand: return decode_as<WorkerCommand>(body);
    case Command::kStarted: return decode_as<Started>(body);
    case Command::kRecall: return decode_as<Recall>(body);
    case Command::kOutput: return decode_as<Output>(body);
    case Command::kEventBatch: return decode_as<EventBatch>(body);
    case Command::kHugz: return decode_as<Hugz>(body);
  }
  return Status(Code::kBadRequest,
                "unknown command 0x" + [&] {
                  static constexpr char kHex[] = "0123456789abcdef";
                  auto b = static_cast<uint8_t>(header[3]);
                  return std::string{kHex[b >> 4], kHex[b & 0xf]};
                }());
}

}  // namespace zb::proto

namespace msgpack {
MSGPACK_API_VERSION_NAMESPACE(MSGPACK_DEFAULT_API_NS) {
namespace adaptor {
namespace {

uint8_t checked_byte(const msgpack::object& o, int count) {
  if (o.type != msgpack::type::POSITIVE_INTEGER || o.via.u64 >= static_cast<uint64_t>(count))
    throw msgpack::type_error();
  return static_cast<uint8_t>(o.via.u64);
}

}  // namespace

// Converts element `i` of array `a` into `v` when the array has it (an older peer's shorter
// array leaves the default).
template <typename T>
void field(const msgpack::object_array& a, uint32_t i, T& v) {
  if (i < a.size) a.ptr[i].convert(v);
}

// An operation's struct, when the element is there and not nil; nothing for an operation
// without one (whatever a newer peer put there).
template <typename Variant>
void alternative(const msgpack::object_array& a, uint32_t i, Variant& v) {
  if (i >= a.size || a.ptr[i].is_nil()) return;
  std::visit([&](auto& alt) {
    if constexpr (!std::is_same_v<std::decay_t<decltype(alt)>, std::monostate>) a.ptr[i].convert(alt);
  }, v);
}

const msgpack::object& convert<zb::proto::Control>::operator()(const msgpack::object& o,
                                                                zb::proto::Control& v) const {
  if (o.type != msgpack::type::ARRAY) throw msgpack::type_error();
  const auto& a = o.via.array;
  std::string unused_args;
  field(a, 0, v.corr);
  field(a, 1, v.op);
  field(a, 2, unused_args);
  field(a, 3, v.deadline_ms);
  const auto op = zb::proto::parse_control_op(v.op);
  // Arguments missing: left empty, which check_control refuses for an operation that takes some.
  v.args = zb::proto::ControlArgs();
  if (op && a.size > 4 && !a.ptr[4].is_nil()) {
    v.args = zb::proto::default_control_args(*op);
    alternative(a, 4, v.args);
  }
  return o;
}

const msgpack::object& convert<zb::proto::ControlReply>::operator()(const msgpack::object& o,
                                                                     zb::proto::ControlReply& v) const {
  if (o.type != msgpack::type::ARRAY) throw msgpack::type_error();
  const auto& a = o.via.array;
  std::string unused_json;
  field(a, 0, v.corr);
  field(a, 1, unused_json);
  field(a, 2, v.op);
  const auto op = zb::proto::parse_control_op(v.op);
  v.reply = op ? zb::proto::default_control_result(*op) : zb::proto::ControlResult();
  if (op) alternative(a, 3, v.reply);
  return o;
}

const msgpack::object& convert<zb::Id>::operator()(const msgpack::object& o, zb::Id& v) const {
  if (o.type != msgpack::type::BIN) throw msgpack::type_error();
  auto id = zb::Id::from_bytes(std::string_view(o.via.bin.ptr, o.via.bin.size));
  if (!id) throw msgpack::type_error();
  v = *id;
  return o;
}

const msgpack::object& convert<zb::TaskState>::operator()(const msgpack::object& o,
                                                          zb::TaskState& v) const {
  v = static_cast<zb::TaskState>(checked_byte(o, zb::kTaskStateCount));
  return o;
}

const msgpack::object& convert<zb::proto::EventType>::operator()(const msgpack::object& o,
                                                                 zb::proto::EventType& v) const {
  v = static_cast<zb::proto::EventType>(checked_byte(o, zb::proto::kEventTypeCount));
  return o;
}

const msgpack::object& convert<zb::proto::OutcomeStatus>::operator()(
    const msgpack::object& o, zb::proto::OutcomeStatus& v) const {
  v = static_cast<zb::proto::OutcomeStatus>(checked_byte(o, 4));
  return o;
}

}  // namespace adaptor
}  // MSGPACK_API_VERSION_NAMESPACE
}  // namespace msgpack
