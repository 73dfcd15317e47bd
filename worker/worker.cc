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
#include "worker/kinds/kinds.h"
#include "worker/process.h"
#include "worker/slots.h"

namespace zb {
namespace {

// How long a warm shutdown waits for the router to acknowledge the last results.
constexpr uint64_t kFinalAckWaitMs = 5000;
constexpr size_t kResultsPerMessage = 256;
constexpr uint64_t kOutputEveryMs = 50;     // live output leaves at most this often
constexpr uint64_t kResourcesEveryMs = 5000;  // RSS and load, in a heartbeat

// This process's resident memory in KiB, and the host's 1-minute load average × 1000 (0 when
// /proc cannot tell).
std::pair<uint32_t, uint32_t> resources() {
  uint32_t rss_kb = 0, load_milli = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    unsigned long size = 0, resident = 0;
    if (std::fscanf(f, "%lu %lu", &size, &resident) == 2)
      rss_kb = static_cast<uint32_t>(resident * static_cast<unsigned long>(::sysconf(_SC_PAGESIZE)) / 1024);
    std::fclose(f);
  }
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    double load = 0;
    if (std::fscanf(f, "%lf", &load) == 1 && load >= 0 && load < 4e6) load_milli = static_cast<uint32_t>(load * 1000);
    std::fclose(f);
  }
  return {rss_kb, load_milli};
}

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
  bool holding = false;  // the slots' hold (Slots::hold)
  uint64_t last_sent_ms = 0;
  uint32_t backoff_ms = 0;
  uint32_t patience_ms = 0;  // the backoff: how much longer than liveness a new socket waits for the router
  std::unordered_map<Id, proto::Outcome, IdHash> unacked;  // sent or to send, until ResultsAck
  std::vector<proto::Outcome> to_send;
  std::mt19937 rng{std::random_device{}()};
  uint32_t announced_capacity = 0;
  uint64_t next_scale_ms = 0, idle_since_ms = 0;
  uint64_t last_output_ms = 0, last_resources_ms = 0;

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
    curve::apply_client(*socket, options.curve);
    // A TCP connect whose SYNs go unanswered (a cut link) is given up after a heartbeat and
    // tried again, instead of waiting out the kernel's SYN retransmits (1 s, 3 s, 7 s, ...).
    socket->set(zmq::sockopt::connect_timeout, static_cast<int>(options.heartbeat_ms));
    socket->connect(options.router);
    welcomed = false;
    hold(slots, true, "reconnecting");  // until the Welcome says which claims are still ours
    announced_capacity = capacity(slots);
    proto::Ready ready{options.name, session, local_hostname(), static_cast<uint32_t>(::getpid()),
                       options.queues, {}, options.concurrency, announced_capacity, slots.claims()};
    for (const auto& [id, o] : unacked) ready.running.push_back({id, o.attempt});
    for (const auto& [kind, h] : handlers) ready.kinds.push_back(kind);
    for (const auto& p : options.kinds.test_profiles) ready.test_profiles.push_back(p.name);
    for (const auto& s : options.kinds.mcp_servers) ready.mcp_servers.push_back(s.name);
    send(ready);
    last_heard_ms = now_steady_ms();
  }

  void send(const proto::Message& m) {
    if (socket && wire::send(*socket, m)) last_sent_ms = now_steady_ms();
  }

  // Paranoid Pirate: a fresh socket, given longer to hear from the router each time, doubling
  // up to reconnect_max_ms. The new socket connects at once and waits out the backoff with its
  // READY queued (ZeroMQ retries the TCP connection every 100 ms meanwhile), rather than the
  // worker pausing with no socket: a link that returns mid-backoff is used within a round trip,
  // not after the rest of a pause of up to 32 s.
  void reconnect(worker::Slots& slots, std::string_view reason, bool immediate) {
    spdlog::warn("worker disconnected router={} reason=\"{}\"", options.router, reason);
    socket.reset();
    patience_ms = 0;
    if (!immediate) {
      backoff_ms = backoff_ms ? std::min(backoff_ms * 2, options.reconnect_max_ms) : options.reconnect_initial_ms;
      patience_ms = backoff_ms + std::uniform_int_distribution<uint32_t>(0, backoff_ms / 4)(rng);
      if (stop_requests.load() > 0) patience_ms = std::min<uint32_t>(patience_ms, 500);  // stopping: do not linger
      spdlog::info("worker reconnecting wait_ms={}", patience_ms + uint64_t{options.heartbeat_ms} * options.liveness);
    }
    connect(slots);
  }

  // Queued tasks start only while the router is surely still ours: past a heartbeat and a half
  // of silence (a beat missed) it may be about to declare us lost and give them to another
  // worker, which would run them twice. What runs already goes on; its result waits for the
  // router as always.
  void hold(worker::Slots& slots, bool on, std::string_view why) {
    if (on == holding) return;
    holding = on;
    slots.hold(on);
    if (on && slots.queued() > 0) spdlog::info("worker holding queued={} reason=\"{}\"", slots.queued(), why);
  }

  void on_message(worker::Slots& slots, proto::Message& message) {
    last_heard_ms = now_steady_ms();
    backoff_ms = 0;
    if (auto* welcome = std::get_if<proto::Welcome>(&message)) {
      welcomed = true;
      slots.drop(welcome->rejected);
      for (const auto& c : welcome->rejected) unacked.erase(c.task);
      hold(slots, false, {});
      // Results finished while we were away go out now, and what runs is said again: the
      // router may be new.
      to_send.clear();
      for (const auto& [id, o] : unacked) to_send.push_back(o);
      if (auto running = slots.started_claims(); !running.empty()) send(proto::Started{std::move(running)});
      spdlog::info("worker connected router={} name={} rejected={}", options.router, options.name,
                   welcome->rejected.size());
    } else if (auto* tasks = std::get_if<proto::Tasks>(&message)) {
      if (stop_requests.load() > 0) {
        for (auto& a : tasks->tasks) to_send.push_back(returned(a.task, a.attempt));
        return;
      }
      std::vector<proto::Assignment> fresh;
      for (auto& a : tasks->tasks) {
        // A result still waiting for its ack is for an older attempt when the task comes back
        // (retried at once); the same attempt again is a duplicate.
        auto u = unacked.find(a.task);
        if (u == unacked.end() || u->second.attempt < a.attempt) fresh.push_back(std::move(a));
      }
      slots.add(std::move(fresh));
    } else if (auto* ack = std::get_if<proto::ResultsAck>(&message)) {
      for (const auto& c : ack->claims) {
        auto it = unacked.find(c.task);
        if (it != unacked.end() && it->second.attempt == c.attempt) unacked.erase(it);
      }
    } else if (auto* recall = std::get_if<proto::Recall>(&message)) {
      // Work stealing: what has not started goes back; what runs already just runs.
      for (auto& a : slots.take_queued(recall->claims)) to_send.push_back(returned(a.task, a.attempt, "recalled"));
    } else if (auto* revoke = std::get_if<proto::Revoke>(&message)) {
      // Revoked with terminate: the handler is told (cancel flag) and its result dropped.
      slots.drop(revoke->claims);
      for (const auto& c : revoke->claims) unacked.erase(c.task);
    } else if (auto* command = std::get_if<proto::WorkerCommand>(&message)) {
      if (command->op == "shutdown") {
        spdlog::info("worker shutdown requested by the router");
        stop_requests.fetch_add(1);
      } else if (command->op == "pool") {
        const int64_t wanted = std::clamp<int64_t>(int64_t{slots.target()} + command->delta, 1, 1024);
        slots.set_target(static_cast<uint32_t>(wanted));
        options.concurrency = static_cast<uint32_t>(wanted);
        if (options.autoscale_max) options.autoscale_max = std::max(options.autoscale_max, options.concurrency);
        announced_capacity = capacity(slots);
        send(proto::Heartbeat{static_cast<uint32_t>(slots.busy()), announced_capacity, slots.target(), 0, 0});
        spdlog::info("worker pool resized slots={}", wanted);
      }
    } else if (auto* bye = std::get_if<proto::Disconnect>(&message)) {
      reconnect(slots, bye->reason, true);
    }
  }

  // Credit to announce: slots × prefetch (the router's window stays within it); while autoscale may still grow, one slot's worth more,
  // so a backlog shows up here as tasks waiting for a slot.
  uint32_t capacity(const worker::Slots& slots) const {
    const uint32_t threads = options.autoscale_max ? slots.target() : options.concurrency;
    const uint32_t room = options.autoscale_max && threads < options.autoscale_max ? 1 : 0;
    return (threads + room) * options.prefetch_multiplier.value_or(kAutoPrefetch);
  }

  // Autoscale: one slot more while tasks wait for a slot; one less after a quiet spell.
  void autoscale(worker::Slots& slots, uint64_t now) {
    if (!options.autoscale_max || now < next_scale_ms) return;
    next_scale_ms = now + 100;
    const uint32_t threads = slots.target();
    if (slots.queued() > 0 && threads < options.autoscale_max) {
      slots.set_target(threads + 1);
      idle_since_ms = 0;
      spdlog::info("worker autoscale up slots={}", threads + 1);
    } else if (slots.busy() < threads && slots.queued() == 0) {
      if (!idle_since_ms) idle_since_ms = now;
      if (now - idle_since_ms >= options.autoscale_idle_ms && threads > options.autoscale_min) {
        slots.set_target(threads - 1);
        idle_since_ms = now;
        spdlog::info("worker autoscale down slots={}", threads - 1);
      }
    } else {
      idle_since_ms = 0;
    }
    if (const uint32_t c = capacity(slots); c != announced_capacity && welcomed) {
      announced_capacity = c;
      send(proto::Heartbeat{static_cast<uint32_t>(slots.busy()), c, slots.target(), 0, 0});
    }
  }

  proto::Outcome returned(const Id& task, uint32_t attempt, std::string why = "worker shutting down") {
    proto::Outcome o{task, attempt, proto::OutcomeStatus::kReturned, {}, std::move(why), 0, 0, 0};
    unacked[task] = o;
    return o;
  }

  Status run() {
    worker::Slots slots(options.autoscale_max ? options.autoscale_min : options.concurrency, handlers,
                        [this] { wake(); });
    connect(slots);
    bool bye_sent = false, cold = false;
    uint64_t drained_at = 0, shutdown_deadline = 0;
    std::vector<proto::Claim> started;
    for (;;) {
      const int stops = stop_requests.load();
      uint64_t now = now_steady_ms();
      if (stops >= 1 && !bye_sent) {
        bye_sent = true;
        shutdown_deadline = now + options.shutdown_timeout_ms;
        send(proto::Bye{"warm shutdown"});
        auto queued = slots.take_queued();
        for (auto& a : queued) to_send.push_back(returned(a.task, a.attempt));
        spdlog::info("worker warm shutdown running={} returned={} timeout_ms={}", slots.pending(), queued.size(),
                     options.shutdown_timeout_ms);
      }
      if (bye_sent && !cold && (stops >= 2 || (slots.pending() > 0 && now >= shutdown_deadline))) {
        cold = true;
        auto running = slots.cancel_running();
        for (const auto& c : running) to_send.push_back(returned(c.task, c.attempt));
        spdlog::info("worker {} returned={}", stops >= 2 ? "cold shutdown" : "shutdown timeout: cancelling running tasks",
                     running.size());
      }
      // Drained: nothing of ours still runs (after a cold stop, what runs is cancelled and
      // already handed back). Then only the router's acknowledgements are awaited.
      const bool drained = bye_sent && (cold || slots.pending() == 0);
      if (drained && unacked.empty() && to_send.empty()) break;
      if (drained) {
        if (!drained_at) drained_at = now;
        if (now - drained_at > kFinalAckWaitMs) {
          spdlog::warn("worker exiting with unacknowledged results={} (the router requeues their tasks)", unacked.size());
          break;
        }
      }

      std::vector<zmq::pollitem_t> items = {{socket->handle(), 0, ZMQ_POLLIN, 0},
                                            {nullptr, wake_fd, ZMQ_POLLIN, 0}};
      const uint64_t next_beat = last_sent_ms + options.heartbeat_ms;
      uint64_t wait = std::min<uint64_t>(100, next_beat > now ? next_beat - now : 0);
      const auto steady = worker::Slots::Clock::now();
      const auto limit_due = slots.enforce(steady);
      if (limit_due != worker::Slots::Clock::time_point::max())
        wait = std::min<uint64_t>(wait, static_cast<uint64_t>(std::max<int64_t>(
            0, std::chrono::duration_cast<std::chrono::milliseconds>(limit_due - steady).count() + 1)));
      wire::poll(items, std::chrono::milliseconds(wait));
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
      started.clear();
      for (auto& o : slots.collect(&started)) {
        unacked[o.task] = o;
        to_send.push_back(std::move(o));
      }
      if (welcomed && !started.empty()) send(proto::Started{std::move(started)});
      // Live output after the start notice of its task, at a bounded rate (docs/STREAMING.md),
      // and always before results: a task's last words reach the router while it holds it.
      if (const uint64_t t = now_steady_ms(); welcomed && (t >= last_output_ms + kOutputEveryMs || !to_send.empty())) {
        last_output_ms = t;
        auto output = slots.collect_output();
        for (size_t at = 0; at < output.size(); at += proto::kMaxOutputChunks) {
          const size_t end = std::min(output.size(), at + proto::kMaxOutputChunks);
          send(proto::Output{{std::make_move_iterator(output.begin() + at), std::make_move_iterator(output.begin() + end)}});
        }
      }
      if (welcomed && !to_send.empty()) {
        // In messages of at most kResultsPerMessage: a router short of disk space takes one
        // message per turn, so each of its commits stays small enough to fit.
        for (size_t at = 0; at < to_send.size(); at += kResultsPerMessage) {
          const size_t end = std::min(to_send.size(), at + kResultsPerMessage);
          send(proto::Results{{std::make_move_iterator(to_send.begin() + at), std::make_move_iterator(to_send.begin() + end)}});
        }
        to_send.clear();
      }
      const uint64_t after = now_steady_ms();
      if (after - last_heard_ms > uint64_t{options.heartbeat_ms} * options.liveness + (welcomed ? 0 : patience_ms)) {
        reconnect(slots, "router silent for " + std::to_string(after - last_heard_ms) + " ms", false);
        continue;
      }
      if (welcomed) hold(slots, (after - last_heard_ms) * 2 > uint64_t{options.heartbeat_ms} * 3, "router silent");
      autoscale(slots, after);
      if (welcomed && after >= last_resources_ms + kResourcesEveryMs) {
        last_resources_ms = after;
        const auto [rss_kb, load_milli] = resources();
        send(proto::Heartbeat{static_cast<uint32_t>(slots.busy()), announced_capacity, slots.target(), rss_kb, load_milli});
      } else if (after >= last_sent_ms + options.heartbeat_ms) {
        send(proto::Heartbeat{static_cast<uint32_t>(slots.busy()), announced_capacity, slots.target(), 0, 0});
      }
    }
    // Goodbye: the router forgets this session now instead of after its missed heartbeats.
    if (welcomed) send(proto::Disconnect{"worker stopped"});
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
  if (options.prefetch_multiplier && *options.prefetch_multiplier < 1)
    return Status(Code::kBadRequest, "--prefetch-multiplier must be >= 1, got 0");
  if (uint64_t{options.concurrency} * options.prefetch_multiplier.value_or(kAutoPrefetch) > 1'000'000)
    return Status(Code::kBadRequest, "concurrency x prefetch multiplier must be <= 1000000");
  if (options.heartbeat_ms < 10)
    return Status(Code::kBadRequest, "--heartbeat-ms must be >= 10, got " + std::to_string(options.heartbeat_ms));
  if (options.liveness < 1) return Status(Code::kBadRequest, "liveness must be >= 1");
  if (options.router.empty()) return Status(Code::kBadRequest, "--router needs an endpoint");
  if (Status s = curve::check_endpoints(options.router, options.curve.enabled(), options.insecure_plaintext, "--router"); !s)
    return s;
  if (options.insecure_plaintext && !options.curve.enabled() && !curve::is_local_endpoint(options.router))
    spdlog::warn("worker INSECURE: plaintext to router={} (--insecure-plaintext): anyone on the network can read "
                 "its tasks and results, or pose as the router", options.router);
  if (options.autoscale_max) {
    if (options.autoscale_min > options.autoscale_max || options.autoscale_max > 1024)
      return Status(Code::kBadRequest, "--autoscale MAX,MIN needs 0 <= MIN <= MAX <= 1024, got " +
                                           std::to_string(options.autoscale_max) + "," + std::to_string(options.autoscale_min));
    options.concurrency = options.autoscale_max;  // announced as the most slots it may run
  }
  for (const auto& p : options.process_handlers)
    if (Status s = validate(p); !s) return s;
  if (options.name.empty()) options.name = "zbatch@" + local_hostname();
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  impl->context = wire::ContextRef(context);
  impl->wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (impl->wake_fd < 0) return Status(Code::kIo, "eventfd failed");
  worker::add_builtin_handlers(impl->handlers);
  const auto& kinds = impl->options.kinds;
  impl->handlers["agent"] = worker::make_agent_handler(kinds);
  impl->handlers["validate"] = worker::make_validate_handler(kinds.validation);
  impl->handlers["test"] = worker::make_test_handler(kinds.test_profiles);
  impl->handlers["mcp"] = worker::make_mcp_handler(kinds.mcp_servers, impl->options.concurrency);
  for (const auto& p : impl->options.process_handlers)
    impl->handlers[p.kind] = p.mode == ProcessHandlerConfig::Mode::kExec
                                 ? worker::make_exec_handler(p)
                                 : worker::make_pool_handler(p);
  return std::unique_ptr<Worker>(new Worker(std::move(impl)));
}

Status Worker::validate(const ProcessHandlerConfig& p) {
  const std::string where = "handler '" + p.kind + "': ";
  if (p.kind.empty()) return Status(Code::kBadRequest, "a handler needs a kind");
  if (p.argv.empty() || p.argv[0].empty()) return Status(Code::kBadRequest, where + "argv must name a program");
  for (const auto& e : p.env)
    if (e.find('=') == std::string::npos || e.front() == '=')
      return Status(Code::kBadRequest, where + "env entries must be KEY=VALUE, got '" + e + "'");
  if (p.stdout_limit == 0 || p.stdout_limit > (256u << 20))
    return Status(Code::kBadRequest, where + "stdout_limit must be 1..268435456 bytes");
  if (p.stderr_limit == 0 || p.stderr_limit > (16u << 20))
    return Status(Code::kBadRequest, where + "stderr_limit must be 1..16777216 bytes");
  if (p.mode == ProcessHandlerConfig::Mode::kPool && p.max_tasks_per_child == 0)
    return Status(Code::kBadRequest, where + "max_tasks_per_child must be >= 1");
  return Status::ok();
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
