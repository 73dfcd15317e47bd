// Test harness: real child processes on free ports, and polling with a deadline (never sleeps
// to wait for something).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace zb::testing {

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
int free_port();
std::string tcp_endpoint(int port);  // "tcp://127.0.0.1:<port>"

// Polls `condition` every few milliseconds until it holds or `timeout` passes.
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

// A fresh temporary folder, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// A child process in its own process group. Destruction kills the group (SIGKILL) and reaps it,
// so a failing test never leaves a process behind.
class Process {
 public:
  // argv[0] is the executable path. stdout and stderr go to `log_path` (or are inherited).
  Process(std::vector<std::string> argv, std::map<std::string, std::string> env = {},
          std::string log_path = {});
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  void signal(int sig);       // to the whole process group
  void kill9() { signal(9); }
  // Waits for exit; returns the exit status (128+signal when killed), or -1 on timeout.
  int wait(std::chrono::milliseconds timeout);
  // SIGTERM, wait up to `timeout`, then SIGKILL.
  int stop(std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));
  std::string log() const;  // contents of log_path

 private:
  pid_t pid_ = -1;
  int status_ = -1;
  std::string log_path_;
};

// Runs a command to completion (bounded by `timeout`) and captures stdout.
struct CommandResult {
  int exit_code = -1;  // -1 on timeout
  std::string out;
  std::string err;
};
CommandResult run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                          const std::string& stdin_text = {},
                          std::map<std::string, std::string> env = {});

}  // namespace zb::testing
