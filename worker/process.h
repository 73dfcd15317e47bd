// Child processes and the files they touch (internal to worker/): the exec and pool handlers,
// and the machinery the seed's kinds share with them. See ProcessHandlerConfig and
// ResourceLimits in worker/worker.h for the contract.
//
// What untrusted task data may reach is confined here:
// - a child starts with fork + execve: between the two, only async-signal-safe calls set its
//   process group, signal dispositions, pipes, folder, resource limits and (for checkers) a
//   Landlock confinement, and mark every other inherited descriptor close-on-exec;
// - scratch space is a ScratchDir (mkdtemp, 0700), written through its directory descriptor,
//   removed without following links; no path a worker writes is predictable;
// - files named by tasks are read with read_inside(), which checks where the opened file
//   really is, so a symbolic link cannot take a read out of its folder.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "worker/worker.h"

namespace zb::worker {

// An owned file descriptor.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// A private folder for one task or one child: "<TMPDIR>/zbatch-<purpose>-XXXXXX" made by
// mkdtemp (an unpredictable name that did not exist, mode 0700). Files are created through
// its directory descriptor with O_CREAT | O_EXCL | O_NOFOLLOW, so nothing planted anywhere
// can redirect a write. Destruction removes it with everything in it, descending through
// directory descriptors (O_NOFOLLOW): a link placed inside is removed, never followed.
class ScratchDir {
 public:
  static Result<std::unique_ptr<ScratchDir>> create(const std::string& purpose);
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // Writes a new file at `relative` (plain names separated by '/', folders made as needed,
  // mode 0700/0600). Fails (kConflict) when the file exists, never replacing it.
  Status write(const std::string& relative, std::string_view content);

 private:
  ScratchDir() = default;
  std::filesystem::path path_;
  UniqueFd fd_;
};

// Removes everything inside the folder `dir_fd` without following symbolic links.
void remove_contents(int dir_fd);

// Opens `relative` inside the folder `root`, following symbolic links, and checks where the
// opened file really is (/proc/self/fd): outside `root` once links are resolved → kBadRequest
// ("... is outside ..."), so a link swapped in between a check and the open cannot move it.
// A missing file → kNotFound, unless its path already resolves outside (then kBadRequest:
// whether something outside exists is not told). `relative` must not be absolute or climb
// with "..". O_NONBLOCK and O_NOCTTY are added, so a FIFO or terminal cannot hang the caller.
Result<UniqueFd> open_inside(const std::filesystem::path& root, const std::string& relative, int flags);
// The contents of a regular file inside `root` (as open_inside); not a regular file →
// kUnprocessable, more than max_bytes → kTooLarge.
Result<std::string> read_inside(const std::filesystem::path& root, const std::string& relative, size_t max_bytes);
// Removes the file `relative` inside `root` (as open_inside, for its folder); a symbolic link
// there is removed itself. A missing file is not an error.
Status remove_inside(const std::filesystem::path& root, const std::string& relative);

// A Landlock ruleset (Linux 5.13+): a child it is applied to can read and execute only below
// `readable` (folders or single files) and write only below `writable`. kUnavailable when the
// kernel has no Landlock.
class Confinement {
 public:
  static Result<std::unique_ptr<Confinement>> create(const std::vector<std::filesystem::path>& readable,
                                                     const std::vector<std::filesystem::path>& writable);
  int fd() const { return fd_.get(); }

 private:
  Confinement() = default;
  UniqueFd fd_;
};

// How a child is started, beyond its handler's configuration.
struct SpawnOptions {
  bool capture_stderr = false;
  // A long-lived child (pool, MCP server) keeps its CPU hard limit open, so that
  // rearm_cpu_limit() can give each task its own cpu_time.
  bool long_lived = false;
  // false: the child's environment is PATH and LC_ALL=C only (then TMPDIR and config.env).
  bool inherit_env = true;
  // The child's TMPDIR (TMP, TEMP); empty: a ScratchDir made for it and removed with it.
  std::string tmpdir;
  const Confinement* confinement = nullptr;
  // KEY=VALUE entries of this start (after config.env): the task's TRACEPARENT.
  std::vector<std::string> env;
};

// A child process in its own process group, with pipes to its stdin and stdout and, when
// captured, stderr. Destruction kills the group (SIGKILL), reaps the child and removes its
// private TMPDIR.
class Child {
 public:
  static Result<std::unique_ptr<Child>> spawn(const ProcessHandlerConfig& config, const SpawnOptions& options);
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
  // A long-lived child: its CPU soft limit becomes what it has used so far plus cpu_time_s.
  void rearm_cpu_limit();
  // "ResourceLimitExceeded: cpu time: ...", "... file size: ..." or "... open files: ..."
  // when the child ended by one of its limits: SIGXCPU, SIGXFSZ, a SIGKILL it did not get
  // from us after using its CPU time (the hard limit); or, with its stderr given, a failed exit
  // whose last words are EFBIG ("File too large": Python ignores SIGXFSZ) or EMFILE ("Too many
  // open files") under that limit. Address space and processes make calls of the child fail
  // with errors that other causes share too (ENOMEM, EAGAIN): those stay the child's own.
  std::optional<std::string> limit_exceeded(std::string_view stderr_text = {}) const;
  // True when it died of a SIGKILL that did not come from this object.
  bool killed_by_someone_else() const;

  int in = -1, out = -1, err = -1;

 private:
  Child() = default;
  pid_t pid_ = -1;
  bool exited_ = false;
  bool sent_kill_ = false;
  int status_ = 0;
  rusage usage_{};
  ResourceLimits limits_;
  std::vector<std::pair<int, rlimit>> applied_;  // what setrlimit was given
  uint64_t cpu_soft_limit_s_ = 0;  // the CPU soft limit in force (absolute), 0 = none
  std::unique_ptr<ScratchDir> tmp_;
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
// the time limit that stopped it, or the resource limit it hit).
std::string ended_error(const Child& child, const Exchange& x, const TaskContext& ctx, const char* lost_class);

Handler make_exec_handler(ProcessHandlerConfig config);
// Children are started on demand, one per task running at once, so the slots bound the pool.
Handler make_pool_handler(ProcessHandlerConfig config);

}  // namespace zb::worker
