// TLS for the HTTP server (internal to store/), on OpenSSL: the server's certificate and key,
// and one session per connection over a non-blocking socket. Every call returns at once:
// kWantRead / kWantWrite say which readiness of the socket to wait for before calling again.
//
// A TlsSession is used by one thread at a time (the connection's owner); the TlsContext is
// shared and thread-safe.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace zb::store {

class TlsContext {
 public:
  // PEM files: the certificate (chain) and its private key. TLS 1.2 and later.
  static Result<std::unique_ptr<TlsContext>> load(const std::string& cert_file, const std::string& key_file);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;
  SSL_CTX* get() const { return ctx_; }

 private:
  explicit TlsContext(SSL_CTX* ctx) : ctx_(ctx) {}
  SSL_CTX* ctx_;
};

class TlsSession {
 public:
  enum class Io { kOk, kWantRead, kWantWrite, kClosed, kFailed };

  TlsSession(const TlsContext& context, int fd);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  Io handshake();
  // kOk with *got > 0; kClosed when the peer closed.
  Io read(char* buf, size_t size, size_t* got);
  // kOk with *put > 0 (possibly fewer than size).
  Io write(const char* buf, size_t size, size_t* put);
  // A close_notify, best effort (the socket is closed right after).
  void close_notify();
  // Why the last call failed (OpenSSL's reason), for the logs.
  const std::string& error() const { return error_; }

 private:
  Io outcome(int rc);
  SSL* ssl_ = nullptr;
  std::string error_;
};

}  // namespace zb::store
