// mcp over Streamable HTTP (MCP revisions 2025-03-26 and 2025-06-18, and the stateless
// 2026-07-28): each JSON-RPC message is POSTed to the server's URL, and the reply to a request
// is one JSON message or an event stream that carries notifications and requests of the server
// before the response. The contract is start_mcp_http_session's (mcp_session.h); reading the
// replies is replies.h's.
//
// A stateless server (2026-07-28) has no initialize: it answers it "method not found" (or HTTP
// 404), or with an unsupported-version error that lists 2026-07-28. The session then asks
// server/discover, and once the server lists 2026-07-28 every request carries the protocol
// version, the client's identity and its capabilities in params._meta, with the
// MCP-Protocol-Version and Mcp-Method headers; no session id, no notifications/initialized, no
// DELETE at the end.
//
// Cancelling a request (time limit, revoke, call_timeout) stops reading it, shuts its connection
// down and tells the server with notifications/cancelled: the spec has a disconnection mean
// nothing by itself.
#include <atomic>
#include <chrono>

#include "common/log.h"
#include "common/text.h"
#include "worker/kinds/http_exchange.h"
#include "worker/kinds/mcp_session.h"

namespace zb::worker {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// notifications/cancelled and the DELETE that ends a session are courtesies: a task waits for
// them this long at most.
constexpr uint32_t kCourtesyTimeoutMs = 1000;
// Bytes of an error reply kept for the task's error.
constexpr size_t kErrorBodyBytes = 2000;
// Spec: a session id holds visible ASCII only; a longer one than this is not a session id.
constexpr size_t kMaxSessionIdBytes = 1024;

std::string header(const HttpHeaders& headers, std::string_view name) {
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
  for (const auto& [key, value] : headers)
    if (key.size() == name.size() && std::equal(key.begin(), key.end(), name.begin(),
                                                [&](char a, char b) { return lower(a) == lower(b); }))
      return value;
  return {};
}

bool visible_ascii(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

// The JSON-RPC error of a response (null: none, or not an object).
const json& rpc_error(const json& response) {
  static const json none;
  if (!response.is_object()) return none;
  auto e = response.find("error");
  return e != response.end() && e->is_object() ? *e : none;
}

bool lists_stateless(const json& versions) {
  if (!versions.is_array()) return false;
  return std::any_of(versions.begin(), versions.end(), [](const json& v) { return v == kMcpStatelessRevision; });
}

// The answer to initialize of a server that has none: the stateless revision's.
bool refuses_initialize(const json& response) {
  const json& e = rpc_error(response);
  if (e.is_null()) return false;
  if (e.value("code", json()) == -32601) return true;  // method not found
  auto data = e.find("data");
  return data != e.end() && data->is_object() && lists_stateless(data->value("supportedVersions", json()));
}

// server/discover's result speaks the stateless revision.
bool discovers_stateless(const json& response) {
  if (!response.is_object()) return false;
  auto r = response.find("result");
  if (r == response.end() || !r->is_object()) return false;
  return lists_stateless(r->value("supportedVersions", json())) || r->value("protocolVersion", json()) == kMcpStatelessRevision;
}

class HttpSession final : public McpSession {
 public:
  explicit HttpSession(const McpServerConfig& cfg)
      : name_(cfg.name), connect_timeout_ms_(cfg.connect_timeout_ms), call_timeout_ms_(cfg.call_timeout_ms) {
    const size_t authority = cfg.url.find("://");
    const size_t slash = cfg.url.find('/', authority == std::string::npos ? 0 : authority + 3);
    address_ = cfg.url.substr(0, slash);
    path_ = slash == std::string::npos ? "/" : cfg.url.substr(slash);
  }

  ~HttpSession() override {
    if (session_id_.empty()) return;
    HttpExchange x = request("DELETE", {}, kCourtesyTimeoutMs);
    x.connect_timeout_ms = std::min(connect_timeout_ms_, kCourtesyTimeoutMs);
    x.on_data = [](std::string_view) { return true; };
    const HttpOutcome res = http_exchange(x);  // 405 (the server keeps sessions itself) is an answer too
    if (!res.answered) spdlog::debug("mcp server={} session end: {}", name_, res.failure);
  }

  // A new session: initialize, then notifications/initialized; or, with a stateless server,
  // server/discover.
  Status initialize(const TaskContext& ctx) {
    session_id_.clear();
    revision_.clear();
    stateless_ = false;
    auto reply = post_request("initialize", mcp_initialize_params(kMcpHttpRevisions[0]), ctx, nullptr);
    if ((reply && refuses_initialize(*reply)) || (!reply && last_status_ == 404)) {
      if (Status s = discover(ctx); s) return s;
    }
    if (!reply) return Status(reply.status().code(), "initialize: " + reply.status().message());
    if (!offered_session_.empty() && (offered_session_.size() > kMaxSessionIdBytes || !visible_ascii(offered_session_)))
      return Status(Code::kUnprocessable, "McpBadReply: the Mcp-Session-Id the server gave is not visible ASCII");
    session_id_ = offered_session_;  // ended (DELETE) with this object, whatever comes next
    auto revision = mcp_negotiated_revision(*reply);
    if (!revision) return Status(Code::kUnprocessable, revision.status().message());
    revision_ = *revision;
    return post_message({{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}}, call_timeout_ms_);
  }

  Result<json> call(const std::string& method, const json& params, const TaskContext& ctx, McpProgress* progress) override {
    auto reply = post_request(method, params, ctx, progress);
    if (!reply && reply.status().code() == Code::kNotFound) {
      // The server no longer knows the session (it restarted, or expired it): it did not run
      // the request, so a new session may send it again.
      spdlog::debug("mcp server={} session refused ({}), initialising a new one", name_, reply.status().message());
      if (Status s = initialize(ctx); !s) {
        usable_ = false;
        return s;
      }
      reply = post_request(method, params, ctx, progress);
      if (!reply && reply.status().code() == Code::kNotFound) reply = Status(Code::kUnprocessable, reply.status().message());
    }
    if (!reply) usable_ = false;
    return reply;
  }

  bool alive() override { return usable_; }

 private:
  // The stateless revision, if the server speaks it (else initialize's answer stands).
  Status discover(const TaskContext& ctx) {
    stateless_ = true;
    revision_ = std::string(kMcpStatelessRevision);
    auto reply = post_request("server/discover", json::object(), ctx, nullptr);
    if (reply && discovers_stateless(*reply)) {
      spdlog::debug("mcp server={} speaks the stateless revision {}", name_, revision_);
      return Status::ok();
    }
    stateless_ = false;
    revision_.clear();
    return Status(Code::kUnprocessable, "server/discover: the server does not speak " + std::string(kMcpStatelessRevision));
  }

  // A message POSTed. Of the stateless revision, a request or notification also carries what
  // it says about the client (params._meta) and its method (Mcp-Method).
  HttpExchange post(json message, uint32_t read_timeout_ms) const {
    std::string method;
    if (stateless_ && message.contains("method") && message["method"].is_string()) {
      method = message["method"].get<std::string>();
      json& params = message["params"];
      if (!params.is_object()) params = json::object();
      json& meta = params["_meta"];
      meta["io.modelcontextprotocol/protocolVersion"] = revision_;
      meta["io.modelcontextprotocol/clientInfo"] = mcp_initialize_params(revision_)["clientInfo"];
      meta["io.modelcontextprotocol/clientCapabilities"] = json::object();
    }
    HttpExchange x = request("POST", json_text(message), read_timeout_ms);
    if (!method.empty()) x.headers.emplace_back("Mcp-Method", std::move(method));
    return x;
  }

  HttpExchange request(const char* method, std::string body, uint32_t read_timeout_ms) const {
    HttpExchange x;
    x.address = address_;
    x.method = method;
    x.path = path_;
    x.body = std::move(body);
    x.connect_timeout_ms = connect_timeout_ms_;
    x.read_timeout_ms = read_timeout_ms;
    x.headers = {{"Accept", "application/json, text/event-stream"}};
    if (!session_id_.empty()) x.headers.emplace_back("Mcp-Session-Id", session_id_);
    if (mcp_revision_wants_header(revision_)) x.headers.emplace_back("MCP-Protocol-Version", revision_);
    return x;
  }

  // One request POSTed, answered by its JSON-RPC response; kNotFound: the server may not know
  // the session (404 or 400). Other errors as McpSession::call.
  Result<json> post_request(const std::string& method, const json& params, const TaskContext& ctx, McpProgress* progress) {
    const int64_t id = next_id_++;
    const json token = progress ? json(id) : json();
    const auto deadline = Clock::now() + std::chrono::milliseconds(call_timeout_ms_);
    std::atomic<bool> cancelled{false}, timed_out{false};
    int status = 0;
    std::optional<McpHttpReply> reply;
    std::string error_head;
    offered_session_.clear();
    last_status_ = 0;
    // The read timeout only backs up the deadline, which should_abort keeps.
    HttpExchange x = post(mcp_request(id, method, params, token), call_timeout_ms_ + 1000);
    if (!ctx.trace.empty()) x.headers.emplace_back("traceparent", std::string(ctx.trace));
    x.on_reply = [&](int s, const HttpHeaders& headers) {
      status = s;
      last_status_ = s;
      if (method == "initialize") offered_session_ = header(headers, "Mcp-Session-Id");
      if (s >= 200 && s < 300) reply.emplace(id, header(headers, "Content-Type"));
    };
    x.on_data = [&](std::string_view data) {
      if (ctx.is_cancelled()) {
        cancelled = true;
        return false;
      }
      if (!reply) {  // an error reply: its head, for the message
        if (error_head.size() < kErrorBodyBytes) error_head.append(data.substr(0, kErrorBodyBytes - error_head.size()));
        return true;
      }
      const bool more = reply->feed(data);
      for (const McpLine& m : reply->take_messages()) on_message(m, token, progress);
      return more;
    };
    x.should_abort = [&] {
      if (ctx.is_cancelled()) cancelled = true;
      else if (Clock::now() >= deadline) timed_out = true;
      return cancelled || timed_out;
    };
    const HttpOutcome res = http_exchange(x);
    if (reply && reply->response()) return *reply->response();  // whatever the connection did after it
    if (cancelled || ctx.is_cancelled()) {
      cancel(id, "cancelled by the client (time limit or revoke)");
      return Status(Code::kUnavailable, "cancelled");
    }
    if (timed_out) {
      cancel(id, "no response within the client's call timeout");
      return Status(Code::kTimeout, method + " got no answer within " + std::to_string(call_timeout_ms_) + " ms");
    }
    if (reply && !reply->error().empty()) return Status(Code::kUnprocessable, reply->error());
    if (!res.answered) {
      if (status == 0 && !res.read_failed) return Status(Code::kIo, address_ + ": " + res.failure);
      return Status(Code::kIo, address_ + ": the connection ended before the response (" + res.failure + ")");
    }
    if (!reply) {
      HandlerResult refused = mcp_http_error(status, error_head.empty() ? res.body : error_head);
      // The spec's answer to a session the server does not know is 404; some servers (the
      // reference server among them) answer 400. Either, to a request with a session, is one
      // more initialize.
      if ((status == 404 || status == 400) && !session_id_.empty()) return Status(Code::kNotFound, refused.error);
      return Status(refused.status == proto::OutcomeStatus::kRetry ? Code::kInternal : Code::kUnprocessable, refused.error);
    }
    reply->finish();
    for (const McpLine& m : reply->take_messages()) on_message(m, token, progress);
    if (reply->response()) return *reply->response();
    return Status(Code::kUnprocessable, reply->error());
  }

  // A message of the server met on the way to a response.
  void on_message(const McpLine& m, const json& token, McpProgress* progress) {
    if (m.kind == McpLine::Kind::kServerRequest) {
      if (Status s = post_message(m.answer, call_timeout_ms_); !s)  // the server may wait for it
        spdlog::debug("mcp server={} answer to a server request: {}", name_, s.message());
    } else if (m.kind == McpLine::Kind::kNotification && progress) {
      progress->note(m.message, token);
    }
  }

  // A notification or a response POSTed: the server accepts it (202) or says why not.
  Status post_message(const json& message, uint32_t timeout_ms) {
    int status = 0;
    std::string head;
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    HttpExchange x = post(message, timeout_ms);
    x.on_status = [&](int s) { status = s; };
    x.on_data = [&](std::string_view data) {
      if (head.size() < kErrorBodyBytes) head.append(data.substr(0, kErrorBodyBytes - head.size()));
      return true;
    };
    x.should_abort = [&] { return Clock::now() >= deadline; };
    const HttpOutcome res = http_exchange(x);
    if (!res.answered) return Status(Code::kIo, address_ + ": " + res.failure);
    if (status < 200 || status >= 300) return Status(Code::kUnprocessable, mcp_http_error(status, head).error);
    return Status::ok();
  }

  void cancel(int64_t id, const char* reason) {
    const json note{{"jsonrpc", "2.0"},
                    {"method", "notifications/cancelled"},
                    {"params", {{"requestId", id}, {"reason", reason}}}};
    if (Status s = post_message(note, kCourtesyTimeoutMs); !s)
      spdlog::debug("mcp server={} notifications/cancelled: {}", name_, s.message());
  }

  std::string name_, address_, path_;
  uint32_t connect_timeout_ms_, call_timeout_ms_;
  std::string session_id_;       // empty: the server gave none
  std::string offered_session_;  // what the last initialize's reply gave
  std::string revision_;         // negotiated; empty until initialize is answered
  bool stateless_ = false;       // the server speaks 2026-07-28: no session, _meta on every request
  int last_status_ = 0;          // the HTTP status of the last request's reply (0: none)
  int64_t next_id_ = 1;
  bool usable_ = true;
};

}  // namespace

Result<std::unique_ptr<McpSession>> start_mcp_http_session(const McpServerConfig& cfg, const TaskContext& ctx) {
  auto session = std::make_unique<HttpSession>(cfg);
  if (Status s = session->initialize(ctx); !s) return s;
  return std::unique_ptr<McpSession>(std::move(session));
}

}  // namespace zb::worker
