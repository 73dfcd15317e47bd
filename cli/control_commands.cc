// The commands about the cluster and its control: inspect, purge, revoke, retry, ping, schedule. Each
// asks the router one control operation; --json prints its reply's JSON view
// (common/control_json.h, the HTTP API's).
#include <ctime>
#include <iostream>
#include <tuple>
#include <memory>
#include <optional>

#include "cli/client_connection.h"
#include "cli/commands.h"
#include "cli/format.h"
#include "common/clock.h"
#include "common/control_json.h"
#include "common/text.h"

namespace zb::cli {
namespace {

// The router's reply: printed in its JSON view with --json (nothing returned then), else
// returned for the command's own line.
template <typename Reply>
std::optional<Reply> answer(const ClientFlags& c, Result<Reply> reply) {
  Reply r = must(std::move(reply));
  if (c.json_out) {
    std::cout << json_text(control_json(proto::ControlResult(std::move(r)))) << "\n";
    return std::nullopt;
  }
  return r;
}

void add_inspect(CLI::App& app) {
  auto* cmd = app.add_subcommand("inspect", "Inspect workers and queues");
  auto c = std::make_shared<ClientFlags>();
  auto what = std::make_shared<std::string>();
  add_client_flags(cmd, *c);
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
    const proto::ControlOp op = *proto::parse_control_op("inspect." + *what);
    proto::ControlArgs args = proto::default_control_args(op);
    if (auto* failed = std::get_if<proto::InspectFailedArgs>(&args)) {
      failed->limit = *limit;
      if (!queue->empty()) failed->queue = *queue;
    }
    if (auto reply = answer(*c, connect(*c)->control(op, std::move(args))))
      std::cout << format_inspect(*what, control_json(*reply));
  });
}

void add_purge(CLI::App& app) {
  auto* cmd = app.add_subcommand("purge", "Revoke every queued task (of one queue with -Q)");
  auto c = std::make_shared<ClientFlags>();
  auto queue = std::make_shared<std::string>();
  auto force = std::make_shared<bool>(false);
  add_client_flags(cmd, *c);
  cmd->add_option("-Q,--queue", *queue, "Only this queue (default: every queue)");
  cmd->add_flag("--force", *force, "Really purge");
  cmd->callback([c, queue, force] {
    if (!*force) fail(kExitUsage, "purge revokes every queued task" + (queue->empty() ? std::string() : " of " + *queue) + "; add --force to do it");
    std::optional<std::string> only;
    if (!queue->empty()) only = *queue;
    if (auto reply = answer(*c, connect(*c)->purge(only))) std::cout << "purged " << reply->purged << " task(s)\n";
  });
}

void add_revoke(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "revoke", "Revoke a task, or with --group every unfinished task of a group: it never runs (running ones stop with --terminate)");
  auto c = std::make_shared<ClientFlags>();
  auto id = std::make_shared<std::string>();
  auto group = std::make_shared<bool>(false);
  auto terminate = std::make_shared<bool>(false);
  add_client_flags(cmd, *c);
  cmd->add_flag("--terminate", *terminate, "Stop it (them) if running");
  cmd->add_flag("--group", *group, "ID is a group: revoke the whole group, and it takes no more tasks");
  cmd->add_option("id", *id, "Task id (a group id with --group)")->required();
  cmd->callback([c, id, group, terminate] {
    if (*group) {
      const Id gid = parse_id(*id, "group id");
      if (auto reply = answer(*c, connect(*c)->revoke_group(gid, *terminate))) {
        std::cout << "revoked group " << *id << ": " << reply->revoked << " task(s) now";
        if (reply->terminated) std::cout << " (" << reply->terminated << " stopped running)";
        if (reply->running) std::cout << ", " << reply->running << " running left to finish";
        std::cout << "; its queued tasks follow\n";
      }
      return;
    }
    const Id task = parse_id(*id, "task id");
    if (auto reply = answer(*c, connect(*c)->revoke(task, *terminate)))
      std::cout << "revoked " << *id << " (was " << reply->was << ")\n";
  });
}

void add_retry(CLI::App& app) {
  auto* cmd = app.add_subcommand("retry", "Queue a failed or revoked task again (or every dead letter with --failed)");
  auto c = std::make_shared<ClientFlags>();
  auto id = std::make_shared<std::string>();
  auto all_failed = std::make_shared<bool>(false);
  auto queue = std::make_shared<std::string>();
  add_client_flags(cmd, *c);
  auto* task_opt = cmd->add_option("task_id", *id, "Task id (default: none; needs --failed then)");
  cmd->add_flag("--failed", *all_failed, "Retry every task that failed for good (dead letters)")->excludes(task_opt);
  cmd->add_option("-Q,--queue", *queue, "With --failed: only this queue (default: all)");
  cmd->callback([c, id, all_failed, queue] {
    if (*all_failed) {
      proto::RetryFailedArgs args;
      if (!queue->empty()) args.queue = *queue;
      if (auto reply = answer(*c, connect(*c)->retry_failed(args)))
        std::cout << "queued " << reply->retried << " failed task(s) again\n";
      return;
    }
    if (id->empty()) fail(kExitUsage, "retry needs a task id, or --failed");
    const Id task = parse_id(*id, "task id");
    if (answer(*c, connect(*c)->retry(task))) std::cout << "queued " << *id << " again\n";
  });
}

void add_ping(CLI::App& app) {
  auto* cmd = app.add_subcommand("ping", "Check that the router answers");
  auto c = std::make_shared<ClientFlags>();
  add_client_flags(cmd, *c);
  cmd->callback([c] {
    auto client = connect(*c);
    const uint64_t start = now_steady_ms();  // the round trip alone, not the connection
    auto reply = answer(*c, client->ping());
    if (reply) std::cout << "pong from router (" << now_steady_ms() - start << " ms, " << reply->workers << " worker(s))\n";
  });
}

// A unix time in ms as UTC text ("-" for 0).
std::string utc_text(uint64_t ms) {
  if (!ms) return "-";
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%SZ", &tm);
  return buf;
}

std::string schedule_line(const proto::ScheduleRow& r) {
  const uint64_t ms = r.spec.every_ms;
  std::string when = !r.spec.cron.empty() ? "cron '" + r.spec.cron + "' " + r.spec.timezone
                     : ms % 1000 == 0     ? "every " + std::to_string(ms / 1000) + " s"
                                          : "every " + std::to_string(ms) + " ms";
  return r.spec.name + "  " + when + "  " + (r.paused ? "paused" : "next " + utc_text(r.next_slot_ms)) + "  fired " +
         std::to_string(r.fired) + "  last " + utc_text(r.last_slot_ms) + "  (" + r.source + ", catch_up " +
         r.spec.catch_up + ", overlap " + r.spec.overlap + ")";
}

void add_schedule(CLI::App& app) {
  auto* cmd = app.add_subcommand("schedule", "Periodic tasks: list, create, pause, resume, delete, run now");
  cmd->require_subcommand(1);
  auto c = std::make_shared<ClientFlags>();
  add_client_flags(cmd, *c);
  // list [NAME]
  {
    auto* sub = cmd->add_subcommand("list", "List the schedules (or one), with their next slot and recent firings");
    auto name = std::make_shared<std::string>();
    auto page = std::make_shared<proto::ScheduleArgs>();
    sub->add_option("name", *name, "Only this schedule (default: every schedule)");
    sub->add_option("--firings", page->firings,
                    "With NAME: list this many of its firings, newest first (default: 0, the newest 20 in --json)")
        ->check(CLI::Range(1u, proto::kMaxFiringsListed));
    sub->add_option("--before", page->before_ms,
                    "With --firings: only firings whose slot (unix ms) is before this, the next page (default: 0, none)");
    sub->fallthrough();
    sub->callback([c, name, page] {
      if ((page->firings || page->before_ms) && name->empty())
        fail(kExitUsage, "--firings and --before list the firings of one schedule: give its NAME");
      if (page->before_ms && !page->firings) fail(kExitUsage, "--before needs --firings");
      proto::ScheduleArgs args = *page;
      args.name = *name;
      auto reply = answer(*c, connect(*c)->control(proto::ControlOp::kScheduleList, args));
      if (!reply) return;
      const auto& list = std::get<proto::ScheduleListReply>(*reply);
      if (list.schedules.empty()) std::cout << "no schedules\n";
      for (const auto& r : list.schedules) {
        std::cout << schedule_line(r) << "\n";
        if (!args.firings) continue;
        for (const auto& f : r.recent)
          std::cout << "  slot " << f.slot_ms << "  " << f.how << "  " << (f.task.is_nil() ? "-" : f.task.to_string())
                    << "\n";
      }
    });
  }
  // create NAME (--cron EXPR [--tz ZONE] | --every SECONDS) [task options]
  {
    auto* sub = cmd->add_subcommand("create", "Create a schedule that submits a task at each slot");
    auto spec = std::make_shared<proto::ScheduleSpec>();
    auto every = std::make_shared<double>(0);
    sub->add_option("name", spec->name, "The schedule's name (letters, digits, _ - . :)")->required();
    sub->add_option("--cron", spec->cron, "5-field cron expression, or @hourly, @daily... (default: none; give --every then)");
    sub->add_option("--tz,--timezone", spec->timezone, "Time zone of --cron (an IANA name)");
    sub->add_option("--every", *every, "Interval in seconds (default: none; give --cron then)");
    sub->add_option("--catch-up", spec->catch_up, "Slots missed while the router was down: one|all|none")
        ->check(CLI::IsMember({"one", "all", "none"}));
    sub->add_option("--overlap", spec->overlap, "allow, or skip a slot while the previous task is unfinished")
        ->check(CLI::IsMember({"allow", "skip"}));
    sub->add_option("-Q,--queue", spec->task.queue, "Queue of the task (default: default)");
    sub->add_option("--kind", spec->task.kind, "Kind of the task (default: the queue's)");
    spec->task.payload = "{}";
    sub->add_option("--payload", spec->task.payload, "The task's payload (JSON)");
    sub->add_option("--priority", spec->task.priority, "0..255 (default: -1, the queue's)");
    sub->add_option("--max-retries", spec->task.max_retries, "Retries (default: -1, the queue's)");
    sub->add_option("--unique-key", spec->task.unique_key,
                    "Pass over a slot while a task of the queue holds this key; the fired task holds it (default: none)");
    sub->fallthrough();
    sub->callback([c, spec, every] {
      proto::ScheduleSpec s = *spec;
      s.every_ms = static_cast<uint64_t>(*every * 1000.0 + 0.5);
      if (nlohmann::json::parse(s.task.payload, nullptr, false).is_discarded())
        fail(kExitUsage, "--payload must be JSON");
      if (Status st = proto::check_schedule_spec(s); !st) fail(kExitUsage, st.message());
      auto reply = answer(*c, connect(*c)->control(proto::ControlOp::kScheduleCreate, s));
      if (reply) std::cout << "created " << schedule_line(std::get<proto::ScheduleReply>(*reply).schedule) << "\n";
    });
  }
  // pause | resume | delete | run NAME
  for (const auto& [verb, op, help] :
       {std::tuple{"pause", proto::ControlOp::kSchedulePause, "Pause a schedule: its slots pass without firing"},
        std::tuple{"resume", proto::ControlOp::kScheduleResume, "Resume a schedule from now (paused slots do not fire)"},
        std::tuple{"delete", proto::ControlOp::kScheduleDelete, "Delete a schedule and its firing records"},
        std::tuple{"run", proto::ControlOp::kScheduleRun, "Submit the schedule's task now, outside its slots"}}) {
    auto* sub = cmd->add_subcommand(verb, help);
    auto name = std::make_shared<std::string>();
    sub->add_option("name", *name, "The schedule's name")->required();
    const std::string said = verb;
    const proto::ControlOp which = op;
    sub->fallthrough();
    sub->callback([c, name, said, which] {
      auto reply = answer(*c, connect(*c)->control(which, proto::ScheduleArgs{*name}));
      if (!reply) return;
      const auto& r = std::get<proto::ScheduleReply>(*reply);
      if (said == "run") std::cout << "submitted " << r.task.to_string() << "\n";
      else std::cout << said << "d " << *name << "\n";  // paused, resumed, deleted
    });
  }
}

}  // namespace

void add_control_commands(CLI::App& app) {
  add_inspect(app);
  add_purge(app);
  add_revoke(app);
  add_retry(app);
  add_ping(app);
  add_schedule(app);
}

}  // namespace zb::cli
