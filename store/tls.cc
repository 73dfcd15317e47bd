#include "store/tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cerrno>
#include <cstring>

namespace zb::store {
namespace {

std::string openssl_reason() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    out += (out.empty() ? "" : "; ") + std::string(buf);
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

}  // namespace

Result<std::unique_ptr<TlsContext>> TlsContext::load(const std::string& cert_file, const std::string& key_file) {
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) return Status(Code::kIo, "TLS: cannot create a context: " + openssl_reason());
  auto context = std::unique_ptr<TlsContext>(new TlsContext(ctx));
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // Writes may be retried with a moved buffer and may complete in part: the connection
  // keeps its own output buffer and resumes it.
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1)
    return Status(Code::kBadRequest, "--tls-cert " + cert_file + ": " + openssl_reason());
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1)
    return Status(Code::kBadRequest, "--tls-key " + key_file + ": " + openssl_reason());
  if (SSL_CTX_check_private_key(ctx) != 1)
    return Status(Code::kBadRequest, "--tls-key " + key_file + " does not belong to --tls-cert " + cert_file + ": " +
                                         openssl_reason());
  return context;
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

TlsSession::TlsSession(const TlsContext& context, int fd) : ssl_(SSL_new(context.get())) {
  if (ssl_) {
    SSL_set_fd(ssl_, fd);
    SSL_set_accept_state(ssl_);
  }
}

TlsSession::~TlsSession() { SSL_free(ssl_); }

TlsSession::Io TlsSession::outcome(int rc) {
  switch (SSL_get_error(ssl_, rc)) {
    case SSL_ERROR_WANT_READ: return Io::kWantRead;
    case SSL_ERROR_WANT_WRITE: return Io::kWantWrite;
    case SSL_ERROR_ZERO_RETURN: return Io::kClosed;
    case SSL_ERROR_SYSCALL:
      if (ERR_peek_error() == 0) {
        if (errno == 0) return Io::kClosed;  // EOF without close_notify
        error_ = std::strerror(errno);
        return Io::kFailed;
      }
      error_ = openssl_reason();
      return Io::kFailed;
    default:
      error_ = openssl_reason();
      return Io::kFailed;
  }
}

TlsSession::Io TlsSession::handshake() {
  if (!ssl_) {
    error_ = "no TLS session";
    return Io::kFailed;
  }
  ERR_clear_error();
  errno = 0;
  const int rc = SSL_do_handshake(ssl_);
  return rc == 1 ? Io::kOk : outcome(rc);
}

TlsSession::Io TlsSession::read(char* buf, size_t size, size_t* got) {
  ERR_clear_error();
  errno = 0;
  *got = 0;
  const int rc = SSL_read_ex(ssl_, buf, size, got);
  return rc == 1 ? Io::kOk : outcome(rc);
}

TlsSession::Io TlsSession::write(const char* buf, size_t size, size_t* put) {
  ERR_clear_error();
  errno = 0;
  *put = 0;
  const int rc = SSL_write_ex(ssl_, buf, size, put);
  return rc == 1 ? Io::kOk : outcome(rc);
}

void TlsSession::close_notify() {
  if (!ssl_) return;
  ERR_clear_error();
  SSL_shutdown(ssl_);
  ERR_clear_error();
}

}  // namespace zb::store
