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

// The task as a child sees it: {"id","attempt","group","ref","queue","kind","payload"}.
std::string task_json(const TaskContext& ctx);
// The last `max` bytes of a text, trailing blank lines dropped.
std::string tail(const std::string& text, size_t max = 2000);

enum class Killed { kNone, kSoft, kHard, kCancel };

// One exchange with a child: write `input`, read stdout until EOF (until_line: one line), keep
// the tail of stderr, and enforce the task's time limits and cancel flag on the way (SIGTERM to
// the group at the soft limit or on cancel, SIGKILL at the hard limit or term_grace later).
struct Exchange {
  std::string out;
  std::string err;
  bool overflow = false;  // stdout passed cfg.stdout_limit
  bool line = false;      // until_line: a full line arrived
  Killed killed = Killed::kNone;
};
Exchange pump(Child& child, const std::string& input, bool until_line, const ProcessHandlerConfig& cfg,
              const TaskContext& ctx);
// The error of a child that ended without a usable answer ("<lost_class>: exit code N: ...",
// or the time limit that stopped it).
std::string ended_error(const Child& child, const Exchange& x, const TaskContext& ctx, const char* lost_class);

Handler make_exec_handler(ProcessHandlerConfig config);
// Children are started on demand, one per task running at once, so the slots bound the pool.
Handler make_pool_handler(ProcessHandlerConfig config);

}  // namespace zb::worker
