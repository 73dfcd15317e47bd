// The commands about submitted work: submit, status, group, wait.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli/client_connection.h"
#include "cli/commands.h"
#include "common/clock.h"
#include "common/task_json.h"
#include "common/text.h"

namespace zb::cli {
namespace {

using nlohmann::json;

// A finished group with a task that did not succeed ends the command with kExitFailed, as
// `zbatch wait` does.
void fail_unless_all_succeeded(const proto::GroupRecord& g) {
  if (g.succeeded == g.total) return;
  fail(kExitFailed, "group " + g.id.to_string() + ": " + std::to_string(g.failed) + " of " + std::to_string(g.total) +
                        " task(s) failed, " + std::to_string(g.revoked) + " revoked");
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
  if (!r.unique_key.empty()) std::cout << " unique_key=" << r.unique_key;
  std::cout << "\n";
  if (!r.trace.empty()) std::cout << "traceparent: " << r.trace << "\n";
  if (!r.deps.empty())
    if (auto deps = proto::unpack_dependencies(r.deps)) {
      std::cout << "waits for:";
      for (const Id& id : deps->tasks) std::cout << " " << id.to_string();
      if (!deps->group.is_nil()) std::cout << " group " << deps->group.to_string();
      std::cout << " (when " << proto::trigger_name(static_cast<proto::Trigger>(deps->when)) << ")\n";
    }
  if (!r.inputs.empty()) std::cout << "inputs: " << r.inputs << "\n";
  if (!r.result.empty()) std::cout << "result: " << r.result << "\n";
  if (!r.error.empty()) std::cout << "error: " << r.error << "\n";
}

struct SubmitFlags {
  ClientFlags c;
  std::string queue, kind, payload, eta;
  int priority = -1;
  double countdown = 0;
  bool wait = false;
  uint32_t parallel = 0;
  int max_retries = -1;
  double time_limit = 0, soft_time_limit = 0;
  std::string idempotency_key;
  std::string traceparent, unique_key, on_duplicate = "refuse";
  // Dependencies (docs/WORKFLOWS.md).
  std::vector<std::string> after, callbacks;
  std::string after_group, when;
  bool chain = false;
  uint64_t budget_tokens = 0;
  double budget_run_seconds = 0;
};

void add_submit_flags(CLI::App* cmd, SubmitFlags& f) {
  add_client_flags(cmd, f.c);
  cmd->add_option("-Q,--queue", f.queue, "Queue (default: default)");
  cmd->add_option("--kind", f.kind, "Task kind (default: the queue's handler)");
  cmd->add_option("--priority", f.priority, "0..255, higher first (default: the queue's)")
      ->check(CLI::Range(0, 255))
      ->default_str("");
  auto* countdown = cmd->add_option("--countdown", f.countdown, "Run in S seconds (default: now)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--eta", f.eta, "Run at this time, unix seconds or ISO-8601 UTC (default: now)")->excludes(countdown);
  cmd->add_option("--parallel", f.parallel, "With '-': run at most N tasks of the group at once (0 = no limit)");
  cmd->add_option("--max-retries", f.max_retries, "Retries after a failed attempt (default: the queue's)")->default_str("");
  cmd->add_option("--time-limit", f.time_limit, "Hard time limit of an attempt, seconds (default: the queue's)")
      ->check(CLI::Range(0.0, 4e6))
      ->default_str("");
  cmd->add_option("--soft-time-limit", f.soft_time_limit, "Soft time limit of an attempt, seconds (default: the queue's)")
      ->check(CLI::Range(0.0, 4e6))
      ->default_str("");
  cmd->add_option("--idempotency-key", f.idempotency_key,
                  "A repeat with the same key returns the first submission's ids and runs nothing twice (default: none)");
  cmd->add_option("--traceparent", f.traceparent,
                  "W3C trace context the task carries to its worker (default: $TRACEPARENT when valid)");
  cmd->add_option("--unique-key", f.unique_key,
                  "While a task of the queue with this key is queued or running, refuse another (default: none)");
  cmd->add_option("--on-duplicate", f.on_duplicate, "With --unique-key: refuse (exit 1, the holder named), or existing (print the holder's id)")
      ->check(CLI::IsMember({"refuse", "existing"}));
  cmd->add_option("--after", f.after, "Run after this task has ended (repeatable; with '-': every line waits for it; default: none)");
  cmd->add_option("--after-group", f.after_group, "Run after every task of this group has ended (one task only; default: none)");
  cmd->add_option("--when", f.when, "With --after, --after-group or --callback: run when they all succeeded (success), "
                                     "when one did not (failure), or in any case (always) (default: success)")
      ->check(CLI::IsMember({"success", "failure", "always"}));
  cmd->add_flag("--chain", f.chain, "With '-': each line runs after the one before it, given its result (default: off)");
  cmd->add_option("--callback", f.callbacks,
                  "With '-': a task (payload JSON) run once the whole group has ended, given every result (repeatable; default: none)");
  cmd->add_option("--budget-tokens", f.budget_tokens,
                  "With '-': once the group's tasks have spent N model tokens, no more of them starts (default: none)");
  cmd->add_option("--budget-run-seconds", f.budget_run_seconds,
                  "With '-': once the group's tasks have run S seconds in all, no more of them starts (default: none)")
      ->check(CLI::Range(0.0, 4e6));
  cmd->add_flag("--wait", f.wait, "Wait for the result and print it (a group: wait for all; exit 1 when one failed)");
  cmd->add_option("payload", f.payload, "Payload JSON, or '-' for JSON lines on stdin")->required();
}

// The task the flags describe, without its payload.
proto::TaskSpec task_spec(const SubmitFlags& f) {
  proto::TaskSpec spec;
  spec.queue = f.queue;
  spec.kind = f.kind;
  spec.priority = f.priority;
  spec.max_retries = f.max_retries;
  spec.hard_limit_ms = static_cast<uint32_t>(f.time_limit * 1000);
  spec.soft_limit_ms = static_cast<uint32_t>(f.soft_time_limit * 1000);
  if (f.countdown > 0) spec.eta_ms = now_unix_ms() + static_cast<uint64_t>(f.countdown * 1000);
  if (!f.eta.empty()) spec.eta_ms = parse_eta(f.eta);
  if (!f.traceparent.empty()) {
    if (!proto::valid_traceparent(f.traceparent))
      fail(kExitUsage, "--traceparent must be a W3C traceparent: 00-<32 hex>-<16 hex>-<2 hex>, lower case");
    spec.trace = f.traceparent;
  } else if (const char* env = std::getenv("TRACEPARENT"); env && *env) {
    // Inside a traced process (an exec task among them): its tasks join its trace.
    if (proto::valid_traceparent(env)) spec.trace = env;
    else std::cerr << "zbatch: ignoring TRACEPARENT, which is not a W3C traceparent\n";
  }
  if (!f.unique_key.empty()) {
    if (f.payload == "-") fail(kExitUsage, "--unique-key names one task: it cannot be given with '-'");
    if (f.unique_key.size() > proto::kMaxUniqueKeyBytes)
      fail(kExitUsage, "--unique-key is longer than " + std::to_string(proto::kMaxUniqueKeyBytes) + " bytes");
    spec.unique_key = f.unique_key;
    spec.on_duplicate = static_cast<uint8_t>(f.on_duplicate == "existing" ? proto::UniquePolicy::kExisting
                                                                           : proto::UniquePolicy::kRefuse);
  }
  const bool group = f.payload == "-";
  if (!group && (f.chain || !f.callbacks.empty())) fail(kExitUsage, "--chain and --callback are for a group: give '-'");
  if (!group && (f.budget_tokens || f.budget_run_seconds > 0))
    fail(kExitUsage, "--budget-tokens and --budget-run-seconds are for a group: give '-'");
  if (group && !f.after_group.empty()) fail(kExitUsage, "--after-group names one task: it cannot be given with '-'");
  for (const std::string& a : f.after) spec.after.push_back(parse_id(a, "--after task id"));
  if (!f.after_group.empty()) spec.after_group = parse_id(f.after_group, "--after-group group id");
  if (!f.when.empty()) {
    if (spec.after.empty() && spec.after_group.is_nil() && f.callbacks.empty())
      fail(kExitUsage, "--when needs --after, --after-group or --callback");
    spec.when = static_cast<uint8_t>(*proto::parse_trigger(f.when));
  }
  return spec;
}

// All of stdin, read in large blocks (std::getline on a stdio-synced std::cin goes a
// character at a time, which was a third of a 100,000-line submission's CPU).
std::string read_stdin() {
  std::string all;
  char block[1 << 16];
  for (;;) {
    const ssize_t n = ::read(STDIN_FILENO, block, sizeof block);
    if (n > 0) {
      all.append(block, static_cast<size_t>(n));
    } else if (n == 0) {
      return all;
    } else if (errno != EINTR) {
      fail(kExitUsage, std::string("cannot read stdin: ") + std::strerror(errno));
    }
  }
}

// One task of `spec` per non-blank line of stdin.
// With `chain`, each waits for the one before it.
std::vector<proto::TaskSpec> tasks_from_stdin(const proto::TaskSpec& spec, bool chain) {
  const std::string input = read_stdin();
  std::vector<proto::TaskSpec> tasks;
  size_t n = 0;
  for (size_t at = 0; at < input.size();) {
    size_t end = input.find('\n', at);
    if (end == std::string::npos) end = input.size();
    const std::string line = input.substr(at, end - at);
    at = end + 1;
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    proto::TaskSpec t = spec;
    t.payload = valid_payload(line, "line " + std::to_string(n) + ": ");
    if (chain && !tasks.empty()) t.after_index.push_back(static_cast<uint32_t>(tasks.size() - 1));
    tasks.push_back(std::move(t));
  }
  if (tasks.empty()) fail(kExitUsage, "no tasks on stdin");
  return tasks;
}

// The task's record once it has finished.
proto::TaskRecord wait_finished(Client& client, const Id& id) {
  for (;;) {
    auto got = must(client.wait(std::span<const Id>(&id, 1), std::chrono::milliseconds(60000)));
    if (got.size() == 1 && is_terminal(got[0].state)) return std::move(got[0]);
  }
}

// zbatch submit [...] -: the lines of stdin as one group of tasks like `spec`.
void submit_group(Client& client, const SubmitFlags& f, const proto::TaskSpec& spec) {
  proto::TaskSpec member = spec;
  if (!f.callbacks.empty()) member.when = 0;  // --when is the callbacks' then
  if (member.after.empty()) member.when = 0;
  const std::vector<proto::TaskSpec> tasks = tasks_from_stdin(member, f.chain);
  GroupOptions go;
  go.parallel = f.parallel;
  go.idempotency_key = f.idempotency_key;
  go.budget_tokens = f.budget_tokens;
  go.budget_run_ms = f.budget_run_seconds > 0 ? std::max<uint64_t>(1, static_cast<uint64_t>(f.budget_run_seconds * 1000)) : 0;
  for (size_t i = 0; i < f.callbacks.size(); ++i) {
    proto::TaskSpec cb = spec;
    cb.after.clear();
    cb.payload = valid_payload(f.callbacks[i], "--callback " + std::to_string(i + 1) + ": ");
    go.callbacks.push_back(std::move(cb));
  }
  auto receipt = must(client.submit_group(tasks, go));
  // The group id alone on stdout (scripts read it: `G=$(zbatch submit - < tasks.jsonl)`),
  // the task ids too only as JSON.
  if (f.c.json_out) {
    json ids = json::array();
    for (const auto& id : receipt.tasks) ids.push_back(id.to_string());
    json out{{"group_id", receipt.group.to_string()}, {"tasks", ids}};
    if (!receipt.callbacks.empty()) {
      json cbs = json::array();
      for (const auto& id : receipt.callbacks) cbs.push_back(id.to_string());
      out["callbacks"] = std::move(cbs);
    }
    std::cout << json_text(out) << std::endl;
  } else {
    std::cout << receipt.group.to_string() << std::endl;
  }
  if (!f.wait) return;
  proto::GroupRecord g;
  for (;;) {
    g = must(client.group(receipt.group));
    if (g.ready()) break;
    must(client.wait(std::span<const Id>(receipt.tasks).subspan(0, 1), std::chrono::milliseconds(200)));
  }
  // The callbacks run once the group has ended: their results follow, one line each; one
  // that failed fails the command (one skipped by its `when` does not).
  bool callback_failed = false;
  for (const Id& id : receipt.callbacks) {
    const proto::TaskRecord rec = wait_finished(client, id);
    if (f.c.json_out) std::cout << json_text(task_json(rec)) << "\n";
    else if (rec.state == TaskState::kSucceeded) std::cout << rec.result << "\n";
    if (rec.state == TaskState::kFailed) {
      std::cerr << "zbatch: callback " << id.to_string() << " failed: " << rec.error << "\n";
      callback_failed = true;
    }
  }
  if (f.when.empty() || f.callbacks.empty() || f.when == "success") fail_unless_all_succeeded(g);
  if (callback_failed) fail(kExitFailed, "a callback failed");
}

// zbatch submit [...] PAYLOAD: one task.
void submit_task(Client& client, const SubmitFlags& f, proto::TaskSpec spec) {
  spec.payload = valid_payload(f.payload, "");
  SubmitReceipt sr = must(client.submit(spec, f.idempotency_key));
  const Id id = sr.task;
  if (!f.wait) {
    std::cout << (f.c.json_out ? json_text(json{{"id", id.to_string()}, {"duplicate", sr.duplicate}, {"existing", sr.existing}})
                               : id.to_string())
              << "\n";
    return;
  }
  const proto::TaskRecord rec = wait_finished(client, id);
  if (f.c.json_out) std::cout << json_text(task_json(rec)) << "\n";
  else if (rec.state == TaskState::kSucceeded) std::cout << rec.result << "\n";
  if (rec.state != TaskState::kSucceeded)
    fail(kExitFailed, "task " + id.to_string() + " " + std::string(state_name(rec.state)) +
                          (rec.error.empty() ? "" : ": " + rec.error));
}

void add_submit(CLI::App& app) {
  auto* cmd = app.add_subcommand("submit", "Submit a task (or JSON lines from stdin as one group with '-')");
  auto f = std::make_shared<SubmitFlags>();
  add_submit_flags(cmd, *f);
  cmd->callback([f] {
    proto::TaskSpec spec = task_spec(*f);  // before connecting: a bad --eta sends nothing
    Client* client = connect(f->c);
    if (f->payload == "-") submit_group(*client, *f, spec);
    else submit_task(*client, *f, std::move(spec));
  });
}

void add_status(CLI::App& app) {
  auto* cmd = app.add_subcommand("status", "Show a task");
  auto c = std::make_shared<ClientFlags>();
  auto id = std::make_shared<std::string>();
  add_client_flags(cmd, *c);
  cmd->add_option("task_id", *id, "Task id")->required();
  cmd->callback([c, id] {
    auto client = connect(*c);
    print_task(must(client->status(parse_id(*id, "task id"))), c->json_out);
  });
}

// A group being waited for: its pace since the wait began, the time left at that pace, and
// when to look again (soon when it should be done soon, at most every 200 ms).
struct GroupWatch {
  using Clock = std::chrono::steady_clock;
  Clock::time_point began = Clock::now();
  uint32_t completed_at_start = 0;
  bool first = true;

  double elapsed_s() const { return std::chrono::duration<double>(Clock::now() - began).count(); }
  double rate(const proto::GroupRecord& g) {
    if (first) {
      first = false;
      completed_at_start = g.completed();
    }
    const double t = elapsed_s();
    return t > 0 ? (g.completed() - completed_at_start) / t : 0;
  }
  // Seconds left at the current pace (negative: unknown).
  double left_s(const proto::GroupRecord& g) {
    const double r = rate(g);
    return r > 0 ? (g.total - g.completed()) / r : -1;
  }
  std::chrono::milliseconds next_look(const proto::GroupRecord& g) {
    const double left = left_s(g);
    if (left < 0) return std::chrono::milliseconds(200);
    return std::chrono::milliseconds(std::clamp<int64_t>(static_cast<int64_t>(left * 1000 / 2), 2, 200));
  }
};

// One line of progress, redrawn in place:
// [####    ] 42.0% 42/100  12.3/s  elapsed 3.4s  left 4.7s  failed 1.
void draw_progress(const proto::GroupRecord& g, GroupWatch& watch) {
  const double pct = g.total ? 100.0 * g.completed() / g.total : 0;
  const int filled = static_cast<int>(pct / 2.5);
  const double left = watch.left_s(g);
  std::cout << "\r[" << std::string(filled, '#') << std::string(40 - filled, ' ') << "] " << std::fixed
            << std::setprecision(1) << pct << "% " << g.completed() << "/" << g.total << "  "
            << std::setprecision(0) << watch.rate(g) << "/s  elapsed " << std::setprecision(1) << watch.elapsed_s()
            << "s  left ";
  if (left < 0) std::cout << "?";
  else std::cout << left << "s";
  std::cout << "  failed " << g.failed << "\x1b[K" << std::flush;
}

void print_group(const proto::GroupRecord& g, bool as_json) {
  const json j = group_json(g);
  if (as_json) {
    std::cout << json_text(j) << "\n";
    return;
  }
  std::cout << "group " << j["group_id"].get<std::string>() << ": " << g.completed() << "/" << g.total
            << " completed (" << j["progress"] << "%), " << g.succeeded << " succeeded, " << g.failed << " failed, "
            << g.running << " running" << (g.ready() ? ", ready" : "") << std::endl;
}

void add_group(CLI::App& app) {
  auto* cmd = app.add_subcommand("group", "Show a group's progress");
  auto c = std::make_shared<ClientFlags>();
  auto id = std::make_shared<std::string>();
  auto wait = std::make_shared<bool>(false);
  add_client_flags(cmd, *c);
  cmd->add_flag("--wait", *wait, "Wait until every task of the group has finished; exit 1 when one did not succeed");
  cmd->add_option("group_id", *id, "Group id")->required();
  cmd->callback([c, id, wait] {
    auto client = connect(*c);
    const Id gid = parse_id(*id, "group id");
    const bool bar = *wait && !c->json_out && ::isatty(1);
    proto::GroupRecord g = must(client->group(gid));
    GroupWatch watch;
    while (*wait && !g.ready()) {
      if (bar) draw_progress(g, watch);
      // Polling is this command's job: every 200 ms at most, keeping it light on the router,
      // and sooner as the end nears, so the wait ends within a few ms of the group.
      std::this_thread::sleep_for(watch.next_look(g));
      g = must(client->group(gid));
    }
    if (bar) std::cout << "\r\x1b[K";
    print_group(g, c->json_out);
    if (*wait) fail_unless_all_succeeded(g);
  });
}

void add_wait(CLI::App& app) {
  auto* cmd = app.add_subcommand("wait", "Wait for tasks to finish");
  auto c = std::make_shared<ClientFlags>();
  auto ids = std::make_shared<std::vector<std::string>>();
  auto wait_s = std::make_shared<double>(3600);
  add_client_flags(cmd, *c);
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

}  // namespace

void add_task_commands(CLI::App& app) {
  add_submit(app);
  add_status(app);
  add_group(app);
  add_wait(app);
}

}  // namespace zb::cli
