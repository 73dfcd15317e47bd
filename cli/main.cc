// zbatch: one binary, sub-commands as `celery` has.
#include <cstdlib>
#include <iostream>

#include "bench/bench.h"
#include "cli/commands.h"
#include "common/log.h"

namespace zb::cli {

void fail(int code, const std::string& message) {
  std::cerr << "zbatch: " << message << std::endl;
  std::exit(code);
}

}  // namespace zb::cli

int main(int argc, char** argv) {
  CLI::App app{"zbatch: durable batch tasks over ZeroMQ and LMDB"};
  app.require_subcommand(1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error|off")->envname("ZBATCH_LOG_LEVEL");
  app.parse_complete_callback([&] {
    if (zb::Status s = zb::init_logging(log_level); !s) zb::cli::fail(zb::cli::kExitUsage, s.message());
  });
  zb::cli::add_serve_commands(app);
  zb::cli::add_config_command(app);
  zb::cli::add_client_commands(app);
  zb::bench::add_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::cerr << "zbatch: " << e.what() << std::endl;
    return zb::cli::kExitUsage;
  }
  return 0;
}
