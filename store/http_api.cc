#include "common/text.h"
#include "store/http_api.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/log.h"
#include "store/cluster_view.h"
#include "store/control_request.h"
#include "store/http_json.h"
#include "store/read_your_writes.h"
#include "store/task_request.h"

namespace zb::store {

using nlohmann::json;

namespace {

// The submission's idempotency key: the Idempotency-Key header, else the body's
// "idempotency_key", else a new random one, so that every submission can be repeated safely.
Result<std::string> submission_key(const httplib::Request& req, const json& body) {
  std::optional<std::string> header, field;
  if (req.has_header("Idempotency-Key")) header = req.get_header_value("Idempotency-Key");
  if (auto it = body.find("idempotency_key"); it != body.end()) {
    if (!it->is_string()) return Status(Code::kBadRequest, "idempotency_key: must be a string");
    field = it->get<std::string>();
  }
  if ((header && header->empty()) || (field && field->empty()))
    return Status(Code::kBadRequest, "an idempotency key must not be empty (leave it out to have one assigned)");
  if (header && field && *header != *field)
    return Status(Code::kBadRequest, "the Idempotency-Key header and idempotency_key differ");
  std::string key = header ? *header : field.value_or("");
  if (key.size() > 200) return Status(Code::kBadRequest, "an idempotency key has at most 200 bytes");
  if (key.empty()) key = "http-" + Id::random().to_string();
  return key;
}

// Every answer to a submission names its key (header and body), so the caller can repeat it.
void send_submitted(httplib::Response& res, int status, json body, const std::string& key) {
  res.set_header("Idempotency-Key", key);
  body["idempotency_key"] = key;
  send_json(res, status, body);
}

// A submission that was not acknowledged. outcome_unknown (504): it was sent and no answer
// came, so it may or may not have been accepted; unavailable (503): it never reached the
// router, nothing was accepted. Other refusals (409 for a key reused with another body, 422,
// 507, ...) keep the router's code and message.
void send_submission_error(httplib::Response& res, const Status& s, const std::string& key) {
  std::string message = s.message();
  if (s.code() == Code::kOutcomeUnknown)
    message = "the batch may or may not have been accepted (" + s.message() +
              "); repeating the request with header Idempotency-Key: " + key +
              " is safe: if it was accepted, the repeat answers its ids and runs nothing twice";
  else if (s.code() == Code::kUnavailable)
    message = "nothing was accepted (" + s.message() + "); repeating the request is safe";
  res.set_header("Idempotency-Key", key);
  send_json(res, http_status(s.code()),
            json{{"error", {{"code", code_name(s.code())}, {"message", message}, {"idempotency_key", key}}}});
}

}  // namespace

std::unique_ptr<Client> ClientPool::take() {
  {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
  }
  ClientOptions o;
  o.router = router_;
  o.timeout = timeout_;
  o.curve = curve_;
  o.insecure_plaintext = true;  // the store checked its endpoints at start-up
  return std::move(Client::connect(o, &context_).value());
}

void ClientPool::give(std::unique_ptr<Client> c) {
  std::lock_guard lock(mu_);
  idle_.push_back(std::move(c));
}

ClusterView::ClusterView(ClientPool& pool)
    : ClusterView(Ask([&pool](const char* op) { return pool.with([&](Client& c) { return c.control(op); }); })) {}

void install_routes(HttpServer& server, StatusDb& db, Follower& follower, ClientPool& pool,
                    const HttpLimits& limits, const Authenticator& auth) {
  // Bodies are checked before they are read: cpp-httplib enforces its payload limit only for
  // Content-Length bodies, so chunked or length-less uploads are refused here.
  server.set_payload_max_length(limits.max_body_bytes);
  server.set_pre_routing_handler([limits, &auth](const httplib::Request& req, httplib::Response& res) {
    if (!auth.admit(req, res)) return httplib::Server::HandlerResponse::Handled;
    if (req.method == "POST" || req.method == "PUT") {
      if (req.has_header("Transfer-Encoding")) {
        send_error(res, Status(Code::kBadRequest, "chunked request bodies are not accepted; send Content-Length"));
        return httplib::Server::HandlerResponse::Handled;
      }
      const std::string len = req.get_header_value("Content-Length");
      if (!len.empty() && std::strtoull(len.c_str(), nullptr, 10) > limits.max_body_bytes) {
        send_error(res, Status(Code::kTooLarge, "request body exceeds " + std::to_string(limits.max_body_bytes) + " bytes"));
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  server.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404) send_error(res, Status(Code::kNotFound, "no route " + req.method + " " + req.path));
    else if (res.status == 413) send_error(res, Status(Code::kTooLarge, "request body too large"));
    else send_error(res, Status(res.status == 400 ? Code::kBadRequest : Code::kInternal,
                                "HTTP " + std::to_string(res.status) + " for " + req.method + " " + req.path));
  });
  server.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    spdlog::error("store http handler failed reason=\"{}\"", what);
    send_error(res, Status(Code::kInternal, what));
  });

  // What the submission checks need of the router and its workers; the handlers share it.
  auto cluster = std::make_shared<ClusterView>(pool);
  // The sequence numbers the submissions below were acknowledged with, for the reads.
  auto writes = std::make_shared<ReadYourWrites>(db, follower);

  // POST /batch[/celery]/<endpoint>: the guide's batch submission.
  struct SeedEndpoint {
    const char* path;
    const char* queue;
  };
  for (const auto& e : {SeedEndpoint{"agent-tasks", "agent_tasks"}, {"validation", "validation"},
                        {"tests", "tests"}, {"mcp-operations", "mcp_operations"}}) {
    for (const std::string prefix : {"/batch/celery/", "/batch/"}) {
      const std::string queue = e.queue;
      server.Post(prefix + e.path, [&pool, cluster, writes, queue, prefix, limits](const httplib::Request& req, httplib::Response& res) {
        auto body = parse_body(req);
        if (!body) return send_error(res, body.status());
        auto key = submission_key(req, *body);
        if (!key) return send_error(res, key.status());
        auto batch = parse_seed_batch(*body, queue, *cluster, limits.max_batch_tasks);
        if (!batch) return send_submission_error(res, batch.status(), *key);
        GroupOptions go;
        go.parallel = batch->parallel;
        go.chunk_tasks = batch->tasks.size();  // one message: the router accepts or refuses it whole
        go.idempotency_key = *key;
        auto receipt = pool.with([&](Client& c) { return c.submit_group(batch->tasks, go); });
        if (!receipt) return send_submission_error(res, receipt.status(), *key);
        writes->acknowledged(receipt->seq);
        const std::string gid = receipt->group.to_string();
        send_submitted(res, 200,
                       json{{"backend", "zbatch"}, {"group_id", gid}, {"status", "submitted"},
                            {"total_tasks", batch->tasks.size()}, {"monitor_url", prefix + "group/" + gid}},
                       *key);
      });
    }
  }

  // Lets the store apply the router's log up to what this store's submissions were
  // acknowledged with (for at most 2 s); true when it did. No request reaches the router.
  auto catch_up = [writes]() { return writes->catch_up(); };
  auto get_task = [&, catch_up](const Id& id) -> Result<TaskStatus> {
    auto t = db.task(id);
    if (!t) return t.status();
    if (t->has_value()) return std::move(**t);
    // Not applied here yet (a submission a moment ago): catch up with the router's log rather
    // than answer the router's record, which the store's own, older copy would contradict on
    // the next read (a task seen failed, then running again).
    if (catch_up()) {
      t = db.task(id);
      if (!t) return t.status();
      if (t->has_value()) return std::move(**t);
    }
    // Still not here: the store is far behind (the router's record, read-your-writes), or no
    // such task (the router's 404).
    auto rec = pool.with([&](Client& c) { return c.status(id); });
    if (!rec) return rec.status();
    return from_record(*rec);
  };
  auto task_handler = [&, get_task](bool full) {
    return [&, get_task, full](const httplib::Request& req, httplib::Response& res) {
      auto id = Id::parse(req.matches[1].str());
      if (!id) return send_error(res, Status(Code::kNotFound, "no task " + req.matches[1].str()));
      auto t = get_task(*id);
      if (!t) return send_error(res, t.status());
      send_json(res, 200, task_json(*t, full));
    };
  };
  auto group_handler = [&, catch_up, limits](bool full) {
    return [&db, &pool, catch_up, limits, full](const httplib::Request& req, httplib::Response& res) {
      auto id = Id::parse(req.matches[1].str());
      if (!id) return send_error(res, Status(Code::kNotFound, "no group " + req.matches[1].str()));
      auto offset = query_size(req, "offset", 0, SIZE_MAX);
      auto limit = query_size(req, "limit", limits.max_group_results, limits.max_group_results);
      if (!offset) return send_error(res, offset.status());
      if (!limit) return send_error(res, limit.status());
      auto g = db.group(*id);
      if (!g) return send_error(res, g.status());
      if (!g->has_value()) {
        // Not applied here yet (a submission a moment ago): catch up with the router's log
        // first, so that counters and results come from one consistent view.
        catch_up();
        g = db.group(*id);
        if (!g) return send_error(res, g.status());
      }
      GroupStatus group;
      if (g->has_value()) {
        group = **g;
      } else {
        auto rec = pool.with([&](Client& c) { return c.group(*id); });
        if (!rec) return send_error(res, rec.status());
        group.id = rec->id;
        group.total = rec->total;
        group.succeeded = rec->succeeded;
        group.failed = rec->failed;
        group.revoked = rec->revoked;
        group.running = rec->running;
        group.parallel = rec->parallel;
        group.sealed = false;  // the store cannot list its results yet: not ready for the caller
      }
      auto tasks = db.group_tasks(*id, *offset, *limit);
      if (!tasks) return send_error(res, tasks.status());
      json out = group_counts(group);
      json results = json::array();
      for (const auto& t : *tasks) {
        if (full) {
          results.push_back(task_json(t, false));
        } else {
          results.push_back(json{{"task_id", t.id.to_string()}, {"id", t.ref.empty() ? json(nullptr) : json(t.ref)},
                                 {"status", seed_status(t.state)}, {"result", json_or_text(t.result)},
                                 {"error", t.error.empty() ? json(nullptr) : json(t.error)}});
        }
      }
      out[full ? "tasks" : "results"] = results;
      out["offset"] = *offset;
      out["results_truncated"] = *offset + tasks->size() < group.total;
      send_json(res, 200, out);
    };
  };
  for (const std::string prefix : {"/batch/celery/", "/batch/"}) {
    server.Get(prefix + "task/([^/]+)", task_handler(false));
    server.Get(prefix + "group/([^/]+)", group_handler(false));
  }
  server.Get("/api/v1/tasks/([^/]+)", task_handler(true));
  server.Get("/api/v1/groups/([^/]+)", group_handler(true));

  // POST /api/v1/tasks: one task ({"queue","kind","payload",...}) or many ({"tasks":[...]}).
  server.Post("/api/v1/tasks", [&pool, cluster, writes, limits](const httplib::Request& req, httplib::Response& res) {
    auto body = parse_body(req);
    if (!body) return send_error(res, body.status());
    auto key = submission_key(req, *body);
    if (!key) return send_error(res, key.status());
    auto submission = parse_api_submission(*body, *cluster, limits.max_batch_tasks);
    if (!submission) return send_submission_error(res, submission.status(), *key);
    if (!submission->group) {
      auto r = pool.with([&](Client& c) { return c.submit(submission->tasks.front(), *key); });
      if (!r) return send_submission_error(res, r.status(), *key);
      writes->acknowledged(r->seq);
      const std::string id = r->task.to_string();
      return send_submitted(res, r->duplicate ? 200 : 201,
                            json{{"task_id", id}, {"url", "/api/v1/tasks/" + id}, {"duplicate", r->duplicate}}, *key);
    }
    GroupOptions go;
    go.parallel = submission->parallel;
    go.chunk_tasks = submission->tasks.size();
    go.idempotency_key = *key;
    auto receipt = pool.with([&](Client& c) { return c.submit_group(submission->tasks, go); });
    if (!receipt) return send_submission_error(res, receipt.status(), *key);
    writes->acknowledged(receipt->seq);
    json ids = json::array();
    for (const auto& id : receipt->tasks) ids.push_back(id.to_string());
    send_submitted(res, receipt->duplicate ? 200 : 201,
                   json{{"group_id", receipt->group.to_string()}, {"task_ids", ids},
                        {"url", "/api/v1/groups/" + receipt->group.to_string()}, {"duplicate", receipt->duplicate}},
                   *key);
  });

  // Control, forwarded to the router.
  // Handlers outlive this function: they capture `pool` (owned by the store) and values only.
  auto forward = [&pool](const std::string& op, const std::string& args, const std::string& pick) {
    return [&pool, op, args, pick](const httplib::Request&, httplib::Response& res) {
      auto reply = pool.with([&](Client& c) { return c.control(op, args); });
      if (!reply) return send_error(res, reply.status());
      json j = json::parse(*reply, nullptr, false);
      send_json(res, 200, pick.empty() ? j : j[pick]);
    };
  };
  server.Get("/api/v1/workers", forward("inspect.stats", "{}", "workers"));
  server.Get("/api/v1/queues", forward("inspect.queues", "{}", "queues"));
  server.Get("/api/v1/ping", forward("ping", "{}", ""));
  server.Get("/api/v1/inspect/([^/]+)", [forward](const httplib::Request& req, httplib::Response& res) {
    const std::string what = req.matches[1].str();
    if (what != "active" && what != "reserved" && what != "scheduled" && what != "stats" && what != "registered" &&
        what != "queues" && what != "failed")
      return send_error(res, Status(Code::kNotFound, "inspect what? active|reserved|scheduled|stats|registered|queues|failed"));
    forward("inspect." + what, "{}", "")(req, res);
  });
  server.Post("/api/v1/purge", [forward](const httplib::Request& req, httplib::Response& res) {
    auto body = parse_optional_body(req);
    if (!body) return send_error(res, body.status());
    auto args = purge_args(*body);
    if (!args) return send_error(res, args.status());
    forward("purge", json_text(*args), "")(req, res);
  });

  // Dead letters: GET /api/v1/dead?queue=Q&limit=N&after=ID; POST /api/v1/dead/retry {"queue","limit"}.
  server.Get("/api/v1/dead", [&pool](const httplib::Request& req, httplib::Response& res) {
    json args = json::object();
    if (req.has_param("queue")) args["queue"] = req.get_param_value("queue");
    if (req.has_param("after")) args["after"] = req.get_param_value("after");
    auto limit = query_size(req, "limit", 100, 1000);
    if (!limit) return send_error(res, limit.status());
    if (*limit == 0) return send_error(res, Status(Code::kBadRequest, "limit must be 1..1000"));
    args["limit"] = *limit;
    auto reply = pool.with([&](Client& c) { return c.control("inspect.failed", json_text(args)); });
    if (!reply) return send_error(res, reply.status());
    send_json(res, 200, json::parse(*reply, nullptr, false));
  });
  server.Post("/api/v1/dead/retry", [&pool](const httplib::Request& req, httplib::Response& res) {
    auto body = parse_optional_body(req);
    if (!body) return send_error(res, body.status());
    // The router checks the values (queue known, limit in range).
    auto args = dead_retry_args(*body);
    if (!args) return send_error(res, args.status());
    auto reply = pool.with([&](Client& c) { return c.control("retry.failed", json_text(*args)); });
    if (!reply) return send_error(res, reply.status());
    send_json(res, 200, json::parse(*reply, nullptr, false));
  });

  // POST /api/v1/tasks/{id}/revoke {"terminate": bool} and /retry {}, forwarded to the router.
  for (const std::string op : {"revoke", "retry"}) {
    server.Post("/api/v1/tasks/([^/]+)/" + op, [&pool, op](const httplib::Request& req, httplib::Response& res) {
      auto body = parse_optional_body(req);
      if (!body) return send_error(res, body.status());
      auto args = task_control_args(op, req.matches[1].str(), *body);
      if (!args) return send_error(res, args.status());
      auto reply = pool.with([&](Client& c) { return c.control(op, json_text(*args)); });
      if (!reply) return send_error(res, reply.status());
      send_json(res, 200, json::parse(*reply, nullptr, false));
    });
  }

  server.Get("/healthz", [](const httplib::Request&, httplib::Response& res) { send_json(res, 200, json{{"status", "ok"}}); });
  server.Get("/readyz", [&](const httplib::Request&, httplib::Response& res) {
    const bool ready = follower.caught_up();
    send_json(res, ready ? 200 : 503,
              json{{"ready", ready}, {"applied_seq", db.applied()}, {"router_head_seq", follower.head_seq()}});
  });

  server.Get("/metrics", [&](const httplib::Request&, httplib::Response& res) {
    std::ostringstream out;
    auto counts = db.counters();
    if (!counts) return send_error(res, counts.status());
    const Counters& c = *counts;
    out << "# HELP zbatch_tasks_total Tasks by life-cycle event.\n# TYPE zbatch_tasks_total counter\n";
    for (auto [name, v] : {std::pair{"received", c.received}, {"started", c.started}, {"succeeded", c.succeeded},
                           {"failed", c.failed}, {"retried", c.retried}, {"revoked", c.revoked}})
      out << "zbatch_tasks_total{event=\"" << name << "\"} " << v << "\n";
    out << "# HELP zbatch_task_runtime_seconds Handler run time of finished tasks.\n"
           "# TYPE zbatch_task_runtime_seconds histogram\n";
    uint64_t cumulative = 0;
    for (size_t i = 0; i < std::size(kRuntimeBucketsMs); ++i) {
      cumulative += c.runtime_buckets[i];
      out << "zbatch_task_runtime_seconds_bucket{le=\"" << kRuntimeBucketsMs[i] / 1000 << "\"} " << cumulative << "\n";
    }
    cumulative += c.runtime_buckets.back();
    out << "zbatch_task_runtime_seconds_bucket{le=\"+Inf\"} " << cumulative << "\n"
        << "zbatch_task_runtime_seconds_sum " << c.runtime_sum_us / 1e6 << "\n"
        << "zbatch_task_runtime_seconds_count " << cumulative << "\n";
    out << "# HELP zbatch_events_applied Last router event applied by the store.\n# TYPE zbatch_events_applied gauge\n"
        << "zbatch_events_applied " << db.applied() << "\n";
    auto queues = pool.with([&](Client& cl) { return cl.control("inspect.queues"); });
    auto stats = pool.with([&](Client& cl) { return cl.control("inspect.stats"); });
    out << "# HELP zbatch_router_up Whether the router answered this scrape.\n# TYPE zbatch_router_up gauge\n"
        << "zbatch_router_up " << (queues && stats ? 1 : 0) << "\n";
    if (queues) {
      json q = json::parse(*queues, nullptr, false);
      if (!q.is_object() || !q.contains("queues") || !q["queues"].is_array()) q = json{{"queues", json::array()}};
      out << "# HELP zbatch_queue_depth Tasks ready to run.\n# TYPE zbatch_queue_depth gauge\n";
      for (const auto& e : q["queues"]) out << "zbatch_queue_depth{queue=\"" << e["name"].get<std::string>() << "\"} " << e["depth"] << "\n";
      out << "# HELP zbatch_queue_running Tasks running.\n# TYPE zbatch_queue_running gauge\n";
      for (const auto& e : q["queues"]) out << "zbatch_queue_running{queue=\"" << e["name"].get<std::string>() << "\"} " << e["running"] << "\n";
      out << "# HELP zbatch_queue_scheduled Tasks waiting for their ETA.\n# TYPE zbatch_queue_scheduled gauge\n";
      for (const auto& e : q["queues"]) out << "zbatch_queue_scheduled{queue=\"" << e["name"].get<std::string>() << "\"} " << e["scheduled"] << "\n";
    }
    if (stats) {
      const json s = json::parse(*stats, nullptr, false);
      const json none = json::object();
      const json& workers = s.is_object() && s.contains("workers") ? s["workers"] : none;
      const json& router = s.is_object() && s.contains("router") && s["router"].is_object() ? s["router"] : none;
      auto count = [](const json& j, const char* key) {
        return j.contains(key) && j[key].is_number_unsigned() ? j[key].get<uint64_t>() : uint64_t{0};
      };
      out << "# HELP zbatch_workers Workers online.\n# TYPE zbatch_workers gauge\nzbatch_workers "
          << (workers.is_array() ? workers.size() : 0) << "\n";
      out << "# HELP zbatch_router_storage_full Whether the router refuses submissions for want of space.\n"
             "# TYPE zbatch_router_storage_full gauge\nzbatch_router_storage_full "
          << (router.contains("storage_full") && router["storage_full"] == true ? 1 : 0) << "\n";
      out << "# HELP zbatch_router_bad_frames_total Messages the router could not decode.\n"
             "# TYPE zbatch_router_bad_frames_total counter\nzbatch_router_bad_frames_total "
          << count(router, "bad_frames") << "\n";
      out << "# HELP zbatch_router_late_requests_total Requests refused for arriving after their deadline.\n"
             "# TYPE zbatch_router_late_requests_total counter\nzbatch_router_late_requests_total "
          << count(router, "late_requests") << "\n";
      // docs/SECURITY.md: what the router refused on its ZeroMQ sockets, by reason.
      const json& refused = router.contains("refused") && router["refused"].is_object() ? router["refused"] : none;
      out << "# HELP zbatch_router_refused_total Messages and connections the router refused, by reason.\n"
             "# TYPE zbatch_router_refused_total counter\n";
      for (const char* reason : {"unknown_keys", "forbidden", "foreign_results", "foreign_claims", "foreign_started",
                                 "bad_counts"})
        out << "zbatch_router_refused_total{reason=\"" << reason << "\"} " << count(refused, reason) << "\n";
    }
    res.set_content(out.str(), "text/plain; version=0.0.4");
  });
}

}  // namespace zb::store
