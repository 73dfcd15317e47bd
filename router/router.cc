// Sockets, timers and the turn's transaction. No policy lives here.
#include "router/router.h"

#include <chrono>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
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
    if (c.name == "agent_tasks") c.default_kind = "agent", c.fair = true;  // batches of agents take turns
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
  if (Status s = check_pools(options.pools, options.queues); !s) return s;

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
  if (const auto& r = ledger->restored(); r.restored)
    spdlog::warn("router restored the last durable commit after the machine restarted data={} commit={} "
                 "dropped_through={}: what was dropped had not been acknowledged",
                 options.data_dir, r.durable_txn, r.dropped_txn);
  else if (r.machine_restarted)
    spdlog::info("router found the last durable commit on disk after the machine restarted data={} commit={}: "
                 "nothing to restore", options.data_dir, r.durable_txn);
  published_seq = ledger->meta().seq;
  core.emplace(options, *ledger, stats);
  if (Status s = core->recover(); !s) return s;

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

Status Router::Impl::run_loop() {
  stats.started_steady_ms = now_steady_ms();
  next_heartbeat_ms = stats.started_steady_ms;
  std::vector<zmq::pollitem_t> items = {{frontend->handle(), 0, ZMQ_POLLIN, 0},
                                        {backend->handle(), 0, ZMQ_POLLIN, 0},
                                        {nullptr, -1, ZMQ_POLLIN, 0}};
  while (!stopping.load(std::memory_order_relaxed)) {
    const uint64_t now = now_steady_ms();
    items[1].events = now >= storage.backend_resume_ms ? ZMQ_POLLIN : 0;
    // The sync thread's wake-up (the ledger is opened again after some failed writes).
    items[2].fd = ledger->durable_fd();
    items[2].events = items[2].fd >= 0 ? ZMQ_POLLIN : 0;
    try {
      wire::poll(items, std::chrono::milliseconds(core->poll_timeout_ms(now, next_heartbeat_ms)));
    } catch (const zmq::error_t& e) {
      return Status(Code::kIo, std::string("poll: ") + e.what());
    }
    if (items[2].revents & ZMQ_POLLIN) ledger->drain_durable();
    // A commit that cannot be made durable must not be acknowledged, nor anything after it.
    if (Status s = ledger->durability_error(); !s) {
      spdlog::error("router stopping: commits no longer reach the disk data={} reason=\"{}\"", options.data_dir,
                    s.to_string());
      return s;
    }
    release_durable();
    if (Status s = turn(items[0].revents & ZMQ_POLLIN, items[1].revents & ZMQ_POLLIN); !s) {
      spdlog::error("router stopping reason=\"{}\"", s.to_string());
      return s;
    }
  }
  // What was committed is made durable and acknowledged before the router goes.
  if (!held.empty() && !ledger->wait_durable(held.back().txn, 10'000))
    spdlog::warn("router stopping with unacknowledged commits: the sync did not finish in 10 s");
  release_durable();
  spdlog::info("router stopped");
  return Status::ok();
}

// One turn: read what is waiting, apply it in one write transaction, run the timers,
// dispatch, commit, then send everything the turn produced.
Status Router::Impl::turn(bool frontend_ready, bool backend_ready) {
  const auto began = std::chrono::steady_clock::now();
  check_storage(now_steady_ms());
  turn_start = {stats.submitted, stats.succeeded, stats.failed};
  if (Status s = ledger->begin(); !s) return roll_back_turn(s);
  core->begin_turn();

  for (int i = 0; frontend_ready && i < kMaxMessagesPerTurn; ++i) {
    auto in = wire::recv(*frontend, true);
    if (!in) break;
    core->on_frontend(in->routing_id, std::move(in->message), in->role);
  }
  // After a failed write, one worker message per turn (a worker sends at most 256 results in
  // one): a turn that must fit in the pages LMDB has freed stays small.
  const int backend_budget = storage.write_failed ? 1 : kMaxMessagesPerTurn;
  for (int i = 0; backend_ready && i < backend_budget; ++i) {
    auto in = wire::recv(*backend, true);
    if (!in) break;
    core->on_backend(in->routing_id, std::move(in->message), in->role);
  }

  // Workers a send failed to reach last turn lose their leases in this one.
  for (const auto& rid : std::exchange(unreachable, {})) core->worker_unreachable(rid);
  const uint64_t now = now_steady_ms();
  core->tick(now, now_unix_ms());
  if (now >= next_housekeeping_ms) {
    next_housekeeping_ms = now + kHousekeepingMs;
    core->housekeep(now_unix_ms());
  }
  core->dispatch();
  if (Status s = core->end_turn(); !s) return roll_back_turn(s);
  if (core->changed()) {
    if (Status s = ledger->commit(); !s) return roll_back_turn(s);
    stats.turn_time.add(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - began).count()));
    commit_succeeded();
  } else {
    ledger->abort();
  }
  flush();
  if (now >= next_heartbeat_ms) send_heartbeats(now);
  return Status::ok();
}

void Router::Impl::send_heartbeats(uint64_t now) {
  next_heartbeat_ms = now + options.heartbeat_ms;
  for (const auto& rid : core->worker_ids())
    if (!wire::send(*backend, proto::Heartbeat{0}, rid)) unreachable.push_back(rid);
  if (now - last_publish_ms >= kHugzIntervalMs) {
    wire::send(*events, proto::Hugz{ledger->meta().log_id, published_seq});
    last_publish_ms = now;
  }
}

void Router::Impl::flush() {
  router::Effects& out = core->effects();
  // This turn's commit, or the last one before it when the turn changed nothing: even a read
  // must not answer with what is not durable yet.
  Held h;
  h.txn = ledger->last_commit();
  h.seq = ledger->meta().seq;
  const bool hold = !held.empty() || ledger->durable() < h.txn;
  for (auto& m : out.messages) {
    if (hold && m.backend) ++held_commands[m.routing_id];
    h.messages.push_back(std::move(m));
  }
  for (auto& [rid, mail] : out.workers) {
    if (!mail.acks.empty()) h.acks.emplace_back(rid, std::move(mail.acks));
    // A task needs only its turn's commit: a router that crashes before the commit is durable
    // either still has it (a process crash) or comes back without that lease, when the
    // worker's claim of the task is adopted. It follows a held command to the same worker
    // (a Welcome first).
    if (!mail.tasks.empty()) {
      if (!hold || held_commands.count(rid)) h.tasks.emplace_back(rid, std::move(mail.tasks));
      else if (!wire::send(*backend, proto::Tasks{std::move(mail.tasks)}, rid)) unreachable.push_back(rid);
    }
    if (!mail.durable_tasks.empty()) h.tasks.emplace_back(rid, std::move(mail.durable_tasks));
  }
  h.events = std::move(out.events);
  // Live output is not state: it goes out now, durable or not (docs/STREAMING.md).
  if (!out.output.empty()) wire::send(*events, proto::Output{std::move(out.output)});
  out.clear();
  if (hold) held.push_back(std::move(h));
  else send_held(h);
}

void Router::Impl::release_durable() {
  const uint64_t durable = ledger->durable();
  while (!held.empty() && held.front().txn <= durable) {
    Held h = std::move(held.front());
    held.pop_front();
    for (const auto& m : h.messages)
      if (m.backend) {
        auto it = held_commands.find(m.routing_id);
        if (it != held_commands.end() && --it->second == 0) held_commands.erase(it);
      }
    send_held(h);
  }
}

void Router::Impl::send_held(Held& h) {
  for (auto& m : h.messages) {
    if (auto* ack = std::get_if<proto::SubmitAck>(&m.message)) ack->seq = h.seq;
    zmq::socket_t& socket = m.backend ? *backend : *frontend;
    if (!wire::send(socket, m.message, m.routing_id) && m.backend) unreachable.push_back(m.routing_id);
  }
  // Acks before tasks: a task retried at once comes back in the same turn as its last result's ack.
  for (auto& [rid, acks] : h.acks) wire::send(*backend, proto::ResultsAck{std::move(acks)}, rid);
  for (auto& [rid, tasks] : h.tasks)
    if (!wire::send(*backend, proto::Tasks{std::move(tasks)}, rid)) unreachable.push_back(rid);
  if (!h.events.empty()) {
    wire::send_encoded(*events, h.events.encode_batch(ledger->meta().log_id));
    last_publish_ms = now_steady_ms();
  }
  published_seq = std::max(published_seq, h.seq);
}

}  // namespace zb
