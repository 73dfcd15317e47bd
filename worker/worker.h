// The worker: connects a DEALER to the router's backend, announces itself (name, hostname, pid,
// queues, concurrency, capacity, task kinds), and runs the tasks it is sent on `concurrency`
// execution slots (threads).
//
// Contracts:
// - Paranoid Pirate: a heartbeat every heartbeat_ms both ways; after `liveness` silent
//   intervals the router is presumed gone: the worker closes its socket, opens a new one at once
//   with Ready queued (re-claiming the tasks it still runs), and gives it `liveness` intervals
//   plus a backoff (1 s doubling to 32 s, with jitter) to hear from the router before the next
//   one; ZeroMQ retries the TCP connection meanwhile, so a link that returns is used at once.
// - Results are kept until the router acknowledges them (ResultsAck); results finished while
//   disconnected are delivered after the reconnect. A task is never run twice by one worker.
// - Handlers run on slot threads; a handler must be thread-safe. A handler that throws fails
//   its task with the exception's message; the worker keeps running.
// - Recall (work stealing): the router may ask for reserved tasks back; each one not started
//   yet is handed back (not run here), one already running just runs.
// - stop(): warm shutdown: the worker takes no new tasks, hands its prefetched, unstarted tasks
//   back to the router at once, lets running tasks finish for up to shutdown_timeout_ms, then
//   cancels the rest and hands them back too (the router requeues them; they are not failed),
//   waits a moment for the router's acknowledgements, says goodbye and run() returns OK. A
//   second stop() is cold: the running tasks are cancelled and handed back at once.
// - run() ends only by stop() (or an unrecoverable local error); signals that interrupt its
//   waits are not errors.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <zmq.hpp>

#include "common/curve.h"
#include "common/id.h"
#include "common/protocol.h"
#include "common/status.h"

namespace zb {

// Where a handler writes live output while it runs (docs/STREAMING.md): thread-safe, never
// blocks; the worker forwards it at a bounded rate, best effort.
class OutputSink {
 public:
  virtual ~OutputSink() = default;
  virtual void write(proto::OutputType type, std::string_view text) = 0;
};

// What a handler sees of its task. Views are valid for the duration of the call.
struct TaskContext {
  Id task;
  uint32_t attempt = 0;
  Id group;
  std::string_view ref;
  std::string_view queue;
  std::string_view kind;
  std::string_view payload;  // JSON text
  // Set when the task is revoked with terminate, on cold shutdown, or at its soft time limit.
  const std::atomic<bool>* cancelled = nullptr;
  // Limits of this attempt (0 = none), measured from `started`. The slot enforces them for
  // every handler (cancel flag at the soft limit; at the hard limit + 1 s an in-process handler
  // is abandoned: its task fails and a fresh slot thread replaces it). Process handlers also
  // enforce them on their child: SIGTERM at the soft limit, SIGKILL at the hard limit.
  uint32_t soft_limit_ms = 0;
  uint32_t hard_limit_ms = 0;
  std::chrono::steady_clock::time_point started{};
  // The W3C traceparent the task was submitted with; empty: none. Process handlers see it as
  // TRACEPARENT, and HTTP calls made for the task (Ollama, MCP) send it as `traceparent`.
  std::string_view trace;
  // What the tasks it depends on gave it (JSON text, docs/WORKFLOWS.md); empty: none. Process
  // handlers see it as "inputs" in the task JSON on their stdin.
  std::string_view inputs;
  // Live output (none: nobody listens, e.g. a handler called by a test).
  OutputSink* output = nullptr;
  // A task of a queue with a model pool: the Ollama server the router gave it a place on, and
  // the pool's model; the agent kind uses them instead of its [ollama] hosts and the task's
  // model. Empty: none.
  std::string_view endpoint = {};
  std::string_view model = {};
  bool is_cancelled() const { return cancelled && cancelled->load(std::memory_order_relaxed); }
  void emit(proto::OutputType type, std::string_view text) const {
    if (output && !text.empty()) output->write(type, text);
  }
};

struct HandlerResult {
  proto::OutcomeStatus status = proto::OutcomeStatus::kSucceeded;
  std::string result;  // JSON text
  std::string error;
  // kRetry: retry after this delay (a server's Retry-After) instead of the queue's backoff.
  uint64_t retry_after_ms = 0;
  // Model tokens the attempt spent (prompt + completion), whatever its outcome: counted
  // against its batch's budget (docs/kinds/agent.md).
  uint64_t tokens = 0;
  // kRetry of a task given a model pool's server (TaskContext::endpoint): that server refused
  // it (no connection, 429/503); the router cools it down this long and moves the task to
  // another server of the pool without spending a retry.
  uint64_t host_cooldown_ms = 0;

  static HandlerResult ok(std::string json) { return {proto::OutcomeStatus::kSucceeded, std::move(json), {}, 0, 0, 0}; }
  static HandlerResult fail(std::string message) { return {proto::OutcomeStatus::kFailed, {}, std::move(message), 0, 0, 0}; }
  static HandlerResult retry(std::string message, uint64_t after_ms = 0) {
    return {proto::OutcomeStatus::kRetry, {}, std::move(message), after_ms, 0, 0};
  }
  HandlerResult&& with_tokens(uint64_t n) && {
    tokens = n;
    return std::move(*this);
  }
};

using Handler = std::function<HandlerResult(const TaskContext&)>;

// Runs a handler as a slot does: exceptions become failures, an empty success becomes "null".
HandlerResult invoke_handler(const Handler& handler, const TaskContext& ctx);
// The built-in kinds: noop, echo, sleep ({"seconds":S}), fail ({"error":"...","retry":b}).
std::vector<std::pair<std::string, Handler>> builtin_handlers();

// Resource limits of a child process, set with setrlimit between fork and exec, so they hold
// for everything the child starts (docs/EXECUTION.md, "Resource limits"). 0 = not set: the
// child keeps the worker's own limit. A limit never raises what the worker itself has, and
// core dumps are always off. A child that dies of SIGXCPU or SIGXFSZ fails its task with
// "ResourceLimitExceeded: cpu time: ..." or "ResourceLimitExceeded: file size: ...".
struct ResourceLimits {
  // RLIMIT_CPU, seconds of CPU time: SIGXCPU, then SIGKILL term_grace later. A long-lived
  // child (pool, MCP server) gets this much for each task (the limit is moved on per task).
  uint32_t cpu_time_s = 3600;
  uint64_t address_space_bytes = 8ull << 30;  // RLIMIT_AS: allocations beyond it fail
  uint64_t file_size_bytes = 1ull << 30;      // RLIMIT_FSIZE: SIGXFSZ on a write past it
  // RLIMIT_NPROC counts every process and thread of the worker's user, not of one child, so
  // this is headroom: the child may run until its user has this many more processes and
  // threads than when it started. The kernel does not apply it to root.
  uint32_t processes = 4096;
  uint32_t open_files = 4096;  // RLIMIT_NOFILE: open() beyond it fails (EMFILE)
};

// A task kind served by child processes. Task data reaches a child only as JSON on its stdin,
// never in argv, a shell or the environment. Every child runs in its own process group, so a
// kill reaches whatever it started, with `limits`, without the worker's other file
// descriptors, and with a private TMPDIR (made by mkdtemp, mode 0700) that is removed with
// everything in it when the child ends.
//
// exec: one child per task. stdin = the task as JSON
//   {"id","attempt","group","ref","queue","kind","payload":<payload>}, then EOF. Exit 0 with
//   JSON on stdout succeeds (empty stdout = null); exit 75 (EX_TEMPFAIL) asks for a retry;
//   any other exit fails with "ProcessExitError: exit code N: <tail of stderr>".
// pool: long-lived children (at most one per slot), one task at a time each, JSON lines:
//   the worker writes the task (as above) on one line; the child answers one line,
//   {"result": <json>} or {"error": "Class: message", "retry": bool}. A child is recycled after
//   max_tasks_per_child tasks or when its resident memory passes max_memory_bytes; a child that
//   dies fails only its task ("WorkerLostError: ...") and is replaced.
struct ProcessHandlerConfig {
  enum class Mode { kExec, kPool };
  std::string kind;
  Mode mode = Mode::kExec;
  std::vector<std::string> argv;   // argv[0]: a path, or a name looked up in PATH
  std::vector<std::string> env;    // extra KEY=VALUE entries; they replace the worker's
  std::string cwd;                 // empty = the worker's
  size_t stdout_limit = 1u << 20;  // bytes of result; more fails the task ("OutputTooLarge")
  size_t stderr_limit = 64u << 10; // bytes of stderr tail kept for the error message
  uint32_t term_grace_ms = 2000;   // SIGTERM → SIGKILL when no hard limit comes first
  uint32_t max_tasks_per_child = 100;  // pool
  uint64_t max_memory_bytes = 0;       // pool; 0 = no ceiling
  ResourceLimits limits;
};

// The seed's four kinds of work, built into every worker (docs/KINDS.md):
//   agent     a coding agent on an Ollama server (docs/kinds/agent.md): {"description",
//             "system"?, "model"?, "files"?, "options"?, "mode"?: "agent"|"chat",
//             "max_steps"?, "max_tokens"?, "max_seconds"?} → {"model","message":{"role",
//             "content"},"prompt_tokens",...} and, in agent mode, "files_changed", "diff",
//             "checks", "transcript", "steps", "wall_ms". Agent mode works in a private
//             workspace with tools (list/read/write files, validate, run_test); chat mode is
//             one /api/chat exchange.
//   validate  {"language", "code" | "files"} → {"passed", "diagnostics":[{file,line,column,message}]}
//   test      {"profile"} (one of test_profiles) → {"ok","passed","failed","skipped",...,"log_tail"}
//   mcp       {"server", "tool", "arguments"} | {"server","method":"tools/list"|"resources/read",...}
//             → the MCP result, over stdio JSON-RPC to a server kept running per slot, or over
//             Streamable HTTP to a server's URL (a session per slot)
struct OllamaConfig {
  std::string host;              // empty: $OLLAMA_HOST, else http://127.0.0.1:11434
  // Several servers (this replaces `host`): requests go round them in turn; one that refuses
  // the connection or answers 429/503 cools down (for its Retry-After) and the next is asked.
  std::vector<std::string> hosts;
  std::string model = "llama3.2";
  std::string system;            // default system prompt
  uint32_t connect_timeout_ms = 5000;
  uint32_t read_timeout_ms = 300000;  // between two streamed chunks
  // Budgets of one agent task, each a default and a ceiling: a task may ask for less, never
  // for more. Passing one fails the task with "BudgetExceeded: steps|tokens|time".
  uint32_t max_steps = 20;         // model calls
  uint64_t max_tokens = 200000;    // prompt_eval_count + eval_count over all its calls
  uint32_t max_time_ms = 600000;   // wall clock from the task's start
  // A folder every agent workspace starts as a copy of (symbolic links copied as links, so the
  // confinement still applies to them); a task's "files" are written over it. Empty: none.
  std::string seed_dir;
};
struct ValidationConfig {
  std::string workspace = ".";   // "files" of a task must lie inside
  uint32_t timeout_ms = 60000;
  ResourceLimits limits;         // of each checker process
};
struct TestProfile {
  std::string name;
  std::vector<std::string> argv;
  std::vector<std::string> env;  // KEY=VALUE
  std::string cwd;
  std::string junit;             // JUnit XML report the tool writes (relative to cwd); empty = none
  uint32_t timeout_ms = 1800000;
  size_t log_tail = 65536;
  ResourceLimits limits;
};
// An MCP server: one the worker starts (argv: JSON-RPC over its stdin/stdout), or one it
// reaches by URL (url: "http://host:port/path" or https://, Streamable HTTP). Exactly one of
// argv and url is set; env, cwd and limits apply to argv servers.
struct McpServerConfig {
  std::string name;
  std::vector<std::string> argv;
  std::string url;
  std::vector<std::string> env;
  std::string cwd;
  uint32_t connect_timeout_ms = 5000;  // url: connecting and sending a request
  uint32_t call_timeout_ms = 60000;
  ResourceLimits limits;         // cpu_time is per call
};
struct SeedKindsConfig {
  OllamaConfig ollama;
  ValidationConfig validation;
  std::vector<TestProfile> test_profiles;
  std::vector<McpServerConfig> mcp_servers;
};

// The prefetch cap a worker announces when no --prefetch-multiplier is given: generous, because
// the router's window (router/workers.h) decides how much of it is used.
inline constexpr uint32_t kAutoPrefetch = 256;

struct WorkerOptions {
  std::string router = "tcp://127.0.0.1:5556";
  std::vector<std::string> queues;   // empty → every queue the router declares
  uint32_t concurrency = 0;          // 0 → number of CPUs
  // The most tasks held per slot, an explicit cap: capacity = concurrency × prefetch_multiplier.
  // Unset (the default): capacity = concurrency × kAutoPrefetch, and the router sizes how many
  // of those it actually hands out from measured task times and its round trip.
  std::optional<uint32_t> prefetch_multiplier;
  std::string name;                  // empty → "zbatch@<hostname>"
  uint32_t heartbeat_ms = 1000;
  uint32_t liveness = 3;
  uint32_t reconnect_initial_ms = 1000;
  uint32_t reconnect_max_ms = 32000;
  // --autoscale MAX,MIN: start with MIN slots, add one while tasks wait for a slot, remove
  // one after autoscale_idle_ms with an idle slot. 0 = fixed at `concurrency`.
  uint32_t autoscale_max = 0;
  uint32_t autoscale_min = 0;
  uint32_t autoscale_idle_ms = 10000;
  // Warm shutdown: how long running tasks may go on before they are cancelled and requeued.
  uint32_t shutdown_timeout_ms = 30000;
  // CURVE towards the router (common/curve.h): its public key and this worker's own key pair,
  // which the router's allow-list names with the role "worker". A router off loopback needs
  // them, unless insecure_plaintext.
  curve::ClientKeys curve;
  bool insecure_plaintext = false;
  std::vector<ProcessHandlerConfig> process_handlers;
  SeedKindsConfig kinds;
};

class Worker {
 public:
  // Validates options (precise messages, e.g. "--prefetch-multiplier must be >= 1, got 0") and
  // registers the built-in kinds: noop, echo, sleep ({"seconds":S}), fail ({"error":"..."}).
  static Result<std::unique_ptr<Worker>> create(WorkerOptions options,
                                                zmq::context_t* context = nullptr);
  ~Worker();

  // Adds or replaces the handler of a task kind. Call before run().
  void register_handler(std::string kind, Handler handler);
  // Checks a process handler's configuration (precise message on error); create() has already
  // registered those in options.process_handlers.
  static Status validate(const ProcessHandlerConfig& config);

  // Connects and serves until stop(). Returns the error that ended it, if any.
  Status run();
  // Thread-safe and async-signal-safe. First call warm, second cold.
  void stop();

 private:
  struct Impl;
  explicit Worker(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace zb
