// The HTTP server's connections (internal to store/): one thread (epoll) accepts them, runs
// their TLS handshakes, reads each request whole and writes each answer; request threads and
// stream threads only ever see whole requests. So a connection that sends slowly, or nothing,
// costs a file descriptor and its bytes, never a thread.
//
// Limits (docs/SECURITY.md):
// - a request's head and body must arrive within request_timeout of its first byte (else 408
//   and close); a connection silent between requests is closed after idle_timeout;
// - head limits and the body limit refused as they are seen (FramingLimits: 414, 431, 413);
// - at most max_connections connections in all and max_connections_per_client from one
//   client (an IPv4 address, an IPv6 /64): a connection above them is accepted and closed at
//   once, while the open ones are served;
// - at most max_buffered_bytes of requests held in memory, over all connections (503 above);
// - answers are delivered within request_timeout, or the connection is closed;
// - event streams run on threads of their own, at most max_streams streaming at once.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include <httplib.h>

#include "store/http_framing.h"
#include "store/net_address.h"
#include "store/tls.h"

namespace zb::store {

struct HttpServerOptions {
  FramingLimits framing;
  size_t request_threads = 32;
  size_t max_streams = 256;
  size_t max_connections = 10000;
  size_t max_connections_per_client = 1024;
  size_t max_buffered_bytes = 256u << 20;
  size_t max_requests_per_connection = 1000;
  std::chrono::milliseconds request_timeout{30000};
  std::chrono::milliseconds idle_timeout{60000};
};

// True on a stream thread (the handlers of streaming routes check it).
bool on_stream_thread();

class HttpConnections {
 public:
  // Answers one whole request read from `strm`; false when the connection must close.
  using Answer = std::function<bool(httplib::Stream& strm, bool close_connection, bool& connection_closed)>;
  // Whether a request goes to a stream thread.
  using Streams = std::function<bool(const std::string& method, const std::string& path)>;

  HttpConnections(const HttpServerOptions& options, Listener listener, const TlsContext* tls, Answer answer,
                  Streams streams);
  ~HttpConnections();

  // Serves until stop(); then stops accepting, finishes the answers under way (for at most
  // 5 s), ends the event streams, and returns once every thread has been joined.
  void run();
  // Thread-safe.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace zb::store
