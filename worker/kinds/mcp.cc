// mcp: an MCP client, over stdio (newline-delimited JSON-RPC 2.0) to a server the worker starts,
// or over Streamable HTTP to a server's URL (mcp_http.cc).
//
// {"server": "name", "tool": "echo", "arguments": {...}}                 → tools/call
// {"server": "name", "method": "tools/list"}                             → tools/list
// {"server": "name", "method": "resources/read", "uri": "file:///..."}   → resources/read
// The result is the server's result object ({"content":[...]} for a tool). A tool that reports
// isError fails the task with its text; a JSON-RPC error fails it with code and message. A list
// asked for without a cursor follows nextCursor, up to kMcpMaxListPages pages.
//
// Each server runs as long-lived child processes, at most one per slot, initialised once
// (initialize, notifications/initialized) and reused; a server that dies or does not answer
// within call_timeout is killed and replaced, and that task is retried; one that a resource
// limit ended (ResourceLimitExceeded, see ResourceLimits) fails that task instead. A server by
// URL gets a session per slot the same way, and its tools/call requests ask for progress.
#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>

#include "common/log.h"
#include "worker/kinds/kinds.h"
#include "worker/kinds/mcp_session.h"
#include "worker/kinds/replies.h"
#include "worker/process.h"

namespace zb::worker {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kProtocolVersion = "2024-11-05";

class StdioSession final : public McpSession {
 public:
  static Result<std::unique_ptr<McpSession>> start(const McpServerConfig& cfg, const TaskContext& ctx) {
    ProcessHandlerConfig p;
    p.kind = "mcp";
    p.argv = cfg.argv;
    p.env = cfg.env;
    p.cwd = cfg.cwd;
    p.limits = cfg.limits;
    SpawnOptions options;
    options.long_lived = true;
    auto child = Child::spawn(p, options);
    if (!child) return child.status();
    std::unique_ptr<StdioSession> s(new StdioSession(std::move(child.value()), cfg.call_timeout_ms));
    auto reply = s->call("initialize", mcp_initialize_params(kProtocolVersion), ctx, nullptr);
    if (!reply) return Status(reply.status().code(), "initialize: " + reply.status().message());
    if (Status refused = mcp_initialize_outcome(*reply); !refused) return refused;
    if (!s->send({{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}})) return Status(Code::kIo, "server closed its input");
    return std::unique_ptr<McpSession>(std::move(s));
  }

  // Errors: kTimeout, kIo (server gone), kUnavailable (cancelled). No progress is asked for.
  Result<json> call(const std::string& method, const json& params, const TaskContext& ctx, McpProgress*) override {
    const int64_t id = next_id_++;
    child_->rearm_cpu_limit();  // cpu_time counts for this call, not the server's life
    if (!send(mcp_request(id, method, params))) return Status(Code::kIo, "the server closed its input");
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms_);
    for (;;) {
      while (auto line = lines_.next()) {
        McpLine read = read_mcp_line(*line, id);
        if (read.kind == McpLine::Kind::kServerRequest) send(read.answer);
        if (read.kind == McpLine::Kind::kResponse) return std::move(read.message);
      }
      if (lines_.too_long()) return Status(Code::kIo, "the server sent a line longer than 64 MiB");
      if (ctx.is_cancelled()) return Status(Code::kUnavailable, "cancelled");
      const auto now = Clock::now();
      if (now >= deadline) return Status(Code::kTimeout, method + " got no answer within " + std::to_string(timeout_ms_) + " ms");
      pollfd p{child_->out, POLLIN, 0};
      const auto wait = std::min<int64_t>(50, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count() + 1);
      if (::poll(&p, 1, static_cast<int>(wait)) <= 0) continue;
      char buf[65536];
      ssize_t n = ::read(child_->out, buf, sizeof buf);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        for (int i = 0; i < 50 && !child_->reap(); ++i) ::poll(nullptr, 0, 10);  // how it ended, if it did
        return Status(Code::kIo, "the server exited" + exit_text());
      }
      if (n > 0) lines_.feed(std::string_view(buf, static_cast<size_t>(n)));
    }
  }

  bool alive() override { return !child_->reap(); }
  std::optional<std::string> limit_exceeded() const override { return child_->limit_exceeded(); }

 private:
  StdioSession(std::unique_ptr<Child> child, uint32_t timeout_ms) : child_(std::move(child)), timeout_ms_(timeout_ms) {
    // Writes are blocking: requests are small and the server reads them promptly.
    ::fcntl(child_->in, F_SETFL, ::fcntl(child_->in, F_GETFL) & ~O_NONBLOCK);
  }

  bool send(const json& message) {
    std::string line = message.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    size_t off = 0;
    while (off < line.size()) {
      ssize_t n = ::write(child_->in, line.data() + off, line.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  std::string exit_text() const {
    if (!child_->exited()) return {};
    const int st = child_->wait_status();
    if (WIFEXITED(st)) return " (exit code " + std::to_string(WEXITSTATUS(st)) + ")";
    return " (signal " + std::to_string(WTERMSIG(st)) + ")";
  }

  std::unique_ptr<Child> child_;
  uint32_t timeout_ms_;
  LineReader lines_;
  int64_t next_id_ = 1;
};

class McpPool {
 public:
  McpPool(std::vector<McpServerConfig> servers, uint32_t max_sessions)
      : servers_(std::move(servers)), max_sessions_(max_sessions) {}

  HandlerResult run(const TaskContext& ctx) {
    HandlerResult bad;
    auto task = payload_object(ctx, bad);
    if (!task) return bad;
    auto server_name = task->find("server");
    if (server_name == task->end() || !server_name->is_string())
      return HandlerResult::fail("BadTask: MCP tasks need \"server\" (the name of an MCP server of the worker)");
    auto cfg = std::find_if(servers_.begin(), servers_.end(),
                            [&](const McpServerConfig& s) { return s.name == *server_name; });
    if (cfg == servers_.end()) {
      std::string known;
      for (const auto& s : servers_) known += (known.empty() ? "" : ", ") + s.name;
      return HandlerResult::fail("UnknownServer: '" + utf8_prefix(server_name->get<std::string>(), 60) +
                                 "' is not an MCP server of this worker" + (known.empty() ? " (none configured)" : " (" + known + ")"));
    }
    std::string method = "tools/call";
    if (auto m = task->find("method"); m != task->end()) {
      if (!m->is_string()) return HandlerResult::fail("BadTask: \"method\" must be a string");
      method = m->get<std::string>();
    }
    json params = json::object();
    bool follow_pages = false;
    if (method == "tools/call") {
      auto tool = task->find("tool");
      if (tool == task->end() || !tool->is_string() || tool->get<std::string>().empty())
        return HandlerResult::fail("BadTask: a tools/call task needs \"tool\" (a string)");
      json args = task->value("arguments", json::object());
      if (!args.is_object()) return HandlerResult::fail("BadTask: \"arguments\" must be an object");
      params = {{"name", *tool}, {"arguments", args}};
    } else if (method == "resources/read") {
      auto uri = task->find("uri");
      if (uri == task->end() || !uri->is_string()) return HandlerResult::fail("BadTask: resources/read needs \"uri\" (a string)");
      params = {{"uri", *uri}};
    } else if (method == "tools/list" || method == "resources/list" || method == "prompts/list") {
      if (auto cursor = task->find("cursor"); cursor != task->end() && cursor->is_string()) params["cursor"] = *cursor;
      else follow_pages = true;  // a cursor asks for one page; none, for the whole list
    } else {
      return HandlerResult::fail("BadTask: method must be tools/call, tools/list, resources/read, resources/list or prompts/list");
    }

    std::unique_ptr<McpSession> session = checkout(*cfg);
    if (!session) {
      auto started = cfg->url.empty() ? StdioSession::start(*cfg, ctx) : start_mcp_http_session(*cfg, ctx);
      if (!started) return HandlerResult::retry("McpServerUnavailable: " + cfg->name + ": " + started.status().message());
      session = std::move(started.value());
    }
    McpProgress progress;
    McpProgress* asks_progress = cfg->url.empty() || method != "tools/call" ? nullptr : &progress;
    std::optional<McpListPages> pages;
    if (follow_pages) pages.emplace(std::string(mcp_list_key(method)));
    for (;;) {
      auto reply = session->call(method, params, ctx, asks_progress);
      if (!reply) {
        // The session is unusable: ended with it (destructor), replaced by the next task.
        const Status& why = reply.status();
        if (auto hit = session->limit_exceeded()) return HandlerResult::fail(*hit + " (MCP server '" + cfg->name + "')");
        if (why.code() == Code::kUnavailable) {
          const std::string seen = progress.describe();
          return HandlerResult::fail("Cancelled: the MCP call was cancelled" + (seen.empty() ? "" : " after " + seen));
        }
        if (why.code() == Code::kTimeout) return HandlerResult::retry("McpTimeout: " + why.message());
        if (why.code() == Code::kUnprocessable) return HandlerResult::fail(why.message());
        if (why.code() == Code::kInternal) return HandlerResult::retry(why.message());
        return HandlerResult::retry("McpServerLost: " + cfg->name + ": " + why.message());
      }
      if (!pages) {
        give_back(cfg->name, std::move(session));
        progress.record(*reply);
        return mcp_outcome(*reply);
      }
      auto next = pages->add(std::move(*reply));
      if (!next) break;
      params["cursor"] = *next;
    }
    give_back(cfg->name, std::move(session));
    return pages->outcome();
  }

 private:
  std::unique_ptr<McpSession> checkout(const McpServerConfig& cfg) {
    std::lock_guard lock(mu_);
    auto& idle = idle_[cfg.name];
    while (!idle.empty()) {
      auto s = std::move(idle.back());
      idle.pop_back();
      if (s->alive()) return s;
    }
    return nullptr;
  }

  void give_back(const std::string& name, std::unique_ptr<McpSession> s) {
    std::lock_guard lock(mu_);
    auto& idle = idle_[name];
    if (idle.size() < max_sessions_) idle.push_back(std::move(s));
  }

  std::vector<McpServerConfig> servers_;
  uint32_t max_sessions_;
  std::mutex mu_;
  std::map<std::string, std::vector<std::unique_ptr<McpSession>>> idle_;
};

}  // namespace

Handler make_mcp_handler(std::vector<McpServerConfig> servers, uint32_t max_sessions) {
  auto pool = std::make_shared<McpPool>(std::move(servers), std::max<uint32_t>(1, max_sessions));
  return [pool](const TaskContext& ctx) { return pool->run(ctx); };
}

}  // namespace zb::worker
