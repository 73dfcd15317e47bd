#include "worker/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/log.h"

extern char** environ;

namespace zb::worker {
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

HandlerResult run_exec(const ProcessHandlerConfig& cfg, const TaskContext& ctx) {
  auto child = Child::spawn(cfg, true);
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
    auto child = Child::spawn(cfg_, false);
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

void ignore_sigpipe() {
  static std::once_flag once;
  std::call_once(once, [] { ::signal(SIGPIPE, SIG_IGN); });  // a child that stops reading is an error, not a crash
}

}  // namespace

// The task as the child sees it. The payload is embedded as JSON when it parses, else as text.
std::string task_json(const TaskContext& ctx) {
  json payload = json::parse(ctx.payload.empty() ? std::string_view("null") : ctx.payload, nullptr, false);
  if (payload.is_discarded()) payload = std::string(ctx.payload);
  return json{{"id", ctx.task.to_string()}, {"attempt", ctx.attempt},
              {"group", ctx.group.is_nil() ? json(nullptr) : json(ctx.group.to_string())},
              {"ref", ctx.ref}, {"queue", ctx.queue}, {"kind", ctx.kind}, {"payload", payload}}
      .dump(-1, ' ', false, json::error_handler_t::replace);
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
  const int st = child.wait_status();
  std::string what;
  if (!child.exited()) what = "the process did not exit";
  else if (WIFSIGNALED(st)) what = "killed by signal " + std::to_string(WTERMSIG(st)) + " (" + strsignal(WTERMSIG(st)) + ")";
  else what = "exit code " + std::to_string(WEXITSTATUS(st));
  std::string err = tail(x.err);
  return std::string(lost_class) + ": " + what + (err.empty() ? "" : ": " + err);
}


Result<std::unique_ptr<Child>> Child::spawn(const ProcessHandlerConfig& config, bool capture_stderr) {
  int in_pipe[2], out_pipe[2], err_pipe[2] = {-1, -1};
  if (::pipe2(in_pipe, O_CLOEXEC) != 0) return Status(Code::kIo, std::string("pipe: ") + std::strerror(errno));
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    ::close(in_pipe[0]);
    ::close(in_pipe[1]);
    return Status(Code::kIo, std::string("pipe: ") + std::strerror(errno));
  }
  if (capture_stderr && ::pipe2(err_pipe, O_CLOEXEC) != 0) {
    for (int fd : {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1]}) ::close(fd);
    return Status(Code::kIo, std::string("pipe: ") + std::strerror(errno));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_pipe[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  if (capture_stderr) posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  if (!config.cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, config.cwd.c_str());
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults, empty;
  sigemptyset(&empty);
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setpgroup(&attr, 0);  // its own process group: one kill reaches everything it starts
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

  std::vector<char*> argv;
  for (const auto& a : config.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> env_store;
  for (char** e = environ; e && *e; ++e) env_store.emplace_back(*e);
  for (const auto& e : config.env) env_store.push_back(e);
  std::vector<char*> envp;
  for (auto& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);

  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, argv[0], &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  if (capture_stderr) ::close(err_pipe[1]);
  if (rc != 0) {
    ::close(in_pipe[1]);
    ::close(out_pipe[0]);
    if (capture_stderr) ::close(err_pipe[0]);
    return Status(Code::kIo, "cannot start '" + config.argv[0] + "': " + std::strerror(rc));
  }
  ignore_sigpipe();
  std::unique_ptr<Child> child(new Child());
  child->pid_ = pid;
  child->in = in_pipe[1];
  child->out = out_pipe[0];
  child->err = capture_stderr ? err_pipe[0] : -1;
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
    if (!exited_) ::waitpid(pid_, &status_, 0);
  }
}

void Child::kill_group(int sig) {
  if (pid_ > 0) ::kill(-pid_, sig);
}

bool Child::reap() {
  if (exited_) return true;
  int st = 0;
  pid_t r = ::waitpid(pid_, &st, WNOHANG);
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

Handler make_exec_handler(ProcessHandlerConfig config) {
  auto cfg = std::make_shared<const ProcessHandlerConfig>(std::move(config));
  return [cfg](const TaskContext& ctx) { return run_exec(*cfg, ctx); };
}

Handler make_pool_handler(ProcessHandlerConfig config) {
  auto pool = std::make_shared<Pool>(std::move(config));
  return [pool](const TaskContext& ctx) { return pool->run(ctx); };
}

}  // namespace zb::worker
