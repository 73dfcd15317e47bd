// One HTTP request with a streamed reply, for the agent kind and MCP servers reached by URL
// (internal to worker/). Its code, on cpp-httplib (OpenSSL for https://), lives in the HTTP
// module (common/http_module.h), so that a worker maps those libraries only once it runs its
// first task that speaks HTTP.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace zb::worker {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpExchange {
  std::string address;  // scheme://host:port
  std::string method = "POST";
  std::string path;
  std::string body;
  std::string content_type = "application/json";
  uint32_t connect_timeout_ms = 0;  // also the write timeout
  uint32_t read_timeout_ms = 0;     // between two chunks of the reply
  std::function<void(int status)> on_status;            // the reply's status, before its body
  std::function<bool(std::string_view data)> on_data;  // each chunk of the body; false cancels
  HttpHeaders headers;                                 // sent besides Content-Type
  // The reply's status and headers, before its body (after on_status).
  std::function<void(int status, const HttpHeaders& headers)> on_reply;
  // When set, asked every 20 ms while the exchange runs, from another thread; true shuts the
  // connection down, so that a server that sends nothing cannot hold the exchange past a
  // deadline or a cancel.
  std::function<bool()> should_abort;
};

struct HttpOutcome {
  bool answered = false;     // a whole reply arrived
  int status = 0;            // when answered
  std::string body;          // when answered: what on_data did not take
  std::string retry_after;   // when answered: the Retry-After header, as sent (empty: none)
  bool read_failed = false;  // not answered: the connection failed (or timed out) while reading the reply
  std::string failure;       // not answered: what happened, in words
};

// Runs the exchange through the HTTP module; a module that cannot be loaded is a failure
// (not answered) that says why.
HttpOutcome http_exchange(const HttpExchange& request);

}  // namespace zb::worker

extern "C" {
// The module's entry point (worker/kinds/http_exchange.cc).
using zbatch_http_exchange_fn = void (*)(const zb::worker::HttpExchange* request, zb::worker::HttpOutcome* outcome);
}
