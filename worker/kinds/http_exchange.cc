// The HTTP module's side of worker/kinds/http_exchange.h: the exchange on cpp-httplib.
#include "worker/kinds/http_exchange.h"

#include <httplib.h>

#include <condition_variable>
#include <mutex>
#include <thread>

namespace zb::worker {
namespace {

// cpp-httplib names its errors with one word ("Connection"); say what happened.
std::string describe(httplib::Error err) {
  switch (err) {
    case httplib::Error::Connection: return "cannot connect (connection refused, or no route to the host)";
    case httplib::Error::ConnectionTimeout: return "connecting timed out";
    case httplib::Error::BindIPAddress: return "cannot bind the local address";
    case httplib::Error::Read: return "the connection failed while reading the reply";
    case httplib::Error::Write: return "the connection failed while sending the request";
    case httplib::Error::Canceled: return "the request was cancelled";
    case httplib::Error::SSLConnection: return "the TLS handshake failed";
    case httplib::Error::SSLLoadingCerts: return "cannot load the TLS certificates";
    case httplib::Error::SSLServerVerification: return "the server's TLS certificate was not accepted";
    case httplib::Error::Compression: return "the reply could not be decompressed";
    default: return "request failed (" + httplib::to_string(err) + ")";
  }
}

}  // namespace
}  // namespace zb::worker

extern "C" __attribute__((visibility("default"))) void zbatch_http_exchange(const zb::worker::HttpExchange* request,
                                                                            zb::worker::HttpOutcome* outcome) {
  const auto& r = *request;
  httplib::Client client(r.address);
  client.set_connection_timeout(std::chrono::milliseconds(r.connect_timeout_ms));
  client.set_read_timeout(std::chrono::milliseconds(r.read_timeout_ms));
  client.set_write_timeout(std::chrono::milliseconds(r.connect_timeout_ms));
  httplib::Request req;
  req.method = r.method;
  req.path = r.path;
  req.body = r.body;
  req.set_header("Content-Type", r.content_type);
  for (const auto& [name, value] : r.headers) req.set_header(name, value);
  req.response_handler = [&](const httplib::Response& res) {
    if (r.on_status) r.on_status(res.status);
    if (r.on_reply) {
      zb::worker::HttpHeaders headers(res.headers.begin(), res.headers.end());
      r.on_reply(res.status, headers);
    }
    return true;
  };
  req.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
    return r.on_data(std::string_view(data, len));
  };
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::thread watcher;
  if (r.should_abort)
    watcher = std::thread([&] {
      std::unique_lock lock(mu);
      while (!cv.wait_for(lock, std::chrono::milliseconds(20), [&] { return done; }))
        if (r.should_abort()) client.stop();  // again until send() returns: it may not have connected yet
    });
  auto res = client.send(req);
  if (watcher.joinable()) {
    {
      std::lock_guard lock(mu);
      done = true;
    }
    cv.notify_one();
    watcher.join();
  }
  *outcome = {};
  if (!res) {
    outcome->read_failed = res.error() == httplib::Error::Read;
    outcome->failure = zb::worker::describe(res.error());
    return;
  }
  outcome->answered = true;
  outcome->status = res->status;
  outcome->body = res->body;
  outcome->retry_after = res->get_header_value("Retry-After");
}
