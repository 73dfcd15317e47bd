// The store's HTTP server (internal to store/): cpp-httplib parses, routes and answers each
// request with the handlers installed here; the connections are our own (HttpConnections:
// one epoll thread, whole requests only to the request threads, event streams on threads of
// their own), so clients that are slow, silent or hostile hold no request thread.
//
// Routes are installed with Get/Post, each one looked up in the route table (store/routes.h)
// for the role it needs; the authenticator reads that role for every request.
#pragma once

#include <memory>
#include <string>

#include <httplib.h>

#include "store/http_connections.h"
#include "store/net_address.h"
#include "store/routes.h"
#include "store/tls.h"

namespace zb::store {

class HttpServer : private httplib::Server {
 public:
  using httplib::Server::Handler;
  using httplib::Server::HandlerResponse;
  using httplib::Server::set_error_handler;
  using httplib::Server::set_exception_handler;
  using httplib::Server::set_payload_max_length;
  using httplib::Server::set_pre_routing_handler;

  explicit HttpServer(const HttpServerOptions& options);
  ~HttpServer() override;

  // A route of the table; one without an entry is refused by routes().complete().
  HttpServer& Get(const std::string& pattern, Handler handler);
  HttpServer& Post(const std::string& pattern, Handler handler);
  const RouteTable& routes() const { return routes_; }

  // Binds where (see Listener::open); with tls, every connection speaks HTTPS.
  Status listen(const HostPort& where, const TlsContext* tls);
  // The address bound by listen().
  const std::string& bound() const { return bound_; }
  bool loopback() const { return loopback_; }

  // Serves until stop() (thread-safe).
  void run();
  void stop();

 private:
  Handler guarded(const std::string& method, const std::string& pattern, Handler handler);

  HttpServerOptions options_;
  RouteTable routes_;
  std::unique_ptr<HttpConnections> connections_;
  std::string bound_;
  bool loopback_ = false;
};

}  // namespace zb::store
