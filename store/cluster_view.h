// What the router declares and its online workers announce, as far as the HTTP submission
// checks need it (internal to store/): each queue's default kind (`inspect.queues`) and the test
// profiles and MCP servers of the workers (`inspect.registered`).
//
// Each reply is kept for about a second, so a burst of submissions costs the router one
// question a second. A name missing from a copy older than 100 ms is asked again once, so a
// worker that has just come online is not refused for a second. Thread-safe. A router that
// does not answer is Code::kUnavailable: nothing has been sent to it, so nothing was accepted.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "common/protocol.h"
#include "common/status.h"

namespace zb::store {

class ClientPool;

class ClusterView {
 public:
  // Asks the router a control operation (inspect.queues, inspect.registered) that takes no
  // arguments; its reply.
  using Ask = std::function<Result<proto::ControlResult>(proto::ControlOp op)>;
  // Through the router's clients (defined with ClientPool, store/http_api.cc).
  explicit ClusterView(ClientPool& pool);
  // Through `ask`: the same checks against replies from elsewhere (fixed ones, in the fuzz
  // target of the submission bodies).
  explicit ClusterView(Ask ask) : ask_(std::move(ask)) {}

  // The kind a task of `queue` runs when it names none; nullopt for a queue the router does
  // not declare (the router refuses such a task itself).
  Result<std::optional<std::string>> default_kind(const std::string& queue);

  enum class Announced { kTestProfiles, kMcpServers };
  // The names of this sort that online workers announce (their union), fresh enough to
  // contain `wanted` if any worker announces it.
  Result<std::set<std::string>> announced(Announced what, const std::string& wanted);

 private:
  using Clock = std::chrono::steady_clock;
  struct Registry {
    std::set<std::string> test_profiles, mcp_servers;
    Clock::time_point fetched{};
  };
  struct Queues {
    std::map<std::string, std::string> default_kinds;
    Clock::time_point fetched{};
  };
  Result<Registry> fetch_registry();
  Result<Queues> fetch_queues();

  Ask ask_;
  std::mutex mu_;  // guards the two copies below
  std::optional<Registry> registry_;
  std::optional<Queues> queues_;
};

}  // namespace zb::store
