// The HTTP module's side of worker/kinds/http_exchange.h: the exchange on cpp-httplib.
#include "worker/kinds/http_exchange.h"

#include <httplib.h>

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
  req.response_handler = [&](const httplib::Response& res) {
    if (r.on_status) r.on_status(res.status);
    return true;
  };
  req.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
    return r.on_data(std::string_view(data, len));
  };
  auto res = client.send(req);
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
