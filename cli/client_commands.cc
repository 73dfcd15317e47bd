// The client commands: submit, status, group, wait, inspect, purge, revoke, retry, ping.
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/text.h"
#include "cli/commands.h"
#include "cli/curve_flags.h"
#include "cli/format.h"
#include "client/client.h"
#include "eager/eager.h"
#include "common/clock.h"

namespace zb::cli {
namespace {

using nlohmann::json;

struct Common {
  std::string router = ClientOptions{}.router;
  double timeout_s = 10;
  bool json_out = false;
  PeerCurveFlags curve;
};

void add_common(CLI::App* cmd, Common& c) {
  cmd->add_option("--router", c.router, "The router's frontend endpoint")->envname("ZBATCH_ROUTER");
  add_peer_curve_flags(cmd, c.curve);
  cmd->add_option("--timeout", c.timeout_s, "Seconds to wait for each answer of the router");
  cmd->add_flag("--json", c.json_out, "Machine-readable output");
}

// The command's client, kept until the process exits (also through fail()). With
// ZBATCH_ALWAYS_EAGER=1 it is a client of an in-process cluster (eager/eager.h) that lives as
// long; the client is destroyed first.
struct Connection {
  std::unique_ptr<EagerCluster> eager;
  std::unique_ptr<Client> client;
  ~Connection() { client.reset(); }
};

Client* connect(const Common& c) {
  static Connection connection;
  if (c.timeout_s <= 0) fail(kExitUsage, "--timeout must be > 0");
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(c.timeout_s * 1000));
  if (eager_from_environment()) {
    auto cluster = EagerCluster::start();
    if (!cluster) fail(kExitFailed, "eager mode: " + cluster.status().message());
    connection.eager = std::move(cluster.value());
    auto client = connection.eager->client(timeout);
    if (!client) fail(kExitFailed, client.status().message());
    connection.client = std::move(client.value());
    return connection.client.get();
  }
  ClientOptions o;
  if (!c.router.empty()) o.router = c.router;
  else if (const char* env = std::getenv("ZBATCH_ROUTER"); env && *env) o.router = env;
  o.timeout = timeout;
  o.curve = peer_keys(c.curve);
  o.insecure_plaintext = c.curve.insecure_plaintext;
  auto client = Client::connect(o);
  if (!client) fail(kExitUsage, client.status().message());
  connection.client = std::move(client.value());
  return connection.client.get();
}

template <typename T>
T must(Result<T> r) {
  if (!r) {
    const Code code = r.status().code();
    fail(code == Code::kUnavailable ? kExitUnavailable
         : (code == Code::kBadRequest || code == Code::kUnprocessable || code == Code::kNotFound) ? kExitUsage
                                                                                                    : kExitFailed,
         r.status().message());
  }
  return std::move(r.value());
}

Id parse_id(const std::string& text, const char* what) {
  auto id = Id::parse(text);
  if (!id) fail(kExitUsage, std::string(what) + " '" + text + "' is not a valid id");
  return *id;
}

json result_json(const std::string& text) {
  if (text.empty()) return nullptr;
  json j = json::parse(text, nullptr, false);
  return j.is_discarded() ? json(text) : j;
}

json task_json(const proto::TaskRecord& r) {
  return json{{"id", r.id.to_string()}, {"ref", r.ref}, {"queue", r.queue}, {"kind", r.kind},
              {"state", state_name(r.state)}, {"attempt", r.attempt}, {"priority", r.priority},
              {"group", r.group.is_nil() ? json(nullptr) : json(r.group.to_string())},
              {"worker", r.worker}, {"created_ms", r.created_ms}, {"eta_ms", r.eta_ms},
              {"finished_ms", r.finished_ms}, {"result", result_json(r.result)},
              {"error", r.error.empty() ? json(nullptr) : json(r.error)}};
}

// A finished group with a task that did not succeed ends the command with kExitFailed, as
// `zbatch wait` does.
void fail_unless_all_succeeded(const proto::GroupRecord& g) {
  if (g.succeeded == g.total) return;
  fail(kExitFailed, "group " + g.id.to_string() + ": " + std::to_string(g.failed) + " of " + std::to_string(g.total) +
                        " task(s) failed, " + std::to_string(g.revoked) + " revoked");
}

json group_json(const proto::GroupRecord& g) {
  const double progress = g.total ? 100.0 * g.completed() / g.total : (g.sealed ? 100.0 : 0.0);
  return json{{"group_id", g.id.to_string()}, {"total", g.total}, {"completed", g.completed()},
              {"successful", g.succeeded}, {"failed", g.failed}, {"revoked", g.revoked},
              {"running", g.running}, {"parallel", g.parallel}, {"progress", std::round(progress * 10) / 10},
              {"ready", g.ready()}};
}

// Parses a payload, refusing what is not JSON (nothing is sent then) with the parser's whole
// reason, which names the byte where it stopped.
std::string valid_payload(const std::string& text, const std::string& where) {
  try {
    return json_text(json::parse(text));
  } catch (const json::parse_error& e) {
    fail(kExitUsage, where + "payload is not valid JSON: " + e.what());
  }
}

uint64_t parse_eta(const std::string& text) {
  // Unix seconds, or an ISO-8601 UTC time "2026-01-02T03:04:05Z".
  char* end = nullptr;
  double secs = std::strtod(text.c_str(), &end);
  if (end && *end == '\0' && secs > 0) return static_cast<uint64_t>(secs * 1000);
  std::tm tm{};
  std::istringstream in(text);
  in >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%S");
  if (in.fail()) fail(kExitUsage, "--eta must be unix seconds or YYYY-MM-DDTHH:MM:SSZ, got '" + text + "'");
  return static_cast<uint64_t>(timegm(&tm)) * 1000;
}

void print_task(const proto::TaskRecord& r, bool as_json) {
  if (as_json) {
    std::cout << json_text(task_json(r)) << "\n";
    return;
  }
  std::cout << r.id.to_string() << "  " << state_name(r.state) << "  queue=" << r.queue << " kind=" << r.kind
            << " attempt=" << r.attempt;
  if (!r.worker.empty()) std::cout << " worker=" << r.worker;
  std::cout << "\n";
  if (!r.result.empty()) std::cout << "result: " << r.result << "\n";
  if (!r.error.empty()) std::cout << "error: " << r.error << "\n";
}

}  // namespace

void add_client_commands(CLI::App& app) {
  // zbatch submit
  {
    auto* cmd = app.add_subcommand("submit", "Submit a task (or JSON lines from stdin as one group with '-')");
    struct Flags {
      Common c;
      std::string queue, kind, payload, eta;
      int priority = -1;
      double countdown = 0;
      bool wait = false;
      uint32_t parallel = 0;
      int max_retries = -1;
      double time_limit = 0, soft_time_limit = 0;
      std::string idempotency_key;
    };
    auto f = std::make_shared<Flags>();
    add_common(cmd, f->c);
    cmd->add_option("-Q,--queue", f->queue, "Queue (default: default)");
    cmd->add_option("--kind", f->kind, "Task kind (default: the queue's handler)");
    cmd->add_option("--priority", f->priority, "0..255, higher first (default: the queue's)")
        ->check(CLI::Range(0, 255))
        ->default_str("");
    auto* countdown = cmd->add_option("--countdown", f->countdown, "Run in S seconds (default: now)")->check(CLI::NonNegativeNumber);
    cmd->add_option("--eta", f->eta, "Run at this time, unix seconds or ISO-8601 UTC (default: now)")->excludes(countdown);
    cmd->add_option("--parallel", f->parallel, "With '-': run at most N tasks of the group at once (0 = no limit)");
    cmd->add_option("--max-retries", f->max_retries, "Retries after a failed attempt (default: the queue's)")->default_str("");
    cmd->add_option("--time-limit", f->time_limit, "Hard time limit of an attempt, seconds (default: the queue's)")
        ->check(CLI::Range(0.0, 4e6))
        ->default_str("");
    cmd->add_option("--soft-time-limit", f->soft_time_limit, "Soft time limit of an attempt, seconds (default: the queue's)")
        ->check(CLI::Range(0.0, 4e6))
        ->default_str("");
    cmd->add_option("--idempotency-key", f->idempotency_key,
                    "A repeat with the same key returns the first submission's ids and runs nothing twice (default: none)");
    cmd->add_flag("--wait", f->wait, "Wait for the result and print it (a group: wait for all; exit 1 when one failed)");
    cmd->add_option("payload", f->payload, "Payload JSON, or '-' for JSON lines on stdin")->required();
    cmd->callback([f] {
      proto::TaskSpec spec;
      spec.queue = f->queue;
      spec.kind = f->kind;
      spec.priority = f->priority;
      spec.max_retries = f->max_retries;
      spec.hard_limit_ms = static_cast<uint32_t>(f->time_limit * 1000);
      spec.soft_limit_ms = static_cast<uint32_t>(f->soft_time_limit * 1000);
      if (f->countdown > 0) spec.eta_ms = now_unix_ms() + static_cast<uint64_t>(f->countdown * 1000);
      if (!f->eta.empty()) spec.eta_ms = parse_eta(f->eta);
      auto client = connect(f->c);
      if (f->payload == "-") {
        std::vector<proto::TaskSpec> tasks;
        std::string line;
        size_t n = 0;
        while (std::getline(std::cin, line)) {
          ++n;
          if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
          proto::TaskSpec t = spec;
          t.payload = valid_payload(line, "line " + std::to_string(n) + ": ");
          tasks.push_back(std::move(t));
        }
        if (tasks.empty()) fail(kExitUsage, "no tasks on stdin");
        GroupOptions go;
        go.parallel = f->parallel;
        go.idempotency_key = f->idempotency_key;
        auto receipt = must(client->submit_group(tasks, go));
        // The group id alone on stdout (scripts read it: `G=$(zbatch submit - < tasks.jsonl)`),
        // the task ids too only as JSON.
        if (f->c.json_out) {
          json ids = json::array();
          for (const auto& id : receipt.tasks) ids.push_back(id.to_string());
          std::cout << json_text(json{{"group_id", receipt.group.to_string()}, {"tasks", ids}}) << std::endl;
        } else {
          std::cout << receipt.group.to_string() << std::endl;
        }
        if (f->wait) {
          proto::GroupRecord g;
          for (;;) {
            g = must(client->group(receipt.group));
            if (g.ready()) break;
            must(client->wait(std::span<const Id>(receipt.tasks).subspan(0, 1), std::chrono::milliseconds(200)));
          }
          fail_unless_all_succeeded(g);
        }
        return;
      }
      spec.payload = valid_payload(f->payload, "");
      SubmitReceipt sr = must(client->submit(spec, f->idempotency_key));
      Id id = sr.task;
      if (!f->wait) {
        std::cout << (f->c.json_out ? json_text(json{{"id", id.to_string()}, {"duplicate", sr.duplicate}}) : id.to_string()) << "\n";
        return;
      }
      proto::TaskRecord rec;
      for (;;) {
        auto got = must(client->wait(std::span<const Id>(&id, 1), std::chrono::milliseconds(60000)));
        if (got.size() == 1 && is_terminal(got[0].state)) {
          rec = std::move(got[0]);
          break;
        }
      }
      if (f->c.json_out) std::cout << json_text(task_json(rec)) << "\n";
      else if (rec.state == TaskState::kSucceeded) std::cout << rec.result << "\n";
      if (rec.state != TaskState::kSucceeded)
        fail(kExitFailed, "task " + id.to_string() + " " + std::string(state_name(rec.state)) +
                              (rec.error.empty() ? "" : ": " + rec.error));
    });
  }
  // zbatch status
  {
    auto* cmd = app.add_subcommand("status", "Show a task");
    auto c = std::make_shared<Common>();
    auto id = std::make_shared<std::string>();
    add_common(cmd, *c);
    cmd->add_option("task_id", *id, "Task id")->required();
    cmd->callback([c, id] {
      auto client = connect(*c);
      print_task(must(client->status(parse_id(*id, "task id"))), c->json_out);
    });
  }
  // zbatch group
  {
    auto* cmd = app.add_subcommand("group", "Show a group's progress");
    auto c = std::make_shared<Common>();
    auto id = std::make_shared<std::string>();
    auto wait = std::make_shared<bool>(false);
    add_common(cmd, *c);
    cmd->add_flag("--wait", *wait, "Wait until every task of the group has finished; exit 1 when one did not succeed");
    cmd->add_option("group_id", *id, "Group id")->required();
    cmd->callback([c, id, wait] {
      auto client = connect(*c);
      const Id gid = parse_id(*id, "group id");
      const bool bar = *wait && !c->json_out && ::isatty(1);
      proto::GroupRecord g = must(client->group(gid));
      while (*wait && !g.ready()) {
        if (bar) {
          const double pct = g.total ? 100.0 * g.completed() / g.total : 0;
          const int filled = static_cast<int>(pct / 2.5);
          std::cout << "\r[" << std::string(filled, '#') << std::string(40 - filled, ' ') << "] " << std::fixed
                    << std::setprecision(1) << pct << "% " << g.completed() << "/" << g.total << " failed "
                    << g.failed << std::flush;
        }
        // Polling is this command's job; 200 ms keeps it light on the router.
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        g = must(client->group(gid));
      }
      if (bar) std::cout << "\r" << std::string(72, ' ') << "\r";
      json j = group_json(g);
      if (c->json_out) {
        std::cout << json_text(j) << "\n";
      } else {
        std::cout << "group " << j["group_id"].get<std::string>() << ": " << g.completed() << "/" << g.total
                  << " completed (" << j["progress"] << "%), " << g.succeeded << " succeeded, " << g.failed
                  << " failed, " << g.running << " running" << (g.ready() ? ", ready" : "") << std::endl;
      }
      if (*wait) fail_unless_all_succeeded(g);
    });
  }
  // zbatch wait
  {
    auto* cmd = app.add_subcommand("wait", "Wait for tasks to finish");
    auto c = std::make_shared<Common>();
    auto ids = std::make_shared<std::vector<std::string>>();
    auto wait_s = std::make_shared<double>(3600);
    add_common(cmd, *c);
    cmd->add_option("--for", *wait_s, "Give up after this many seconds");
    cmd->add_option("task_ids", *ids, "Task ids")->required();
    cmd->callback([c, ids, wait_s] {
      auto client = connect(*c);
      std::vector<Id> tasks;
      for (const auto& s : *ids) tasks.push_back(parse_id(s, "task id"));
      auto records = must(client->wait(tasks, std::chrono::milliseconds(static_cast<int64_t>(*wait_s * 1000))));
      bool all_ok = true;
      json out = json::array();
      for (const auto& r : records) {
        all_ok = all_ok && r.state == TaskState::kSucceeded;
        if (c->json_out) out.push_back(task_json(r));
        else print_task(r, false);
      }
      if (c->json_out) std::cout << json_text(out) << "\n";
      if (!all_ok) fail(kExitFailed, "not every task succeeded");
    });
  }
  // zbatch inspect
  {
    auto* cmd = app.add_subcommand("inspect", "Inspect workers and queues");
    auto c = std::make_shared<Common>();
    auto what = std::make_shared<std::string>();
    add_common(cmd, *c);
    auto queue = std::make_shared<std::string>();
    auto limit = std::make_shared<uint32_t>(100);
    cmd->add_option("what", *what,
                    "active: running now; reserved: taken by a worker, not started; scheduled: waiting for an ETA or "
                    "countdown; stats; registered: task kinds; queues; failed: dead letters")
        ->required()
        ->check(CLI::IsMember({"active", "reserved", "scheduled", "stats", "registered", "queues", "failed"}));
    cmd->add_option("-Q,--queue", *queue, "failed: only this queue (default: all)");
    cmd->add_option("--limit", *limit, "failed: at most N tasks")->check(CLI::Range(1, 1000));
    cmd->callback([c, what, queue, limit] {
      auto client = connect(*c);
      json args = json::object();
      if (*what == "failed") {
        args["limit"] = *limit;
        if (!queue->empty()) args["queue"] = *queue;
      }
      std::string text = must(client->control("inspect." + *what, json_text(args)));
      if (c->json_out) {
        std::cout << text << "\n";
        return;
      }
      json reply = json::parse(text, nullptr, false);
      if (reply.is_discarded()) fail(kExitFailed, "the router's answer to inspect." + *what + " is not JSON: " + text);
      std::cout << format_inspect(*what, reply);
    });
  }
  // zbatch purge
  {
    auto* cmd = app.add_subcommand("purge", "Revoke every queued task (of one queue with -Q)");
    auto c = std::make_shared<Common>();
    auto queue = std::make_shared<std::string>();
    auto force = std::make_shared<bool>(false);
    add_common(cmd, *c);
    cmd->add_option("-Q,--queue", *queue, "Only this queue (default: every queue)");
    cmd->add_flag("--force", *force, "Really purge");
    cmd->callback([c, queue, force] {
      if (!*force) fail(kExitUsage, "purge revokes every queued task" + (queue->empty() ? std::string() : " of " + *queue) + "; add --force to do it");
      auto client = connect(*c);
      json args = json::object();
      if (!queue->empty()) args["queue"] = *queue;
      std::string text = must(client->control("purge", json_text(args)));
      if (c->json_out) std::cout << text << "\n";
      else std::cout << "purged " << json::parse(text)["purged"] << " task(s)\n";
    });
  }
  // zbatch revoke / zbatch retry
  {
    auto* cmd = app.add_subcommand("revoke", "Revoke a task: it never runs (a running one stops with --terminate)");
    auto c = std::make_shared<Common>();
    auto id = std::make_shared<std::string>();
    auto terminate = std::make_shared<bool>(false);
    add_common(cmd, *c);
    cmd->add_flag("--terminate", *terminate, "Stop the task if it is running");
    cmd->add_option("task_id", *id, "Task id")->required();
    cmd->callback([c, id, terminate] {
      auto client = connect(*c);
      json args = {{"task", parse_id(*id, "task id").to_string()}, {"terminate", *terminate}};
      std::string text = must(client->control("revoke", json_text(args)));
      if (c->json_out) std::cout << text << "\n";
      else std::cout << "revoked " << *id << " (was " << json::parse(text)["was"].get<std::string>() << ")\n";
    });
  }
  {
    auto* cmd = app.add_subcommand("retry", "Queue a failed or revoked task again (or every dead letter with --failed)");
    auto c = std::make_shared<Common>();
    auto id = std::make_shared<std::string>();
    auto all_failed = std::make_shared<bool>(false);
    auto queue = std::make_shared<std::string>();
    add_common(cmd, *c);
    auto* task_opt = cmd->add_option("task_id", *id, "Task id (default: none; needs --failed then)");
    cmd->add_flag("--failed", *all_failed, "Retry every task that failed for good (dead letters)")->excludes(task_opt);
    cmd->add_option("-Q,--queue", *queue, "With --failed: only this queue (default: all)");
    cmd->callback([c, id, all_failed, queue] {
      auto client = connect(*c);
      if (*all_failed) {
        json args = json::object();
        if (!queue->empty()) args["queue"] = *queue;
        std::string text = must(client->control("retry.failed", json_text(args)));
        if (c->json_out) std::cout << text << "\n";
        else std::cout << "queued " << json::parse(text)["retried"] << " failed task(s) again\n";
        return;
      }
      if (id->empty()) fail(kExitUsage, "retry needs a task id, or --failed");
      std::string text = must(client->control("retry", json_text(json{{"task", parse_id(*id, "task id").to_string()}})));
      if (c->json_out) std::cout << text << "\n";
      else std::cout << "queued " << *id << " again\n";
    });
  }
  // zbatch ping
  {
    auto* cmd = app.add_subcommand("ping", "Check that the router answers");
    auto c = std::make_shared<Common>();
    add_common(cmd, *c);
    cmd->callback([c] {
      auto client = connect(*c);
      const uint64_t start = now_steady_ms();
      std::string text = must(client->control("ping"));
      if (c->json_out) {
        std::cout << text << "\n";
      } else {
        json j = json::parse(text);
        std::cout << "pong from router (" << now_steady_ms() - start << " ms, " << j["workers"]
                  << " worker(s))\n";
      }
    });
  }
}

}  // namespace zb::cli
