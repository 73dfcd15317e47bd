#include "cli/client_connection.h"

#include <chrono>
#include <cstdlib>
#include <memory>

#include "eager/eager.h"

namespace zb::cli {
namespace {

// Destroys the client before the eager cluster it may be a client of.
struct Connection {
  std::unique_ptr<EagerCluster> eager;
  std::unique_ptr<Client> client;
  ~Connection() { client.reset(); }
};

}  // namespace

void add_client_flags(CLI::App* cmd, ClientFlags& flags) {
  cmd->add_option("--router", flags.router, "The router's frontend endpoint")->envname("ZBATCH_ROUTER");
  add_peer_curve_flags(cmd, flags.curve);
  cmd->add_option("--timeout", flags.timeout_s, "Seconds to wait for each answer of the router");
  cmd->add_flag("--json", flags.json_out, "Machine-readable output");
}

Client* connect(const ClientFlags& flags) {
  static Connection connection;
  if (flags.timeout_s <= 0) fail(kExitUsage, "--timeout must be > 0");
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(flags.timeout_s * 1000));
  if (eager_from_environment()) {
    auto cluster = EagerCluster::start();
    if (!cluster) fail(kExitFailed, "eager mode: " + cluster.status().message());
    connection.eager = std::move(cluster.value());
    auto client = connection.eager->client(timeout);
    if (!client) fail(kExitFailed, client.status().message());
    connection.client = std::move(client.value());
    return connection.client.get();
  }
  ClientOptions o;
  if (!flags.router.empty()) o.router = flags.router;
  else if (const char* env = std::getenv("ZBATCH_ROUTER"); env && *env) o.router = env;
  o.timeout = timeout;
  o.curve = peer_keys(flags.curve);
  o.insecure_plaintext = flags.curve.insecure_plaintext;
  auto client = Client::connect(o);
  if (!client) fail(kExitUsage, client.status().message());
  connection.client = std::move(client.value());
  return connection.client.get();
}

void fail_call(const Status& status) {
  const Code code = status.code();
  fail(code == Code::kUnavailable ? kExitUnavailable
       : (code == Code::kBadRequest || code == Code::kUnprocessable || code == Code::kNotFound) ? kExitUsage
                                                                                                  : kExitFailed,
       status.message());
}

Id parse_id(const std::string& text, const char* what) {
  auto id = Id::parse(text);
  if (!id) fail(kExitUsage, std::string(what) + " '" + text + "' is not a valid id");
  return *id;
}

}  // namespace zb::cli
