// What every client command shares (internal to the command line): its flags (--router, the
// CURVE keys, --timeout, --json), its connection to the router, and how a failed call ends
// the command with the exit code its status calls for.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/curve_flags.h"
#include "client/client.h"

namespace zb::cli {

struct ClientFlags {
  std::string router = ClientOptions{}.router;
  double timeout_s = 10;
  bool json_out = false;
  PeerCurveFlags curve;
};

void add_client_flags(CLI::App* cmd, ClientFlags& flags);

// The command's client, kept until the process exits (also through fail()). With
// ZBATCH_ALWAYS_EAGER=1 it is a client of an in-process cluster (eager/eager.h).
Client* connect(const ClientFlags& flags);

// Ends the command for a failed call: kExitUnavailable when the router is unreachable,
// kExitUsage for a request it refused as bad or unknown, kExitFailed otherwise.
[[noreturn]] void fail_call(const Status& status);

template <typename T>
T must(Result<T> r) {
  if (!r) fail_call(r.status());
  return std::move(r.value());
}

// `text` as an id, or the command ends with kExitUsage naming `what` ("task id").
Id parse_id(const std::string& text, const char* what);

}  // namespace zb::cli
