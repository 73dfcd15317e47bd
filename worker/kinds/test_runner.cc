// test: runs a test profile from the worker's allow-list and reports its counts.
//
// {"profile": "name"} → {"profile","ok","exit_code","passed","failed","errors","skipped","total",
//                        "source":"junit"|"summary"|"none","duration_ms","log_tail"}
// The task names a profile, never a command. Counts come from the profile's JUnit XML report
// when it wrote one, else from the tool's own summary line (pytest, unittest, ctest, jest/
// mocha-like "N passing"). A run whose tests fail is a successful task with ok = false. The
// task fails when the profile is unknown, its runner is missing (TestRunnerMissing: argv[0]
// not found or not executable, or a wrapper shell's exit 126/127 without counts), the run
// ends non-zero without any count to show for it (TestRunError), it runs out of time or hits a
// resource limit (ResourceLimitExceeded), or its JUnit report is not a regular file inside the
// profile's folder once symbolic links are resolved (TestReportRefused: the tests may have put
// a link there; the worker neither reads nor removes anything through it).
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <sstream>

#include "worker/kinds/kinds.h"
#include "worker/process.h"

namespace zb::worker {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr size_t kMaxReportBytes = 64u << 20;

struct Counts {
  long passed = 0, failed = 0, errors = 0, skipped = 0, total = 0;
  bool found = false;
};

// The attributes tests/failures/errors/skipped of every <testsuite> element (not
// <testsuites>, whose totals would count twice).
Counts junit_counts(const std::string& xml) {
  Counts c;
  static const std::regex suite(R"(<testsuite(\s[^>]*)?>)");
  static const std::regex attr(R"(\b(tests|failures|errors|skipped|disabled)\s*=\s*["'](\d+)["'])");
  for (auto it = std::sregex_iterator(xml.begin(), xml.end(), suite); it != std::sregex_iterator(); ++it) {
    const std::string attrs = (*it)[1];
    long tests = 0, failures = 0, errors = 0, skipped = 0;
    for (auto a = std::sregex_iterator(attrs.begin(), attrs.end(), attr); a != std::sregex_iterator(); ++a) {
      const long v = std::stol((*a)[2]);
      const std::string name = (*a)[1];
      if (name == "tests") tests = v;
      else if (name == "failures") failures = v;
      else if (name == "errors") errors = v;
      else skipped += v;
    }
    c.found = true;
    c.total += tests;
    c.failed += failures;
    c.errors += errors;
    c.skipped += skipped;
  }
  c.passed = std::max(0L, c.total - c.failed - c.errors - c.skipped);
  return c;
}

Counts summary_counts(const std::string& log) {
  Counts c;
  std::smatch m;
  auto number = [](const std::string& text, const char* word) -> long {
    std::smatch n;
    const std::regex re(std::string(R"((\d+) )") + word);
    return std::regex_search(text, n, re) ? std::stol(n[1]) : 0;
  };
  // pytest: "===== 3 passed, 1 failed, 2 skipped in 0.12s ====="
  static const std::regex pytest(R"(=+ ((?:\d+ \w+(?:, )?)+) in [\d.]+s)");
  // unittest: "Ran 5 tests in 0.001s" then "OK", "OK (skipped=1)" or "FAILED (failures=1, errors=1)"
  static const std::regex unittest_ran(R"(Ran (\d+) tests? in)");
  // ctest: "90% tests passed, 1 tests failed out of 10"
  static const std::regex ctest(R"(\d+% tests passed, (\d+) tests failed out of (\d+))");
  // mocha/jest-like: "12 passing", "1 failing", "2 pending"
  static const std::regex mocha(R"((\d+) passing)");
  std::string last;
  for (auto it = std::sregex_iterator(log.begin(), log.end(), pytest); it != std::sregex_iterator(); ++it) last = (*it)[1];
  if (!last.empty()) {
    c.found = true;
    c.passed = number(last, "passed");
    c.failed = number(last, "failed");
    c.errors = number(last, "error");
    c.skipped = number(last, "skipped") + number(last, "deselected");
    c.total = c.passed + c.failed + c.errors + c.skipped;
  } else if (std::regex_search(log, m, ctest)) {
    c.found = true;
    c.total = std::stol(m[2]);
    c.failed = std::stol(m[1]);
    c.passed = c.total - c.failed;
  } else if (std::regex_search(log, m, unittest_ran)) {
    c.found = true;
    c.total = std::stol(m[1]);
    static const std::regex failures(R"(failures=(\d+))"), errors(R"(errors=(\d+))"), skipped(R"(skipped=(\d+))");
    std::smatch k;
    if (std::regex_search(log, k, failures)) c.failed = std::stol(k[1]);
    if (std::regex_search(log, k, errors)) c.errors = std::stol(k[1]);
    if (std::regex_search(log, k, skipped)) c.skipped = std::stol(k[1]);
    c.passed = std::max(0L, c.total - c.failed - c.errors - c.skipped);
  } else if (std::regex_search(log, m, mocha)) {
    c.found = true;
    c.passed = std::stol(m[1]);
    c.failed = number(log, "failing");
    c.skipped = number(log, "pending");
    c.total = c.passed + c.failed + c.skipped;
  }
  return c;
}

// Why the profile's runner cannot start, or nullopt when it can: argv[0] as posix_spawnp
// finds it (a name with '/' relative to the profile's cwd, else searched on PATH).
std::optional<std::string> runner_missing(const TestProfile& profile) {
  if (profile.argv.empty() || profile.argv.front().empty()) return "it names no program (argv)";
  const std::string& program = profile.argv.front();
  // Relative names resolve in the child, after it changed to the profile's cwd.
  auto in_cwd = [&](fs::path path) { return path.is_relative() && !profile.cwd.empty() ? fs::path(profile.cwd) / path : path; };
  auto usable = [](const fs::path& path) -> std::optional<std::string> {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return "'" + path.string() + "' does not exist";
    if (!S_ISREG(st.st_mode)) return "'" + path.string() + "' is not a file";
    if (::access(path.c_str(), X_OK) != 0) return "'" + path.string() + "' is not executable";
    return std::nullopt;
  };
  if (program.find('/') != std::string::npos) return usable(in_cwd(program));
  const char* env_path = std::getenv("PATH");
  std::stringstream dirs(env_path && *env_path ? env_path : "/usr/local/bin:/usr/bin:/bin");
  std::optional<std::string> why = "'" + program + "' is not on PATH";
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const fs::path candidate = in_cwd(fs::path(dir.empty() ? "." : dir) / program);
    std::error_code ec;
    if (!fs::exists(candidate, ec)) continue;
    auto problem = usable(candidate);
    if (!problem) return std::nullopt;
    why = problem;  // found, but not runnable: say so unless a later directory has a good one
  }
  return why;
}

// Runs that write the same JUnit report must not overlap: one run's removal of a stale report,
// or its own report, would be read as the other's counts. So they take turns, per report path.
class ReportLocks {
 public:
  // Holds the report's lock once no other run has it; nullopt when the task is cancelled
  // (time limit, revoke) while it waits.
  std::optional<std::unique_lock<std::timed_mutex>> acquire(const fs::path& report, const TaskContext& ctx) {
    std::timed_mutex* m = nullptr;
    {
      std::lock_guard guard(mu_);
      std::error_code ec;
      auto& slot = locks_[fs::absolute(report, ec).lexically_normal().string()];
      if (!slot) slot = std::make_unique<std::timed_mutex>();
      m = slot.get();
    }
    std::unique_lock lock(*m, std::defer_lock);
    while (!lock.try_lock_for(std::chrono::milliseconds(50)))
      if (ctx.is_cancelled()) return std::nullopt;
    return lock;
  }

 private:
  std::mutex mu_;  // guards locks_
  std::map<std::string, std::unique_ptr<std::timed_mutex>> locks_;
};

HandlerResult run_profile(const std::vector<TestProfile>& profiles, ReportLocks& locks, const TaskContext& ctx) {
  HandlerResult bad;
  auto task = payload_object(ctx, bad);
  if (!task) return bad;
  auto name = task->find("profile");
  if (name == task->end() || !name->is_string())
    return HandlerResult::fail("BadTask: test tasks need \"profile\" (the name of a test profile of the worker)");
  for (const char* forbidden : {"argv", "command", "cmd", "args"})
    if (task->contains(forbidden))
      return HandlerResult::fail(std::string("BadTask: a test task names a profile, not a command (\"") + forbidden + "\" is not accepted)");
  auto profile = std::find_if(profiles.begin(), profiles.end(), [&](const TestProfile& p) { return p.name == *name; });
  if (profile == profiles.end()) {
    std::string known;
    for (const auto& p : profiles) known += (known.empty() ? "" : ", ") + p.name;
    return HandlerResult::fail("UnknownProfile: '" + name->get<std::string>().substr(0, 60) + "' is not a test profile of this worker" +
                               (known.empty() ? " (none configured)" : " (" + known + ")"));
  }
  ProcessHandlerConfig p;
  p.kind = "test";
  p.argv = profile->argv;
  p.env = profile->env;
  p.cwd = profile->cwd;
  p.stdout_limit = 64u << 20;
  p.stderr_limit = std::max<size_t>(profile->log_tail, 1);
  p.limits = profile->limits;
  if (auto missing = runner_missing(*profile))
    return HandlerResult::fail("TestRunnerMissing: profile '" + profile->name + "': " + *missing);
  const fs::path folder = profile->cwd.empty() ? fs::path(".") : fs::path(profile->cwd);
  const std::string refused = "TestReportRefused: profile '" + profile->name + "': ";
  std::optional<std::unique_lock<std::timed_mutex>> report_turn;
  if (!profile->junit.empty()) {
    report_turn = locks.acquire(folder / profile->junit, ctx);
    if (!report_turn)
      return HandlerResult::fail("Cancelled: the task was cancelled (time limit or revoke) while another run wrote " +
                                 profile->junit);
    // A stale report must not be read as this run's; a link there is removed, not followed.
    if (Status s = remove_inside(folder, profile->junit); !s) return HandlerResult::fail(refused + s.message());
  }
  TaskContext limited = ctx;
  if (!limited.hard_limit_ms || limited.hard_limit_ms > profile->timeout_ms) limited.hard_limit_ms = profile->timeout_ms;
  const auto start = std::chrono::steady_clock::now();
  SpawnOptions options;
  options.capture_stderr = true;
  auto child = Child::spawn(p, options);
  if (!child) return HandlerResult::fail("TestRunnerMissing: profile '" + profile->name + "': " + child.status().message());
  Exchange x = pump(**child, "", false, p, limited);
  if (x.killed != Killed::kNone) return HandlerResult::fail(ended_error(**child, x, limited, "TestRunError"));
  if (auto hit = (*child)->limit_exceeded()) return HandlerResult::fail(*hit + " (profile '" + profile->name + "')");
  const int st = (*child)->wait_status();
  const int exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  const std::string log = x.out + (x.err.empty() ? "" : "\n" + x.err);
  Counts c;
  std::string source = "none";
  if (!profile->junit.empty()) {
    auto report = read_inside(folder, profile->junit, kMaxReportBytes);
    if (report) {
      c = junit_counts(*report);
      if (c.found) source = "junit";
    } else if (report.status().code() != Code::kNotFound) {
      return HandlerResult::fail(refused + report.status().message() +
                                 " (the report must be a regular file inside the profile's folder)");
    }
  }
  if (!c.found) {
    c = summary_counts(log);
    if (c.found) source = "summary";
  }
  if (!c.found && exit_code != 0) {
    // Nothing says any test ran: the tool itself failed (usage error, crash, a wrapper shell
    // that could not find the tool). That is no test result, so the task fails.
    const std::string shown = tail(log, 500);
    if (exit_code == 126 || exit_code == 127)
      return HandlerResult::fail("TestRunnerMissing: profile '" + profile->name + "' exited with code " +
                                 std::to_string(exit_code) + " (command " + (exit_code == 127 ? "not found" : "not executable") +
                                 ")" + (shown.empty() ? "" : ": " + shown));
    return HandlerResult::fail("TestRunError: profile '" + profile->name + "' exited with code " + std::to_string(exit_code) +
                               " and reported no test counts" + (shown.empty() ? "" : ": " + shown));
  }
  const bool ok = exit_code == 0 && c.failed == 0 && c.errors == 0;
  json result{{"profile", profile->name}, {"ok", ok}, {"exit_code", exit_code}, {"passed", c.passed},
              {"failed", c.failed}, {"errors", c.errors}, {"skipped", c.skipped}, {"total", c.total},
              {"source", source},
              {"duration_ms", std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count()},
              {"log_tail", log.size() > profile->log_tail ? log.substr(log.size() - profile->log_tail) : log}};
  return HandlerResult::ok(result.dump(-1, ' ', false, json::error_handler_t::replace));
}

}  // namespace

Handler make_test_handler(std::vector<TestProfile> profiles) {
  auto locks = std::make_shared<ReportLocks>();
  return [profiles = std::move(profiles), locks](const TaskContext& ctx) { return run_profile(profiles, *locks, ctx); };
}

}  // namespace zb::worker
