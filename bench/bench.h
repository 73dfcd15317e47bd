// Benchmarks: `zbatch bench` measures zbatch end to end on this machine and prints a table
// (or JSON): durable no-op throughput, submit throughput, round-trip latency, memory.
#pragma once

#include <CLI/CLI.hpp>

namespace zb::bench {

// Adds the `bench` sub-command to the zbatch command line.
void add_command(CLI::App& app);

}  // namespace zb::bench
