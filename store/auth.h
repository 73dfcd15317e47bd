// Authentication of the HTTP API and the dashboard (internal to store/).
//
// A request passes with `Authorization: Basic <user:password>` matching auth_basic, or
// `Authorization: Bearer <token>` / the cookie `zbatch_token=<token>` matching auth_token.
// /healthz and /readyz stay open (probes). Failures answer 401 with a JSON error and
// `WWW-Authenticate: Basic realm="zbatch"` when basic auth is on. Comparisons take the same
// time whatever matches, and credentials are never logged.
#pragma once

#include <string>

#include <httplib.h>

#include "common/status.h"

namespace zb::store {

struct AuthOptions {
  std::string basic;  // "user:password"; empty = off
  std::string token;  // empty = off
  bool enabled() const { return !basic.empty() || !token.empty(); }
};

// Refuses a configuration that would serve a non-loopback address without authentication.
Status check_auth(const std::string& host, const AuthOptions& auth, bool disabled);

// The check itself, run first by the server's pre-routing handler (store/http_api.cc).
class Authenticator {
 public:
  explicit Authenticator(const AuthOptions& auth);
  // True when the request may proceed; otherwise `res` holds the 401.
  bool admit(const httplib::Request& req, httplib::Response& res) const;

 private:
  std::string basic_;   // "Basic <base64>"
  std::string bearer_;  // "Bearer <token>"
  std::string token_;
};

}  // namespace zb::store
