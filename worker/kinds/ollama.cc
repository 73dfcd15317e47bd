// agent: a coding agent on an Ollama server (POST /api/chat with tools, streamed NDJSON), or
// with "mode": "chat" one chat exchange (docs/kinds/agent.md).
//
// The agent loop: the task gets a Workspace (worker/kinds/agent.h); the model is offered
// list_files, read_file, write_file, validate and (with test profiles) run_test; each
// message.tool_calls of a reply is run and answered with {"role": "tool"} messages, until the
// model answers without a tool call or a budget (steps, tokens, wall clock) is spent. A tool
// that cannot do what it is asked (a path outside, an unknown tool, bad arguments) answers
// the model with an error; the loop goes on. The result carries the final message, the
// changed files, their unified diff, the outcomes of validate/run_test and the transcript;
// a failure after the workspace exists carries them too.
//
// Errors: the server unreachable, a timeout or a 5xx is transient (the task is retried; a
// 429 or 503 with Retry-After after that delay); a 4xx or an error inside the stream is
// permanent. The soft time limit, a revoke or the time budget cancels the request between
// two chunks.
#include <algorithm>
#include <chrono>
#include <mutex>
#include <unordered_map>
#include <cstdlib>

#include "common/http_module.h"
#include "common/log.h"
#include "common/text.h"
#include "worker/kinds/agent.h"
#include "worker/kinds/http_exchange.h"
#include "worker/kinds/kinds.h"
#include "worker/kinds/replies.h"

namespace zb::worker {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr size_t kMaxArgumentBytes = 4u << 20;   // a write_file may carry a file this big
constexpr size_t kMaxReadBytes = 1u << 20;       // read_file refuses larger files
constexpr size_t kMaxWrittenBytes = 64u << 20;   // what write_file may write in one task, in all
constexpr size_t kMaxToolReplyBytes = 32u << 10; // what the model is shown of one tool's answer
constexpr size_t kTranscriptFieldBytes = 2000;   // what the transcript keeps of each text
constexpr size_t kMaxTranscriptEntries = 400;
constexpr size_t kMaxCallsPerStep = 32;
constexpr size_t kMaxDiffBytes = 256u << 10;
constexpr size_t kMaxListed = 500;

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// The servers of [ollama] hosts, else host, else $OLLAMA_HOST, else the local default.
std::vector<std::string> server_addresses(const OllamaConfig& cfg) {
  std::vector<std::string> out;
  for (const auto& h : cfg.hosts) out.push_back(ollama_address(h));
  if (!out.empty()) return out;
  std::string host = cfg.host;
  if (host.empty()) {
    const char* env = std::getenv("OLLAMA_HOST");
    host = env && *env ? env : "http://127.0.0.1:11434";
  }
  return {ollama_address(host)};
}

// Which servers are cooling down, for every task of this process: one that refused the
// connection for kDownCoolMs, one that answered 429 or 503 for its Retry-After (kBusyCoolMs
// without one). Requests go round the servers in turn, skipping those cooling down.
class HostHealth {
 public:
  static constexpr uint64_t kDownCoolMs = 5000, kBusyCoolMs = 1000;
  static HostHealth& instance() {
    static HostHealth health;
    return health;
  }
  // The servers to try for one request, in order: those not cooling down, starting at the
  // rotation's next; when all are, the one whose cool-down ends first.
  std::vector<std::string> order(const std::vector<std::string>& hosts) {
    std::lock_guard lock(mu_);
    const auto now = Clock::now();
    const size_t start = turn_++ % hosts.size();
    std::vector<std::string> out;
    for (size_t i = 0; i < hosts.size(); ++i) {
      const std::string& h = hosts[(start + i) % hosts.size()];
      auto it = until_.find(h);
      if (it == until_.end() || it->second <= now) out.push_back(h);
    }
    if (out.empty())
      out.push_back(*std::min_element(hosts.begin(), hosts.end(),
                                      [&](const auto& a, const auto& b) { return until_[a] < until_[b]; }));
    return out;
  }
  void cool(const std::string& host, uint64_t ms) {
    std::lock_guard lock(mu_);
    until_[host] = std::max(until_[host], Clock::now() + std::chrono::milliseconds(ms));
  }

 private:
  std::mutex mu_;
  std::unordered_map<std::string, Clock::time_point> until_;
  uint64_t turn_ = 0;
};

// One streamed POST /api/chat. nullopt: the reply's body ended and `stream` holds it (finish()
// it); otherwise the task's outcome. `deadline` is the time budget's end (Clock::time_point::max(): none).
std::optional<HandlerResult> exchange_with(const std::string& address, const OllamaConfig& cfg,
                                           const json& request, const TaskContext& ctx, Clock::time_point deadline,
                                           OllamaChatStream& stream, int& answered_status) {
  std::string body_head;
  bool cancelled = false, over_time = false;
  int status = 0;
  HttpExchange ex;
  ex.address = address;
  ex.path = "/api/chat";
  ex.body = dump(request);
  ex.connect_timeout_ms = cfg.connect_timeout_ms;
  ex.read_timeout_ms = cfg.read_timeout_ms;
  if (!ctx.trace.empty()) ex.headers.emplace_back("traceparent", std::string(ctx.trace));
  if (deadline != Clock::time_point::max()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    ex.read_timeout_ms = static_cast<uint32_t>(std::clamp<int64_t>(left + 1, 1, cfg.read_timeout_ms));
    ex.connect_timeout_ms = std::min(ex.connect_timeout_ms, ex.read_timeout_ms);
  }
  ex.on_status = [&](int s) { status = s; };
  ex.on_data = [&](std::string_view data) {
    if (ctx.is_cancelled()) return !(cancelled = true);
    if (Clock::now() >= deadline) return !(over_time = true);
    if (status >= 400) {  // keep the error body for the message
      if (body_head.size() < 2000) body_head.append(data.substr(0, 2000 - body_head.size()));
      return true;
    }
    const size_t before = stream.content().size();
    const bool more = stream.feed(data);
    // The model's words as they arrive, for whoever follows the task (docs/STREAMING.md).
    if (stream.content().size() > before) ctx.emit(proto::OutputType::kText, std::string_view(stream.content()).substr(before));
    return more;
  };
  const HttpOutcome res = http_exchange(ex);
  answered_status = status;
  if (cancelled) return HandlerResult::fail("Cancelled: the chat was cancelled (time limit or revoke)");
  if (over_time || (!res.answered && Clock::now() >= deadline)) return HandlerResult::fail("BudgetExceeded: time");
  if (!stream.error().empty()) return HandlerResult::fail(stream.error());
  if (!res.answered) {
    if (res.read_failed && status > 0 && status < 400)
      return HandlerResult::retry("OllamaTimeout: no reply chunk within " + std::to_string(ex.read_timeout_ms) + " ms");
    return HandlerResult::retry("OllamaUnavailable: " + address + ": " + res.failure);
  }
  if (res.status >= 400) return ollama_http_error(res.status, body_head.empty() ? res.body : body_head, res.retry_after);
  return std::nullopt;
}

// One request, to the first server that takes it: a server that refuses the connection, or
// answers 429 or 503 before any of its body is read, cools down and the next one is asked.
std::optional<HandlerResult> exchange(const OllamaConfig& cfg, const json& request, const TaskContext& ctx,
                                      Clock::time_point deadline, OllamaChatStream& stream) {
  if (!ctx.endpoint.empty()) {
    // A model pool's server, chosen by the router, which counts its places: no other server
    // is asked. One that refuses the task is reported, and the router cools it down and
    // moves the task to another server of the pool.
    int status = 0;
    auto outcome = exchange_with(ollama_address(std::string(ctx.endpoint)), cfg, request, ctx, deadline, stream, status);
    if (outcome && outcome->status == proto::OutcomeStatus::kRetry) {
      const bool busy = status == 429 || status == 503;
      if (busy) outcome->host_cooldown_ms = std::max<uint64_t>(outcome->retry_after_ms, HostHealth::kBusyCoolMs);
      else if (status == 0) outcome->host_cooldown_ms = HostHealth::kDownCoolMs;
    }
    return outcome;
  }
  HostHealth& health = HostHealth::instance();
  const std::vector<std::string> hosts = health.order(server_addresses(cfg));
  std::optional<HandlerResult> outcome;
  for (size_t i = 0; i < hosts.size(); ++i) {
    int status = 0;  // the server's answer; 0: no connection
    outcome = exchange_with(hosts[i], cfg, request, ctx, deadline, stream, status);
    if (!outcome || outcome->status != proto::OutcomeStatus::kRetry) return outcome;
    const bool busy = status == 429 || status == 503;
    if (status > 0 && !busy) return outcome;  // a timeout or another 5xx: the task is retried
    health.cool(hosts[i], busy ? std::max<uint64_t>(outcome->retry_after_ms, HostHealth::kBusyCoolMs)
                               : HostHealth::kDownCoolMs);
    if (hosts.size() > 1) spdlog::info("agent ollama host={} cooling down: {}", hosts[i], utf8_prefix(outcome->error, 200));
  }
  return outcome;
}

// The parts of a task both modes read.
struct ChatTask {
  json task;
  json messages = json::array();
  std::string model;
  json options;  // null: none
};

std::optional<ChatTask> read_chat_task(const OllamaConfig& cfg, const TaskContext& ctx, HandlerResult& bad) {
  auto task = payload_object(ctx, bad);
  if (!task) return std::nullopt;
  auto text = [&](const char* key) -> std::optional<std::string> {
    auto it = task->find(key);
    if (it == task->end() || it->is_null()) return std::string();
    if (!it->is_string()) return std::nullopt;
    return it->get<std::string>();
  };
  auto description = text("description");
  if (!description || description->empty()) {
    bad = HandlerResult::fail("BadTask: agent tasks need \"description\" (a non-empty string)");
    return std::nullopt;
  }
  auto system = text("system");
  auto model = text("model");
  if (!system || !model) {
    bad = HandlerResult::fail("BadTask: \"system\" and \"model\" must be strings");
    return std::nullopt;
  }
  ChatTask out;
  std::string user = *description;
  if (auto files = task->find("files"); files != task->end()) {
    // {"files": {"name": "content", ...}} is given to the model as context (and, in agent
    // mode, is the workspace's seed).
    if (!files->is_object()) {
      bad = HandlerResult::fail("BadTask: \"files\" must be an object of name → content");
      return std::nullopt;
    }
    for (const auto& [name, content] : files->items()) {
      if (!content.is_string()) {
        bad = HandlerResult::fail("BadTask: files[\"" + utf8_prefix(name, 60) + "\"] must be a string");
        return std::nullopt;
      }
      user += "\n\n--- " + name + " ---\n" + content.get<std::string>();
    }
  }
  const std::string sys = system->empty() ? cfg.system : *system;
  if (!sys.empty()) out.messages.push_back({{"role", "system"}, {"content", sys}});
  out.messages.push_back({{"role", "user"}, {"content", user}});
  // A pooled task runs on its pool's model, which its place on the server was counted for.
  out.model = !ctx.model.empty() ? std::string(ctx.model) : model->empty() ? cfg.model : *model;
  if (auto options = task->find("options"); options != task->end()) {
    if (!options->is_object()) {
      bad = HandlerResult::fail("BadTask: \"options\" must be an object");
      return std::nullopt;
    }
    out.options = *options;
  }
  out.task = std::move(*task);
  return out;
}

json chat_request(const ChatTask& t) {
  json request{{"model", t.model}, {"messages", t.messages}, {"stream", true}};
  if (!t.options.is_null()) request["options"] = t.options;
  return request;
}

HandlerResult chat(const OllamaConfig& cfg, const ChatTask& t, const TaskContext& ctx) {
  const json request = chat_request(t);
  OllamaChatStream stream;
  if (auto failed = exchange(cfg, request, ctx, Clock::time_point::max(), stream)) return *failed;
  return stream.finish(t.model, t.task.value("id", json()));
}

// ---------------------------------------------------------------------------------------------
// The agent loop

struct Budgets {
  uint32_t steps = 0;
  uint64_t tokens = 0;
  uint32_t time_ms = 0;
};

// A task's budgets: its own where it gives one (never above the worker's), else the worker's.
std::optional<Budgets> read_budgets(const OllamaConfig& cfg, const json& task, HandlerResult& bad) {
  Budgets b{cfg.max_steps, cfg.max_tokens, cfg.max_time_ms};
  auto count = [&](const char* key, uint64_t ceiling, auto& out) {
    auto it = task.find(key);
    if (it == task.end() || it->is_null()) return true;
    if (!it->is_number_unsigned() || it->get<uint64_t>() == 0) {
      bad = HandlerResult::fail(std::string("BadTask: \"") + key + "\" must be a whole number > 0");
      return false;
    }
    out = static_cast<std::remove_reference_t<decltype(out)>>(std::min(it->get<uint64_t>(), ceiling));
    return true;
  };
  if (!count("max_steps", cfg.max_steps, b.steps) || !count("max_tokens", cfg.max_tokens, b.tokens)) return std::nullopt;
  if (auto it = task.find("max_seconds"); it != task.end() && !it->is_null()) {
    if (!it->is_number() || it->get<double>() <= 0) {
      bad = HandlerResult::fail("BadTask: \"max_seconds\" must be a number > 0");
      return std::nullopt;
    }
    b.time_ms = static_cast<uint32_t>(std::min<double>(it->get<double>() * 1000.0, cfg.max_time_ms));
    b.time_ms = std::max<uint32_t>(b.time_ms, 1);
  }
  return b;
}

json tool(const char* name, const char* description, json properties, json required) {
  return {{"type", "function"},
          {"function", {{"name", name},
                        {"description", description},
                        {"parameters", {{"type", "object"}, {"properties", std::move(properties)}, {"required", std::move(required)}}}}}};
}

json tool_definitions(const std::vector<TestProfile>& profiles) {
  const json path = {{"type", "string"}, {"description", "a path relative to the workspace"}};
  json tools = json::array({
      tool("list_files", "List the files of the workspace, or of one folder of it.",
           {{"path", {{"type", "string"}, {"description", "a folder relative to the workspace; empty: all files"}}}}, json::array()),
      tool("read_file", "Read a file of the workspace.", {{"path", path}}, json::array({"path"})),
      tool("write_file", "Create or replace a file of the workspace (folders are made as needed).",
           {{"path", path}, {"content", {{"type", "string"}, {"description", "the whole new content of the file"}}}},
           json::array({"path", "content"})),
      tool("validate", "Check a file's syntax (python, javascript, c, cpp, json, toml, yaml, shell).",
           {{"path", path},
            {"language", {{"type", "string"}, {"description", "the language; by default read from the file's extension"}}}},
           json::array({"path"})),
  });
  if (!profiles.empty()) {
    json names = json::array();
    for (const auto& p : profiles) names.push_back(p.name);
    tools.push_back(tool("run_test", "Run one of the worker's test profiles in the workspace and report its counts.",
                         {{"profile", {{"type", "string"}, {"enum", names}}}}, json::array({"profile"})));
  }
  return tools;
}

std::string language_of(const std::string& path) {
  static const std::pair<const char*, const char*> kByExtension[] = {
      {".py", "python"}, {".js", "javascript"}, {".mjs", "javascript"}, {".cjs", "javascript"}, {".c", "c"},
      {".h", "cpp"},     {".cc", "cpp"},        {".cpp", "cpp"},        {".cxx", "cpp"},        {".hpp", "cpp"},
      {".json", "json"}, {".toml", "toml"},     {".yaml", "yaml"},      {".yml", "yaml"},       {".sh", "shell"}};
  for (const auto& [ext, language] : kByExtension) {
    const std::string_view e(ext);
    if (path.size() > e.size() && path.compare(path.size() - e.size(), e.size(), e) == 0) return language;
  }
  return {};
}

// What one tool call did: the text the model is shown, and for validate/run_test the outcome
// kept in the result's "checks".
struct ToolAnswer {
  bool ok = true;
  std::string text;
  json check;  // null: none
};

ToolAnswer tool_error(std::string message) { return {false, "error: " + std::move(message), json()}; }

std::optional<std::string> string_argument(const json& args, const char* key, bool required, ToolAnswer& error) {
  auto it = args.find(key);
  if (it == args.end() || it->is_null()) {
    if (required) error = tool_error(std::string("\"") + key + "\" is required (a string)");
    return required ? std::nullopt : std::optional<std::string>(std::string());
  }
  if (!it->is_string()) {
    error = tool_error(std::string("\"") + key + "\" must be a string");
    return std::nullopt;
  }
  return it->get<std::string>();
}

class AgentRun {
 public:
  AgentRun(const OllamaConfig& cfg, const ValidationConfig& validation, const std::vector<TestProfile>& profiles,
           const TaskContext& ctx, ChatTask task, Budgets budgets, std::unique_ptr<Workspace> ws)
      : cfg_(cfg), ctx_(ctx), task_(std::move(task)), budgets_(budgets), ws_(std::move(ws)) {
    started_ = ctx.started == Clock::time_point{} ? Clock::now() : ctx.started;
    deadline_ = started_ + std::chrono::milliseconds(budgets_.time_ms);
    ValidationConfig v = validation;
    v.workspace = ws_->root().string();
    validate_ = make_validate_handler(std::move(v));
    std::vector<TestProfile> here = profiles;
    for (auto& p : here) p.cwd = ws_->root().string();
    if (!here.empty()) test_ = make_test_handler(here);
    tools_ = tool_definitions(here);
  }

  HandlerResult run() {
    json messages = task_.messages;
    for (;;) {
      if (ctx_.is_cancelled()) return failed("Cancelled: the agent was cancelled (time limit or revoke)");
      if (Clock::now() >= deadline_) return failed("BudgetExceeded: time");
      if (steps_ >= budgets_.steps) return failed("BudgetExceeded: steps");
      ++steps_;
      json request = chat_request(task_);
      request["messages"] = messages;
      request["tools"] = tools_;
      OllamaChatStream stream;
      auto outcome = exchange(cfg_, request, ctx_, deadline_, stream);
      if (!outcome) {
        HandlerResult done = stream.finish(task_.model, json());
        if (done.status != proto::OutcomeStatus::kSucceeded) outcome = std::move(done);
      }
      if (outcome) {
        if (outcome->status == proto::OutcomeStatus::kFailed) return failed(outcome->error);
        outcome->tokens = prompt_tokens_ + completion_tokens_;  // a retry: what this attempt spent
        return *outcome;
      }
      prompt_tokens_ += stream.prompt_tokens();
      completion_tokens_ += stream.completion_tokens();
      final_ = stream.content();
      if (!final_.empty()) note({{"step", steps_}, {"assistant", clip(final_, kTranscriptFieldBytes)}});
      if (prompt_tokens_ + completion_tokens_ > budgets_.tokens) return failed("BudgetExceeded: tokens");
      if (stream.tool_calls().empty()) return finished();

      json assistant{{"role", "assistant"}, {"content", final_}};
      json sent_calls = json::array();
      json replies = json::array();
      size_t n = 0;
      for (const json& entry : stream.tool_calls()) {
        if (ctx_.is_cancelled()) return failed("Cancelled: the agent was cancelled (time limit or revoke)");
        if (Clock::now() >= deadline_) return failed("BudgetExceeded: time");
        ToolCall call = read_tool_call(entry, kMaxArgumentBytes);
        ToolAnswer answer;
        if (++n > kMaxCallsPerStep) answer = tool_error("more than " + std::to_string(kMaxCallsPerStep) + " tool calls in one reply; this one was not run");
        else if (!call.error.empty()) answer = tool_error(call.error);
        else answer = run_tool(call);
        if (!call.name.empty() && call.error.empty()) {
          json c{{"function", {{"name", call.name}, {"arguments", call.arguments}}}};
          if (!call.id.empty()) c["id"] = call.id;
          sent_calls.push_back(std::move(c));
        }
        json reply{{"role", "tool"}, {"content", clip(answer.text, kMaxToolReplyBytes)}};
        if (!call.name.empty()) reply["tool_name"] = call.name;
        if (!call.id.empty()) reply["tool_call_id"] = call.id;
        replies.push_back(std::move(reply));
        if (!answer.check.is_null()) checks_.push_back(answer.check);
        note({{"step", steps_},
              {"tool", call.name.empty() ? json() : json(call.name)},
              {"arguments", clip(call.error.empty() ? dump(call.arguments) : dump(entry), kTranscriptFieldBytes)},
              {"ok", answer.ok},
              {"result", clip(answer.text, kTranscriptFieldBytes)}});
      }
      if (!sent_calls.empty()) assistant["tool_calls"] = std::move(sent_calls);
      messages.push_back(std::move(assistant));
      for (auto& r : replies) messages.push_back(std::move(r));
    }
  }

 private:
  ToolAnswer run_tool(const ToolCall& call) {
    ToolAnswer bad;
    const json& args = call.arguments;
    if (call.name == "list_files") {
      auto folder = string_argument(args, "path", false, bad);
      if (!folder) return bad;
      auto listed = ws_->list(*folder, kMaxListed);
      return listed ? ToolAnswer{true, *listed, json()} : tool_error(listed.status().message());
    }
    if (call.name == "read_file") {
      auto path = string_argument(args, "path", true, bad);
      if (!path) return bad;
      auto text = ws_->read(*path, kMaxReadBytes);
      return text ? ToolAnswer{true, *text, json()} : tool_error(text.status().message());
    }
    if (call.name == "write_file") {
      auto path = string_argument(args, "path", true, bad);
      if (!path) return bad;
      auto content = string_argument(args, "content", true, bad);
      if (!content) return bad;
      if (written_bytes_ + content->size() > kMaxWrittenBytes)
        return tool_error("this task has written " + std::to_string(written_bytes_) + " bytes; a task writes at most " +
                          std::to_string(kMaxWrittenBytes));
      if (Status s = ws_->write(*path, *content); !s) return tool_error(s.message());
      written_bytes_ += content->size();
      return {true, "wrote " + std::to_string(content->size()) + " bytes to " + utf8_prefix(*path, 200), json()};
    }
    if (call.name == "validate") {
      auto path = string_argument(args, "path", true, bad);
      if (!path) return bad;
      auto language = string_argument(args, "language", false, bad);
      if (!language) return bad;
      if (language->empty()) *language = language_of(*path);
      if (language->empty()) return tool_error("give \"language\": the extension of '" + utf8_prefix(*path, 200) + "' names none");
      json payload{{"language", *language}, {"files", json::array({*path})}};
      HandlerResult r = sub_task("validate", dump(payload), validate_);
      if (r.status != proto::OutcomeStatus::kSucceeded) return tool_error(r.error);
      json result = parse_json_bounded(r.result);
      json check{{"tool", "validate"}, {"path", utf8_prefix(*path, 200)}, {"step", steps_}};
      if (result.is_object()) {
        check["passed"] = result.value("passed", false);
        check["diagnostics"] = result.value("diagnostics", json::array());
      }
      return {true, r.result, std::move(check)};
    }
    if (call.name == "run_test" && test_) {
      auto profile = string_argument(args, "profile", true, bad);
      if (!profile) return bad;
      HandlerResult r = sub_task("test", dump(json{{"profile", *profile}}), test_);
      if (r.status != proto::OutcomeStatus::kSucceeded) return tool_error(r.error);
      json result = parse_json_bounded(r.result);
      json check{{"tool", "run_test"}, {"profile", utf8_prefix(*profile, 100)}, {"step", steps_}};
      if (result.is_object()) {
        for (const char* key : {"ok", "exit_code", "passed", "failed", "errors", "skipped", "total", "duration_ms"})
          if (result.contains(key)) check[key] = result[key];
        if (auto log = result.find("log_tail"); log != result.end() && log->is_string())
          check["log_tail"] = clip(log->get<std::string>(), kTranscriptFieldBytes);
      }
      return {true, r.result, std::move(check)};
    }
    std::string known = "list_files, read_file, write_file, validate";
    if (test_) known += ", run_test";
    return tool_error("unknown tool '" + call.name + "' (the tools are " + known + ")");
  }

  // validate and run_test run as their own kinds do, within what is left of the time budget.
  HandlerResult sub_task(const char* kind, const std::string& payload, const Handler& handler) {
    TaskContext sub = ctx_;
    sub.kind = kind;
    sub.payload = payload;
    sub.started = started_;
    if (!sub.hard_limit_ms || sub.hard_limit_ms > budgets_.time_ms) sub.hard_limit_ms = budgets_.time_ms;
    if (sub.soft_limit_ms > sub.hard_limit_ms) sub.soft_limit_ms = 0;
    return invoke_handler(handler, sub);
  }

  void note(json entry) {
    ctx_.emit(proto::OutputType::kStep, dump(entry));
    if (transcript_.size() < kMaxTranscriptEntries) transcript_.push_back(std::move(entry));
    else if (transcript_.size() == kMaxTranscriptEntries) transcript_.push_back({{"truncated", "the transcript keeps " + std::to_string(kMaxTranscriptEntries) + " entries"}});
  }

  json report() {
    json out{{"mode", "agent"},
             {"model", task_.model},
             {"message", {{"role", "assistant"}, {"content", final_}}},
             {"prompt_tokens", prompt_tokens_},
             {"completion_tokens", completion_tokens_},
             {"tokens", prompt_tokens_ + completion_tokens_},
             {"steps", steps_},
             {"wall_ms", std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started_).count()},
             {"budgets", {{"max_steps", budgets_.steps}, {"max_tokens", budgets_.tokens}, {"max_seconds", budgets_.time_ms / 1000.0}}},
             {"files_changed", ws_->changed()},
             {"checks", checks_},
             {"transcript", transcript_}};
    auto diff = ws_->diff(ctx_, kMaxDiffBytes);
    if (diff) out["diff"] = *diff;
    else out["diff_error"] = diff.status().message();
    if (auto id = task_.task.find("id"); id != task_.task.end()) out["id"] = *id;
    return out;
  }

  HandlerResult finished() { return HandlerResult::ok(dump(report())).with_tokens(prompt_tokens_ + completion_tokens_); }

  HandlerResult failed(const std::string& error) {
    json partial = report();
    partial["error"] = error;
    HandlerResult r = HandlerResult::fail(error);
    r.result = dump(partial);
    r.tokens = prompt_tokens_ + completion_tokens_;  // spent all the same: the batch's budget counts them
    return r;
  }

  const OllamaConfig& cfg_;
  const TaskContext& ctx_;
  ChatTask task_;
  Budgets budgets_;
  std::unique_ptr<Workspace> ws_;
  Handler validate_, test_;
  json tools_;
  Clock::time_point started_, deadline_;
  uint32_t steps_ = 0;
  uint64_t prompt_tokens_ = 0, completion_tokens_ = 0;
  size_t written_bytes_ = 0;
  std::string final_;
  json checks_ = json::array();
  json transcript_ = json::array();
};

struct AgentSettings {
  OllamaConfig ollama;
  ValidationConfig validation;
  std::vector<TestProfile> profiles;
};

HandlerResult serve(const AgentSettings& settings, const TaskContext& ctx) {
  HandlerResult bad;
  auto t = read_chat_task(settings.ollama, ctx, bad);
  if (!t) return bad;
  std::string mode = "agent";
  if (auto m = t->task.find("mode"); m != t->task.end() && !m->is_null()) {
    if (!m->is_string() || (*m != "agent" && *m != "chat"))
      return HandlerResult::fail("BadTask: \"mode\" must be \"agent\" or \"chat\"");
    mode = m->get<std::string>();
  }
  if (mode == "chat") return chat(settings.ollama, *t, ctx);
  auto budgets = read_budgets(settings.ollama, t->task, bad);
  if (!budgets) return bad;
  auto ws = Workspace::create(t->task.value("files", json::object()), settings.ollama.seed_dir);
  if (!ws) {
    if (ws.status().code() == Code::kBadRequest) return HandlerResult::fail("BadTask: " + ws.status().message());
    return HandlerResult::fail("WorkspaceError: " + ws.status().message());
  }
  AgentRun run(settings.ollama, settings.validation, settings.profiles, ctx, std::move(*t), *budgets, std::move(ws.value()));
  return run.run();
}

}  // namespace

HttpOutcome http_exchange(const HttpExchange& request) {
  HttpOutcome outcome;
  auto entry = http_module_symbol("zbatch_http_exchange");
  if (!entry) {
    outcome.failure = entry.status().message();
    return outcome;
  }
  reinterpret_cast<zbatch_http_exchange_fn>(*entry)(&request, &outcome);
  return outcome;
}

std::optional<nlohmann::json> payload_object(const TaskContext& ctx, HandlerResult& error) {
  json j = parse_json_bounded(ctx.payload.empty() ? std::string_view("{}") : ctx.payload);
  if (!j.is_object()) {
    error = HandlerResult::fail("BadTask: the " + utf8_prefix(ctx.kind, 100) + " task must be a JSON object (nested at most " +
                                std::to_string(kMaxJsonDepth) + " deep)");
    return std::nullopt;
  }
  return j;
}

Handler make_agent_handler(const SeedKindsConfig& kinds) {
  auto settings = std::make_shared<AgentSettings>(AgentSettings{kinds.ollama, kinds.validation, kinds.test_profiles});
  return [settings](const TaskContext& ctx) { return serve(*settings, ctx); };
}

}  // namespace zb::worker
