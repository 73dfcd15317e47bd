#include "bench/bench.h"

#include <iostream>

namespace zb::bench {

void add_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("bench", "Measure throughput, latency and memory");
  cmd->callback([] {
    std::cerr << "zbatch bench: not built in this version\n";
    throw CLI::RuntimeError(1);
  });
}

}  // namespace zb::bench
