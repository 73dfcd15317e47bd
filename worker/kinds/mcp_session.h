// One connection to an MCP server, over stdio or over Streamable HTTP (internal to
// worker/kinds/): mcp.cc keeps them per server, one per slot, and turns tasks into requests.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "worker/kinds/replies.h"
#include "worker/worker.h"

namespace zb::worker {

class McpSession {
 public:
  virtual ~McpSession() = default;

  // One request, answered by the whole JSON-RPC response (result or error). `progress`, when
  // given, asks the server for notifications/progress and counts them (a transport may not
  // ask). Errors, each leaving the session unusable:
  //   kTimeout       no response within call_timeout
  //   kUnavailable   the task was cancelled (soft time limit, revoke, shutdown)
  //   kIo            the server went away (exited, connection lost or refused): retried
  //   kInternal      a transient refusal (HTTP 5xx, 429): retried; the message has its class
  //   kUnprocessable a reply that makes no sense, or a permanent refusal: the task fails with
  //                  the message as it is (it starts with its class, McpBadReply: ...)
  virtual Result<nlohmann::json> call(const std::string& method, const nlohmann::json& params, const TaskContext& ctx,
                                      McpProgress* progress) = 0;
  // False once the session cannot take another request (its server gone, a failed call).
  virtual bool alive() = 0;
  // The resource limit that ended the server, if one did (a server the worker started).
  virtual std::optional<std::string> limit_exceeded() const { return std::nullopt; }
};

// A session with the server at cfg.url: initialize (the newest revision of kMcpHttpRevisions
// offered), notifications/initialized, the server's Mcp-Session-Id kept and sent. A session the
// server has forgotten (404, or 400 to a request with a session) is initialised again, once per
// call. Destroying it ends the server's session (DELETE), briefly, when the server gave one.
// A server without initialize that lists kMcpStatelessRevision in server/discover is spoken to
// statelessly: no session, the protocol version, client info and capabilities in every
// request's _meta.
// Errors as McpSession::call.
Result<std::unique_ptr<McpSession>> start_mcp_http_session(const McpServerConfig& cfg, const TaskContext& ctx);

}  // namespace zb::worker
