// The commands about the cluster and its control: inspect, purge, revoke, retry, ping. Each
// asks the router one control operation; --json prints its reply's JSON view
// (common/control_json.h, the HTTP API's).
#include <iostream>
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

}  // namespace

void add_control_commands(CLI::App& app) {
  add_inspect(app);
  add_purge(app);
  add_revoke(app);
  add_retry(app);
  add_ping(app);
}

}  // namespace zb::cli
