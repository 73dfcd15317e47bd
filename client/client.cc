#include "client/client.h"

#include <algorithm>
#include <deque>
#include <atomic>
#include <cstdlib>
#include <map>
#include <unordered_map>

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

// A group id that is the same for every submission with this idempotency key.
Id id_from_key(const std::string& key) {
  uint64_t a = 0xcbf29ce484222325ull, b = 0x84222325cbf29ce4ull;
  for (unsigned char c : key) {
    a = (a ^ c) * 0x100000001b3ull;
    b = (b ^ c) * 0x100000001b3ull + 0x9e37;
  }
  std::string bytes(16, '\0');
  for (int i = 0; i < 8; ++i) {
    bytes[i] = static_cast<char>(a >> (56 - 8 * i));
    bytes[8 + i] = static_cast<char>(b >> (56 - 8 * i));
  }
  return *Id::from_bytes(bytes);
}

std::string chunk_key(const std::string& key, size_t chunk) {
  if (key.empty()) return {};
  return chunk == 0 ? key : key + "#" + std::to_string(chunk);
}

bool eager_from_env() {
  const char* v = std::getenv("ZBATCH_ALWAYS_EAGER");
  if (!v) return false;
  std::string s(v);
  return s == "1" || s == "true" || s == "yes" || s == "True" || s == "TRUE";
}

// Eager mode: tasks run inline, records live in memory.
struct Eager {
  std::unordered_map<std::string, Handler> handlers;
  std::unordered_map<Id, proto::TaskRecord, IdHash> tasks;
  std::unordered_map<Id, proto::GroupRecord, IdHash> groups;
  std::unordered_map<std::string, std::pair<Id, std::vector<Id>>> idem;
  uint64_t seq = 0;

  Eager() {
    for (auto& [kind, h] : builtin_handlers()) handlers[kind] = std::move(h);
  }

  Id run(const proto::TaskSpec& spec, const Id& group) {
    proto::TaskRecord rec;
    rec.id = Id::time_ordered();
    rec.group = group;
    rec.ref = spec.ref;
    rec.queue = spec.queue.empty() ? std::string(kDefaultQueue) : spec.queue;
    rec.kind = spec.kind.empty() ? "echo" : spec.kind;
    rec.payload = spec.payload;
    rec.priority = static_cast<uint8_t>(spec.priority < 0 ? 5 : spec.priority);
    rec.max_retries = spec.max_retries < 0 ? 3 : static_cast<uint32_t>(spec.max_retries);
    rec.seq = ++seq;
    rec.created_ms = now_unix_ms();
    rec.soft_limit_ms = spec.soft_limit_ms;
    rec.hard_limit_ms = spec.hard_limit_ms;
    rec.worker = "eager";
    std::atomic<bool> cancelled{false};
    for (;;) {
      ++rec.attempt;
      rec.started_ms = now_unix_ms();
      TaskContext ctx{rec.id, rec.attempt, rec.group, rec.ref, rec.queue, rec.kind, rec.payload, &cancelled,
                      rec.soft_limit_ms, rec.hard_limit_ms, std::chrono::steady_clock::now()};
      auto h = handlers.find(rec.kind);
      HandlerResult r = h == handlers.end()
                            ? HandlerResult::fail("UnknownKind: no handler for kind '" + rec.kind + "' in eager mode")
                            : invoke_handler(h->second, ctx);
      if (r.status == proto::OutcomeStatus::kRetry && rec.retries < rec.max_retries) {
        ++rec.retries;
        continue;
      }
      const bool ok = r.status == proto::OutcomeStatus::kSucceeded;
      rec.state = ok ? TaskState::kSucceeded : TaskState::kFailed;
      rec.result = ok ? r.result : std::string();
      rec.error = ok ? std::string() : r.error;
      rec.finished_ms = now_unix_ms();
      break;
    }
    if (!group.is_nil()) {
      auto& g = groups[group];
      g.id = group;
      ++g.total;
      (rec.state == TaskState::kSucceeded ? g.succeeded : g.failed)++;
      if (!g.created_ms) g.created_ms = rec.created_ms;
      g.finished_ms = rec.finished_ms;
    }
    const Id id = rec.id;
    tasks.emplace(id, std::move(rec));
    return id;
  }
};

}  // namespace

struct Client::Impl {
  std::optional<Eager> eager;
  ClientOptions options;
  wire::ContextRef context;  // declared before the socket, which must close first
  zmq::socket_t socket;
  uint64_t next_corr = 1;

  Impl(ClientOptions o, zmq::context_t* shared)
      : options(std::move(o)), context(shared), socket(context.get(), zmq::socket_type::dealer) {}

  Status unavailable(std::chrono::milliseconds waited) const {
    return Status(Code::kUnavailable, "router at " + options.router + " did not answer within " +
                                          std::to_string(waited.count()) + " ms");
  }

  bool send(const proto::Message& m) {
    return wire::send_blocking(socket, m, options.timeout);
  }

  // Receives the reply with this corr, discarding stale replies of earlier timed-out calls.
  Result<proto::Message> receive(uint64_t corr, std::chrono::milliseconds timeout) {
    const uint64_t deadline = now_steady_ms() + static_cast<uint64_t>(timeout.count());
    for (;;) {
      uint64_t now = now_steady_ms();
      if (now >= deadline) return unavailable(timeout);
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
  Result<Reply> call(proto::Message request, uint64_t corr, std::chrono::milliseconds timeout) {
    if (!send(request)) return unavailable(options.timeout);
    auto reply = receive(corr, timeout);
    if (!reply) return reply.status();
    if (auto* r = std::get_if<Reply>(&*reply)) return std::move(*r);
    return Status(Code::kBadRequest, std::string("unexpected reply ") +
                                         std::string(proto::command_name(proto::command_of(*reply))));
  }
};

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

Result<std::unique_ptr<Client>> Client::connect(ClientOptions options, zmq::context_t* context) {
  auto impl = std::make_unique<Impl>(options, context);
  if (options.eager.value_or(eager_from_env())) {
    impl->eager.emplace();
    return std::unique_ptr<Client>(new Client(std::move(impl)));
  }
  wire::configure(impl->socket, zmq::socket_type::dealer);
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
  if (impl_->eager) {
    auto& e = *impl_->eager;
    if (!idempotency_key.empty())
      if (auto prior = e.idem.find(idempotency_key); prior != e.idem.end()) return SubmitReceipt{prior->second.second.at(0), true};
    Id id = e.run(task, Id());
    if (!idempotency_key.empty()) e.idem[idempotency_key] = {Id(), {id}};
    return SubmitReceipt{id, false};
  }
  const uint64_t corr = impl_->next_corr++;
  auto ack = impl_->call<proto::SubmitAck>(proto::Submit{corr, Id(), 0, true, idempotency_key, {task}}, corr,
                                           impl_->options.timeout);
  if (!ack) return ack.status();
  if (ack->tasks.size() != 1) return Status(Code::kInternal, "router acknowledged " + std::to_string(ack->tasks.size()) + " tasks for 1");
  return SubmitReceipt{ack->tasks[0], ack->duplicate};
}

Result<GroupReceipt> Client::submit_group(std::span<const proto::TaskSpec> tasks, const GroupOptions& options) {
  const std::string& key = options.idempotency_key;
  GroupReceipt receipt{options.group.is_nil() ? (key.empty() ? Id::random() : id_from_key(key)) : options.group, {}};
  if (impl_->eager) {
    auto& e = *impl_->eager;
    if (!key.empty())
      if (auto prior = e.idem.find(key); prior != e.idem.end())
        return GroupReceipt{prior->second.first, prior->second.second, true};
    for (const auto& t : tasks) receipt.tasks.push_back(e.run(t, receipt.group));
    if (!key.empty()) e.idem[key] = {receipt.group, receipt.tasks};
    return receipt;
  }
  size_t duplicates = 0;
  receipt.tasks.resize(tasks.size());
  const size_t chunk = std::max<size_t>(1, options.chunk_tasks);
  const size_t chunks = std::max<size_t>(1, (tasks.size() + chunk - 1) / chunk);
  std::map<uint64_t, size_t> in_flight;  // corr → chunk index
  size_t next = 0, done = 0;
  while (done < chunks) {
    while (next < chunks && in_flight.size() < std::max<size_t>(1, options.window)) {
      const size_t begin = next * chunk, end = std::min(tasks.size(), begin + chunk);
      proto::Submit submit{impl_->next_corr++, receipt.group, options.parallel, next + 1 == chunks, chunk_key(key, next),
                           std::vector<proto::TaskSpec>(tasks.begin() + begin, tasks.begin() + end)};
      if (!impl_->send(submit)) return impl_->unavailable(impl_->options.timeout);
      in_flight.emplace(submit.corr, next++);
    }
    // Replies come in order on one connection: wait for the oldest outstanding chunk.
    auto oldest = in_flight.begin();
    auto reply = impl_->receive(oldest->first, impl_->options.timeout);
    if (!reply) return reply.status();
    auto* ack = std::get_if<proto::SubmitAck>(&*reply);
    if (!ack) return Status(Code::kBadRequest, "unexpected reply to SUBMIT");
    const size_t begin = oldest->second * chunk;
    std::copy(ack->tasks.begin(), ack->tasks.end(), receipt.tasks.begin() + begin);
    if (ack->duplicate) {
      ++duplicates;
      receipt.group = ack->group;
    }
    in_flight.erase(oldest);
    ++done;
  }
  receipt.duplicate = duplicates == chunks;
  return receipt;
}

Result<proto::TaskRecord> Client::status(const Id& task) {
  if (impl_->eager) {
    auto t = impl_->eager->tasks.find(task);
    if (t == impl_->eager->tasks.end()) return Status(Code::kNotFound, "no task " + task.to_string());
    return t->second;
  }
  const uint64_t corr = impl_->next_corr++;
  auto info = impl_->call<proto::TaskInfo>(proto::GetTask{corr, task}, corr, impl_->options.timeout);
  if (!info) return info.status();
  if (info->tasks.empty()) return Status(Code::kNotFound, "no task " + task.to_string());
  return std::move(info->tasks[0]);
}

Result<proto::GroupRecord> Client::group(const Id& group) {
  if (impl_->eager) {
    auto g = impl_->eager->groups.find(group);
    if (g == impl_->eager->groups.end()) return Status(Code::kNotFound, "no group " + group.to_string());
    return g->second;
  }
  const uint64_t corr = impl_->next_corr++;
  auto info = impl_->call<proto::GroupInfo>(proto::GetGroup{corr, group}, corr, impl_->options.timeout);
  if (!info) return info.status();
  return std::move(info->group);
}

Result<std::vector<proto::TaskRecord>> Client::wait(std::span<const Id> tasks, std::chrono::milliseconds timeout) {
  if (impl_->eager) {  // every eager task finished when it was submitted
    std::vector<proto::TaskRecord> out;
    for (const Id& id : tasks) {
      auto t = status(id);
      if (!t) return t.status();
      out.push_back(std::move(*t));
    }
    return out;
  }
  const uint64_t corr = impl_->next_corr++;
  proto::WaitTasks req{corr, std::vector<Id>(tasks.begin(), tasks.end()),
                       static_cast<uint32_t>(std::clamp<int64_t>(timeout.count(), 0, 3600'000))};
  auto info = impl_->call<proto::TaskInfo>(std::move(req), corr, timeout + impl_->options.timeout);
  if (!info) return info.status();
  return std::move(info->tasks);
}

Result<std::string> Client::control(const std::string& op, const std::string& args_json) {
  if (impl_->eager) {
    if (op == "ping") return std::string(R"({"pong":true,"eager":true,"workers":0,"head_seq":0})");
    return Status(Code::kUnavailable, "'" + op + "' needs a router; eager mode (ZBATCH_ALWAYS_EAGER) runs tasks inline");
  }
  const uint64_t corr = impl_->next_corr++;
  auto reply = impl_->call<proto::ControlReply>(proto::Control{corr, op, args_json}, corr, impl_->options.timeout);
  if (!reply) return reply.status();
  return std::move(reply->json);
}

Result<proto::EventPage> Client::replay(uint64_t after_seq, uint32_t max_events) {
  if (impl_->eager) return Status(Code::kUnavailable, "eager mode has no event log");
  const uint64_t corr = impl_->next_corr++;
  return impl_->call<proto::EventPage>(proto::Replay{corr, after_seq, max_events}, corr, impl_->options.timeout);
}

bool Client::eager() const { return impl_->eager.has_value(); }

void Client::register_handler(std::string kind, Handler handler) {
  if (impl_->eager) impl_->eager->handlers[std::move(kind)] = std::move(handler);
}

Status Client::confirm(uint64_t seq) {
  if (impl_->eager) return Status::ok();
  if (!impl_->send(proto::Confirm{seq})) return impl_->unavailable(impl_->options.timeout);
  return Status::ok();
}

}  // namespace zb
