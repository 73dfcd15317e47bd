#include "common/text.h"
#include "store/auth.h"

#include <nlohmann/json.hpp>

namespace zb::store {
namespace {

// Equal strings, in a time that depends only on the expected one's length.
bool same(const std::string& given, const std::string& expected) {
  if (expected.empty()) return false;
  unsigned char diff = given.size() != expected.size() ? 1 : 0;
  for (size_t i = 0; i < expected.size(); ++i)
    diff |= static_cast<unsigned char>(expected[i] ^ (i < given.size() ? given[i] : 0));
  return diff == 0;
}

std::string base64(const std::string& in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += {k[v >> 18], k[(v >> 12) & 63], k[(v >> 6) & 63], k[v & 63]};
  }
  if (i + 1 == in.size()) {
    const uint32_t v = uint8_t(in[i]) << 16;
    out += {k[v >> 18], k[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += {k[v >> 18], k[(v >> 12) & 63], k[(v >> 6) & 63], '='};
  }
  return out;
}

std::string cookie(const httplib::Request& req, const std::string& name) {
  const std::string all = req.get_header_value("Cookie");
  size_t pos = 0;
  while (pos < all.size()) {
    size_t end = all.find(';', pos);
    if (end == std::string::npos) end = all.size();
    std::string part = all.substr(pos, end - pos);
    while (!part.empty() && part.front() == ' ') part.erase(0, 1);
    if (part.rfind(name + "=", 0) == 0) return part.substr(name.size() + 1);
    pos = end + 1;
  }
  return {};
}

bool loopback(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1" || host == "[::1]" || host.rfind("127.", 0) == 0;
}

}  // namespace

Status check_auth(const std::string& host, const AuthOptions& auth, bool disabled) {
  if (!auth.basic.empty() && auth.basic.find(':') == std::string::npos)
    return Status(Code::kBadRequest, "--auth-basic must be USER:PASSWORD");
  if (!auth.token.empty() && auth.token.size() < 16)
    return Status(Code::kBadRequest, "--auth-token must be at least 16 characters");
  if (!auth.enabled() && !disabled && !loopback(host))
    return Status(Code::kBadRequest, "--http " + host + " is not a loopback address: set --auth-basic USER:PASSWORD or "
                                     "--auth-token TOKEN, or --no-auth to serve it without authentication");
  return Status::ok();
}

Authenticator::Authenticator(const AuthOptions& auth)
    : basic_(auth.basic.empty() ? std::string() : "Basic " + base64(auth.basic)),
      bearer_(auth.token.empty() ? std::string() : "Bearer " + auth.token),
      token_(auth.token) {}

bool Authenticator::admit(const httplib::Request& req, httplib::Response& res) const {
  if (basic_.empty() && bearer_.empty()) return true;
  if (req.path == "/healthz" || req.path == "/readyz") return true;
  const std::string given = req.get_header_value("Authorization");
  bool ok = false;
  if (same(given, basic_)) ok = true;
  if (same(given, bearer_)) ok = true;
  if (same(cookie(req, "zbatch_token"), token_)) ok = true;
  if (ok) return true;
  if (!basic_.empty()) res.set_header("WWW-Authenticate", "Basic realm=\"zbatch\", charset=\"UTF-8\"");
  res.status = 401;
  res.set_content(json_text(nlohmann::json{{"error", {{"code", "unauthorized"}, {"message", "authentication required"}}}}),
                  "application/json");
  return false;
}

}  // namespace zb::store
