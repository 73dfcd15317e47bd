// The zbatch sub-commands, one family per file (internal to the command line).
#pragma once

#include <memory>
#include <string>

#include <CLI/CLI.hpp>

namespace zb::cli {

// Exit codes: 0 success, 1 a task failed (submit --wait, group --wait, wait) or a command
// failed, 2 bad usage or input, 3 router unreachable.
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitUnavailable = 3;

// router, worker, store: the long-running processes (serve.cc).
void add_serve_commands(CLI::App& app);
// up: router, workers and store in one process (up.cc).
void add_up_command(CLI::App& app);
// The options of the long-running command `command` (router, worker, store, up) added to
// `cmd`, bound to storage that the returned handle keeps alive: what `zbatch config` applies a
// file to and prints.
std::shared_ptr<void> add_command_flags(const std::string& command, CLI::App* cmd);
// zbatch config: checks a configuration file and prints the whole effective configuration.
void add_config_command(CLI::App& app);
// The client commands about submitted work: submit, status, group, wait (task_commands.cc).
void add_task_commands(CLI::App& app);
// The client commands about the cluster: inspect, purge, revoke, retry, ping (control_commands.cc).
void add_control_commands(CLI::App& app);

// Prints "zbatch: <message>" on stderr and ends the command with `code`.
[[noreturn]] void fail(int code, const std::string& message);

}  // namespace zb::cli
