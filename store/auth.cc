#include "common/text.h"
#include "store/auth.h"

#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <set>

#include <nlohmann/json.hpp>
#include <toml++/toml.h>

#include "common/log.h"
#include "store/net_address.h"

namespace zb::store {
namespace {

constexpr size_t kMinTokenBytes = 16;

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

// A path as it may appear in a log line: bounded, without quotes or control characters.
std::string loggable(const std::string& path) {
  std::string out;
  for (char c : path.substr(0, 120)) out += (static_cast<unsigned char>(c) < 0x20 || c == '"' || c == 0x7f) ? '?' : c;
  return path.size() > 120 ? out + "..." : out;
}

void send_error(httplib::Response& res, int status, const char* code, const std::string& message) {
  res.status = status;
  res.set_content(json_text(nlohmann::json{{"error", {{"code", code}, {"message", message}}}}), "application/json");
}

Status token_credential(const std::string& text, const std::string& where, Credential& out) {
  std::string token = text;
  out.role = Role::kAdmin;
  if (const auto colon = text.find(':'); colon != std::string::npos) {
    if (auto role = parse_role(std::string_view(text).substr(0, colon))) {
      out.role = *role;
      token = text.substr(colon + 1);
    }
  }
  if (token.size() < kMinTokenBytes)
    return Status(Code::kBadRequest, where + " must be at least 16 characters (" + where + " [ROLE:]TOKEN)");
  if (std::any_of(token.begin(), token.end(), [](char c) { return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f; }))
    return Status(Code::kBadRequest, where + " must be printable characters without spaces");
  out.kind = Credential::Kind::kToken;
  out.secret = token;
  return Status::ok();
}

Status basic_credential(const std::string& text, const std::string& where, Credential& out) {
  const auto colon = text.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size())
    return Status(Code::kBadRequest, where + " must be USER:PASSWORD[:ROLE]");
  std::string password = text.substr(colon + 1);
  out.role = Role::kAdmin;
  if (const auto last = password.rfind(':'); last != std::string::npos && last > 0) {
    if (auto role = parse_role(std::string_view(password).substr(last + 1))) {
      out.role = *role;
      password = password.substr(0, last);
    }
  }
  out.kind = Credential::Kind::kBasic;
  out.name = text.substr(0, colon);
  out.secret = out.name + ":" + password;
  return Status::ok();
}

// The --auth-file: [[token]] token = "...", role = "read" / [[user]] name, password, role.
Status file_credentials(const std::string& path, std::vector<Credential>& out) {
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return Status(Code::kBadRequest, "--auth-file " + path + ": " + std::string(e.description()) + " at line " +
                                         std::to_string(e.source().begin.line));
  }
  struct stat st{};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077))
    spdlog::warn("store auth file path={} mode={:o}: others can read these credentials; chmod 600 it", path,
                 st.st_mode & 0777);
  auto bad = [&](const std::string& where, const std::string& what) {
    return Status(Code::kBadRequest, "--auth-file " + path + ": " + where + " " + what);
  };
  for (const auto& [key, node] : root) {
    const std::string table(key.str());
    if (table != "token" && table != "user")
      return bad("[" + table + "]", "is not known (the file holds [[token]] and [[user]] tables)");
    const toml::array* entries = node.as_array();
    if (!entries) return bad(table, "must be an array of tables ([[" + table + "]])");
    size_t n = 0;
    for (const auto& entry : *entries) {
      const std::string where = "[[" + table + "]] " + std::to_string(++n);
      const toml::table* t = entry.as_table();
      if (!t) return bad(where, "must be a table");
      std::map<std::string, std::string> fields;
      for (const auto& [k, v] : *t) {
        const std::string name(k.str());
        const std::set<std::string> allowed =
            table == "token" ? std::set<std::string>{"token", "role"} : std::set<std::string>{"name", "password", "role"};
        if (!allowed.count(name)) return bad(where, name + " is not a known key");
        auto s = v.value<std::string>();
        if (!s) return bad(where, name + " must be a string");
        fields[name] = *s;
      }
      Credential c;
      std::string role = fields.count("role") ? fields["role"] : "admin";
      if (!parse_role(role)) return bad(where, "role must be read, submit or admin, got '" + role + "'");
      if (table == "token") {
        if (!fields.count("token")) return bad(where, "needs token");
        if (Status s = token_credential(role + ":" + fields["token"], where + " token", c); !s) return s;
      } else {
        if (!fields.count("name") || fields["name"].empty() || fields["name"].find(':') != std::string::npos)
          return bad(where, "needs a name without ':'");
        if (!fields.count("password") || fields["password"].empty()) return bad(where, "needs a password");
        c.kind = Credential::Kind::kBasic;
        c.name = fields["name"];
        c.secret = c.name + ":" + fields["password"];
        c.role = *parse_role(role);
      }
      out.push_back(std::move(c));
    }
  }
  return Status::ok();
}

}  // namespace

Result<std::vector<Credential>> load_credentials(const AuthOptions& options) {
  std::vector<Credential> out;
  for (const auto& t : options.tokens) {
    if (t.empty()) continue;
    Credential c;
    if (Status s = token_credential(t, "--auth-token", c); !s) return s;
    out.push_back(std::move(c));
  }
  for (const auto& b : options.basic) {
    if (b.empty()) continue;
    Credential c;
    if (Status s = basic_credential(b, "--auth-basic", c); !s) return s;
    out.push_back(std::move(c));
  }
  if (!options.file.empty())
    if (Status s = file_credentials(options.file, out); !s) return s;
  std::set<std::string> tokens, users;
  size_t n = 0;
  for (auto& c : out) {
    if (c.kind == Credential::Kind::kToken) {
      c.name = "token " + std::to_string(++n);
      if (!tokens.insert(c.secret).second) return Status(Code::kBadRequest, "the same token is given twice");
    } else if (!users.insert(c.name).second) {
      return Status(Code::kBadRequest, "user '" + c.name + "' is given twice");
    }
  }
  if (options.max_failures < 1) return Status(Code::kBadRequest, "--auth-max-failures must be >= 1");
  if (options.lockout_s < 1) return Status(Code::kBadRequest, "--auth-lockout must be >= 1 second");
  return out;
}

Status check_exposure(const std::string& requested, const std::string& bound, bool loopback,
                      const std::vector<Credential>& credentials, bool disabled, bool tls) {
  if (loopback) return Status::ok();
  if (credentials.empty() && !disabled)
    return Status(Code::kBadRequest,
                  "--http " + requested + " binds " + bound +
                      ", which is not a loopback address: set --auth-basic USER:PASSWORD, --auth-token TOKEN or "
                      "--auth-file FILE, or --no-auth to serve it without authentication");
  if (credentials.empty())
    spdlog::warn("store http serves {} without authentication (--no-auth): anyone who reaches it can submit, "
                 "purge and shut workers down",
                 bound);
  else if (!tls)
    spdlog::warn("store http serves {} without TLS: credentials and data travel in clear text; set --tls-cert and "
                 "--tls-key",
                 bound);
  return Status::ok();
}

Authenticator::Authenticator(std::vector<Credential> credentials, const RouteTable& routes, uint32_t max_failures,
                             std::chrono::seconds lockout)
    : credentials_(std::move(credentials)),
      routes_(routes),
      throttle_(std::make_unique<LoginThrottle>(max_failures, lockout)) {
  for (const auto& c : credentials_) {
    if (c.kind == Credential::Kind::kToken) {
      expected_.push_back({"Bearer " + c.secret, c.secret, c.role});
    } else {
      expected_.push_back({"Basic " + base64(c.secret), "", c.role});
      basic_ = true;
    }
  }
}

std::string Authenticator::summary() const {
  if (credentials_.empty()) return "off";
  std::string tokens, users;
  size_t nt = 0, nu = 0;
  for (const auto& c : credentials_) {
    std::string& list = c.kind == Credential::Kind::kToken ? tokens : users;
    ++(c.kind == Credential::Kind::kToken ? nt : nu);
    list += (list.empty() ? "" : ", ") + std::string(role_name(c.role));
  }
  std::string out;
  if (nt) out += std::to_string(nt) + (nt == 1 ? " token (" : " tokens (") + tokens + ")";
  if (nu) out += (out.empty() ? "" : ", ") + std::to_string(nu) + (nu == 1 ? " user (" : " users (") + users + ")";
  return out;
}

bool Authenticator::admit(const httplib::Request& req, httplib::Response& res) const {
  if (expected_.empty()) return true;
  const Role needed = routes_.role_for(req.method, req.path);
  if (needed == Role::kNone) return true;
  const std::string client = client_key(req.remote_addr);
  const auto now = LoginThrottle::Clock::now();
  if (const uint32_t wait = throttle_->locked_for(client, now)) {
    res.set_header("Retry-After", std::to_string(wait));
    send_error(res, 429, "too_many_requests",
               "too many failed authentication attempts from this address; retry in " + std::to_string(wait) + " s");
    return false;
  }
  const std::string given = req.get_header_value("Authorization");
  const std::string token = cookie(req, "zbatch_token");
  // Every credential is compared, whichever matches.
  bool matched = false;
  Role role = Role::kNone;
  for (const auto& e : expected_) {
    const bool m = same(given, e.authorization) | same(token, e.cookie);
    matched |= m;
    role = m && e.role > role ? e.role : role;
  }
  if (!matched) {
    if (basic_) res.set_header("WWW-Authenticate", "Basic realm=\"zbatch\", charset=\"UTF-8\"");
    send_error(res, 401, "unauthorized", "authentication required");
    if (!given.empty() || !token.empty()) {
      const char* scheme = given.rfind("Bearer ", 0) == 0 ? "bearer"
                           : given.rfind("Basic ", 0) == 0 ? "basic"
                           : given.empty()                 ? "cookie"
                                                           : "other";
      const auto f = throttle_->fail(client, now);
      spdlog::warn("store http auth failed client={} method={} path=\"{}\" scheme={} failures={}/{}", req.remote_addr,
                   req.method, loggable(req.path), scheme, f.failures, throttle_->max_failures());
      if (f.locked)
        spdlog::warn("store http auth locked client={} failures={} for_s={}", client, f.failures,
                     throttle_->locked_for(client, now));
    }
    return false;
  }
  if (role < needed) {
    spdlog::info("store http forbidden client={} method={} path=\"{}\" role={} needs={}", req.remote_addr, req.method,
                 loggable(req.path), role_name(role), role_name(needed));
    send_error(res, 403, "forbidden",
               req.method + " " + loggable(req.path) + " needs the " + role_name(needed) +
                   " role; this credential has the " + role_name(role) + " role");
    return false;
  }
  return true;
}

}  // namespace zb::store
