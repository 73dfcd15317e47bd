#include "client/client.h"

#include <algorithm>
#include <map>
#include <tuple>

#include "common/clock.h"
#include "common/wire.h"

namespace zb {
namespace {

// The correlation id of a frontend reply; 0 for messages that carry none.
uint64_t corr_of(const proto::Message& m) {
  return std::visit(
      [](const auto& x) -> uint64_t {
        if constexpr (requires { x.corr; }) return x.corr;
        else return 0;
      },
      m);
}

// How long past a request's deadline an answer is still awaited: the router accepts a request
// that arrives before its deadline, and then needs its commit (an fsync) to answer.
constexpr std::chrono::milliseconds kAnswerGrace{1000};

// The request's content, so that a repeat under the same idempotency key can be told from
// another request reusing the key.
Id fingerprint(const proto::Submit& submit) {
  msgpack::sbuffer buf;
  msgpack::pack(buf, std::make_tuple(submit.group, submit.parallel, submit.seal, submit.tasks));
  return Id::from_hash({buf.data(), buf.size()});
}

std::string chunk_key(const std::string& key, size_t chunk) {
  return chunk == 0 ? key : key + "#" + std::to_string(chunk);
}

template <typename T>
Id hash_of(const T& value) {
  msgpack::sbuffer buf;
  msgpack::pack(buf, value);
  return Id::from_hash({buf.data(), buf.size()});
}

// Eager clients: a submission has run once its task ended, or waits for its ETA or for a
// retry's backoff (as it would deployed: the router keeps it and runs it when due).
bool settled(const proto::TaskRecord& r) {
  return is_terminal(r.state) || r.state == TaskState::kScheduled || r.state == TaskState::kRetrying;
}

}  // namespace

struct Client::Impl {
  ClientOptions options;
  wire::ContextRef context;  // declared before the socket, which must close first
  zmq::socket_t socket;
  uint64_t next_corr = 1;

  Impl(ClientOptions o, zmq::context_t* shared)
      : options(std::move(o)), context(shared), socket(context.get(), zmq::socket_type::dealer) {}

  Status unreachable() const {
    return Status(Code::kUnavailable, "router at " + options.router + " is not reachable (waited " +
                                          std::to_string(options.timeout.count()) + " ms): nothing was sent");
  }
  Status silent(std::chrono::milliseconds waited) const {
    return Status(Code::kUnavailable, "router at " + options.router + " did not answer within " +
                                          std::to_string(waited.count()) + " ms");
  }
  Status unknown(const std::string& what, const std::string& key) const {
    std::string message = what + " was sent to the router at " + options.router +
                          " and no answer came before its deadline: it may or may not have been accepted";
    if (!key.empty()) message += "; repeating it with idempotency key '" + key + "' is safe";
    return Status(Code::kOutcomeUnknown, message);
  }

  // The deadline a request carries: the router refuses it when it arrives later.
  uint64_t deadline_ms() const { return now_unix_ms() + static_cast<uint64_t>(options.timeout.count()); }

  // Queues the message to a connected router within the timeout. The socket never queues
  // towards an absent router (ZMQ_IMMEDIATE), so false means nothing was sent.
  bool send(const proto::Message& m) { return wire::send_blocking(socket, m, options.timeout); }

  // Receives the reply with this corr, discarding stale replies of earlier timed-out calls.
  // nullopt: no answer within `timeout`.
  std::optional<Result<proto::Message>> receive(uint64_t corr, std::chrono::milliseconds timeout) {
    const uint64_t deadline = now_steady_ms() + static_cast<uint64_t>(timeout.count());
    for (;;) {
      uint64_t now = now_steady_ms();
      if (now >= deadline) return std::nullopt;
      zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
      wire::poll(&item, 1, std::chrono::milliseconds(deadline - now));
      if (!(item.revents & ZMQ_POLLIN)) continue;
      auto in = wire::recv(socket, false);
      if (!in) continue;
      if (!in->message) return Status(Code::kBadRequest, "bad reply from router: " + in->message.status().message());
      proto::Message& m = *in->message;
      const uint64_t got = corr_of(m);
      if (auto* err = std::get_if<proto::Error>(&m); err && (got == corr || got == 0))
        return Status(static_cast<Code>(err->code), err->message);
      if (got == corr) return std::move(m);
    }
  }

  template <typename Reply>
  static Result<Reply> expect(Result<proto::Message> reply) {
    if (!reply) return reply.status();
    if (auto* r = std::get_if<Reply>(&*reply)) return std::move(*r);
    return Status(Code::kBadRequest, std::string("unexpected reply ") +
                                         std::string(proto::command_name(proto::command_of(*reply))));
  }

  // A read: a router that does not answer in time is unavailable.
  template <typename Reply>
  Result<Reply> read(proto::Message request, uint64_t corr, std::chrono::milliseconds timeout) {
    if (!send(request)) return unreachable();
    auto reply = receive(corr, timeout);
    if (!reply) return silent(timeout);
    return expect<Reply>(std::move(*reply));
  }

  // A change (submission, control operation) carrying `deadline`: unanswered, its outcome is
  // unknown, as the router may have carried it out just before the deadline.
  template <typename Reply>
  Result<Reply> change(proto::Message request, uint64_t corr, uint64_t deadline, const std::string& what,
                       const std::string& key) {
    if (!send(request)) return unreachable();
    const uint64_t now = now_unix_ms();
    auto reply = receive(corr, std::chrono::milliseconds(deadline > now ? deadline - now : 0) + kAnswerGrace);
    if (!reply) return unknown(what, key);
    return expect<Reply>(std::move(*reply));
  }

  // Eager: waits until each task without an ETA has run (see settled()).
  Status settle(std::span<const proto::TaskSpec> specs, const std::vector<Id>& ids) {
    std::vector<Id> waiting;
    for (size_t i = 0; i < ids.size() && i < specs.size(); ++i)
      if (!specs[i].eta_ms && !specs[i].countdown_ms) waiting.push_back(ids[i]);
    while (!waiting.empty()) {
      const uint64_t corr = next_corr++;
      auto got = read<proto::TaskInfo>(proto::WaitTasks{corr, waiting, 50}, corr, std::chrono::milliseconds(50) + options.timeout);
      if (!got) return got.status();
      std::vector<Id> still;
      for (const auto& r : got->tasks)
        if (!settled(r)) still.push_back(r.id);
      waiting = std::move(still);
    }
    return Status::ok();
  }
};

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

Result<std::unique_ptr<Client>> Client::connect(ClientOptions options, zmq::context_t* context) {
  if (Status s = curve::check_endpoints(options.router, options.curve.enabled(), options.insecure_plaintext, "--router"); !s)
    return s;
  auto impl = std::make_unique<Impl>(options, context);
  wire::configure(impl->socket, zmq::socket_type::dealer);
  curve::apply_client(impl->socket, options.curve);
  impl->socket.set(zmq::sockopt::immediate, 1);  // nothing queues towards an absent router
  try {
    impl->socket.connect(options.router);
  } catch (const zmq::error_t& e) {
    return Status(Code::kBadRequest, "cannot connect to " + options.router + ": " + e.what());
  }
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

Result<Id> Client::submit(const proto::TaskSpec& task) {
  auto r = submit(task, std::string());
  if (!r) return r.status();
  return r->task;
}

Result<SubmitReceipt> Client::submit(const proto::TaskSpec& task, const std::string& idempotency_key) {
  const std::string key = idempotency_key.empty() ? Id::random().to_string() : idempotency_key;
  const uint64_t corr = impl_->next_corr++;
  proto::Submit submit{corr, Id(), 0, true, key, {task}, impl_->deadline_ms(), Id(), 0, 0, 0, Id(), {}};
  submit.fingerprint = fingerprint(submit);
  const uint64_t deadline = submit.deadline_ms;
  auto ack = impl_->change<proto::SubmitAck>(std::move(submit), corr, deadline, "the submission", key);
  if (!ack) return ack.status();
  if (ack->tasks.size() != 1) return Status(Code::kInternal, "router acknowledged " + std::to_string(ack->tasks.size()) + " tasks for 1");
  if (impl_->options.eager)
    if (Status s = impl_->settle(std::span(&task, 1), ack->tasks); !s) return s;
  return SubmitReceipt{ack->tasks[0], ack->duplicate, key, ack->seq, !ack->existing.empty()};
}

GroupChunks::GroupChunks(std::span<const proto::TaskSpec> tasks, const GroupOptions& options)
    : tasks_(tasks),
      key_(options.idempotency_key.empty() ? Id::random().to_string() : options.idempotency_key),
      parallel_(options.parallel),
      chunk_tasks_(std::max<size_t>(1, options.chunk_tasks)),
      callbacks_(options.callbacks),
      budget_tokens_(options.budget_tokens),
      budget_run_ms_(options.budget_run_ms) {
  // Positions name tasks of the same message, and callbacks come with the message that makes
  // the group: such a group goes whole.
  const bool whole = !callbacks_.empty() ||
                     std::any_of(tasks.begin(), tasks.end(), [](const proto::TaskSpec& t) { return !t.after_index.empty(); });
  if (whole) chunk_tasks_ = std::max<size_t>(1, tasks.size());
  // Without a group id, it comes from the key (the caller's or the one made up), so a repeat
  // with the key after a partial failure completes the same group.
  group_ = !options.group.is_nil() ? options.group : Id::from_hash(key_);
  const size_t n = std::max<size_t>(1, (tasks.size() + chunk_tasks_ - 1) / chunk_tasks_);
  content_.reserve(n);
  msgpack::sbuffer buf;
  for (size_t i = 0; i < n; ++i) {
    const size_t begin = first_task(i), end = begin + tasks_in(i);
    buf.clear();
    msgpack::packer<msgpack::sbuffer> pk(buf);
    pk.pack_array(static_cast<uint32_t>(end - begin));
    for (size_t t = begin; t < end; ++t) pk.pack(tasks[t]);
    content_.push_back(Id::from_hash({buf.data(), buf.size()}));
  }
  fingerprint_ = hash_of(std::make_tuple(std::string("group"), group_, parallel_, uint64_t{chunk_tasks_},
                                         uint64_t{tasks.size()}, content_));
  if (!callbacks_.empty()) fingerprint_ = hash_of(std::make_tuple(fingerprint_, callbacks_));
  if (budget_tokens_ || budget_run_ms_)
    fingerprint_ = hash_of(std::make_tuple(fingerprint_, std::string("budget"), budget_tokens_, budget_run_ms_));
}

proto::Submit GroupChunks::chunk(size_t index) const {
  const size_t begin = first_task(index), end = begin + tasks_in(index);
  proto::Submit submit;
  submit.group = group_;
  submit.parallel = parallel_;
  submit.seal = index + 1 == count();  // what routers without numbered chunks go by
  submit.idem_key = chunk_key(key_, index);
  submit.tasks.assign(tasks_.begin() + begin, tasks_.begin() + end);
  submit.fingerprint = hash_of(std::make_tuple(fingerprint_, uint64_t{index}, content_.at(index)));
  submit.chunk = static_cast<uint32_t>(index);
  submit.chunks = static_cast<uint32_t>(count());
  submit.group_tasks = static_cast<uint32_t>(tasks_.size());
  submit.group_fingerprint = fingerprint_;
  if (index == 0) submit.callbacks = callbacks_;
  // In every chunk: whichever arrives first makes the group.
  submit.budget_tokens = budget_tokens_;
  submit.budget_run_ms = budget_run_ms_;
  return submit;
}

Result<GroupReceipt> Client::submit_group(std::span<const proto::TaskSpec> tasks, const GroupOptions& options) {
  if (tasks.size() > UINT32_MAX)
    return Status(Code::kTooLarge, "a group holds at most " + std::to_string(UINT32_MAX) + " tasks, got " +
                                       std::to_string(tasks.size()));
  const GroupChunks plan(tasks, options);
  const std::string& key = plan.idempotency_key();
  GroupReceipt receipt{plan.group(), {}, false, key, 0, {}};
  size_t duplicates = 0;
  receipt.tasks.resize(tasks.size());
  const size_t chunks = plan.count();
  struct InFlight {
    size_t chunk;
    uint64_t deadline_ms;
  };
  std::map<uint64_t, InFlight> in_flight;  // corr → chunk
  std::optional<Status> refusal;           // of the first chunk the router refused
  size_t next = 0, accepted = 0;
  // After a refusal no more chunks are sent, but the answers of those in flight are awaited:
  // only they tell whether any part of the group was accepted.
  while (!in_flight.empty() || (!refusal && next < chunks)) {
    while (!refusal && next < chunks && in_flight.size() < std::max<size_t>(1, options.window)) {
      proto::Submit submit = plan.chunk(next);
      submit.corr = impl_->next_corr++;
      submit.deadline_ms = impl_->deadline_ms();
      if (!impl_->send(submit)) {
        // Chunks already sent may have been accepted: then the group's outcome is unknown.
        if (next == 0) return impl_->unreachable();
        return impl_->unknown("the group submission", key);
      }
      in_flight.emplace(submit.corr, InFlight{next++, submit.deadline_ms});
    }
    // Replies come in order on one connection: wait for the oldest outstanding chunk.
    auto oldest = in_flight.begin();
    const uint64_t now = now_unix_ms();
    const auto wait = std::chrono::milliseconds(oldest->second.deadline_ms > now ? oldest->second.deadline_ms - now : 0) + kAnswerGrace;
    auto reply = impl_->receive(oldest->first, wait);
    if (!reply) return impl_->unknown("the group submission", key);
    const size_t index = oldest->second.chunk;
    in_flight.erase(oldest);
    auto ack = Impl::expect<proto::SubmitAck>(std::move(*reply));
    if (!ack) {
      if (!refusal) refusal = ack.status();
      continue;
    }
    if (ack->tasks.size() != plan.tasks_in(index))
      return Status(Code::kInternal, "router acknowledged " + std::to_string(ack->tasks.size()) + " tasks for chunk " +
                                         std::to_string(index) + " of " + std::to_string(plan.tasks_in(index)));
    std::copy(ack->tasks.begin(), ack->tasks.end(), receipt.tasks.begin() + plan.first_task(index));
    if (index == 0) receipt.callbacks = ack->callbacks;
    receipt.seq = std::max(receipt.seq, ack->seq);
    if (ack->duplicate) {
      ++duplicates;
      receipt.group = ack->group;
    }
    ++accepted;
  }
  if (refusal) {
    if (accepted == 0) return *refusal;  // no chunk of the group was accepted: none of it runs
    return Status(refusal->code(), refusal->message() + " (" + std::to_string(accepted) + " of " + std::to_string(chunks) +
                                       " chunks of group " + plan.group().to_string() +
                                       " are accepted and will run; the group is sealed once every chunk is: "
                                       "repeating the same tasks with idempotency key '" + key +
                                       "' sends only the missing ones)");
  }
  receipt.duplicate = duplicates == chunks;
  if (impl_->options.eager)
    if (Status s = impl_->settle(tasks, receipt.tasks); !s) return s;
  return receipt;
}

Result<proto::TaskRecord> Client::status(const Id& task) {
  const uint64_t corr = impl_->next_corr++;
  auto info = impl_->read<proto::TaskInfo>(proto::GetTask{corr, task}, corr, impl_->options.timeout);
  if (!info) return info.status();
  if (info->tasks.empty()) return Status(Code::kNotFound, "no task " + task.to_string());
  return std::move(info->tasks[0]);
}

Result<proto::GroupRecord> Client::group(const Id& group) {
  const uint64_t corr = impl_->next_corr++;
  auto info = impl_->read<proto::GroupInfo>(proto::GetGroup{corr, group}, corr, impl_->options.timeout);
  if (!info) return info.status();
  return std::move(info->group);
}

Result<std::vector<proto::TaskRecord>> Client::wait(std::span<const Id> tasks, std::chrono::milliseconds timeout) {
  const uint64_t corr = impl_->next_corr++;
  proto::WaitTasks req{corr, std::vector<Id>(tasks.begin(), tasks.end()),
                       static_cast<uint32_t>(std::clamp<int64_t>(timeout.count(), 0, 3600'000))};
  auto info = impl_->read<proto::TaskInfo>(std::move(req), corr, timeout + impl_->options.timeout);
  if (!info) return info.status();
  return std::move(info->tasks);
}

Result<proto::ControlResult> Client::control(proto::ControlOp op, proto::ControlArgs args) {
  proto::Control request = proto::Control::make(op, std::move(args));
  if (Status s = proto::check_control(request); !s) return s;
  request.corr = impl_->next_corr++;
  const uint64_t corr = request.corr;
  const std::string what = "'" + request.op + "'";
  auto reply = [&]() -> Result<proto::ControlReply> {
    if (proto::control_op_reads(op)) return impl_->read<proto::ControlReply>(std::move(request), corr, impl_->options.timeout);
    request.deadline_ms = impl_->deadline_ms();
    const uint64_t deadline = request.deadline_ms;
    return impl_->change<proto::ControlReply>(std::move(request), corr, deadline, what, {});
  }();
  if (!reply) return reply.status();
  if (reply->op != proto::control_op_name(op))
    return Status(Code::kInternal, "the router answered " + what + " with a reply to '" + reply->op + "'");
  return std::move(reply->reply);
}

namespace {

template <typename Reply>
Result<Reply> reply_as(Result<proto::ControlResult> result) {
  if (!result) return result.status();
  if (auto* r = std::get_if<Reply>(&*result)) return std::move(*r);
  return Status(Code::kInternal, "the router's control reply is of another operation");
}

}  // namespace

Result<proto::PingReply> Client::ping() { return reply_as<proto::PingReply>(control(proto::ControlOp::kPing, {})); }
Result<proto::InspectActiveReply> Client::inspect_active() {
  return reply_as<proto::InspectActiveReply>(control(proto::ControlOp::kInspectActive, {}));
}
Result<proto::TaskListReply> Client::inspect_reserved() {
  return reply_as<proto::TaskListReply>(control(proto::ControlOp::kInspectReserved, {}));
}
Result<proto::TaskListReply> Client::inspect_scheduled() {
  return reply_as<proto::TaskListReply>(control(proto::ControlOp::kInspectScheduled, {}));
}
Result<proto::InspectStatsReply> Client::inspect_stats() {
  return reply_as<proto::InspectStatsReply>(control(proto::ControlOp::kInspectStats, {}));
}
Result<proto::InspectRegisteredReply> Client::inspect_registered() {
  return reply_as<proto::InspectRegisteredReply>(control(proto::ControlOp::kInspectRegistered, {}));
}
Result<proto::InspectQueuesReply> Client::inspect_queues() {
  return reply_as<proto::InspectQueuesReply>(control(proto::ControlOp::kInspectQueues, {}));
}
Result<proto::InspectFailedReply> Client::inspect_failed(const proto::InspectFailedArgs& args) {
  return reply_as<proto::InspectFailedReply>(control(proto::ControlOp::kInspectFailed, args));
}
Result<proto::PurgeReply> Client::purge(std::optional<std::string> queue) {
  return reply_as<proto::PurgeReply>(control(proto::ControlOp::kPurge, proto::PurgeArgs{std::move(queue)}));
}
Result<proto::RevokeReply> Client::revoke(const Id& task, bool terminate) {
  return reply_as<proto::RevokeReply>(control(proto::ControlOp::kRevoke, proto::TaskArgs{task, terminate}));
}
Result<proto::RevokeGroupReply> Client::revoke_group(const Id& group, bool terminate) {
  return reply_as<proto::RevokeGroupReply>(control(proto::ControlOp::kRevokeGroup, proto::GroupArgs{group, terminate}));
}
Result<proto::RetryReply> Client::retry(const Id& task) {
  return reply_as<proto::RetryReply>(control(proto::ControlOp::kRetry, proto::TaskArgs{task, false}));
}
Result<proto::RetryFailedReply> Client::retry_failed(const proto::RetryFailedArgs& args) {
  return reply_as<proto::RetryFailedReply>(control(proto::ControlOp::kRetryFailed, args));
}
Result<proto::WorkerCommandReply> Client::worker_shutdown(const std::string& worker) {
  return reply_as<proto::WorkerCommandReply>(control(proto::ControlOp::kWorkerShutdown, proto::WorkerArgs{worker, 0}));
}
Result<proto::WorkerCommandReply> Client::worker_pool(const std::string& worker, int32_t delta) {
  return reply_as<proto::WorkerCommandReply>(control(proto::ControlOp::kWorkerPool, proto::WorkerArgs{worker, delta}));
}

Result<proto::EventPage> Client::replay(uint64_t after_seq, uint32_t max_events) {
  const uint64_t corr = impl_->next_corr++;
  return impl_->read<proto::EventPage>(proto::Replay{corr, after_seq, max_events}, corr, impl_->options.timeout);
}

bool Client::eager() const { return impl_->options.eager; }

Status Client::confirm(uint64_t seq) {
  if (!impl_->send(proto::Confirm{seq})) return impl_->unreachable();
  return Status::ok();
}

}  // namespace zb
