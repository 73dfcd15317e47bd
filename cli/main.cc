// zbatch: one binary, sub-commands as `celery` has.
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <iostream>
#include <map>

#include "bench/bench.h"
#include "cli/commands.h"
#include "cli/config.h"
#include "cli/curve_flags.h"
#include "common/log.h"
#include "common/status.h"

namespace zb::cli {

void fail(int code, const std::string& message) {
  std::cerr << "zbatch: " << message << std::endl;
  std::exit(code);
}

namespace {

// The examples each help page ends with, one place for every command so that they read alike.
const std::map<std::string, std::string>& examples() {
  static const std::map<std::string, std::string> kExamples = {
      {"up", "  zbatch up\n"
             "  zbatch up --data /var/lib/zbatch --http 127.0.0.1:8000 --workers 2 -c 4\n"
             "  zbatch up --config zbatch.toml --log-level debug"},
      {"router", "  zbatch router --data /var/lib/zbatch\n"
                 "  zbatch router --frontend tcp://0.0.0.0:5555 --backend tcp://0.0.0.0:5556 --events tcp://0.0.0.0:5557"},
      {"worker", "  zbatch worker --router tcp://router-host:5556 -Q agent_tasks,validation -c 4\n"
                 "  ZBATCH_WORKER_ROUTER=tcp://router-host:5556 zbatch worker --hostname worker1@machine1 -l INFO\n"
                 "  zbatch worker --autoscale 8,2 --prefetch-multiplier 1 --config zbatch.toml"},
      {"store", "  zbatch store --router tcp://router-host:5555 --events tcp://router-host:5557 --http 127.0.0.1:8000\n"
                "  zbatch store --http 0.0.0.0:8000 --auth-token \"$(cat token.txt)\""},
      {"config", "  zbatch config zbatch.toml\n"
                 "  zbatch config --defaults\n"
                 "  zbatch config --keys"},
      {"submit", "  zbatch submit --kind echo '{\"hello\": \"world\"}' --wait\n"
                 "  zbatch submit -Q validation '{\"language\": \"python\", \"code\": \"def f(:\"}' --wait\n"
                 "  printf '{\"n\":1}\\n{\"n\":2}\\n' | zbatch submit -Q low_priority -      # prints the group id\n"
                 "  zbatch submit --countdown 60 --max-retries 5 '{}'\n"
                 "  printf '{\"step\":1}\\n{\"step\":2}\\n' | zbatch submit --chain --callback '{\"merge\":true}' -\n"
                 "  zbatch submit --after 0190f3c2-8a4b-7d3e-9f00-1a2b3c4d5e6f --when failure '{\"alert\":true}'"},
      {"status", "  zbatch status 0190f3c2-8a4b-7d3e-9f00-1a2b3c4d5e6f\n"
                 "  zbatch status 0190f3c2-8a4b-7d3e-9f00-1a2b3c4d5e6f --json"},
      {"group", "  zbatch group 0190f3c2-8a4b-7d3e-9f00-1a2b3c4d5e6f\n"
                "  zbatch group 0190f3c2-8a4b-7d3e-9f00-1a2b3c4d5e6f --wait      # exit 1 when a task failed"},
      {"wait", "  zbatch wait ID1 ID2 --for 600\n"
               "  zbatch wait ID --json"},
      {"inspect", "  zbatch inspect queues\n"
                  "  zbatch inspect active --json\n"
                  "  zbatch inspect failed -Q agent_tasks --limit 20"},
      {"purge", "  zbatch purge -Q low_priority --force"},
      {"revoke", "  zbatch revoke ID\n"
                 "  zbatch revoke ID --terminate\n"
                 "  zbatch revoke --group GROUP_ID [--terminate]"},
      {"retry", "  zbatch retry ID\n"
                "  zbatch retry --failed -Q agent_tasks"},
      {"ping", "  zbatch ping\n"
               "  ZBATCH_ROUTER=tcp://router-host:5555 zbatch ping --timeout 2"},
      {"schedule", "  zbatch schedule create nightly --cron '0 3 * * *' --tz Europe/Berlin -Q low_priority --payload '{\"n\": 1}'\n"
                   "  zbatch schedule create tick --every 10 --overlap skip --catch-up none\n"
                   "  zbatch schedule list --json\n"
                   "  zbatch schedule pause nightly; zbatch schedule run nightly; zbatch schedule delete nightly"},
      {"bench", "  zbatch bench\n"
                "  zbatch bench --tasks 50000 --workers 2 -c 2 --durability nosync --json"},
      {"help", "  zbatch help\n"
               "  zbatch help submit"},
  };
  return kExamples;
}

// Options that belong to the whole program but are also written after the sub-command
// (`zbatch --json ping` and `zbatch ping --json` are the same): each one given before the
// sub-command is handed to the sub-command's option of that name.
void hand_down(CLI::App& app, CLI::Option* global, const std::string& name) {
  if (global->count() == 0) return;
  CLI::App* sub = app.get_subcommands().empty() ? nullptr : app.get_subcommands().front();
  if (!sub) return;
  CLI::Option* own = nullptr;
  try {
    own = sub->get_option(name);
  } catch (const CLI::OptionNotFound&) {
    fail(kExitUsage, name + " does not apply to `zbatch " + sub->get_name() + "`");
  }
  // A value on the command line beats one from the environment.
  const std::string& env = own->get_envname();
  const char* env_value = env.empty() ? nullptr : std::getenv(env.c_str());
  const bool from_env = own->count() > 0 && env_value && own->results().size() == 1 && own->results()[0] == env_value;
  if (own->count() > 0 && !from_env) return;  // written after the sub-command too: that one wins
  try {
    own->clear();
    for (const auto& r : global->results()) own->add_result(r);
    own->run_callback();
  } catch (const CLI::Error& e) {
    fail(kExitUsage, name + ": " + e.what());
  }
}

}  // namespace
}  // namespace zb::cli

int main(int argc, char** argv) {
  using namespace zb::cli;
  CLI::App app{"zbatch: durable batch tasks over ZeroMQ and LMDB"};
  app.name("zbatch");
  app.require_subcommand(1);
  // Options of the program are also accepted after the sub-command (`zbatch worker -l debug`),
  // and every --help shows the defaults.
  app.fallthrough();
  app.option_defaults()->always_capture_default();
  app.set_version_flag("--version", "zbatch " ZBATCH_VERSION, "Print the version and exit");
  std::string log_level = "info";
  app.add_option("-l,--log-level,--loglevel", log_level,
                 "trace|debug|info|warn|error|off, or Celery's DEBUG|INFO|WARNING|ERROR|CRITICAL (any case)")
      ->envname("ZBATCH_LOG_LEVEL");
  bool json_out = false;
  auto* json_flag = app.add_flag("--json", json_out, "Machine-readable output (reading commands; also after the command)");
  std::string config_path;
  auto* config_opt = app.add_option("--config", config_path,
                                    "TOML configuration file (router, worker, store, up; also after the command)");
  app.parse_complete_callback([&] {
    auto level = log_level_name(log_level);
    if (!level) fail(kExitUsage, level.status().message());
    if (zb::Status s = zb::init_logging(*level); !s) fail(kExitUsage, s.message());
    hand_down(app, json_flag, "--json");
    hand_down(app, config_opt, "--config");
    if (!app.get_subcommands().empty() && app.get_subcommands().front()->get_name() == "worker")
      report_worker_endpoint(*app.get_subcommands().front());
  });
  add_serve_commands(app);
  add_up_command(app);
  add_config_command(app);
  add_task_commands(app);
  add_control_commands(app);
  add_keygen_command(app);
  zb::bench::add_command(app);
  auto* help = app.add_subcommand("help", "List the commands, or show one command's options");
  auto topic = std::make_shared<std::string>();
  help->add_option("command", *topic, "A command (default: list them all)");
  help->callback([&app, topic] {
    if (topic->empty()) {
      // app.help() would show the selected sub-command's (this one's) page.
      std::cout << app.get_formatter()->make_help(&app, "zbatch", CLI::AppFormatMode::Normal);
      return;
    }
    CLI::App* sub = nullptr;
    try {
      sub = app.get_subcommand(*topic);
    } catch (const CLI::OptionNotFound&) {
      fail(kExitUsage, "no command '" + *topic + "'; `zbatch help` lists them");
    }
    std::cout << sub->help("zbatch");
  });
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    auto it = examples().find(sub->get_name());
    if (it == examples().end()) continue;
    const std::string notes = sub->get_footer();
    sub->footer(notes + (notes.empty() ? "" : "\n") + "\nExamples:\n" + it->second + "\n");
  }
  app.footer(
      "\nExamples:\n"
      "  zbatch up                                   # router, workers and HTTP on 127.0.0.1:8000\n"
      "  zbatch submit --kind echo '{\"a\": 1}' --wait\n"
      "  zbatch worker --router tcp://router-host:5556 -Q agent_tasks -c 4 --loglevel INFO\n"
      "  zbatch help submit                          # one command's options\n"
      "\nClient commands read the router's frontend from --router, else $ZBATCH_ROUTER; workers read\n"
      "the router's backend from --router, else $ZBATCH_WORKER_ROUTER. Exit status: 0 success, 1 a\n"
      "task or command failed, 2 bad usage or input, 3 router unreachable.\n");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    if (app.get_subcommands().empty() && argc <= 1) {
      std::cerr << app.help();  // a bare `zbatch` lists the commands
      return kExitUsage;
    }
    std::cerr << "zbatch: " << e.what() << std::endl;
    return kExitUsage;
  }
  return 0;
}
