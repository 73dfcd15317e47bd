// Sockets, timers and the turn's transaction. No policy lives here.
#include "router/router.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <random>
#include <sstream>

#include "common/clock.h"
#include "common/log.h"
#include "common/wire.h"
#include "router/router_impl.h"

namespace zb {
namespace {

// Messages taken from one socket in one turn: enough to amortise the commit, small enough
// that the other socket is not starved.
constexpr int kMaxMessagesPerTurn = 4096;
constexpr uint64_t kHugzIntervalMs = 1000;
constexpr uint64_t kHousekeepingMs = 1000;
constexpr size_t kTrimPerSecond = 200000;

std::vector<std::string> split_endpoints(const std::string& list) {
  std::vector<std::string> out;
  std::stringstream ss(list);
  std::string ep;
  while (std::getline(ss, ep, ','))
    if (!ep.empty()) out.push_back(ep);
  return out;
}

Status bind_all(zmq::socket_t& socket, const std::string& list, const char* role) {
  auto endpoints = split_endpoints(list);
  if (endpoints.empty()) return Status(Code::kBadRequest, std::string("no ") + role + " endpoint");
  for (const auto& ep : endpoints) {
    try {
      socket.bind(ep);
    } catch (const zmq::error_t& e) {
      return Status(Code::kIo, std::string("cannot bind ") + role + " " + ep + ": " + e.what());
    }
  }
  return Status::ok();
}

}  // namespace

std::vector<QueueConfig> default_queue_configs() {
  std::vector<QueueConfig> out;
  for (const auto& q : kDefaultQueues) {
    QueueConfig c;
    c.name = std::string(q.name);
    c.priority = q.priority;
    // The seed's endpoints run its four kinds of work (worker/worker.h, docs/KINDS.md).
    if (c.name == "agent_tasks") c.default_kind = "agent";
    else if (c.name == "validation") c.default_kind = "validate";
    else if (c.name == "tests") c.default_kind = "test";
    else if (c.name == "mcp_operations") c.default_kind = "mcp";
    out.push_back(std::move(c));
  }
  return out;
}

Router::Router(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Router::~Router() {
  if (impl_->lock_fd >= 0) ::close(impl_->lock_fd);
}

Result<std::unique_ptr<Router>> Router::create(RouterOptions options, zmq::context_t* context) {
  if (options.heartbeat_ms == 0) return Status(Code::kBadRequest, "heartbeat_ms must be >= 1");
  if (options.liveness == 0) return Status(Code::kBadRequest, "liveness must be >= 1");
  if (options.queues.empty()) return Status(Code::kBadRequest, "at least one queue is needed");
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  impl->context = wire::ContextRef(context);
  if (Status s = impl->open(); !s) {
    if (impl->lock_fd >= 0) ::close(impl->lock_fd);
    return s;
  }
  return std::unique_ptr<Router>(new Router(std::move(impl)));
}

Status Router::run() { return impl_->run_loop(); }

void Router::stop() { impl_->stopping.store(true, std::memory_order_relaxed); }

Status Router::Impl::open() {
  if (Status s = check_queue_configs(options.queues); !s) return s;
  for (size_t i = 0; i < options.queues.size(); ++i) queue_index.emplace(options.queues[i].name, i);
  ready.resize(options.queues.size());
  queue_running.assign(options.queues.size(), 0);
  rates.resize(options.queues.size());
  for (size_t i = 0; i < options.queues.size(); ++i) {
    const auto& q = options.queues[i];
    rates[i].rate = q.rate_limit;
    rates[i].burst = std::max(1.0, q.rate_limit / 10.0);
    rates[i].tokens = rates[i].burst;
    rates[i].refilled_ms = now_steady_ms();
  }
  random_state = (uint64_t{std::random_device{}()} << 32) ^ std::random_device{}();

  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  if (ec) return Status(Code::kIo, "cannot create " + options.data_dir + ": " + ec.message());
  // LMDB lets several processes share a file; two routers on one folder would both dispatch.
  std::string lock_path = options.data_dir + "/router.lock";
  lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0 || ::flock(lock_fd, LOCK_EX | LOCK_NB) != 0)
    return Status(Code::kConflict, "data folder " + options.data_dir + " is in use by another router");

  env_options.sync = options.fsync;
  env_options.max_map_bytes = options.max_map_bytes;
  env_options.map_bytes = std::min<uint64_t>(1ull << 30, options.max_map_bytes);
  storage.reserve_bytes = options.min_free_bytes;
  auto opened = router::Ledger::open(options.data_dir, env_options);
  if (!opened) return opened.status();
  ledger.emplace(std::move(opened.value()));
  if (Status s = recover(); !s) return s;

  const bool curve_on = !options.curve_secret_file.empty();
  for (auto [list, what] : {std::pair{&options.frontend, "--frontend"}, {&options.backend, "--backend"},
                            {&options.events, "--events"}})
    if (Status s = curve::check_endpoints(*list, curve_on, options.insecure_plaintext, what); !s) return s;
  curve::KeyPair server_keys;
  if (curve_on) {
    auto keys = curve::read_certificate(options.curve_secret_file);
    if (!keys) return keys.status();
    if (keys->secret_key.empty())
      return Status(Code::kBadRequest, options.curve_secret_file + " is a public certificate: --curve-secret needs the .key_secret file");
    server_keys = *keys;
    auto handler = router::ZapHandler::start(context.get(), options.curve_allow_file);
    if (!handler) return handler.status();
    zap = std::move(handler.value());
  } else if (!options.curve_allow_file.empty()) {
    return Status(Code::kBadRequest, "--curve-allow needs the router's own key (--curve-secret)");
  } else if (options.insecure_plaintext) {
    spdlog::warn("router INSECURE: plaintext ZeroMQ (--insecure-plaintext): anyone who reaches frontend={} backend={} "
                 "events={} can act as a worker, submit, purge and read every payload",
                 options.frontend, options.backend, options.events);
  }

  frontend.emplace(context.get(), zmq::socket_type::router);
  backend.emplace(context.get(), zmq::socket_type::router);
  events.emplace(context.get(), zmq::socket_type::pub);
  wire::configure(*frontend, zmq::socket_type::router);
  wire::configure(*backend, zmq::socket_type::router);
  wire::configure(*events, zmq::socket_type::pub);
  if (curve_on) {
    curve::apply_server(*frontend, server_keys, "frontend");
    curve::apply_server(*backend, server_keys, "backend");
    curve::apply_server(*events, server_keys, "events");
  }
  frontend->set(zmq::sockopt::sndhwm, 100000);
  frontend->set(zmq::sockopt::rcvhwm, 100000);
  backend->set(zmq::sockopt::router_handover, 1);
  events->set(zmq::sockopt::sndhwm, options.events_hwm);
  if (Status s = bind_all(*frontend, options.frontend, "frontend"); !s) return s;
  if (Status s = bind_all(*backend, options.backend, "backend"); !s) return s;
  if (Status s = bind_all(*events, options.events, "events"); !s) return s;
  spdlog::info("router listening frontend={} backend={} events={} data={} durability={} security={}",
               options.frontend, options.backend, options.events, options.data_dir,
               options.fsync ? "fsync" : "nosync", curve_on ? "curve" : "plaintext");
  return Status::ok();
}

// Rebuilds the in-memory queues from LMDB: leases become orphans waiting to be re-claimed,
// unfinished tasks go back to their queues (or the ETA heap), groups reload their records.
Status Router::Impl::recover() {
  const uint64_t now = now_steady_ms();
  const uint64_t grace = now + options.reclaim_grace_ms;
  std::unordered_map<Id, router::Lease, IdHash> persisted;
  if (Status s = ledger->for_each_lease([&](const Id& id, const router::Lease& l) { persisted[id] = l; }); !s)
    return s;
  if (Status s = ledger->begin(); !s) return s;
  size_t queued = 0, orphaned = 0, waiting = 0;
  std::vector<proto::TaskRecord> live;
  Status scan = ledger->for_each_task([&](const proto::TaskRecord& rec) {
    if (!is_terminal(rec.state)) live.push_back(rec);
  });
  if (!scan) return scan;
  for (auto& rec : live) {
    auto q = queue_index.find(rec.queue);
    if (q == queue_index.end()) {
      // A queue removed from the configuration: the task stays in LMDB, visible to status,
      // and runs again once the queue is declared.
      spdlog::warn("router task={} queue={} reason=queue-not-declared", rec.id.to_string(), rec.queue);
      continue;
    }
    const uint64_t key = router::order_key(rec.priority, rec.seq);
    router::GroupState* group = rec.group.is_nil() ? nullptr : load_group(rec.group);
    if (auto l = persisted.find(rec.id); l != persisted.end()) {
      leases[rec.id] = {"", l->second.attempt, rec.group, q->second, key, grace, 0, l->second.session};
      ++queue_running[q->second];
      if (group) ++group->admitted;
      orphan_deadline_ms = grace;
      ++orphaned;
    } else if ((rec.state == TaskState::kScheduled || rec.state == TaskState::kRetrying) && rec.eta_ms > now_unix_ms()) {
      scheduled.push({rec.eta_ms, key, q->second, rec.id, rec.group});
      ++waiting;
    } else {
      enqueue(q->second, key, rec.id, rec.group);
      ++queued;
    }
  }
  // Groups' `running` counters restart from the leases that survived.
  for (auto& [id, g] : groups) {
    g.record.running = 0;
    for (auto& [tid, l] : leases)
      if (l.group == id) ++g.record.running;
  }
  ledger->abort();
  spdlog::info("router recovered queued={} in_flight={} scheduled={} groups={} seq={}", queued,
               orphaned, waiting, groups.size(), ledger->meta().seq);
  return Status::ok();
}

uint64_t Router::Impl::poll_timeout_ms(uint64_t now) const {
  uint64_t next = now + 100;  // stop() is noticed within this bound
  next = std::min(next, next_heartbeat_ms);
  if (!waiters.empty()) next = std::min(next, now + 10);
  for (size_t i = 0; i < rates.size(); ++i)
    if (!rates[i].open() && !ready[i].empty()) next = std::min(next, now + rates[i].ms_until_open(now));
  if (!scheduled.empty()) {
    uint64_t unix_now = now_unix_ms();
    uint64_t due = scheduled.top().eta_ms;
    next = std::min(next, now + (due > unix_now ? due - unix_now : 0));
  }
  return next > now ? next - now : 0;
}

Status Router::Impl::run_loop() {
  started_steady_ms = now_steady_ms();
  next_heartbeat_ms = started_steady_ms;
  std::vector<zmq::pollitem_t> items = {{frontend->handle(), 0, ZMQ_POLLIN, 0},
                                        {backend->handle(), 0, ZMQ_POLLIN, 0}};
  while (!stopping.load(std::memory_order_relaxed)) {
    const uint64_t now = now_steady_ms();
    items[1].events = now >= storage.backend_resume_ms ? ZMQ_POLLIN : 0;
    try {
      wire::poll(items, std::chrono::milliseconds(poll_timeout_ms(now)));
    } catch (const zmq::error_t& e) {
      return Status(Code::kIo, std::string("poll: ") + e.what());
    }
    if (Status s = turn(items[0].revents & ZMQ_POLLIN, items[1].revents & ZMQ_POLLIN); !s) {
      spdlog::error("router stopping reason=\"{}\"", s.to_string());
      return s;
    }
  }
  spdlog::info("router stopped");
  return Status::ok();
}

// One turn: read what is waiting, apply it in one write transaction, run the timers,
// dispatch, commit, then send everything the turn produced.
Status Router::Impl::turn(bool frontend_ready, bool backend_ready) {
  check_storage(now_steady_ms());
  turn_status = Status::ok();
  dirty = false;
  turn_start = {submitted_total, succeeded_total, failed_total};
  answered_waiters.clear();
  if (Status s = ledger->begin(); !s) return roll_back_turn(s);

  for (int i = 0; frontend_ready && i < kMaxMessagesPerTurn; ++i) {
    auto in = wire::recv(*frontend, true);
    if (!in) break;
    on_frontend(in->routing_id, std::move(in->message), in->role);
  }
  for (int i = 0; backend_ready && i < kMaxMessagesPerTurn; ++i) {
    auto in = wire::recv(*backend, true);
    if (!in) break;
    on_backend(in->routing_id, std::move(in->message), in->role);
  }

  // Workers a send failed to reach last turn lose their leases in this one.
  for (const auto& rid : std::exchange(unreachable, {})) worker_lost(rid, "unreachable");
  const uint64_t now = now_steady_ms();
  release_scheduled(now_unix_ms());
  expire_workers(now);
  if (orphan_deadline_ms && now >= orphan_deadline_ms) requeue_orphans(now);
  expire_waiters(now);
  if (now >= next_housekeeping_ms) {
    next_housekeeping_ms = now + kHousekeepingMs;
    const auto& meta = ledger->meta();
    uint64_t by_retention = meta.seq > options.event_retention ? meta.seq - options.event_retention : 0;
    uint64_t upto = std::max(std::min(meta.confirmed, meta.seq), by_retention);
    if (upto >= meta.first_seq) {
      if (Status s = ledger->trim_events(upto, kTrimPerSecond); !s) fail_turn(s);
      dirty = true;
    }
    expire_results(now_unix_ms());
  }
  dispatch();
  write_groups();

  if (!turn_status) return roll_back_turn(turn_status);
  if (dirty || !turn_events.empty()) {
    if (Status s = ledger->commit(); !s) return roll_back_turn(s);
    commit_succeeded();
  } else {
    ledger->abort();
  }
  flush();
  if (now >= next_heartbeat_ms) {
    next_heartbeat_ms = now + options.heartbeat_ms;
    for (auto& [rid, w] : workers)
      if (!wire::send(*backend, proto::Heartbeat{0}, rid)) unreachable.push_back(rid);
    if (now - last_publish_ms >= kHugzIntervalMs) {
      wire::send(*events, proto::Hugz{ledger->meta().log_id, ledger->meta().seq});
      last_publish_ms = now;
    }
  }
  return Status::ok();
}

// Sends what the committed turn produced: replies, tasks, result acks, then the events.
void Router::Impl::flush() {
  for (auto& out : outbox) {
    zmq::socket_t& socket = out.backend ? *backend : *frontend;
    if (!wire::send(socket, out.message, out.routing_id) && out.backend)
      unreachable.push_back(out.routing_id);
  }
  outbox.clear();
  for (auto& [rid, w] : workers) {
    // Acks first: a task retried at once comes back in the same turn as its last result's ack.
    if (!w.acks.empty()) {
      wire::send(*backend, proto::ResultsAck{std::move(w.acks)}, rid);
      w.acks.clear();
    }
    if (!w.outgoing.empty()) {
      if (!wire::send(*backend, proto::Tasks{std::move(w.outgoing)}, rid)) unreachable.push_back(rid);
      w.outgoing.clear();
    }
  }
  if (!turn_events.empty()) {
    wire::send(*events, proto::EventBatch{ledger->meta().log_id, std::move(turn_events)});
    turn_events.clear();
    last_publish_ms = now_steady_ms();
  }
}

void Router::Impl::emit(proto::Event event) {
  event.ts_ms = now_unix_ms();
  if (Status s = ledger->append_event(event); !s) {
    fail_turn(s);
    return;
  }
  dirty = true;
  turn_events.push_back(std::move(event));
}

void Router::Impl::log_refusal(const std::string& what) {
  const uint64_t now = now_steady_ms();
  if (now - refusal_log_window_ms >= 1000) {
    refusal_log_window_ms = now;
    refusals_logged = 0;
  }
  if (++refusals_logged <= 5) spdlog::warn("router refused {}", what);
}

void Router::Impl::fail_turn(const Status& status) {
  if (turn_status) turn_status = status;
}

}  // namespace zb
