#include "worker/process.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#if __has_include(<linux/landlock.h>)
#include <linux/landlock.h>
#endif

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/log.h"

extern char** environ;

namespace zb::worker {
namespace fs = std::filesystem;
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr int kExitTempFail = 75;  // EX_TEMPFAIL: the task asks to be retried
constexpr auto kPollStep = std::chrono::milliseconds(20);

void set_nonblocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

std::string errno_text(int e) { return std::strerror(e); }

std::string size_text(uint64_t bytes) {
  if (bytes && bytes % (1u << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  return std::to_string(bytes) + " bytes";
}

// ---------------------------------------------------------------------------------------------
// Files

bool climbs(const fs::path& p) {
  return std::any_of(p.begin(), p.end(), [](const fs::path& c) { return c == ".."; });
}

// `p` is `root` or below it (both absolute and free of links and dots).
bool inside(const fs::path& root, const fs::path& p) {
  return std::mismatch(root.begin(), root.end(), p.begin(), p.end()).first == root.end();
}

// Where `p` leads with every symbolic link along it followed, also one that points to nothing
// (which fs::weakly_canonical keeps as a name); a loop gives an empty path.
fs::path follow_links(fs::path p) {
  for (int hops = 0; hops < 40; ++hops) {
    fs::path done;
    bool followed = false;
    for (auto it = p.begin(); it != p.end(); ++it) {
      done /= *it;
      std::error_code ec;
      if (!fs::is_symlink(fs::symlink_status(done, ec))) continue;
      const fs::path target = fs::read_symlink(done, ec);
      if (ec) return {};
      fs::path rest;
      for (auto r = std::next(it); r != p.end(); ++r) rest /= *r;
      p = ((target.is_absolute() ? target : done.parent_path() / target) / rest).lexically_normal();
      followed = true;
      break;
    }
    if (!followed) {
      std::error_code ec;
      fs::path real = fs::weakly_canonical(p, ec);
      return ec ? fs::path() : real;
    }
  }
  return {};
}

// Where the file open as `fd` really is, from /proc/self/fd; empty when /proc cannot say.
fs::path opened_path(int fd) {
  char link[PATH_MAX];
  const std::string proc = "/proc/self/fd/" + std::to_string(fd);
  const ssize_t n = ::readlink(proc.c_str(), link, sizeof link - 1);
  if (n <= 0) return {};
  return fs::path(std::string(link, static_cast<size_t>(n)));
}

void remove_contents_at(int dir_fd, int depth) {
  const int copy = ::fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return;
  DIR* dir = ::fdopendir(copy);
  if (!dir) {
    ::close(copy);
    return;
  }
  std::vector<std::string> names;
  while (dirent* e = ::readdir(dir)) {
    const std::string_view name = e->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  ::closedir(dir);
  for (const auto& name : names) {
    struct stat st {};
    if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      // A tree deeper than this is left (and logged by the caller when its folder stays).
      if (depth < 64) {
        UniqueFd sub(::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (sub.get() >= 0) {
          ::fchmod(sub.get(), 0700);  // a child may have made a folder it cannot write
          remove_contents_at(sub.get(), depth + 1);
        }
      }
      ::unlinkat(dir_fd, name.c_str(), AT_REMOVEDIR);
    } else {
      ::unlinkat(dir_fd, name.c_str(), 0);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Starting a child: everything is prepared in the parent; between fork and execve the child
// makes only system calls (async-signal-safe: it is a copy of a multi-threaded process, and
// another thread may have held any lock at the fork).

enum Stage : int { kStagePgid = 1, kStageDup, kStageChdir, kStageLandlock, kStageExec, kStageLimit = 100 };

struct ExecPlan {
  std::vector<std::string> candidates;  // paths to try with execve, in PATH order
  std::vector<char*> argv;
  std::vector<std::string> env_store;
  std::vector<char*> envp;
  std::string cwd;
  int fds[3] = {-1, -1, -1};  // what becomes stdin, stdout, stderr; -1 = the worker's
  std::vector<std::pair<int, rlimit>> limits;
  int landlock_fd = -1;
  int report_fd = -1;  // close-on-exec; gets {stage, errno} when the child cannot exec
  int max_fd = 1024;   // when close_range is missing: highest descriptor to mark close-on-exec
};

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

[[noreturn]] void exec_child(const ExecPlan& plan) {
  auto fail = [&](int stage) {
    const int report[2] = {stage, errno};
    [[maybe_unused]] ssize_t n = ::write(plan.report_fd, report, sizeof report);
    ::_exit(127);
  };
  if (::setpgid(0, 0) != 0) fail(kStagePgid);  // its own group: one kill reaches everything it starts
  // Handlers are reset by execve, ignored signals are not: every disposition back to default.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig)
    if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &dfl, nullptr);
  for (int i = 0; i < 3; ++i)
    if (plan.fds[i] >= 0 && ::dup2(plan.fds[i], i) < 0) fail(kStageDup);
  if (!plan.cwd.empty() && ::chdir(plan.cwd.c_str()) != 0) fail(kStageChdir);
  for (const auto& [resource, value] : plan.limits)
    if (::setrlimit(static_cast<__rlimit_resource_t>(resource), &value) != 0) fail(kStageLimit + resource);
#ifdef SYS_landlock_restrict_self
  if (plan.landlock_fd >= 0) {
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail(kStageLandlock);
    if (::syscall(SYS_landlock_restrict_self, plan.landlock_fd, 0) != 0) fail(kStageLandlock);
  }
#endif
  // Nothing else the worker holds (LMDB files, sockets, other children's pipes) reaches the
  // program: every descriptor above stderr closes at execve (the report pipe with them).
  if (::syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC) != 0)
    for (int fd = 3; fd <= plan.max_fd; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  int why = ENOENT;
  for (const auto& path : plan.candidates) {
    ::execve(path.c_str(), plan.argv.data(), plan.envp.data());
    if (errno != ENOENT && errno != ENOTDIR && why == ENOENT) why = errno;  // as execvp: EACCES wins
  }
  errno = why;
  fail(kStageExec);
  ::_exit(127);
}

std::string stage_text(int stage, const ExecPlan& plan) {
  switch (stage) {
    case kStagePgid: return "setpgid: ";
    case kStageDup: return "dup2: ";
    case kStageChdir: return "cannot enter its folder '" + plan.cwd + "': ";
    case kStageLandlock: return "Landlock: ";
    case kStageExec: return "";
    default: return "setrlimit(" + std::to_string(stage - kStageLimit) + "): ";
  }
}

// Descriptors 0-2 are taken by dup2 in the child; a pipe end must not sit there already (the
// worker may run with stdin closed).
void keep_above_stderr(int& fd) {
  if (fd < 0 || fd > 2) return;
  const int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  ::close(fd);
  fd = moved;
}

// Processes and threads of the worker's real user now (what RLIMIT_NPROC counts), from /proc;
// 0 when /proc cannot be read.
uint64_t user_task_count() {
  DIR* proc = ::opendir("/proc");
  if (!proc) return 0;
  const uid_t uid = ::getuid();
  uint64_t tasks = 0;
  while (dirent* e = ::readdir(proc)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    struct stat st {};
    if (::fstatat(::dirfd(proc), e->d_name, &st, 0) != 0 || st.st_uid != uid) continue;
    std::ifstream stat(std::string("/proc/") + e->d_name + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    // Field 20 (num_threads), counted after the command name's closing parenthesis (field 2).
    const auto close = text.rfind(')');
    uint64_t threads = 1;
    if (close != std::string::npos) {
      std::istringstream fields(text.substr(close + 1));
      std::string field;
      for (int i = 3; i <= 20 && fields >> field; ++i)
        if (i == 20) threads = std::max<uint64_t>(1, std::strtoull(field.c_str(), nullptr, 10));
    }
    tasks += threads;
  }
  ::closedir(proc);
  return tasks;
}

// The limits as setrlimit values: each only lowers what the worker has (soft and hard).
std::vector<std::pair<int, rlimit>> plan_limits(const ResourceLimits& l, bool long_lived, uint32_t grace_ms) {
  std::vector<std::pair<int, rlimit>> out;
  auto lower = [&](int resource, rlim_t soft, rlim_t hard) {
    rlimit cur{};
    ::getrlimit(static_cast<__rlimit_resource_t>(resource), &cur);
    rlimit v{std::min(cur.rlim_cur, soft), std::min(cur.rlim_max, hard)};
    v.rlim_cur = std::min(v.rlim_cur, v.rlim_max);
    out.emplace_back(resource, v);
  };
  if (l.cpu_time_s) {
    // SIGXCPU at the soft limit, SIGKILL at the hard one; a long-lived child's hard limit stays
    // open so each task can be given its own cpu_time (Child::rearm_cpu_limit).
    const rlim_t grace_s = std::max<rlim_t>(1, (grace_ms + 999) / 1000);
    lower(RLIMIT_CPU, l.cpu_time_s, long_lived ? RLIM_INFINITY : l.cpu_time_s + grace_s);
  }
  if (l.address_space_bytes) lower(RLIMIT_AS, l.address_space_bytes, l.address_space_bytes);
  if (l.file_size_bytes) lower(RLIMIT_FSIZE, l.file_size_bytes, l.file_size_bytes);
  if (l.open_files) lower(RLIMIT_NOFILE, l.open_files, l.open_files);
  if (l.processes) {
    if (::geteuid() == 0) {
      static std::once_flag once;
      std::call_once(once, [] {
        spdlog::warn("worker runs as root: the kernel does not apply RLIMIT_NPROC (limit processes) to root's "
                     "children; run workers as an unprivileged user to bound the processes a task starts");
      });
    } else if (const uint64_t now = user_task_count()) {
      lower(RLIMIT_NPROC, now + l.processes, now + l.processes);
    }
  }
  lower(RLIMIT_CORE, 0, 0);
  return out;
}

void ignore_sigpipe() {
  static std::once_flag once;
  std::call_once(once, [] { ::signal(SIGPIPE, SIG_IGN); });  // a child that stops reading is an error, not a crash
}

double cpu_seconds(const rusage& u) {
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

HandlerResult run_exec(const ProcessHandlerConfig& cfg, const TaskContext& ctx) {
  SpawnOptions options;
  options.capture_stderr = true;
  if (!ctx.trace.empty()) options.env.push_back("TRACEPARENT=" + std::string(ctx.trace));
  auto child = Child::spawn(cfg, options);
  if (!child) return HandlerResult::fail("SpawnError: " + child.status().message());
  Exchange x = pump(**child, task_json(ctx), false, cfg, ctx);
  Child& c = **child;
  if (!c.exited()) {
    c.kill_group(SIGKILL);
    for (int i = 0; i < 100 && !c.reap(); ++i) ::poll(nullptr, 0, 10);
  }
  if (x.overflow)
    return HandlerResult::fail("OutputTooLarge: stdout passed " + std::to_string(cfg.stdout_limit) + " bytes");
  const int st = c.wait_status();
  if (x.killed == Killed::kNone && c.exited() && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
    std::string_view text = x.out;
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
    if (text.empty()) return HandlerResult::ok("null");
    json parsed = json::parse(text, nullptr, false);
    if (parsed.is_discarded())
      return HandlerResult::fail("BadOutput: stdout is not JSON: " + std::string(text.substr(0, 200)));
    return HandlerResult::ok(parsed.dump());
  }
  if (x.killed == Killed::kNone && c.exited() && WIFEXITED(st) && WEXITSTATUS(st) == kExitTempFail)
    return HandlerResult::retry("ProcessTempFail: exit code 75" + (x.err.empty() ? "" : ": " + tail(x.err)));
  return HandlerResult::fail(ended_error(c, x, ctx, "ProcessExitError"));
}

// Long-lived children, each serving one task at a time.
class Pool {
 public:
  explicit Pool(ProcessHandlerConfig cfg) : cfg_(std::move(cfg)) {}

  HandlerResult run(const TaskContext& ctx) {
    std::unique_ptr<Entry> e = checkout();
    if (!e) return HandlerResult::fail("SpawnError: " + spawn_error_);
    e->child->rearm_cpu_limit();  // cpu_time counts for this task, not the child's life
    std::string line = task_json(ctx) + "\n";
    Exchange x = pump(*e->child, line, true, cfg_, ctx);
    if (x.overflow) {
      retire(std::move(e), true);
      return HandlerResult::fail("OutputTooLarge: the answer passed " + std::to_string(cfg_.stdout_limit) + " bytes");
    }
    if (!x.line) {
      // The child died (or was killed) before answering: only this task fails. Its stdout
      // closes as it exits; give the exit a moment to be reaped so the error can say how.
      for (int i = 0; i < 50 && !e->child->reap(); ++i) ::poll(nullptr, 0, 10);
      std::string error = ended_error(*e->child, x, ctx, "WorkerLostError");
      retire(std::move(e), true);
      return HandlerResult::fail(error);
    }
    ++e->tasks;
    HandlerResult r = parse_answer(x.out);
    const uint64_t rss = cfg_.max_memory_bytes ? e->child->rss_bytes() : 0;
    if (e->tasks >= cfg_.max_tasks_per_child || (cfg_.max_memory_bytes && rss > cfg_.max_memory_bytes)) {
      spdlog::info("pool kind={} recycling child pid={} tasks={} rss={}", cfg_.kind, e->child->pid(), e->tasks, rss);
      retire(std::move(e), false);
    } else {
      std::lock_guard lock(mu_);
      idle_.push_back(std::move(e));
    }
    return r;
  }

 private:
  struct Entry {
    std::unique_ptr<Child> child;
    uint32_t tasks = 0;
  };

  std::unique_ptr<Entry> checkout() {
    {
      std::lock_guard lock(mu_);
      while (!idle_.empty()) {
        auto e = std::move(idle_.back());
        idle_.pop_back();
        if (!e->child->reap()) return e;  // a child that died while idle is replaced
      }
    }
    SpawnOptions options;
    options.long_lived = true;
    auto child = Child::spawn(cfg_, options);
    if (!child) {
      std::lock_guard lock(mu_);
      spawn_error_ = child.status().message();
      return nullptr;
    }
    auto e = std::make_unique<Entry>();
    e->child = std::move(child.value());
    return e;
  }

  // A recycled child gets EOF on stdin and a moment to exit; a broken one is killed.
  void retire(std::unique_ptr<Entry> e, bool broken) {
    if (!broken) {
      e->child->close_stdin();
      for (int i = 0; i < 50 && !e->child->reap(); ++i) ::poll(nullptr, 0, 10);
    }
    e.reset();  // kills the group and reaps
  }

  static HandlerResult parse_answer(const std::string& line) {
    json answer = json::parse(line, nullptr, false);
    if (answer.is_discarded() || !answer.is_object())
      return HandlerResult::fail("BadOutput: the answer is not a JSON object: " + line.substr(0, 200));
    if (auto e = answer.find("error"); e != answer.end() && !e->is_null()) {
      std::string message = e->is_string() ? e->get<std::string>() : e->dump();
      auto retry = answer.find("retry");
      if (retry != answer.end() && retry->is_boolean() && retry->get<bool>()) return HandlerResult::retry(message);
      return HandlerResult::fail(message);
    }
    auto result = answer.find("result");
    return HandlerResult::ok(result == answer.end() ? "null" : result->dump());
  }

  ProcessHandlerConfig cfg_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Entry>> idle_;
  std::string spawn_error_;
};

}  // namespace

// The task as the child sees it. The payload is embedded as JSON when it parses, else as text.
std::string task_json(const TaskContext& ctx) {
  json payload = json::parse(ctx.payload.empty() ? std::string_view("null") : ctx.payload, nullptr, false);
  if (payload.is_discarded()) payload = std::string(ctx.payload);
  json task{{"id", ctx.task.to_string()}, {"attempt", ctx.attempt},
            {"group", ctx.group.is_nil() ? json(nullptr) : json(ctx.group.to_string())},
            {"ref", ctx.ref}, {"queue", ctx.queue}, {"kind", ctx.kind}, {"payload", payload}};
  if (!ctx.trace.empty()) task["traceparent"] = ctx.trace;
  if (!ctx.inputs.empty()) {
    json inputs = json::parse(ctx.inputs, nullptr, false);
    task["inputs"] = inputs.is_discarded() ? json(std::string(ctx.inputs)) : std::move(inputs);
  }
  return task.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string tail(const std::string& text, size_t max) {
  std::string t = text.size() > max ? "..." + text.substr(text.size() - max) : text;
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
  return t;
}

Exchange pump(Child& child, const std::string& input, bool until_line, const ProcessHandlerConfig& cfg,
              const TaskContext& ctx) {
  Exchange x;
  size_t written = 0;
  if (input.empty() && !until_line) child.close_stdin();  // nothing to say: EOF at once
  const auto never = Clock::time_point::max();
  const auto soft_at = ctx.soft_limit_ms ? ctx.started + std::chrono::milliseconds(ctx.soft_limit_ms) : never;
  const auto hard_at = ctx.hard_limit_ms ? ctx.started + std::chrono::milliseconds(ctx.hard_limit_ms) : never;
  auto term_kill_at = never;
  bool term_sent = false, kill_sent = false;
  auto exited_at = never;
  char buf[65536];
  for (;;) {
    std::vector<pollfd> fds;
    if (child.in >= 0 && written < input.size()) fds.push_back({child.in, POLLOUT, 0});
    if (child.out >= 0) fds.push_back({child.out, POLLIN, 0});
    if (child.err >= 0) fds.push_back({child.err, POLLIN, 0});
    if (fds.empty() && (child.exited() || child.reap())) break;
    ::poll(fds.data(), fds.size(), static_cast<int>(kPollStep.count()));
    for (const auto& p : fds) {
      if (!p.revents) continue;
      if (p.fd == child.in) {
        ssize_t n = ::write(child.in, input.data() + written, input.size() - written);
        if (n > 0) written += static_cast<size_t>(n);
        else if (n < 0 && errno != EAGAIN && errno != EINTR) close_fd(child.in);  // EPIPE: it stopped reading
        if (written == input.size() && !until_line) child.close_stdin();
        continue;
      }
      ssize_t n = ::read(p.fd, buf, sizeof buf);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        if (p.fd == child.out) close_fd(child.out);
        else close_fd(child.err);
        continue;
      }
      if (n < 0) continue;
      if (p.fd == child.err) {
        ctx.emit(proto::OutputType::kLog, std::string_view(buf, static_cast<size_t>(n)));
        x.err.append(buf, static_cast<size_t>(n));
        if (x.err.size() > 2 * cfg.stderr_limit) x.err.erase(0, x.err.size() - cfg.stderr_limit);
        continue;
      }
      if (x.overflow) continue;
      x.out.append(buf, static_cast<size_t>(n));
      if (until_line) {
        if (auto nl = x.out.find('\n'); nl != std::string::npos) {
          if (nl + 1 < x.out.size()) spdlog::warn("pool child pid={} wrote more than one line for a task", child.pid());
          x.out.resize(nl);
          x.line = true;
        }
      }
      if (x.out.size() > cfg.stdout_limit) {
        x.overflow = true;
        x.out.clear();
      }
    }
    if (x.line) return x;
    if (until_line && (x.overflow || child.out < 0)) return x;
    const auto now = Clock::now();
    if (!child.exited() && child.reap()) exited_at = now;
    if (child.exited()) {
      // What the child started may still hold the pipes: the group goes with it.
      child.kill_group(SIGKILL);
      if (exited_at == never) exited_at = now;
      if (now - exited_at > std::chrono::milliseconds(500)) break;
      if (child.out < 0 && child.err < 0) break;
      continue;
    }
    if (now >= hard_at && !kill_sent) {
      child.kill_group(SIGKILL);
      kill_sent = true;
      x.killed = Killed::kHard;
    } else if (!term_sent && (now >= soft_at || ctx.is_cancelled())) {
      child.kill_group(SIGTERM);
      term_sent = true;
      x.killed = now >= soft_at ? Killed::kSoft : Killed::kCancel;
      term_kill_at = now + std::chrono::milliseconds(cfg.term_grace_ms);
    } else if (term_sent && !kill_sent && now >= term_kill_at) {
      child.kill_group(SIGKILL);
      kill_sent = true;
    }
  }
  return x;
}

// The error of a child that ended without a usable answer.
std::string ended_error(const Child& child, const Exchange& x, const TaskContext& ctx, const char* lost_class) {
  switch (x.killed) {
    case Killed::kSoft:
      return "SoftTimeLimitExceeded: soft time limit of " + std::to_string(ctx.soft_limit_ms) +
             " ms exceeded; the process group got SIGTERM";
    case Killed::kHard:
      return "TimeLimitExceeded: hard time limit of " + std::to_string(ctx.hard_limit_ms) +
             " ms exceeded; the process group got SIGKILL";
    case Killed::kCancel:
      return "Terminated: the task was cancelled; the process group got SIGTERM";
    case Killed::kNone:
      break;
  }
  std::string err = tail(x.err);
  if (auto hit = child.limit_exceeded(x.err)) return *hit + (err.empty() ? "" : ": " + err);
  const int st = child.wait_status();
  std::string what;
  if (!child.exited()) what = "the process did not exit";
  else if (WIFSIGNALED(st)) what = "killed by signal " + std::to_string(WTERMSIG(st)) + " (" + strsignal(WTERMSIG(st)) + ")";
  else what = "exit code " + std::to_string(WEXITSTATUS(st));
  if (child.killed_by_someone_else()) what += " from outside zbatch (the kernel's out-of-memory killer, or another process)";
  return std::string(lost_class) + ": " + what + (err.empty() ? "" : ": " + err);
}


// ---------------------------------------------------------------------------------------------
// Files

UniqueFd& UniqueFd::operator=(UniqueFd&& o) noexcept {
  if (this != &o) reset(o.release());
  return *this;
}

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

Result<std::unique_ptr<ScratchDir>> ScratchDir::create(const std::string& purpose) {
  std::error_code ec;
  fs::path base = fs::temp_directory_path(ec);
  if (ec) base = "/tmp";
  std::string name = (base / ("zbatch-" + purpose + "-XXXXXX")).string();
  if (!::mkdtemp(name.data()))
    return Status(Code::kIo, "cannot make a scratch folder in " + base.string() + ": " + errno_text(errno));
  std::unique_ptr<ScratchDir> dir(new ScratchDir());
  dir->path_ = name;
  dir->fd_.reset(::open(name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (dir->fd_.get() < 0) {
    const int e = errno;
    ::rmdir(name.c_str());
    dir->path_.clear();
    return Status(Code::kIo, "cannot open the scratch folder " + name + ": " + errno_text(e));
  }
  return dir;
}

ScratchDir::~ScratchDir() {
  if (path_.empty()) return;
  remove_contents(fd_.get());
  fd_.reset();
  if (::rmdir(path_.c_str()) != 0 && errno != ENOENT)
    spdlog::warn("scratch folder not removed path={} error=\"{}\"", path_.string(), errno_text(errno));
}

Status ScratchDir::write(const std::string& relative, std::string_view content) {
  std::vector<std::string> names;
  for (const auto& part : fs::path(relative)) {
    const std::string name = part.string();
    if (name.empty() || name == "." || name == ".." || name == "/")
      return Status(Code::kBadRequest, "'" + relative + "' is not a relative path of plain names");
    names.push_back(name);
  }
  if (names.empty()) return Status(Code::kBadRequest, "an empty path");
  UniqueFd held;
  int dir = fd_.get();
  for (size_t i = 0; i + 1 < names.size(); ++i) {
    if (::mkdirat(dir, names[i].c_str(), 0700) != 0 && errno != EEXIST)
      return Status(Code::kIo, "cannot make '" + names[i] + "' in the scratch folder: " + errno_text(errno));
    UniqueFd sub(::openat(dir, names[i].c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (sub.get() < 0) return Status(Code::kIo, "cannot open '" + names[i] + "' in the scratch folder: " + errno_text(errno));
    held = std::move(sub);
    dir = held.get();
  }
  UniqueFd file(::openat(dir, names.back().c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (file.get() < 0) {
    const int e = errno;
    return Status(e == EEXIST ? Code::kConflict : Code::kIo, "cannot create '" + relative + "': " + errno_text(e));
  }
  size_t off = 0;
  while (off < content.size()) {
    const ssize_t n = ::write(file.get(), content.data() + off, content.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status(Code::kIo, "cannot write '" + relative + "': " + errno_text(errno));
    off += static_cast<size_t>(n);
  }
  return Status::ok();
}

void remove_contents(int dir_fd) {
  if (dir_fd >= 0) remove_contents_at(dir_fd, 0);
}

Result<UniqueFd> open_inside(const fs::path& root, const std::string& relative, int flags) {
  const fs::path rel(relative);
  const auto outside = [&] { return Status(Code::kBadRequest, "'" + relative + "' is outside " + root.string()); };
  if (relative.empty() || rel.is_absolute() || climbs(rel)) return outside();
  std::error_code ec;
  const fs::path real_root = fs::canonical(root, ec);
  if (ec) return Status(Code::kNotFound, "the folder " + root.string() + " does not exist");
  const fs::path full = real_root / rel;
  const int fd = ::open(full.c_str(), flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    const int e = errno;
    // Missing inside is "not found"; a path that links out stays "outside", existing or not.
    const fs::path resolved = follow_links(full);
    if (resolved.empty() || !inside(real_root, resolved) || e == ELOOP) return outside();
    if (e == ENOENT || e == ENOTDIR) return Status(Code::kNotFound, "'" + relative + "' does not exist in " + root.string());
    return Status(Code::kIo, "'" + relative + "': " + errno_text(e));
  }
  UniqueFd owned(fd);
  // The check is on what was opened: a link swapped in after any earlier look cannot move it.
  fs::path where = opened_path(fd);
  if (where.empty()) where = fs::canonical(full, ec);  // no /proc: the path, checked just after the open
  if (where.empty() || !inside(real_root, where)) return outside();
  return owned;
}

Result<std::string> read_inside(const fs::path& root, const std::string& relative, size_t max_bytes) {
  auto fd = open_inside(root, relative, O_RDONLY);
  if (!fd) return fd.status();
  struct stat st {};
  if (::fstat(fd->get(), &st) != 0 || !S_ISREG(st.st_mode))
    return Status(Code::kUnprocessable, "'" + relative + "' is not a regular file");
  if (static_cast<uint64_t>(st.st_size) > max_bytes)
    return Status(Code::kTooLarge, "'" + relative + "' is larger than " + size_text(max_bytes));
  std::string text;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd->get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status(Code::kIo, "cannot read '" + relative + "': " + errno_text(errno));
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > max_bytes) return Status(Code::kTooLarge, "'" + relative + "' is larger than " + size_text(max_bytes));
  }
  return text;
}

Status remove_inside(const fs::path& root, const std::string& relative) {
  const fs::path rel(relative);
  const std::string leaf = rel.filename().string();
  if (leaf.empty() || leaf == "." || leaf == "..")
    return Status(Code::kBadRequest, "'" + relative + "' does not name a file");
  const std::string folder = rel.parent_path().empty() ? "." : rel.parent_path().string();
  auto dir = open_inside(root, folder, O_RDONLY | O_DIRECTORY);
  if (!dir) return dir.status().code() == Code::kNotFound ? Status::ok() : dir.status();
  if (::unlinkat(dir->get(), leaf.c_str(), 0) != 0 && errno != ENOENT)
    return Status(Code::kIo, "cannot remove '" + relative + "': " + errno_text(errno));
  return Status::ok();
}

// ---------------------------------------------------------------------------------------------
// Landlock

Result<std::unique_ptr<Confinement>> Confinement::create(const std::vector<fs::path>& readable,
                                                         const std::vector<fs::path>& writable) {
#if defined(SYS_landlock_create_ruleset) && defined(LANDLOCK_CREATE_RULESET_VERSION)
  const long abi = ::syscall(SYS_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
  if (abi < 1) return Status(Code::kUnavailable, "the kernel has no Landlock (" + errno_text(errno) + ")");
  constexpr uint64_t kRead = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR;
  constexpr uint64_t kTruncate = 1ull << 14;  // LANDLOCK_ACCESS_FS_TRUNCATE, ABI 3
  uint64_t handled = (1ull << 13) - 1;        // every right of ABI 1: execute, read, write, make, remove
  if (abi >= 2) handled |= LANDLOCK_ACCESS_FS_REFER;
  if (abi >= 3) handled |= kTruncate;
  const uint64_t file_rights =
      LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE | (handled & kTruncate);
  landlock_ruleset_attr attr{};
  attr.handled_access_fs = handled;
  std::unique_ptr<Confinement> c(new Confinement());
  c->fd_.reset(static_cast<int>(::syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0)));
  if (c->fd_.get() < 0) return Status(Code::kIo, "landlock_create_ruleset: " + errno_text(errno));
  auto allow = [&](const fs::path& path, uint64_t access) -> Status {
    UniqueFd fd(::open(path.c_str(), O_PATH | O_CLOEXEC));
    if (fd.get() < 0) return Status::ok();  // not on this system: nothing to allow
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return Status::ok();
    landlock_path_beneath_attr rule{};
    rule.allowed_access = S_ISDIR(st.st_mode) ? access : access & file_rights;
    rule.parent_fd = fd.get();
    if (::syscall(SYS_landlock_add_rule, c->fd_.get(), LANDLOCK_RULE_PATH_BENEATH, &rule, 0) != 0)
      return Status(Code::kIo, "landlock_add_rule " + path.string() + ": " + errno_text(errno));
    return Status::ok();
  };
  for (const auto& p : readable)
    if (Status s = allow(p, kRead); !s) return s;
  for (const auto& p : writable)
    if (Status s = allow(p, handled); !s) return s;
  return c;
#else
  (void)readable;
  (void)writable;
  return Status(Code::kUnavailable, "built without Landlock headers");
#endif
}

// ---------------------------------------------------------------------------------------------
// Children

Result<std::unique_ptr<Child>> Child::spawn(const ProcessHandlerConfig& config, const SpawnOptions& options) {
  if (config.argv.empty() || config.argv[0].empty()) return Status(Code::kBadRequest, "no program to start");
  std::unique_ptr<Child> child(new Child());
  child->limits_ = config.limits;
  ExecPlan plan;
  // The program: a path (relative ones resolve in the child's folder), or each PATH entry.
  const std::string& program = config.argv[0];
  if (program.find('/') != std::string::npos) {
    plan.candidates.push_back(program);
  } else {
    const char* env_path = std::getenv("PATH");
    std::stringstream dirs(env_path && *env_path ? env_path : "/bin:/usr/bin");
    for (std::string dir; std::getline(dirs, dir, ':');) plan.candidates.push_back((dir.empty() ? "." : dir) + "/" + program);
  }
  for (const auto& a : config.argv) plan.argv.push_back(const_cast<char*>(a.c_str()));
  plan.argv.push_back(nullptr);
  // The environment: later entries replace earlier ones of the same name.
  std::vector<std::string>& env = plan.env_store;
  auto set_env = [&env](std::string entry) {
    const auto eq = entry.find('=');
    const std::string_view key(entry.data(), eq == std::string::npos ? entry.size() : eq + 1);
    auto same = std::find_if(env.begin(), env.end(), [&](const std::string& e) { return e.compare(0, key.size(), key) == 0; });
    if (same != env.end()) *same = std::move(entry);
    else env.push_back(std::move(entry));
  };
  if (options.inherit_env) {
    for (char** e = environ; e && *e; ++e) set_env(*e);
  } else {
    const char* path = std::getenv("PATH");
    set_env(std::string("PATH=") + (path && *path ? path : "/bin:/usr/bin"));
    set_env("LC_ALL=C");
  }
  std::string tmpdir = options.tmpdir;
  if (tmpdir.empty()) {
    auto tmp = ScratchDir::create("tmp");
    if (!tmp) return tmp.status();
    child->tmp_ = std::move(tmp.value());
    tmpdir = child->tmp_->path().string();
  }
  for (const char* name : {"TMPDIR=", "TMP=", "TEMP="}) set_env(name + tmpdir);
  for (const auto& e : config.env) set_env(e);
  for (const auto& e : options.env) set_env(e);
  for (auto& e : env) plan.envp.push_back(e.data());
  plan.envp.push_back(nullptr);
  plan.cwd = config.cwd;
  plan.limits = plan_limits(config.limits, options.long_lived, config.term_grace_ms);
  child->applied_ = plan.limits;
  for (const auto& [resource, value] : plan.limits)
    if (resource == RLIMIT_CPU) child->cpu_soft_limit_s_ = value.rlim_cur == RLIM_INFINITY ? 0 : value.rlim_cur;
  if (options.confinement) plan.landlock_fd = options.confinement->fd();
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0)
    plan.max_fd = static_cast<int>(std::min<rlim_t>(files.rlim_cur == RLIM_INFINITY ? 65536 : files.rlim_cur, 1 << 20));

  int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1}, report[2] = {-1, -1};
  auto close_all = [&] {
    for (int* p : {in_pipe, out_pipe, err_pipe, report})
      for (int i = 0; i < 2; ++i) close_fd(p[i]);
  };
  for (int* p : {in_pipe, out_pipe, report}) {
    if (::pipe2(p, O_CLOEXEC) != 0) {
      const int e = errno;
      close_all();
      return Status(Code::kIo, "pipe: " + errno_text(e));
    }
  }
  if (options.capture_stderr && ::pipe2(err_pipe, O_CLOEXEC) != 0) {
    const int e = errno;
    close_all();
    return Status(Code::kIo, "pipe: " + errno_text(e));
  }
  for (int* p : {in_pipe, out_pipe, err_pipe, report}) {
    keep_above_stderr(p[0]);
    keep_above_stderr(p[1]);
  }
  plan.fds[0] = in_pipe[0];
  plan.fds[1] = out_pipe[1];
  plan.fds[2] = err_pipe[1];
  plan.report_fd = report[1];

  // No signal handler of the worker may run in the child before it resets them.
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  const pid_t pid = ::fork();
  if (pid == 0) exec_child(plan);
  const int fork_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  close_fd(in_pipe[0]);
  close_fd(out_pipe[1]);
  close_fd(err_pipe[1]);
  close_fd(report[1]);
  if (pid < 0) {
    close_all();
    return Status(Code::kIo, "cannot start '" + program + "': fork: " + errno_text(fork_errno));
  }
  // The report pipe closes at execve; {stage, errno} arrive when the child could not get there.
  int failure[2] = {0, 0};
  size_t got = 0;
  while (got < sizeof failure) {
    const ssize_t n = ::read(report[0], reinterpret_cast<char*>(failure) + got, sizeof failure - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  close_fd(report[0]);
  child->pid_ = pid;
  if (got == sizeof failure) {
    close_all();
    ::waitpid(pid, nullptr, 0);
    child->exited_ = true;
    child->pid_ = -1;
    return Status(Code::kIo, "cannot start '" + program + "': " + stage_text(failure[0], plan) + errno_text(failure[1]));
  }
  ignore_sigpipe();
  child->in = in_pipe[1];
  child->out = out_pipe[0];
  child->err = err_pipe[0];
  set_nonblocking(child->in);
  set_nonblocking(child->out);
  if (child->err >= 0) set_nonblocking(child->err);
  return child;
}

Child::~Child() {
  close_fd(in);
  close_fd(out);
  close_fd(err);
  if (pid_ > 0) {
    ::kill(-pid_, SIGKILL);  // the child, or what it left behind in its group
    if (!exited_) ::wait4(pid_, &status_, 0, &usage_);
  }
  tmp_.reset();  // after the group is gone
}

void Child::kill_group(int sig) {
  if (pid_ <= 0) return;
  if (sig == SIGKILL && !exited_) sent_kill_ = true;
  ::kill(-pid_, sig);
}

bool Child::reap() {
  if (exited_) return true;
  int st = 0;
  const pid_t r = ::wait4(pid_, &st, WNOHANG, &usage_);
  if (r == pid_) {
    exited_ = true;
    status_ = st;
  }
  return exited_;
}

void Child::close_stdin() { close_fd(in); }

uint64_t Child::rss_bytes() const {
  std::ifstream status("/proc/" + std::to_string(pid_) + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  return 0;
}

void Child::rearm_cpu_limit() {
  if (!limits_.cpu_time_s || pid_ <= 0 || exited_) return;
  // CPU time used so far: fields 14 and 15 (utime, stime, clock ticks) of /proc/PID/stat.
  std::ifstream stat("/proc/" + std::to_string(pid_) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');
  if (close == std::string::npos) return;
  std::istringstream fields(text.substr(close + 1));
  std::string field;
  uint64_t ticks = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i)
    if (i >= 14) ticks += std::strtoull(field.c_str(), nullptr, 10);
  const uint64_t per_second = static_cast<uint64_t>(std::max(1L, ::sysconf(_SC_CLK_TCK)));
  rlimit cur{};
  if (::prlimit(pid_, RLIMIT_CPU, nullptr, &cur) != 0) return;
  const rlim_t soft = std::min<rlim_t>(cur.rlim_max, (ticks + per_second - 1) / per_second + limits_.cpu_time_s);
  const rlimit next{soft, cur.rlim_max};
  if (::prlimit(pid_, RLIMIT_CPU, &next, nullptr) == 0) cpu_soft_limit_s_ = soft;
  else spdlog::debug("prlimit pid={} error=\"{}\"", pid_, errno_text(errno));
}

std::optional<std::string> Child::limit_exceeded(std::string_view stderr_text) const {
  if (!exited_) return std::nullopt;
  auto applied = [&](int resource) -> rlim_t {
    for (const auto& [r, v] : applied_)
      if (r == resource && v.rlim_cur != RLIM_INFINITY) return v.rlim_cur;
    return 0;
  };
  const std::string file_size = "ResourceLimitExceeded: file size: a write passed the file size limit of " +
                                size_text(applied(RLIMIT_FSIZE));
  if (WIFEXITED(status_)) {
    // The last lines of a failed exit, as programs that catch the error report it.
    if (WEXITSTATUS(status_) == 0) return std::nullopt;
    const std::string_view last = stderr_text.substr(stderr_text.size() > 400 ? stderr_text.size() - 400 : 0);
    if (applied(RLIMIT_FSIZE) && last.find("File too large") != std::string_view::npos)
      return file_size + " (the process got EFBIG, \"File too large\")";
    if (applied(RLIMIT_NOFILE) && last.find("Too many open files") != std::string_view::npos &&
        last.find("Too many open files in system") == std::string_view::npos)
      return "ResourceLimitExceeded: open files: the process passed its limit of " +
             std::to_string(applied(RLIMIT_NOFILE)) + " open files (EMFILE)";
    return std::nullopt;
  }
  if (!WIFSIGNALED(status_)) return std::nullopt;
  const int sig = WTERMSIG(status_);
  const std::string cpu = "ResourceLimitExceeded: cpu time: the process used its " + std::to_string(limits_.cpu_time_s) +
                          " s of CPU time";
  if (sig == SIGXCPU && applied(RLIMIT_CPU)) return cpu + " (SIGXCPU)";
  if (sig == SIGXFSZ && applied(RLIMIT_FSIZE)) return file_size + " (SIGXFSZ)";
  if (sig == SIGKILL && !sent_kill_ && cpu_soft_limit_s_ && cpu_seconds(usage_) + 0.5 >= static_cast<double>(cpu_soft_limit_s_))
    return cpu + " and went on after SIGXCPU (SIGKILL at the hard limit)";
  return std::nullopt;
}

bool Child::killed_by_someone_else() const {
  return exited_ && WIFSIGNALED(status_) && WTERMSIG(status_) == SIGKILL && !sent_kill_;
}

Handler make_exec_handler(ProcessHandlerConfig config) {
  auto cfg = std::make_shared<const ProcessHandlerConfig>(std::move(config));
  return [cfg](const TaskContext& ctx) { return run_exec(*cfg, ctx); };
}

Handler make_pool_handler(ProcessHandlerConfig config) {
  auto pool = std::make_shared<Pool>(std::move(config));
  return [pool](const TaskContext& ctx) { return pool->run(ctx); };
}

}  // namespace zb::worker
