#include "client/client.h"

#include <algorithm>
#include <deque>
#include <map>

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

}  // namespace

struct Client::Impl {
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
      zmq::poll(&item, 1, std::chrono::milliseconds(deadline - now));
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
  wire::configure(impl->socket, zmq::socket_type::dealer);
  try {
    impl->socket.connect(options.router);
  } catch (const zmq::error_t& e) {
    return Status(Code::kBadRequest, "cannot connect to " + options.router + ": " + e.what());
  }
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

Result<Id> Client::submit(const proto::TaskSpec& task) {
  const uint64_t corr = impl_->next_corr++;
  auto ack = impl_->call<proto::SubmitAck>(proto::Submit{corr, Id(), 0, true, {}, {task}}, corr,
                                           impl_->options.timeout);
  if (!ack) return ack.status();
  if (ack->tasks.size() != 1) return Status(Code::kInternal, "router acknowledged " + std::to_string(ack->tasks.size()) + " tasks for 1");
  return ack->tasks[0];
}

Result<GroupReceipt> Client::submit_group(std::span<const proto::TaskSpec> tasks, const GroupOptions& options) {
  GroupReceipt receipt{options.group.is_nil() ? Id::random() : options.group, {}};
  receipt.tasks.resize(tasks.size());
  const size_t chunk = std::max<size_t>(1, options.chunk_tasks);
  const size_t chunks = std::max<size_t>(1, (tasks.size() + chunk - 1) / chunk);
  std::map<uint64_t, size_t> in_flight;  // corr → chunk index
  size_t next = 0, done = 0;
  while (done < chunks) {
    while (next < chunks && in_flight.size() < std::max<size_t>(1, options.window)) {
      const size_t begin = next * chunk, end = std::min(tasks.size(), begin + chunk);
      proto::Submit submit{impl_->next_corr++, receipt.group, options.parallel, next + 1 == chunks, {},
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
    in_flight.erase(oldest);
    ++done;
  }
  return receipt;
}

Result<proto::TaskRecord> Client::status(const Id& task) {
  const uint64_t corr = impl_->next_corr++;
  auto info = impl_->call<proto::TaskInfo>(proto::GetTask{corr, task}, corr, impl_->options.timeout);
  if (!info) return info.status();
  if (info->tasks.empty()) return Status(Code::kNotFound, "no task " + task.to_string());
  return std::move(info->tasks[0]);
}

Result<proto::GroupRecord> Client::group(const Id& group) {
  const uint64_t corr = impl_->next_corr++;
  auto info = impl_->call<proto::GroupInfo>(proto::GetGroup{corr, group}, corr, impl_->options.timeout);
  if (!info) return info.status();
  return std::move(info->group);
}

Result<std::vector<proto::TaskRecord>> Client::wait(std::span<const Id> tasks, std::chrono::milliseconds timeout) {
  const uint64_t corr = impl_->next_corr++;
  proto::WaitTasks req{corr, std::vector<Id>(tasks.begin(), tasks.end()),
                       static_cast<uint32_t>(std::clamp<int64_t>(timeout.count(), 0, 3600'000))};
  auto info = impl_->call<proto::TaskInfo>(std::move(req), corr, timeout + impl_->options.timeout);
  if (!info) return info.status();
  return std::move(info->tasks);
}

Result<std::string> Client::control(const std::string& op, const std::string& args_json) {
  const uint64_t corr = impl_->next_corr++;
  auto reply = impl_->call<proto::ControlReply>(proto::Control{corr, op, args_json}, corr, impl_->options.timeout);
  if (!reply) return reply.status();
  return std::move(reply->json);
}

Result<proto::EventPage> Client::replay(uint64_t after_seq, uint32_t max_events) {
  const uint64_t corr = impl_->next_corr++;
  return impl_->call<proto::EventPage>(proto::Replay{corr, after_seq, max_events}, corr, impl_->options.timeout);
}

Status Client::confirm(uint64_t seq) {
  if (!impl_->send(proto::Confirm{seq})) return impl_->unavailable(impl_->options.timeout);
  return Status::ok();
}

}  // namespace zb
