// Completion webhooks (internal to store/): a task or group submitted with {"webhook": {"url"}}
// is POSTed to that URL once it completes (docs/WEBHOOKS.md).
//
// Layout of the store's webhook LMDB (data/webhooks, apart from the status DB, whose reset
// on a new router log must not forget deliveries):
//   hooks  kind (0 task, 1 group) + id → msgpack Hook: the URL and the delivery's state
//   open   the same key → empty: hooks not yet delivered or given up, the delivery thread's work
// Delivered and failed hooks are deleted a week after they finished.
//
// Contracts:
// - add() commits the hook before it returns; the HTTP answer to the submission comes after it,
//   so an acknowledged answer means the hook is durable. A submission retried with the same
//   idempotency key records its hook again (the first one wins).
// - The delivery thread looks at open hooks, never at the event follower: a hook's target is
//   read from the status DB through `Completion`; once complete, the body is built once and
//   kept, so every attempt sends the same bytes under the same X-Zbatch-Delivery id.
// - 2xx is delivered; anything else (or no answer within timeout_s) is retried after
//   backoff_s * 2^(attempt-1) with ±25 % jitter, or after Retry-After if longer (capped at an
//   hour), until max_attempts; then the hook is failed. All of it survives a restart.
// - Thread-safe: HTTP threads call add() and list() while the delivery thread runs.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <msgpack.hpp>
#include <nlohmann/json.hpp>

#include "common/id.h"
#include "common/lmdb.h"
#include "common/protocol.h"
#include "common/status.h"

namespace zb::store {

inline constexpr size_t kMaxWebhookUrlBytes = 2048;

struct WebhookOptions {
  std::string secret_file;  // empty: data/webhook_secret, generated on first start
  uint32_t max_attempts = 8;
  double backoff_s = 30;    // the first retry's delay; 8 attempts span about an hour
  double timeout_s = 10;    // connect, and each read or write of a delivery
  // Hosts the store may call: names (exact, case-insensitive), IP addresses, CIDRs (matched
  // against IP-literal hosts and the addresses a name resolves to). Empty: any host.
  std::vector<std::string> allow;
};

enum class HookKind : uint8_t { kTask = 0, kGroup = 1 };
enum class HookState : uint8_t { kWaiting = 0, kPending = 1, kDelivered = 2, kFailed = 3 };

struct Hook {
  HookKind kind = HookKind::kTask;
  Id id;
  std::string url;
  HookState state = HookState::kWaiting;
  uint32_t attempts = 0;
  uint64_t created_ms = 0;
  uint64_t next_ms = 0;       // the next attempt (kPending)
  uint64_t finished_ms = 0;   // delivered or given up
  std::string delivery;       // X-Zbatch-Delivery, fixed when the target completes
  std::string body;           // the JSON sent, fixed at the same time
  std::string last_error;
  int32_t last_status = 0;    // the receiver's last HTTP status; 0: none
  MSGPACK_DEFINE(kind, id, url, state, attempts, created_ms, next_ms, finished_ms, delivery, body, last_error,
                 last_status);
};

// A hook's URL taken apart; only http and https.
struct WebhookUrl {
  std::string scheme, host, path;  // path includes the query; "/" when empty
  int port = 0;
  std::string origin() const;      // scheme://host:port, as cpp-httplib's Client takes it
};
Result<WebhookUrl> parse_webhook_url(std::string_view url);
// The submission's "webhook" member: {"url": "http(s)://..."} and nothing else.
Result<std::string> parse_webhook(const nlohmann::json& value);
// "sha256=" + hex HMAC-SHA256 of "<timestamp>.<body>".
std::string webhook_signature(std::string_view secret, std::string_view timestamp, std::string_view body);
std::string_view hook_state_name(HookState s);

class Webhooks {
 public:
  // The body to send for a complete target, or nullopt while it is not complete (or unknown).
  using Completion = std::function<std::optional<std::string>(HookKind, const Id&)>;

  static Result<std::unique_ptr<Webhooks>> open(const std::string& data_dir, WebhookOptions options,
                                                Completion completion);
  // Checks the URL against the allow-list (kBadRequest when refused).
  Status allowed(const std::string& url) const;
  Status add(HookKind kind, const Id& id, const std::string& url);
  // The newest hooks first, at most `limit` (without their bodies).
  Result<std::vector<Hook>> list(size_t limit);
  std::optional<Hook> find(HookKind kind, const Id& id);
  // Runs deliveries until `stopping` is set.
  void run(const std::atomic<bool>& stopping);

  struct Totals {
    std::atomic<uint64_t> delivered{0}, retried{0}, failed{0};
  };
  const Totals& totals() const { return totals_; }

 private:
  Webhooks(lmdb::Env env, WebhookOptions options, Completion completion, std::string secret)
      : env_(std::move(env)), options_(std::move(options)), completion_(std::move(completion)),
        secret_(std::move(secret)) {}
  Status put(const Hook& h, bool open);
  void attempt(Hook& h);
  // Deletes delivered and failed hooks that finished before `before_ms`.
  void prune(uint64_t before_ms);

  lmdb::Env env_;
  lmdb::Dbi hooks_ = 0, open_ = 0;
  WebhookOptions options_;
  Completion completion_;
  std::string secret_;
  std::mutex mu_;  // serialises write transactions and guards wake_
  std::condition_variable cv_;
  bool wake_ = false;
  Totals totals_;
};

}  // namespace zb::store

MSGPACK_ADD_ENUM(zb::store::HookKind);
MSGPACK_ADD_ENUM(zb::store::HookState);
