#include "store/webhooks.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <random>
#include <sstream>

#include <httplib.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "common/clock.h"
#include "common/log.h"
#include "store/net_address.h"

namespace zb::store {
namespace {

constexpr uint64_t kMaxRetryAfterMs = 3600 * 1000;
constexpr size_t kMaxErrorBytes = 300;
// Delivered and failed hooks stay listed this long, then they are deleted (checked every
// kPruneEveryMs), so that the hooks table does not grow without end.
constexpr uint64_t kKeepFinishedMs = 7ull * 24 * 3600 * 1000;
constexpr uint64_t kPruneEveryMs = 600 * 1000;

std::string key_of(HookKind kind, const Id& id) {
  std::string k(1, static_cast<char>(kind));
  k += id.bytes();
  return k;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string hex(const unsigned char* p, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    out += digits[p[i] >> 4];
    out += digits[p[i] & 15];
  }
  return out;
}

Result<Hook> unpack_hook(std::string_view bytes) {
  try {
    msgpack::unpack_limit limits(64, 64, 1u << 24, 64, 64, 8);
    auto h = msgpack::unpack(bytes.data(), bytes.size(), nullptr, nullptr, limits);
    return h.get().as<Hook>();
  } catch (const std::exception& e) {
    return Status(Code::kIo, std::string("corrupt webhook record: ") + e.what());
  }
}

std::string pack_hook(const Hook& h) {
  msgpack::sbuffer buf;
  msgpack::pack(buf, h);
  return std::string(buf.data(), buf.size());
}

// The secret: the named file's first line, or data/webhook_secret made on first start (32
// random bytes as hex, mode 0600).
Result<std::string> load_secret(const std::string& data_dir, const std::string& file) {
  const std::string path = file.empty() ? data_dir + "/webhook_secret" : file;
  std::ifstream in(path);
  if (in) {
    std::string line;
    std::getline(in, line);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (line.size() < 16) return Status(Code::kBadRequest, "webhook secret in " + path + " must be 16+ characters");
    return line;
  }
  if (!file.empty()) return Status(Code::kIo, "cannot read webhook_secret_file " + path);
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof raw) != 1) return Status(Code::kInternal, "no random bytes for the webhook secret");
  const std::string secret = hex(raw, sizeof raw);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Status(Code::kIo, "cannot create " + path + ": " + std::strerror(errno));
  const std::string line = secret + "\n";
  const bool written = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!written) return Status(Code::kIo, "cannot write " + path);
  spdlog::info("store webhook secret generated path={}", path);
  return secret;
}

// An IPv4/IPv6 address or CIDR; false when `text` is neither.
struct Cidr {
  int family = 0;
  unsigned char bytes[16] = {};
  int bits = 0;
  static std::optional<Cidr> parse(const std::string& text) {
    Cidr c;
    std::string addr = text;
    int bits = -1;
    if (auto slash = text.find('/'); slash != std::string::npos) {
      addr = text.substr(0, slash);
      const std::string b = text.substr(slash + 1);
      if (b.empty() || b.size() > 3 || !std::all_of(b.begin(), b.end(), ::isdigit)) return std::nullopt;
      bits = std::stoi(b);
    }
    if (::inet_pton(AF_INET, addr.c_str(), c.bytes) == 1) c.family = AF_INET;
    else if (::inet_pton(AF_INET6, addr.c_str(), c.bytes) == 1) c.family = AF_INET6;
    else return std::nullopt;
    const int max = c.family == AF_INET ? 32 : 128;
    c.bits = bits < 0 ? max : bits;
    if (c.bits > max) return std::nullopt;
    return c;
  }
  bool contains(const Cidr& a) const {
    if (a.family != family) return false;
    for (int i = 0; i < bits; ++i) {
      const int mask = 0x80 >> (i % 8);
      if ((bytes[i / 8] & mask) != (a.bytes[i / 8] & mask)) return false;
    }
    return true;
  }
};

// The addresses a host stands for: itself when an IP literal, else what it resolves to.
std::vector<Cidr> addresses_of(const std::string& host) {
  if (auto c = Cidr::parse(host)) return {*c};
  std::vector<Cidr> out;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0) return out;
  for (addrinfo* p = res; p; p = p->ai_next)
    if (auto c = Cidr::parse(address_text(p->ai_addr))) out.push_back(*c);
  ::freeaddrinfo(res);
  return out;
}

uint64_t retry_after_ms(const std::string& value) {
  if (value.empty() || value.size() > 10 || !std::all_of(value.begin(), value.end(), ::isdigit)) return 0;
  return std::min<uint64_t>(std::stoull(value) * 1000, kMaxRetryAfterMs);
}

}  // namespace

std::string WebhookUrl::origin() const { return scheme + "://" + (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port); }

Result<WebhookUrl> parse_webhook_url(std::string_view url) {
  auto bad = [](const std::string& why) { return Status(Code::kBadRequest, "webhook.url: " + why); };
  if (url.size() > kMaxWebhookUrlBytes) return bad("longer than " + std::to_string(kMaxWebhookUrlBytes) + " bytes");
  for (unsigned char c : url)
    if (c <= 0x20 || c >= 0x7f) return bad("must be an absolute http or https URL without spaces or control characters");
  WebhookUrl u;
  const auto sep = url.find("://");
  if (sep == std::string_view::npos) return bad("must be an absolute http or https URL");
  u.scheme = lower(std::string(url.substr(0, sep)));
  if (u.scheme != "http" && u.scheme != "https") return bad("scheme must be http or https, got \"" + u.scheme + "\"");
  std::string_view rest = url.substr(sep + 3);
  const auto path_at = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, path_at);
  u.path = path_at == std::string_view::npos ? "/" : std::string(rest.substr(path_at));
  if (auto hash = u.path.find('#'); hash != std::string::npos) u.path.erase(hash);
  if (u.path.empty() || u.path[0] != '/') u.path.insert(0, "/");
  if (authority.find('@') != std::string_view::npos) return bad("credentials in the URL are not accepted");
  std::string_view port_text;
  if (!authority.empty() && authority[0] == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return bad("unterminated IPv6 address");
    u.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return bad("bad host");
      port_text = after.substr(1);
    }
  } else {
    const auto colon = authority.rfind(':');
    u.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
  }
  if (u.host.empty()) return bad("has no host");
  u.host = lower(u.host);
  u.port = u.scheme == "https" ? 443 : 80;
  if (!port_text.empty() || (authority.size() && authority.back() == ':')) {
    if (port_text.empty() || port_text.size() > 5 || !std::all_of(port_text.begin(), port_text.end(), ::isdigit))
      return bad("bad port");
    u.port = std::stoi(std::string(port_text));
    if (u.port < 1 || u.port > 65535) return bad("port must be 1..65535");
  }
  return u;
}

Result<std::string> parse_webhook(const nlohmann::json& value) {
  if (!value.is_object()) return Status(Code::kBadRequest, "webhook: must be an object {\"url\": \"http(s)://...\"}");
  for (const auto& [k, v] : value.items())
    if (k != "url") return Status(Code::kBadRequest, "webhook." + k.substr(0, 64) + ": unknown field (only \"url\")");
  auto it = value.find("url");
  if (it == value.end()) return Status(Code::kBadRequest, "webhook.url: required");
  if (!it->is_string()) return Status(Code::kBadRequest, "webhook.url: must be a string");
  const std::string url = it->get<std::string>();
  if (auto u = parse_webhook_url(url); !u) return u.status();
  return url;
}

std::string webhook_signature(std::string_view secret, std::string_view timestamp, std::string_view body) {
  std::string message;
  message.reserve(timestamp.size() + 1 + body.size());
  message.append(timestamp).append(".").append(body);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), reinterpret_cast<const unsigned char*>(message.data()),
       message.size(), mac, &len);
  return "sha256=" + hex(mac, len);
}

std::string_view hook_state_name(HookState s) {
  switch (s) {
    case HookState::kWaiting: return "waiting";
    case HookState::kPending: return "pending";
    case HookState::kDelivered: return "delivered";
    case HookState::kFailed: return "failed";
  }
  return "unknown";
}

Result<std::unique_ptr<Webhooks>> Webhooks::open(const std::string& data_dir, WebhookOptions options,
                                                 Completion completion) {
  if (options.max_attempts < 1 || options.max_attempts > 100)
    return Status(Code::kBadRequest, "webhook_max_attempts must be 1..100, got " + std::to_string(options.max_attempts));
  if (!(options.backoff_s >= 0.01) || options.backoff_s > 86400)
    return Status(Code::kBadRequest, "webhook_backoff must be 0.01..86400 seconds, got " + std::to_string(options.backoff_s));
  if (!(options.timeout_s >= 0.1) || options.timeout_s > 600)
    return Status(Code::kBadRequest, "webhook_timeout must be 0.1..600 seconds, got " + std::to_string(options.timeout_s));
  // Entries as flags, the environment or the configuration give them: repeated, or one
  // comma-separated text; "" (the configuration's default) is none.
  std::vector<std::string> allow;
  for (const auto& entry : options.allow) {
    std::stringstream list(entry);
    std::string item;
    while (std::getline(list, item, ',')) {
      item.erase(0, item.find_first_not_of(' '));
      item.erase(item.find_last_not_of(' ') + 1);
      if (!item.empty()) allow.push_back(item);
    }
  }
  options.allow = std::move(allow);
  for (const auto& a : options.allow)
    if (a.find('/') != std::string::npos && !Cidr::parse(a))
      return Status(Code::kBadRequest, "webhook_allow: not a host, address or CIDR: \"" + a + "\"");
  ::mkdir(data_dir.c_str(), 0700);
  auto secret = load_secret(data_dir, options.secret_file);
  if (!secret) return secret.status();
  lmdb::EnvOptions env_options;
  env_options.map_bytes = 64ull << 20;
  env_options.max_map_bytes = 4ull << 30;
  auto env = lmdb::Env::open(data_dir + "/webhooks", env_options);
  if (!env) return env.status();
  std::unique_ptr<Webhooks> w(new Webhooks(std::move(env.value()), std::move(options), std::move(completion),
                                           std::move(secret.value())));
  auto txn = lmdb::Txn::begin(w->env_, false);
  if (!txn) return txn.status();
  for (auto [name, dbi] : {std::pair{"hooks", &w->hooks_}, {"open", &w->open_}}) {
    auto d = txn->open_db(name, MDB_CREATE);
    if (!d) return d.status();
    *dbi = *d;
  }
  auto open_count = txn->count(w->open_);
  if (Status s = txn->commit(); !s) return s;
  spdlog::info("store webhooks open={} max_attempts={} backoff_s={} timeout_s={} allow={}",
               open_count ? *open_count : 0, w->options_.max_attempts, w->options_.backoff_s, w->options_.timeout_s,
               w->options_.allow.empty() ? std::string("any") : std::to_string(w->options_.allow.size()));
  return w;
}

Status Webhooks::allowed(const std::string& url) const {
  auto u = parse_webhook_url(url);
  if (!u) return u.status();
  if (options_.allow.empty()) return Status::ok();
  std::vector<Cidr> addresses;
  bool resolved = false;
  for (const auto& entry : options_.allow) {
    if (lower(entry) == u->host) return Status::ok();
    if (auto net = Cidr::parse(entry)) {
      if (!resolved) {
        addresses = addresses_of(u->host);
        resolved = true;
      }
      // Every address the name has must be inside: a name with one address outside could be
      // called there.
      if (!addresses.empty() && std::all_of(addresses.begin(), addresses.end(),
                                            [&](const Cidr& a) { return net->contains(a); }))
        return Status::ok();
    }
  }
  return Status(Code::kBadRequest, "webhook.url: host " + u->host + " is not in the store's webhook_allow list");
}

Status Webhooks::put(const Hook& h, bool open) {
  auto txn = lmdb::Txn::begin(env_, false);
  if (!txn) return txn.status();
  const std::string key = key_of(h.kind, h.id);
  if (Status s = txn->put(hooks_, key, pack_hook(h)); !s) return s;
  if (open) {
    if (Status s = txn->put(open_, key, ""); !s) return s;
  } else if (Status s = txn->del(open_, key); !s && s.code() != Code::kNotFound) {
    return s;
  }
  return txn->commit();
}

Status Webhooks::add(HookKind kind, const Id& id, const std::string& url) {
  std::lock_guard lock(mu_);
  {
    auto txn = lmdb::Txn::begin(env_, true);
    if (!txn) return txn.status();
    auto existing = txn->get(hooks_, key_of(kind, id));
    if (!existing) return existing.status();
    if (existing->has_value()) return Status::ok();  // a retried submission: the first hook stands
  }
  Hook h;
  h.kind = kind;
  h.id = id;
  h.url = url;
  h.created_ms = now_unix_ms();
  if (Status s = put(h, true); !s) return s;
  wake_ = true;
  cv_.notify_one();
  return Status::ok();
}

std::optional<Hook> Webhooks::find(HookKind kind, const Id& id) {
  auto txn = lmdb::Txn::begin(env_, true);
  if (!txn) return std::nullopt;
  auto v = txn->get(hooks_, key_of(kind, id));
  if (!v || !v->has_value()) return std::nullopt;
  auto h = unpack_hook(**v);
  if (!h) return std::nullopt;
  return std::move(h.value());
}

Result<std::vector<Hook>> Webhooks::list(size_t limit) {
  constexpr size_t kMaxScan = 100000;
  auto txn = lmdb::Txn::begin(env_, true);
  if (!txn) return txn.status();
  auto c = lmdb::Cursor::open(*txn, hooks_);
  if (!c) return c.status();
  std::vector<Hook> out;
  size_t scanned = 0;
  for (bool more = c->first(); more && scanned < kMaxScan; more = c->next(), ++scanned) {
    auto h = unpack_hook(c->value());
    if (!h) continue;
    h->body.clear();
    out.push_back(std::move(h.value()));
    // Keep the newest `limit`: trim whenever the list doubles.
    if (out.size() >= 2 * limit + 64) {
      std::nth_element(out.begin(), out.begin() + limit, out.end(),
                       [](const Hook& a, const Hook& b) { return a.created_ms > b.created_ms; });
      out.resize(limit);
    }
  }
  std::sort(out.begin(), out.end(), [](const Hook& a, const Hook& b) { return a.created_ms > b.created_ms; });
  if (out.size() > limit) out.resize(limit);
  return out;
}

void Webhooks::attempt(Hook& h) {
  auto url = parse_webhook_url(h.url);
  Status allow = url ? allowed(h.url) : url.status();
  int status = 0;
  std::string error;
  uint64_t retry_after = 0;
  if (!allow) {
    error = allow.message();
    h.attempts = options_.max_attempts - 1;  // a refused host will not become allowed by waiting
  } else {
    httplib::Client client(url->origin());
    const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(options_.timeout_s * 1000));
    client.set_connection_timeout(timeout);
    client.set_read_timeout(timeout);
    client.set_write_timeout(timeout);
    client.set_follow_location(false);
    client.set_keep_alive(false);
    if (url->scheme == "https") client.enable_server_certificate_verification(true);
    const std::string timestamp = std::to_string(now_unix_ms() / 1000);
    const std::string event = h.kind == HookKind::kTask ? "task.completed" : "group.completed";
    httplib::Headers headers{{"X-Zbatch-Event", event},
                             {"X-Zbatch-Delivery", h.delivery},
                             {"X-Zbatch-Timestamp", timestamp},
                             {"X-Zbatch-Signature", webhook_signature(secret_, timestamp, h.body)},
                             {"User-Agent", "zbatch-webhook/1"}};
    auto res = client.Post(url->path, headers, h.body, "application/json");
    if (!res) {
      error = "no answer: " + httplib::to_string(res.error());
    } else {
      status = res->status;
      if (status >= 200 && status < 300) {
        h.state = HookState::kDelivered;
        h.attempts += 1;
        h.last_status = status;
        h.last_error.clear();
        h.finished_ms = now_unix_ms();
        totals_.delivered.fetch_add(1);
        spdlog::info("store webhook delivered delivery={} url_host={} attempts={}", h.delivery, url->host, h.attempts);
        return;
      }
      error = "HTTP " + std::to_string(status);
      retry_after = retry_after_ms(res->get_header_value("Retry-After"));
    }
  }
  if (error.size() > kMaxErrorBytes) error.resize(kMaxErrorBytes);
  h.attempts += 1;
  h.last_status = status;
  h.last_error = error;
  if (h.attempts >= options_.max_attempts) {
    h.state = HookState::kFailed;
    h.finished_ms = now_unix_ms();
    totals_.failed.fetch_add(1);
    spdlog::warn("store webhook failed delivery={} attempts={} reason=\"{}\"", h.delivery, h.attempts, error);
    return;
  }
  thread_local std::mt19937_64 rng{std::random_device{}()};
  const double base_ms = options_.backoff_s * 1000 * std::pow(2.0, h.attempts - 1);
  const double jittered = base_ms * std::uniform_real_distribution<double>(0.75, 1.25)(rng);
  const uint64_t delay = std::max<uint64_t>(static_cast<uint64_t>(std::min(jittered, 86400e3)), retry_after);
  h.next_ms = now_unix_ms() + delay;
  totals_.retried.fetch_add(1);
  spdlog::info("store webhook retry delivery={} attempts={} in_ms={} reason=\"{}\"", h.delivery, h.attempts, delay, error);
}

void Webhooks::prune(uint64_t before_ms) {
  std::lock_guard lock(mu_);
  auto txn = lmdb::Txn::begin(env_, false);
  if (!txn) return;
  auto c = lmdb::Cursor::open(*txn, hooks_);
  if (!c) return;
  size_t deleted = 0;
  for (bool more = c->first(); more; more = c->next()) {
    auto h = unpack_hook(c->value());
    if (h && (h->state == HookState::kDelivered || h->state == HookState::kFailed) && h->finished_ms < before_ms) {
      if (!c->del()) return;
      ++deleted;
    }
  }
  if (Status s = txn->commit(); !s) {
    spdlog::error("store webhook prune failed reason=\"{}\"", s.message());
    return;
  }
  if (deleted) spdlog::info("store webhooks pruned deleted={}", deleted);
}

void Webhooks::run(const std::atomic<bool>& stopping) {
  uint64_t last_prune_ms = 0;
  while (!stopping.load()) {
    if (now_steady_ms() - last_prune_ms >= kPruneEveryMs) {
      last_prune_ms = now_steady_ms();
      const uint64_t now = now_unix_ms();
      if (now > kKeepFinishedMs) prune(now - kKeepFinishedMs);
    }
    {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(200), [&] { return wake_; });
      wake_ = false;
    }
    // The open hooks, read in one short transaction; the work is done outside it.
    std::vector<Hook> work;
    {
      auto txn = lmdb::Txn::begin(env_, true);
      if (!txn) continue;
      auto c = lmdb::Cursor::open(*txn, open_);
      if (!c) continue;
      for (bool more = c->first(); more; more = c->next()) {
        auto v = txn->get(hooks_, c->key());
        if (!v || !v->has_value()) continue;
        if (auto h = unpack_hook(**v)) work.push_back(std::move(h.value()));
      }
    }
    for (Hook& h : work) {
      if (stopping.load()) break;
      if (h.state == HookState::kWaiting) {
        auto done = completion_(h.kind, h.id);
        if (!done) continue;
        h.state = HookState::kPending;
        h.delivery = Id::random().to_string();
        h.body = std::move(*done);
        h.next_ms = 0;
        // Durable before the first attempt: the delivery id and body stay the same for every
        // attempt, across a restart too.
        std::lock_guard lock(mu_);
        if (Status s = put(h, true); !s) {
          spdlog::error("store webhook record failed reason=\"{}\"", s.message());
          continue;
        }
      }
      if (h.state != HookState::kPending || h.next_ms > now_unix_ms()) continue;
      attempt(h);
      std::lock_guard lock(mu_);
      if (Status s = put(h, h.state == HookState::kPending); !s)
        spdlog::error("store webhook record failed delivery={} reason=\"{}\"", h.delivery, s.message());
    }
  }
}

}  // namespace zb::store
