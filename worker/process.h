// Process handlers (internal to worker/): a child per task (exec) or long-lived children
// speaking JSON lines (pool). See ProcessHandlerConfig in worker/worker.h for the contract.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "common/status.h"
#include "worker/worker.h"

namespace zb::worker {

// A child process in its own process group, with pipes to its stdin and stdout and, when
// captured, stderr. Destruction kills the group (SIGKILL) and reaps the child.
class Child {
 public:
  static Result<std::unique_ptr<Child>> spawn(const ProcessHandlerConfig& config, bool capture_stderr);
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  void kill_group(int sig);
  // Non-blocking reap: true once the child has exited (status in wait_status()).
  bool reap();
  bool exited() const { return exited_; }
  int wait_status() const { return status_; }
  // Resident memory of the child itself (VmRSS), 0 when unknown.
  uint64_t rss_bytes() const;
  void close_stdin();

  int in = -1, out = -1, err = -1;

 private:
  Child() = default;
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = 0;
};

Handler make_exec_handler(ProcessHandlerConfig config);
// `max_children` bounds the pool (the worker passes its most slots).
Handler make_pool_handler(ProcessHandlerConfig config, uint32_t max_children);

}  // namespace zb::worker
