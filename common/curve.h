// CURVE keys and the trust rules of every ZeroMQ link (see docs/SECURITY.md).
//
// Key files are CZMQ's certificate layout (ZPL), so CZMQ's tools read them and zbatch reads
// theirs: NAME.key holds the public key, NAME.key_secret (mode 0600) the public and the secret
// key, each as 40 characters of Z85.
//
// Roles. The router's ZAP handler admits a CURVE key only when its allow-list names it, and
// answers the key's role as the connection's User-Id; every message is then checked against
// what its role may do:
//   worker  the backend protocol only (READY, RESULTS, ...): nothing on the frontend
//   read    status, wait, ping, inspect.*, the events PUB
//   submit  read + SUBMIT
//   admin   submit + purge, revoke, retry, worker commands
//   store   admin + REPLAY and CONFIRM (the status store, which forwards what its HTTP users
//           are allowed to do)
// Off loopback every link needs CURVE; plaintext there is an explicit, logged opt-out.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <zmq.hpp>

#include "common/status.h"

namespace zb::curve {

// A key pair as Z85 text (40 characters each); secret empty for a public certificate.
struct KeyPair {
  std::string public_key;
  std::string secret_key;
};

enum class Role : uint8_t { kWorker, kRead, kSubmit, kAdmin, kStore };
std::string_view role_name(Role role);
std::optional<Role> parse_role(std::string_view name);

// Permissions of a role on the frontend, and whether it may subscribe to events.
inline bool may_read(Role r) { return r != Role::kWorker; }
inline bool may_submit(Role r) { return r == Role::kSubmit || r == Role::kAdmin || r == Role::kStore; }
inline bool may_administer(Role r) { return r == Role::kAdmin || r == Role::kStore; }
inline bool may_replay(Role r) { return r == Role::kStore; }

// A fresh key pair.
KeyPair generate();
// True for 40 characters of Z85 that decode to 32 bytes.
bool valid_key(std::string_view z85);
// Writes DIR/NAME.key and DIR/NAME.key_secret (0600); refuses to overwrite either.
Status write_certificate(const std::string& dir, const std::string& name, const KeyPair& keys);
// Reads a certificate file (public or secret); a secret file gives both keys.
Result<KeyPair> read_certificate(const std::string& path);
// A public key given as the path of a certificate file or as Z85 text (a file that exists
// wins: a 40-character path is also valid Z85).
Result<std::string> public_key_of(const std::string& key_or_path);

// What a connecting peer (worker, client, store) needs: the router's public key, and its own
// key pair. Empty = plaintext.
struct ClientKeys {
  std::string server_public;
  KeyPair own;
  bool enabled() const { return !server_public.empty(); }
};
// From the router's public key (Z85 or certificate file) and the peer's secret certificate.
Result<ClientKeys> client_keys(const std::string& server_key, const std::string& secret_file);
// Sets the CURVE client options on a socket (nothing when keys are not enabled).
void apply_client(zmq::socket_t& socket, const ClientKeys& keys);
// Sets the CURVE server options and the ZAP domain on a socket.
void apply_server(zmq::socket_t& socket, const KeyPair& server, std::string_view zap_domain);

// The role of the peer that sent this frame (its User-Id, set by the router's ZAP handler);
// nullopt for a peer that did not authenticate (plaintext, or inproc within the process).
std::optional<Role> sender_role(const zmq::message_t& frame);

// 127.0.0.0/8, ::1 and IPv4-mapped 127.x; not 0.0.0.0, ::, or anything else. The one
// definition behind both trust rules: this one for ZeroMQ endpoints, and the HTTP store's
// decision on the address it bound (store/net_address.h).
bool is_loopback(const sockaddr* address);

// True when every address a tcp:// endpoint names is a loopback address (resolved, for a
// host name); ipc:// and inproc:// are local too. "*" and 0.0.0.0 are not loopback.
bool is_local_endpoint(const std::string& endpoint);
// The trust rule at start-up: each endpoint (a comma-separated list) must be local, or CURVE
// must be on, or `insecure_plaintext` chosen. `what` names the option in the error.
Status check_endpoints(const std::string& endpoints, bool curve_on, bool insecure_plaintext,
                       const std::string& what);

}  // namespace zb::curve
