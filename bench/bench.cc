// zbatch bench: starts its own router and worker processes (this binary) on free ports with a
// temporary data folder, drives them with the client library, and reports what it measured.
#include "bench/bench.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "client/client.h"
#include "common/clock.h"
#include "common/wire.h"

extern char** environ;

namespace zb::bench {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

struct Options {
  size_t tasks = 200000;
  uint32_t workers = 1;
  uint32_t concurrency = 2;
  uint32_t prefetch = 0;  // the worker's default: the router sizes its window
  std::string durability = "fsync";
  size_t latency_samples = 2000;
  size_t queued_tasks = 1000000;
  size_t idle_workers = 1000;
  std::string only;
  bool json_out = false;
};

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// A child zbatch process; killed and reaped on destruction.
class Child {
 public:
  Child(std::vector<std::string> args, const std::string& log) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    if (posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&fa);
  }
  ~Child() { stop(); }
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 500; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

// User + system CPU time of a process so far, in seconds (/proc/PID/stat fields 14 and 15).
double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t close = text.rfind(')');  // the command name may hold spaces
  if (close == std::string::npos) return 0;
  std::istringstream fields(text.substr(close + 2));
  std::string f;
  double ticks = 0;
  for (int i = 3; fields >> f && i <= 15; ++i)
    if (i >= 14) ticks += std::stod(f);
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double rss_mb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return 0;
}

std::string self_exe() { return std::filesystem::read_symlink("/proc/self/exe").string(); }

// A router (and optionally workers) on free ports in a fresh temporary folder.
class Cluster {
 public:
  explicit Cluster(const Options& o) : o_(o) {
    dir_ = std::filesystem::temp_directory_path() / ("zbatch-bench-" + Id::random().to_string());
    std::filesystem::create_directories(dir_);
    frontend_ = "tcp://127.0.0.1:" + std::to_string(free_port());
    backend_ = "tcp://127.0.0.1:" + std::to_string(free_port());
    events_ = "tcp://127.0.0.1:" + std::to_string(free_port());
    router_ = std::make_unique<Child>(
        std::vector<std::string>{self_exe(), "--log-level", "warn", "router", "--data", (dir_ / "router").string(), "--frontend",
                                 frontend_, "--backend", backend_, "--events", events_, "--durability",
                                 o.durability},
        (dir_ / "router.log").string());
  }
  ~Cluster() {
    workers_.clear();
    router_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  void start_workers(uint32_t n) {
    for (uint32_t i = 0; i < n; ++i)
      workers_.push_back(std::make_unique<Child>(
          std::vector<std::string>{self_exe(), "--log-level", "warn", "worker", "--router", backend_, "-c",
                                   std::to_string(o_.concurrency), "--prefetch-multiplier",
                                   std::to_string(o_.prefetch), "--hostname",
                                   "bench" + std::to_string(i + 1)},
          (dir_ / ("worker" + std::to_string(i) + ".log")).string()));
  }
  std::unique_ptr<Client> client() {
    ClientOptions co;
    co.router = frontend_;
    co.timeout = std::chrono::milliseconds(30000);
    return std::move(Client::connect(co).value());
  }
  // Waits for the router to answer with `workers` workers online.
  Status ready(size_t workers) {
    auto c = client();
    const auto deadline = Clock::now() + std::chrono::seconds(20);
    while (Clock::now() < deadline) {
      auto r = c->ping();
      if (r && r->workers == workers) return Status::ok();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::ifstream log(dir_ / "router.log");
    std::stringstream text;
    text << log.rdbuf();
    return Status(Code::kUnavailable, "cluster did not come up; router log: " + text.str());
  }
  pid_t router_pid() const { return router_->pid(); }
  const std::string& backend() const { return backend_; }
  pid_t worker_pid(size_t i) const { return workers_.at(i)->pid(); }

 private:
  Options o_;
  std::filesystem::path dir_;
  std::string frontend_, backend_, events_;
  std::unique_ptr<Child> router_;
  std::vector<std::unique_ptr<Child>> workers_;
};

std::vector<proto::TaskSpec> noops(size_t n) {
  proto::TaskSpec t;
  t.kind = "noop";
  t.payload = "{}";
  return std::vector<proto::TaskSpec>(n, t);
}

struct Figure {
  std::string name;
  double value;
  std::string unit;
  std::string target;
  bool met;
};

Status wait_group(Client& c, const Id& group) {
  for (;;) {
    auto g = c.group(group);
    if (!g) return g.status();
    if (g->ready()) return Status::ok();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

// One group of `n` no-op tasks through a router and `workers` workers: tasks/s from the submit
// to the group's end; `group_status`, when given, then times 1000 group status reads.
Result<double> group_run(Options o, uint32_t workers, size_t n, std::vector<double>* group_status = nullptr) {
  o.workers = workers;
  Cluster cluster(o);
  cluster.start_workers(workers);
  if (Status s = cluster.ready(workers); !s) return s;
  auto c = cluster.client();
  const auto tasks = noops(n);
  const auto start = Clock::now();
  auto receipt = c->submit_group(tasks);
  if (!receipt) return receipt.status();
  if (Status s = wait_group(*c, receipt->group); !s) return s;
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  auto group = c->group(receipt->group);
  if (!group) return group.status();
  if (group->succeeded != n)
    return Status(Code::kInternal, std::to_string(group->succeeded) + " of " + std::to_string(n) + " succeeded");
  for (int i = 0; group_status && i < 1000; ++i) {
    const auto t0 = Clock::now();
    if (auto g = c->group(receipt->group); !g) return g.status();
    group_status->push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  return n / secs;
}

Status throughput(const Options& o, std::vector<Figure>& out) {
  auto measured = group_run(o, o.workers, o.tasks);
  if (!measured) return measured.status();
  const double rate = *measured;
  out.push_back({"end-to-end no-op throughput (" + o.durability + ", " + std::to_string(o.workers) +
                     " worker x c=" + std::to_string(o.concurrency) + ")",
                 rate, "tasks/s", ">= 200000", rate >= 200000});
  return Status::ok();
}

Status submit_rate(const Options& o, std::vector<Figure>& out) {
  Cluster cluster(o);
  if (Status s = cluster.ready(0); !s) return s;
  auto c = cluster.client();
  auto tasks = noops(o.tasks);
  const auto start = Clock::now();
  auto receipt = c->submit_group(tasks);
  if (!receipt) return receipt.status();
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  out.push_back({"submit throughput, acknowledged durable (" + o.durability + ")", o.tasks / secs, "tasks/s", "", true});
  return Status::ok();
}

Status latency(const Options& o, std::vector<Figure>& out) {
  Cluster cluster(o);
  cluster.start_workers(1);
  if (Status s = cluster.ready(1); !s) return s;
  auto c = cluster.client();
  proto::TaskSpec t = noops(1)[0];
  std::vector<double> ms;
  for (size_t i = 0; i < o.latency_samples + 50; ++i) {
    const auto start = Clock::now();
    auto id = c->submit(t);
    if (!id) return id.status();
    auto done = c->wait(std::span<const Id>(&*id, 1), std::chrono::milliseconds(10000));
    if (!done) return done.status();
    if (i >= 50) ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());  // 50 warm-up
  }
  std::sort(ms.begin(), ms.end());
  auto pct = [&](double p) { return ms[std::min(ms.size() - 1, static_cast<size_t>(p * ms.size()))]; };
  out.push_back({"round trip p50 (submit one + wait, " + o.durability + ")", pct(0.50), "ms", "<= 0.4", pct(0.50) <= 0.4});
  out.push_back({"round trip p99", pct(0.99), "ms", "<= 1", pct(0.99) <= 1});
  out.push_back({"round trip max", ms.back(), "ms", "", true});
  return Status::ok();
}

Status memory(const Options& o, std::vector<Figure>& out) {
  Cluster cluster(o);
  cluster.start_workers(1);
  if (Status s = cluster.ready(1); !s) return s;
  const double worker = rss_mb(cluster.worker_pid(0));
  out.push_back({"worker idle RSS (c=" + std::to_string(o.concurrency) + ")", worker, "MB", "<= 8", worker <= 8});
  out.push_back({"router idle RSS", rss_mb(cluster.router_pid()), "MB", "", true});
  return Status::ok();
}

Status queued_memory(const Options& o, std::vector<Figure>& out) {
  Cluster cluster(o);
  if (Status s = cluster.ready(0); !s) return s;
  auto c = cluster.client();
  const double idle = rss_mb(cluster.router_pid());
  auto tasks = noops(100000);
  for (size_t done = 0; done < o.queued_tasks; done += tasks.size()) {
    tasks.resize(std::min(tasks.size(), o.queued_tasks - done));
    auto r = c->submit_group(tasks);
    if (!r) return r.status();
  }
  const double rss = rss_mb(cluster.router_pid());
  auto queues = c->inspect_queues();
  if (!queues) return queues.status();
  size_t depth = 0;
  for (const auto& q : queues->queues) depth += q.depth;
  if (depth != o.queued_tasks)
    return Status(Code::kInternal, "expected " + std::to_string(o.queued_tasks) + " queued tasks, the router has " +
                                       std::to_string(depth));
  out.push_back({"router RSS with " + std::to_string(o.queued_tasks) + " queued tasks", rss, "MB", "<= 512", rss <= 512});
  const double per_task = (rss - idle) * 1024 * 1024 / static_cast<double>(std::max<size_t>(1, o.queued_tasks));
  out.push_back({"router RSS per queued task", per_task, "bytes", "<= 110", per_task <= 110});
  return Status::ok();
}

// Scale (docs/BENCHMARKS.md): throughput by group size, 4 worker processes against 1, and the
// group status of a 1,000,000-task group.
Status scale(const Options& o, std::vector<Figure>& out) {
  std::vector<double> status_ms;
  double small = 0, large = 0;
  for (size_t n : {size_t{10000}, size_t{100000}, size_t{1000000}}) {
    auto rate = group_run(o, 1, n, n == 1000000 ? &status_ms : nullptr);
    if (!rate) return rate.status();
    out.push_back({"throughput, one group of " + std::to_string(n) + " tasks", *rate, "tasks/s", "", true});
    (n == 10000 ? small : large) = *rate;
  }
  out.push_back({"1,000,000-task group against 10,000-task group", large / small, "x", ">= 0.85", large / small >= 0.85});
  std::sort(status_ms.begin(), status_ms.end());
  const double p99 = status_ms[std::min(status_ms.size() - 1, static_cast<size_t>(0.99 * status_ms.size()))];
  out.push_back({"group status of a 1,000,000-task group, p99", p99, "ms", "<= 5", p99 <= 5});
  auto one = group_run(o, 1, o.tasks);
  if (!one) return one.status();
  auto four = group_run(o, 4, o.tasks);
  if (!four) return four.status();
  out.push_back({"throughput, 4 worker processes", *four, "tasks/s", "", true});
  out.push_back({"4 worker processes against 1", *four / *one, "x", ">= 1", *four >= *one});
  return Status::ok();
}

// What idle workers cost the router: `idle_workers` sessions that hold no task, each sending a
// heartbeat every second as a worker does, and the router's CPU over 10 s against none.
Status idle_workers(const Options& o, std::vector<Figure>& out) {
  rlimit files{};
  ::getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = std::max<rlim_t>(files.rlim_cur, std::min<rlim_t>(files.rlim_max, 4 * o.idle_workers + 1024));
  ::setrlimit(RLIMIT_NOFILE, &files);  // the router, started next, inherits it
  Cluster cluster(o);
  if (Status s = cluster.ready(0); !s) return s;
  auto window = [&](auto&& during) {
    const double before = cpu_seconds(cluster.router_pid());
    const auto start = Clock::now();
    during(start + std::chrono::seconds(10));
    const double secs = std::chrono::duration<double>(Clock::now() - start).count();
    return (cpu_seconds(cluster.router_pid()) - before) / secs * 100;
  };
  const double none = window([](Clock::time_point until) { std::this_thread::sleep_until(until); });
  zmq::context_t ctx(1);
  ctx.set(zmq::ctxopt::max_sockets, static_cast<int>(o.idle_workers + 64));
  std::vector<zmq::socket_t> sockets;
  for (size_t i = 0; i < o.idle_workers; ++i) {
    zmq::socket_t& s = sockets.emplace_back(ctx, zmq::socket_type::dealer);
    wire::configure(s, zmq::socket_type::dealer);
    s.connect(cluster.backend());
    proto::Ready r;
    r.name = "idle" + std::to_string(i) + "@bench";
    r.session = Id::random();
    r.hostname = "bench";
    r.pid = static_cast<uint32_t>(::getpid());
    r.concurrency = 1;
    r.capacity = 1;
    wire::send_blocking(s, r, std::chrono::milliseconds(1000));
  }
  // Heartbeats every second, and whatever the router sends read and dropped.
  auto beat_until = [&](Clock::time_point until) {
    auto next = Clock::now();
    while (Clock::now() < until) {
      for (auto& s : sockets) {
        zmq::message_t m;
        while (s.recv(m, zmq::recv_flags::dontwait)) {
        }
      }
      if (Clock::now() >= next) {
        for (auto& s : sockets) wire::send(s, proto::Heartbeat{});
        next += std::chrono::seconds(1);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  };
  auto c = cluster.client();
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  for (;;) {
    auto r = c->ping();
    if (r && r->workers == o.idle_workers) break;
    if (Clock::now() > deadline)
      return Status(Code::kUnavailable, std::to_string(r ? r->workers : 0) + " of " + std::to_string(o.idle_workers) +
                                            " idle workers registered");
    beat_until(Clock::now() + std::chrono::milliseconds(200));
  }
  beat_until(Clock::now() + std::chrono::seconds(2));  // registration settled
  const double busy = window(beat_until);
  auto r = c->ping();
  if (!r || r->workers != o.idle_workers)
    return Status(Code::kInternal, "idle workers were lost during the measure: " + std::to_string(r ? r->workers : 0));
  out.push_back({"router CPU, no worker", none, "% core", "", true});
  out.push_back({"router CPU, " + std::to_string(o.idle_workers) + " idle workers", busy, "% core", "< 5", busy < 5});
  return Status::ok();
}

int run(const Options& o) {
  std::vector<Figure> figures;
  struct Step {
    const char* name;
    Status (*fn)(const Options&, std::vector<Figure>&);
  } steps[] = {{"throughput", throughput}, {"submit", submit_rate}, {"latency", latency},
               {"memory", memory}, {"queued", queued_memory}, {"scale", scale}, {"idle", idle_workers}};
  for (const auto& step : steps) {
    if (!o.only.empty() && ("," + o.only + ",").find(std::string(",") + step.name + ",") == std::string::npos)
      continue;
    if (!o.json_out) std::cerr << "bench: " << step.name << "..." << std::endl;
    if (Status s = step.fn(o, figures); !s) {
      std::cerr << "zbatch: bench " << step.name << ": " << s.message() << std::endl;
      return 1;
    }
  }
  if (o.json_out) {
    json j = json::array();
    for (const auto& f : figures)
      j.push_back({{"figure", f.name}, {"value", f.value}, {"unit", f.unit}, {"target", f.target}, {"met", f.met}});
    std::cout << json{{"tasks", o.tasks}, {"workers", o.workers}, {"concurrency", o.concurrency},
                      {"prefetch_multiplier", o.prefetch}, {"durability", o.durability}, {"figures", j}}
                     .dump(2)
              << std::endl;
    return 0;
  }
  std::cout << std::left << std::setw(58) << "figure" << std::right << std::setw(14) << "value" << "  "
            << std::left << std::setw(8) << "unit" << "target\n";
  for (const auto& f : figures)
    std::cout << std::left << std::setw(58) << f.name << std::right << std::setw(14) << std::fixed
              << std::setprecision(f.value < 100 ? 3 : 0) << f.value << "  " << std::left << std::setw(8) << f.unit
              << f.target << (f.target.empty() ? "" : f.met ? " (met)" : " (missed)") << "\n";
  return 0;
}

}  // namespace

void add_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("bench", "Measure throughput, latency and memory on this machine");
  auto o = std::make_shared<Options>();
  cmd->add_option("--tasks", o->tasks, "Tasks for the throughput runs (default 200000)");
  cmd->add_option("--workers", o->workers, "Worker processes (default 1)");
  cmd->add_option("-c,--concurrency", o->concurrency, "Slots per worker (default 2)");
  cmd->add_option("--prefetch-multiplier", o->prefetch, "Tasks held per slot, a cap (default 0, the worker's default: up to 256, sized by the router)");
  cmd->add_option("--durability", o->durability, "fsync (default) or nosync")->check(CLI::IsMember({"fsync", "nosync"}));
  cmd->add_option("--latency-samples", o->latency_samples, "Round trips to time (default 2000)");
  cmd->add_option("--queued", o->queued_tasks, "Queued tasks for the router memory figure (default 1000000)");
  cmd->add_option("--idle-workers", o->idle_workers, "Idle worker sessions for the router CPU figure (default 1000)");
  cmd->add_option("--only", o->only, "Comma-separated: throughput,submit,latency,memory,queued,scale,idle (default: all)");
  cmd->add_flag("--json", o->json_out, "JSON output");
  cmd->callback([o] {
    if (int code = run(*o); code != 0) std::exit(code);
  });
}

}  // namespace zb::bench
