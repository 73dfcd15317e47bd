// The command line's CURVE options (internal to the command line): the flags every process
// and client command shares, and `zbatch keygen`. docs/SECURITY.md explains the set-up.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "common/curve.h"

namespace zb::cli {

// A peer of the router (worker, store, client commands): the router's public key, its own
// secret certificate, and the plaintext opt-out.
struct PeerCurveFlags {
  std::string server_key;   // Z85, or the router's .key certificate file
  std::string secret_file;  // this peer's .key_secret certificate
  bool insecure_plaintext = false;
};
void add_peer_curve_flags(CLI::App* cmd, PeerCurveFlags& f);
// The keys the flags name (fails the command with a clear message when they are wrong).
curve::ClientKeys peer_keys(const PeerCurveFlags& f);

// The router: its own secret certificate and the allow-list of peers with their roles.
struct RouterCurveFlags {
  std::string secret_file;
  std::string allow_file;
  bool insecure_plaintext = false;
};
void add_router_curve_flags(CLI::App* cmd, RouterCurveFlags& f);

// zbatch keygen NAME [--dir DIR]
void add_keygen_command(CLI::App& app);

}  // namespace zb::cli
