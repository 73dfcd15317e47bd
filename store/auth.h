// Authentication and roles for the HTTP API and the dashboard (internal to store/).
//
// Credentials: bearer tokens (`Authorization: Bearer <token>`, or the dashboard's cookie
// `zbatch_token=<token>`) and basic users (`Authorization: Basic ...`), each with a role
// (store/routes.h: read < submit < admin). They come from --auth-token [ROLE:]TOKEN and
// --auth-basic USER:PASSWORD[:ROLE] (repeatable; without a role: admin) and from an
// --auth-file of [[token]] / [[user]] tables.
//
// Every request's route needs a role (the route table): without credentials or with wrong
// ones it is answered 401 (with `WWW-Authenticate: Basic` when basic users exist), with too
// small a role 403; the probes need none. Credentials are compared in constant time (every
// configured one, whatever matches) and never logged. Failed attempts are counted per client:
// after max_failures within lockout seconds the client gets 429 with Retry-After for lockout
// seconds, whatever it sends; other clients are not affected.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <httplib.h>

#include "common/status.h"
#include "store/login_throttle.h"
#include "store/routes.h"

namespace zb::store {

struct AuthOptions {
  std::vector<std::string> tokens;  // "[ROLE:]TOKEN"; empty strings are ignored
  std::vector<std::string> basic;   // "USER:PASSWORD[:ROLE]"; empty strings are ignored
  std::string file;                 // TOML: [[token]] token, role / [[user]] name, password, role
  bool disabled = false;            // --no-auth: serve a non-loopback address without any
  uint32_t max_failures = 10;
  uint32_t lockout_s = 60;
};

struct Credential {
  enum class Kind { kToken, kBasic };
  Kind kind;
  std::string name;    // the user, or "token N" (for the start-up log)
  std::string secret;  // the token, or "user:password"
  Role role;
};

// Parses and checks every credential (syntax, token length, duplicates, the file).
Result<std::vector<Credential>> load_credentials(const AuthOptions& options);

// Whether the store may serve the address it bound (`bound`, e.g. "0.0.0.0:8000", for the
// --http `requested`) this way: off loopback it needs credentials or --no-auth. Off loopback
// without TLS it logs a warning that credentials and data travel in clear text.
Status check_exposure(const std::string& requested, const std::string& bound, bool loopback,
                      const std::vector<Credential>& credentials, bool disabled, bool tls);

// The check itself, run first by the server's pre-routing handler (store/http_api.cc).
class Authenticator {
 public:
  Authenticator(std::vector<Credential> credentials, const RouteTable& routes, uint32_t max_failures,
                std::chrono::seconds lockout);
  bool enabled() const { return !credentials_.empty(); }
  // True when the request may proceed; otherwise `res` holds the 401, 403 or 429.
  bool admit(const httplib::Request& req, httplib::Response& res) const;
  // "off", or e.g. "2 tokens (read, admin), 1 user (admin)".
  std::string summary() const;

 private:
  struct Expected {
    std::string authorization;  // "Bearer <token>" or "Basic <base64>"
    std::string cookie;         // the token; empty for basic users
    Role role;
  };
  std::vector<Credential> credentials_;
  std::vector<Expected> expected_;
  bool basic_ = false;
  const RouteTable& routes_;
  std::unique_ptr<LoginThrottle> throttle_;
};

}  // namespace zb::store
