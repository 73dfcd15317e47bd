#include "common/text.h"
#include "store/http_server.h"

#include <signal.h>

#include <nlohmann/json.hpp>

namespace zb::store {

HttpServer::HttpServer(const HttpServerOptions& options) : options_(options) {
  // A client that goes away mid-answer is an error on that connection, not a signal (OpenSSL
  // writes to the socket without MSG_NOSIGNAL).
  ::signal(SIGPIPE, SIG_IGN);
  // What the Keep-Alive header of each answer announces.
  keep_alive_timeout_sec_ = std::max<time_t>(1, options.idle_timeout.count() / 1000);
  keep_alive_max_count_ = options.max_requests_per_connection;
}

HttpServer::~HttpServer() = default;

HttpServer::Handler HttpServer::guarded(const std::string& method, const std::string& pattern, Handler handler) {
  const RouteSpec* spec = routes_.install(method, pattern);
  if (!spec || !spec->streams) return handler;
  // A stream holds its thread for its whole life: it must never run on a request thread
  // (the connection thread sends every request for this route to a stream thread).
  return [handler = std::move(handler)](const httplib::Request& req, httplib::Response& res) {
    if (!on_stream_thread()) {
      res.status = 503;
      const nlohmann::json error = {
          {"error", {{"code", "unavailable"}, {"message", "the event stream has no thread of its own; retry"}}}};
      res.set_content(json_text(error), "application/json");
      return;
    }
    handler(req, res);
  };
}

HttpServer& HttpServer::Get(const std::string& pattern, Handler handler) {
  httplib::Server::Get(pattern, guarded("GET", pattern, std::move(handler)));
  return *this;
}

HttpServer& HttpServer::Post(const std::string& pattern, Handler handler) {
  httplib::Server::Post(pattern, guarded("POST", pattern, std::move(handler)));
  return *this;
}

Status HttpServer::listen(const HostPort& where, const TlsContext* tls) {
  auto listener = Listener::open(where);
  if (!listener) return listener.status();
  bound_ = listener->bound();
  loopback_ = listener->loopback();
  // cpp-httplib ends content providers (event streams) once this is invalid: see stop().
  svr_sock_ = listener->fd();
  try {
    connections_ = std::make_unique<HttpConnections>(
        options_, std::move(listener.value()), tls,
        [this](httplib::Stream& strm, bool close_connection, bool& connection_closed) {
          return process_request(strm, close_connection, connection_closed, nullptr);
        },
        [this](const std::string& method, const std::string& path) { return routes_.streams(method, path); });
  } catch (const std::exception& e) {  // no epoll, or no threads
    return Status(Code::kIo, "cannot serve http://" + bound_ + ": " + e.what());
  }
  return Status::ok();
}

void HttpServer::run() {
  if (connections_) connections_->run();
}

void HttpServer::stop() {
  svr_sock_ = INVALID_SOCKET;
  if (connections_) connections_->stop();
}

}  // namespace zb::store
