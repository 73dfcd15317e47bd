// The router's ZAP handler (ZeroMQ RFC 27): decides which CURVE keys may connect to which
// socket, and gives each admitted connection its role as User-Id (internal to router/).
//
// Allow-list file: one key per line, `ROLE KEY [NAME]`, where ROLE is worker, read, submit,
// admin or store, KEY is 40 characters of Z85 or the path of a certificate file (relative to
// the list's folder), NAME an optional label for the logs; a line starting with `#` is a
// comment (only whole lines: `#` is a Z85 character). Domains:
// "backend" admits worker keys only; "frontend" and "events" every other role. Anything else —
// an unknown key, a wrong role for the socket, another mechanism — is refused and logged with
// the key (at most a few lines a second). The file is read again when it changes (checked
// once a second): new connections see the new list; connections already made keep theirs.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include <zmq.hpp>

#include "common/curve.h"
#include "common/status.h"

namespace zb::router {

struct AllowedKey {
  curve::Role role;
  std::string name;
};
// Parses an allow-list text; `base_dir` resolves certificate paths. Errors name the line.
Result<std::map<std::string, AllowedKey>> parse_allow_list(const std::string& text, const std::string& base_dir);

class ZapHandler {
 public:
  // Binds inproc://zeromq.zap.01 in `context` (one handler per context) and reads the list.
  static Result<std::unique_ptr<ZapHandler>> start(zmq::context_t& context, std::string allow_file);
  ~ZapHandler();  // stops the thread

  uint64_t refused() const { return refused_.load(std::memory_order_relaxed); }

 private:
  ZapHandler(zmq::context_t& context, std::string allow_file);
  void run();
  bool reload();  // true when the list changed
  std::string answer(const std::string& domain, const std::string& mechanism, const std::string& key,
                     const std::string& address, std::string* user_id);

  zmq::socket_t socket_;
  std::string allow_file_;
  std::map<std::string, AllowedKey> allowed_;  // Z85 public key → role
  int64_t mtime_ns_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> refused_{0};
  uint64_t log_window_ms_ = 0;
  int logged_in_window_ = 0;
  std::thread thread_;
};

}  // namespace zb::router
