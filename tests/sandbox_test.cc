// What untrusted task data can touch, at the level of the child machinery (worker/process.h):
// real child processes with their resource limits, scratch folders that nothing planted can
// redirect, reads that links cannot take outside, descriptors and folders a child never sees,
// and the Landlock confinement of checkers. tests/python/sandbox_test.py drives the same
// through a running cluster.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tests/support/harness.h"
#include "worker/process.h"

namespace zb::worker {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::TempDir;

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }

// A task as the slots hand it to a handler, limited to `hard_ms`.
struct Task {
  explicit Task(std::string payload = "{}", uint32_t hard_ms = 30000) : payload_(std::move(payload)) {
    ctx.task = Id::random();
    ctx.attempt = 1;
    ctx.queue = "default";
    ctx.kind = "test";
    ctx.payload = payload_;
    ctx.cancelled = &cancelled;
    ctx.hard_limit_ms = hard_ms;
    ctx.started = std::chrono::steady_clock::now();
  }
  std::string payload_;
  std::atomic<bool> cancelled{false};
  TaskContext ctx;
};

ProcessHandlerConfig python(const std::string& script) {
  ProcessHandlerConfig p;
  p.kind = "py";
  p.argv = {"/usr/bin/python3", "-c", script};
  return p;
}

HandlerResult run_exec(const ProcessHandlerConfig& p, const std::string& payload = "{}") {
  Task t(payload);
  return make_exec_handler(p)(t.ctx);
}

TEST(ScratchDir, IsUnpredictablePrivateAndWrittenWithoutFollowingAnything) {
  TempDir outside;
  fs::path where;
  {
    auto a = ScratchDir::create("unit");
    auto b = ScratchDir::create("unit");
    ASSERT_TRUE(a && b) << a.status().to_string();
    where = (*a)->path();
    EXPECT_NE((*a)->path(), (*b)->path());
    EXPECT_EQ(where.filename().string().rfind("zbatch-unit-", 0), 0u) << where;
    struct stat st {};
    ASSERT_EQ(::stat(where.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    EXPECT_TRUE((*a)->write("dir/sub/file.c", "int x;\n")) << "folders are made as needed";
    EXPECT_EQ(read_file(where / "dir/sub/file.c"), "int x;\n");
    // Something planted inside (by a child that ran there) is never written through.
    write_file(outside.path() / "target", "untouched");
    fs::create_symlink(outside.path() / "target", where / "planted");
    fs::create_directory_symlink(outside.path(), where / "planted_dir");
    EXPECT_EQ((*a)->write("planted", "overwritten").code(), Code::kConflict);
    EXPECT_FALSE((*a)->write("planted_dir/file", "x"));
    EXPECT_FALSE((*a)->write("../escape", "x"));
    EXPECT_FALSE((*a)->write("/etc/escape", "x"));
    EXPECT_EQ(read_file(outside.path() / "target"), "untouched");
    EXPECT_FALSE(fs::exists(outside.path() / "file"));
  }
  // Removed with everything in it, links removed and not followed.
  EXPECT_FALSE(fs::exists(where));
  EXPECT_EQ(read_file(outside.path() / "target"), "untouched");
}

TEST(ReadInside, FollowsLinksOnlyWhileTheyStayInside) {
  TempDir root;
  const fs::path ws = root.path() / "ws";
  fs::create_directories(ws / "src");
  write_file(ws / "src/a.py", "x = 1\n");
  write_file(root.path() / "secret", "SECRET");
  fs::create_symlink("a.py", ws / "src/alias.py");
  fs::create_symlink(root.path() / "secret", ws / "src/escape.py");
  fs::create_symlink(root.path() / "no-such-file", ws / "src/dangling.py");
  fs::create_directory_symlink(root.path(), ws / "up");
  ASSERT_EQ(::mkfifo((ws / "src/fifo").c_str(), 0600), 0);

  EXPECT_EQ(read_inside(ws, "src/a.py", 1024).value(), "x = 1\n");
  EXPECT_EQ(read_inside(ws, "src/alias.py", 1024).value(), "x = 1\n");
  EXPECT_EQ(read_inside(ws, "src/escape.py", 1024).status().code(), Code::kBadRequest);
  EXPECT_EQ(read_inside(ws, "up/secret", 1024).status().code(), Code::kBadRequest);
  // Whether something exists outside is not told: a link out is "outside" either way.
  EXPECT_EQ(read_inside(ws, "src/dangling.py", 1024).status().code(), Code::kBadRequest);
  EXPECT_EQ(read_inside(ws, "src/missing.py", 1024).status().code(), Code::kNotFound);
  EXPECT_EQ(read_inside(ws, "../secret", 1024).status().code(), Code::kBadRequest);
  EXPECT_EQ(read_inside(ws, (root.path() / "secret").string(), 1024).status().code(), Code::kBadRequest);
  // A FIFO neither hangs the reader nor is read.
  EXPECT_EQ(read_inside(ws, "src/fifo", 1024).status().code(), Code::kUnprocessable);
  EXPECT_EQ(read_inside(ws, "src", 1024).status().code(), Code::kUnprocessable);
  EXPECT_EQ(read_inside(ws, "src/a.py", 3).status().code(), Code::kTooLarge);
  EXPECT_EQ(read_file(root.path() / "secret"), "SECRET");

  // Removal through a link that leads out removes the link's folder entry only inside.
  EXPECT_FALSE(remove_inside(ws, "up/secret"));
  EXPECT_TRUE(fs::exists(root.path() / "secret"));
  EXPECT_TRUE(remove_inside(ws, "src/escape.py"));
  EXPECT_FALSE(fs::is_symlink(ws / "src/escape.py"));
  EXPECT_TRUE(fs::exists(root.path() / "secret"));
  EXPECT_TRUE(remove_inside(ws, "src/never-was.xml"));
}

TEST(Child, GetsItsResourceLimitsAndNoCoreDumps) {
  ProcessHandlerConfig p = python(
      "import json, resource as r\n"
      "names = ['RLIMIT_CPU', 'RLIMIT_AS', 'RLIMIT_FSIZE', 'RLIMIT_NOFILE', 'RLIMIT_CORE']\n"
      "print(json.dumps({n: r.getrlimit(getattr(r, n)) for n in names}))\n");
  p.limits.cpu_time_s = 7;
  p.limits.address_space_bytes = 3000ull << 20;
  p.limits.file_size_bytes = 5u << 20;
  p.limits.open_files = 100;
  p.term_grace_ms = 2000;
  HandlerResult r = run_exec(p);
  ASSERT_EQ(r.status, proto::OutcomeStatus::kSucceeded) << r.error;
  const json got = json::parse(r.result);
  EXPECT_EQ(got["RLIMIT_CPU"], json::array({7, 9})) << "SIGKILL term_grace after SIGXCPU";
  EXPECT_EQ(got["RLIMIT_AS"], json::array({3000ull << 20, 3000ull << 20}));
  EXPECT_EQ(got["RLIMIT_FSIZE"], json::array({5u << 20, 5u << 20}));
  EXPECT_EQ(got["RLIMIT_NOFILE"], json::array({100, 100}));
  EXPECT_EQ(got["RLIMIT_CORE"], json::array({0, 0}));
}

TEST(Child, ALimitNeverRaisesTheWorkersOwn) {
  rlimit files{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &files), 0);
  ProcessHandlerConfig p = python("import resource as r; print(list(r.getrlimit(r.RLIMIT_NOFILE)))");
  p.limits.open_files = static_cast<uint32_t>(std::min<rlim_t>(files.rlim_cur, 1u << 20)) + 1000;
  HandlerResult r = run_exec(p);
  ASSERT_EQ(r.status, proto::OutcomeStatus::kSucceeded) << r.error;
  EXPECT_EQ(json::parse(r.result)[0], files.rlim_cur);
}

TEST(Child, CpuTimeLimitFailsTheTaskWithItsName) {
  ProcessHandlerConfig p = python("while True: pass");
  p.limits.cpu_time_s = 1;
  HandlerResult r = run_exec(p);
  EXPECT_EQ(r.status, proto::OutcomeStatus::kFailed);
  EXPECT_EQ(r.error.rfind("ResourceLimitExceeded: cpu time: the process used its 1 s of CPU time (SIGXCPU)", 0), 0u)
      << r.error;
  // A child that ignores SIGXCPU is killed at the hard limit, term_grace later.
  p = python("import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True: pass");
  p.limits.cpu_time_s = 1;
  p.term_grace_ms = 1000;
  r = run_exec(p);
  EXPECT_EQ(r.error.rfind("ResourceLimitExceeded: cpu time:", 0), 0u) << r.error;
  EXPECT_NE(r.error.find("SIGKILL at the hard limit"), std::string::npos) << r.error;
}

TEST(Child, FileSizeLimitFailsTheTaskWithItsName) {
  // A program that dies of SIGXFSZ ...
  ProcessHandlerConfig p;
  p.kind = "sh";
  p.argv = {"/bin/sh", "-c", "exec head -c 4194304 /dev/zero > \"$TMPDIR/big\""};
  p.limits.file_size_bytes = 1u << 20;
  HandlerResult r = run_exec(p);
  EXPECT_EQ(r.status, proto::OutcomeStatus::kFailed);
  EXPECT_EQ(r.error, "ResourceLimitExceeded: file size: a write passed the file size limit of 1 MiB (SIGXFSZ)");
  // ... and Python, which ignores SIGXFSZ and fails with EFBIG.
  p = python(
      "import os\n"
      "with open(os.path.join(os.environ['TMPDIR'], 'big'), 'wb') as f:\n"
      "    for _ in range(4): f.write(b'x' * (1 << 20)); f.flush()\n");
  p.limits.file_size_bytes = 1u << 20;
  r = run_exec(p);
  EXPECT_EQ(r.status, proto::OutcomeStatus::kFailed);
  EXPECT_EQ(r.error.rfind("ResourceLimitExceeded: file size: a write passed the file size limit of 1 MiB (the process "
                          "got EFBIG, \"File too large\"): Traceback", 0), 0u)
      << r.error;
}

TEST(Child, AddressSpaceAndOpenFilesLimitsFailTheCallsOfTheChild) {
  ProcessHandlerConfig p = python("b = bytearray(1 << 30)");
  p.limits.address_space_bytes = 256u << 20;
  HandlerResult r = run_exec(p);
  EXPECT_EQ(r.status, proto::OutcomeStatus::kFailed);
  EXPECT_EQ(r.error.rfind("ProcessExitError: exit code 1: ", 0), 0u) << r.error;
  EXPECT_NE(r.error.find("MemoryError"), std::string::npos) << r.error;
  p = python("fs = [open('/dev/null') for _ in range(100)]");
  p.limits.open_files = 32;
  r = run_exec(p);
  EXPECT_EQ(r.status, proto::OutcomeStatus::kFailed);
  EXPECT_EQ(r.error.rfind("ResourceLimitExceeded: open files: the process passed its limit of 32 open files (EMFILE): ", 0), 0u)
      << r.error;
  EXPECT_NE(r.error.find("Too many open files"), std::string::npos) << r.error;
}

TEST(Child, SeesNoDescriptorOfTheWorkerAndAPrivateTmpdirThatGoesWithIt) {
  TempDir outside;
  write_file(outside.path() / "target", "untouched");
  // A descriptor this process holds without close-on-exec, as libraries sometimes leave them.
  const int leaked = ::open(outside.path().c_str(), O_RDONLY);
  ASSERT_GE(leaked, 0);
  ProcessHandlerConfig p = python(
      "import json, os, stat\n"
      "t = os.environ['TMPDIR']\n"
      "open(os.path.join(t, 'litter'), 'w').write('x')\n"
      "os.symlink('" + (outside.path() / "target").string() + "', os.path.join(t, 'link'))\n"
      "print(json.dumps({'fds': sorted(int(f) for f in os.listdir('/proc/self/fd')), 'tmp': t,\n"
      "                  'mode': stat.S_IMODE(os.stat(t).st_mode), 'same': os.environ['TMP'] == t}))\n");
  HandlerResult r = run_exec(p);
  ::close(leaked);
  ASSERT_EQ(r.status, proto::OutcomeStatus::kSucceeded) << r.error;
  const json got = json::parse(r.result);
  EXPECT_EQ(got["fds"], json::array({0, 1, 2, 3})) << "stdin, stdout, stderr and listdir's own";
  const fs::path tmp = got["tmp"].get<std::string>();
  EXPECT_EQ(tmp.filename().string().rfind("zbatch-tmp-", 0), 0u) << tmp;
  EXPECT_EQ(got["mode"], 0700);
  EXPECT_TRUE(got["same"]);
  EXPECT_FALSE(fs::exists(tmp)) << "removed with the child";
  EXPECT_EQ(read_file(outside.path() / "target"), "untouched");
}

TEST(Child, EnvironmentEntriesOfTheConfigurationReplaceTheWorkersOwn) {
  ::setenv("ZBATCH_SANDBOX_TEST", "worker", 1);
  ProcessHandlerConfig p = python(
      "import json, os\n"
      "print(json.dumps([e for e in open('/proc/self/environ').read().split('\\0') if e.startswith('ZBATCH_SANDBOX_TEST=')]))");
  p.env = {"ZBATCH_SANDBOX_TEST=config"};
  HandlerResult r = run_exec(p);
  ::unsetenv("ZBATCH_SANDBOX_TEST");
  ASSERT_EQ(r.status, proto::OutcomeStatus::kSucceeded) << r.error;
  EXPECT_EQ(json::parse(r.result), json::array({"ZBATCH_SANDBOX_TEST=config"}));
}

TEST(Child, AProgramThatCannotStartIsAClearError) {
  ProcessHandlerConfig p;
  p.kind = "x";
  p.argv = {"zbatch-no-such-program"};
  auto c = Child::spawn(p, SpawnOptions{});
  ASSERT_FALSE(c);
  EXPECT_EQ(c.status().message(), "cannot start 'zbatch-no-such-program': No such file or directory");
  p.argv = {"/bin/true"};
  p.cwd = "/no/such/folder";
  c = Child::spawn(p, SpawnOptions{});
  ASSERT_FALSE(c);
  EXPECT_EQ(c.status().message(), "cannot start '/bin/true': cannot enter its folder '/no/such/folder': No such file or directory");
}

TEST(Pool, EachTaskGetsItsOwnCpuTime) {
  // Each task burns about 0.6 s of CPU time: over the child's life that passes a 1 s limit at
  // the second task, but the limit is per task.
  ProcessHandlerConfig p = python(
      "import json, sys, time\n"
      "for line in sys.stdin:\n"
      "    n = json.loads(line)['payload']['seconds']\n"
      "    end = time.process_time() + n\n"
      "    while time.process_time() < end: pass\n"
      "    print(json.dumps({'result': n}), flush=True)\n");
  p.mode = ProcessHandlerConfig::Mode::kPool;
  p.limits.cpu_time_s = 1;
  Handler pool = make_pool_handler(p);
  for (int i = 0; i < 3; ++i) {
    Task t(R"({"seconds": 0.6})");
    HandlerResult r = pool(t.ctx);
    EXPECT_EQ(r.status, proto::OutcomeStatus::kSucceeded) << i << ": " << r.error;
  }
  Task hog(R"({"seconds": 5})");
  HandlerResult r = pool(hog.ctx);
  EXPECT_EQ(r.status, proto::OutcomeStatus::kFailed);
  EXPECT_EQ(r.error.rfind("ResourceLimitExceeded: cpu time:", 0), 0u) << r.error;
  Task after(R"({"seconds": 0})");
  EXPECT_EQ(pool(after.ctx).status, proto::OutcomeStatus::kSucceeded) << "a new child serves the next task";
}

TEST(Confinement, AChildCanReadOnlyWhatItAllows) {
  auto scratch = ScratchDir::create("unit");
  ASSERT_TRUE(scratch);
  ASSERT_TRUE((*scratch)->write("mine.txt", "mine"));
  auto confinement = Confinement::create({"/usr", "/lib", "/lib64", "/bin", "/etc/ld.so.cache"}, {(*scratch)->path()});
  if (!confinement && confinement.status().code() == Code::kUnavailable)
    GTEST_SKIP() << "this kernel has no Landlock: " << confinement.status().message();
  ASSERT_TRUE(confinement) << confinement.status().to_string();
  ProcessHandlerConfig p;
  p.kind = "cat";
  p.argv = {"/bin/cat", "mine.txt", "/etc/hostname"};
  p.cwd = (*scratch)->path().string();
  SpawnOptions options;
  options.capture_stderr = true;
  options.inherit_env = false;
  options.tmpdir = (*scratch)->path().string();
  options.confinement = confinement->get();
  auto child = Child::spawn(p, options);
  ASSERT_TRUE(child) << child.status().to_string();
  Task t;
  Exchange x = pump(**child, "", false, p, t.ctx);
  EXPECT_EQ(x.out, "mine");
  EXPECT_NE(x.err.find("/etc/hostname: Permission denied"), std::string::npos) << x.err;
}

}  // namespace
}  // namespace zb::worker
