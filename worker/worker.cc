// The worker's connection loop: Paranoid Pirate heartbeats and reconnects, results kept until
// acknowledged, warm and cold shutdown. Tasks run in worker/slots.cc.
#include "worker/worker.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <random>
#include <thread>

#include "common/clock.h"
#include "common/log.h"
#include "common/wire.h"
#include "worker/builtins.h"
#include "worker/slots.h"

namespace zb {
namespace {

// How long a warm shutdown waits for the router to acknowledge the last results.
constexpr uint64_t kFinalAckWaitMs = 5000;

std::string local_hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  return buf;
}

}  // namespace

struct Worker::Impl {
  WorkerOptions options;
  wire::ContextRef context;
  worker::Slots::Handlers handlers;
  int wake_fd = -1;  // eventfd: slots (outcomes ready) and stop() wake the loop
  std::atomic<int> stop_requests{0};

  std::optional<zmq::socket_t> socket;
  Id session = Id::random();
  bool welcomed = false;
  uint64_t last_heard_ms = 0;
  uint64_t last_sent_ms = 0;
  uint32_t backoff_ms = 0;
  std::unordered_map<Id, proto::Outcome, IdHash> unacked;  // sent or to send, until ResultsAck
  std::vector<proto::Outcome> to_send;
  std::mt19937 rng{std::random_device{}()};

  ~Impl() {
    if (wake_fd >= 0) ::close(wake_fd);
  }

  void wake() {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd, &one, sizeof one);
  }

  void connect(worker::Slots& slots) {
    socket.emplace(context.get(), zmq::socket_type::dealer);
    wire::configure(*socket, zmq::socket_type::dealer);
    socket->connect(options.router);
    welcomed = false;
    proto::Ready ready{options.name, session, local_hostname(), static_cast<uint32_t>(::getpid()),
                       options.queues, {}, options.concurrency,
                       options.concurrency * options.prefetch_multiplier, slots.claims()};
    for (const auto& [id, o] : unacked) ready.running.push_back({id, o.attempt});
    for (const auto& [kind, h] : handlers) ready.kinds.push_back(kind);
    send(ready);
    last_heard_ms = now_steady_ms();
  }

  void send(const proto::Message& m) {
    if (socket && wire::send(*socket, m)) last_sent_ms = now_steady_ms();
  }

  // Paranoid Pirate: a fresh socket after a pause that doubles up to reconnect_max_ms. The
  // pause waits on the wake fd, so stop() still ends it at once.
  void reconnect(worker::Slots& slots, std::string_view reason, bool immediate) {
    spdlog::warn("worker disconnected router={} reason=\"{}\"", options.router, reason);
    socket.reset();
    if (!immediate) {
      backoff_ms = backoff_ms ? std::min(backoff_ms * 2, options.reconnect_max_ms) : options.reconnect_initial_ms;
      const uint32_t jitter = std::uniform_int_distribution<uint32_t>(0, backoff_ms / 4)(rng);
      spdlog::info("worker reconnecting in_ms={}", backoff_ms + jitter);
      zmq::pollitem_t item{nullptr, wake_fd, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(backoff_ms + jitter));
    }
    connect(slots);
  }

  void on_message(worker::Slots& slots, proto::Message& message) {
    last_heard_ms = now_steady_ms();
    backoff_ms = 0;
    if (auto* welcome = std::get_if<proto::Welcome>(&message)) {
      welcomed = true;
      slots.drop(welcome->rejected);
      for (const auto& c : welcome->rejected) unacked.erase(c.task);
      // Results finished while we were away go out now.
      to_send.clear();
      for (const auto& [id, o] : unacked) to_send.push_back(o);
      spdlog::info("worker connected router={} name={} rejected={}", options.router, options.name,
                   welcome->rejected.size());
    } else if (auto* tasks = std::get_if<proto::Tasks>(&message)) {
      if (stop_requests.load() > 0) {
        for (auto& a : tasks->tasks) to_send.push_back(returned(a.task, a.attempt));
        return;
      }
      std::vector<proto::Assignment> fresh;
      for (auto& a : tasks->tasks)
        if (!unacked.count(a.task)) fresh.push_back(std::move(a));
      slots.add(std::move(fresh));
    } else if (auto* ack = std::get_if<proto::ResultsAck>(&message)) {
      for (const auto& c : ack->claims) {
        auto it = unacked.find(c.task);
        if (it != unacked.end() && it->second.attempt == c.attempt) unacked.erase(it);
      }
    } else if (auto* revoke = std::get_if<proto::Revoke>(&message)) {
      // Revoked with terminate: the handler is told (cancel flag) and its result dropped.
      slots.drop(revoke->claims);
      for (const auto& c : revoke->claims) unacked.erase(c.task);
    } else if (auto* bye = std::get_if<proto::Disconnect>(&message)) {
      reconnect(slots, bye->reason, true);
    }
  }

  proto::Outcome returned(const Id& task, uint32_t attempt) {
    proto::Outcome o{task, attempt, proto::OutcomeStatus::kReturned, {}, "worker shutting down", 0};
    unacked[task] = o;
    return o;
  }

  Status run() {
    worker::Slots slots(options.concurrency, handlers, [this] { wake(); });
    connect(slots);
    bool bye_sent = false, cold = false;
    uint64_t drained_at = 0;
    for (;;) {
      const int stops = stop_requests.load();
      if (stops >= 1 && !bye_sent) {
        bye_sent = true;
        spdlog::info("worker warm shutdown: finishing running tasks");
        send(proto::Bye{"warm shutdown"});
        for (auto& a : slots.take_queued()) to_send.push_back(returned(a.task, a.attempt));
      }
      if (stops >= 2 && !cold) {
        cold = true;
        spdlog::info("worker cold shutdown: returning running tasks");
        for (const auto& c : slots.cancel_running()) to_send.push_back(returned(c.task, c.attempt));
      }
      const uint64_t now = now_steady_ms();
      if (bye_sent && slots.pending() == 0 && unacked.empty() && to_send.empty()) break;
      if (bye_sent && slots.pending() == 0) {
        if (!drained_at) drained_at = now;
        if (now - drained_at > kFinalAckWaitMs) {
          spdlog::warn("worker exiting with unacknowledged results={}", unacked.size());
          break;
        }
      }

      std::vector<zmq::pollitem_t> items = {{socket->handle(), 0, ZMQ_POLLIN, 0},
                                            {nullptr, wake_fd, ZMQ_POLLIN, 0}};
      const uint64_t next_beat = last_sent_ms + options.heartbeat_ms;
      const uint64_t wait = std::min<uint64_t>(100, next_beat > now ? next_beat - now : 0);
      zmq::poll(items, std::chrono::milliseconds(wait));
      if (items[1].revents & ZMQ_POLLIN) {
        uint64_t count;
        [[maybe_unused]] ssize_t n = ::read(wake_fd, &count, sizeof count);
      }
      if (items[0].revents & ZMQ_POLLIN) {
        for (int i = 0; i < 1024; ++i) {
          auto in = wire::recv(*socket, false);
          if (!in) break;
          if (!in->message) {
            spdlog::warn("worker bad message from router reason=\"{}\"", in->message.status().message());
            continue;
          }
          on_message(slots, *in->message);
          if (!socket) break;
        }
      }
      for (auto& o : slots.collect()) {
        unacked[o.task] = o;
        to_send.push_back(std::move(o));
      }
      if (welcomed && !to_send.empty()) {
        send(proto::Results{std::move(to_send)});
        to_send.clear();
      }
      // Cold: the running tasks went back to the router as returned; do not wait for them.
      if (cold && (to_send.empty() || !welcomed)) break;
      const uint64_t after = now_steady_ms();
      if (after - last_heard_ms > uint64_t{options.heartbeat_ms} * options.liveness) {
        reconnect(slots, "router silent for " + std::to_string(after - last_heard_ms) + " ms", false);
        continue;
      }
      if (after >= last_sent_ms + options.heartbeat_ms) send(proto::Heartbeat{static_cast<uint32_t>(slots.busy())});
    }
    socket.reset();
    spdlog::info("worker stopped name={}", options.name);
    return Status::ok();
  }
};

Worker::Worker(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Worker::~Worker() = default;

Result<std::unique_ptr<Worker>> Worker::create(WorkerOptions options, zmq::context_t* context) {
  if (options.concurrency == 0) options.concurrency = std::max(1u, std::thread::hardware_concurrency());
  if (options.concurrency > 1024)
    return Status(Code::kBadRequest, "-c must be between 1 and 1024, got " + std::to_string(options.concurrency));
  if (options.prefetch_multiplier < 1)
    return Status(Code::kBadRequest, "--prefetch-multiplier must be >= 1, got 0");
  if (uint64_t{options.concurrency} * options.prefetch_multiplier > 1'000'000)
    return Status(Code::kBadRequest, "concurrency x prefetch multiplier must be <= 1000000");
  if (options.heartbeat_ms < 10)
    return Status(Code::kBadRequest, "--heartbeat-ms must be >= 10, got " + std::to_string(options.heartbeat_ms));
  if (options.liveness < 1) return Status(Code::kBadRequest, "liveness must be >= 1");
  if (options.router.empty()) return Status(Code::kBadRequest, "--router needs an endpoint");
  if (options.name.empty()) options.name = "zbatch@" + local_hostname();
  if (options.queues.empty())
    for (const auto& q : kDefaultQueues) options.queues.emplace_back(q.name);
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  impl->context = wire::ContextRef(context);
  impl->wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (impl->wake_fd < 0) return Status(Code::kIo, "eventfd failed");
  worker::add_builtin_handlers(impl->handlers);
  return std::unique_ptr<Worker>(new Worker(std::move(impl)));
}

void Worker::register_handler(std::string kind, Handler handler) {
  impl_->handlers[std::move(kind)] = std::move(handler);
}

Status Worker::run() {
  try {
    return impl_->run();
  } catch (const zmq::error_t& e) {
    return Status(Code::kIo, std::string("worker: ") + e.what());
  }
}

void Worker::stop() {
  impl_->stop_requests.fetch_add(1, std::memory_order_relaxed);
  impl_->wake();
}

}  // namespace zb
