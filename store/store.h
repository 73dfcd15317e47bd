// The status store: subscribes to the router's events, keeps task, group, worker and queue
// status in its own LMDB, and serves the HTTP API (the seed's /batch/... endpoints, the generic
// /api/v1/..., /metrics, SSE) and the dashboard.
//
// Contracts:
// - Clone pattern: on start, after a restart and on any sequence gap it replays the missed
//   events from the router (Replay) before applying live ones, and confirms what it applied
//   (Confirm) so the router may trim its log. A store killed at any point loses no status.
// - HTTP submissions are forwarded to the router and answered only after the router's
//   durable acknowledgement; a batch is accepted or refused as a whole.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "common/curve.h"
#include "common/status.h"

namespace zb {

struct StoreOptions {
  std::string router = "tcp://127.0.0.1:5555";  // the router's frontend
  std::string events = "tcp://127.0.0.1:5557";  // the router's PUB
  std::string data_dir = "zbatch-data/store";
  std::string http = "127.0.0.1:8000";
  size_t max_body_bytes = 32u << 20;  // larger request bodies are refused with 413
  size_t max_batch_tasks = 100000;    // larger batches are refused with 413
  uint32_t router_timeout_ms = 5000;  // a router silent this long makes a request 503
  // Authentication of the dashboard and the API (not /healthz, /readyz), each credential with
  // a role (read, submit, admin; admin when not given): HTTP basic users
  // ("user:password[:role]"), bearer tokens ("[role:]token", header or the dashboard's cookie),
  // and a TOML file of both. Off by default on a loopback address; binding elsewhere needs one
  // of them, or auth_disabled. Failed attempts: auth_max_failures within auth_lockout_s lock
  // the client out for auth_lockout_s (429).
  std::vector<std::string> auth_basic;
  std::vector<std::string> auth_token;
  std::string auth_file;
  bool auth_disabled = false;
  // CURVE towards the router (common/curve.h): the store's key has the role "store" in the
  // router's allow-list. A router off loopback needs it, unless insecure_plaintext.
  curve::ClientKeys curve;
  bool insecure_plaintext = false;
  uint32_t auth_max_failures = 10;
  uint32_t auth_lockout_s = 60;
  // HTTPS: PEM certificate (chain) and private key; both or neither.
  std::string tls_cert;
  std::string tls_key;
  // HTTP under load and abuse (docs/SECURITY.md).
  uint32_t http_threads = 32;                // request threads; event streams have their own
  uint32_t max_streams = 256;                // event streams at once (503 beyond)
  uint64_t stream_retention = 200000;        // events kept on disk for /api/v1/events resumes
  uint32_t max_connections = 0;              // 0: the open-file limit less a reserve
  uint32_t max_connections_per_client = 1024;  // per IPv4 address / IPv6 /64
  double request_timeout_s = 30;             // a request whole (head and body) from its first byte; an answer delivered
  double idle_timeout_s = 60;                // a connection silent before or between requests
  // Completion webhooks (docs/WEBHOOKS.md): the HMAC secret's file (empty: data/webhook_secret,
  // generated), attempts per delivery, the first retry's delay, the timeout of each attempt,
  // and the hosts, addresses or CIDRs the store may call (empty: any).
  std::string webhook_secret_file;
  uint32_t webhook_max_attempts = 8;
  double webhook_backoff_s = 30;
  double webhook_timeout_s = 10;
  std::vector<std::string> webhook_allow;
};

class Store {
 public:
  static Result<std::unique_ptr<Store>> create(StoreOptions options,
                                               zmq::context_t* context = nullptr);
  ~Store();
  // Serves until stop().
  Status run();
  // Thread-safe and async-signal-safe.
  void stop();

 private:
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace zb
