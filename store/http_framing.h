// One whole HTTP/1.1 request found in the bytes a connection has received (internal to
// store/): where its head ends, how long its body is, and the refusals that need no thread —
// a request line too long (414), too many or too large headers (431), a body above the limit
// (413), a body the server would have to decode or de-chunk (415, 400). The connection
// thread runs it on every read; only a whole request goes to a request thread.
//
// Not thread-safe; one per connection. Each feed() looks only at bytes it has not seen, so a
// head that arrives a byte at a time costs linear time.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace zb::store {

struct FramingLimits {
  size_t max_request_line_bytes = 8192;  // 414 above
  size_t max_header_line_bytes = 8192;   // 431 above
  size_t max_headers = 100;              // 431 above
  size_t max_head_bytes = 65536;         // request line + headers + blank line; 431 above
  size_t max_body_bytes = 32u << 20;     // 413 above
};

// An answer given without parsing further: the status, the JSON error code, the message.
struct Refusal {
  int status = 0;
  std::string code;
  std::string message;
};

struct RequestHead {
  std::string method;
  std::string path;        // as the router of the request threads will see it: decoded, no query
  size_t head_bytes = 0;   // through the blank line
  size_t body_bytes = 0;   // Content-Length (0 without one)
  bool expect_continue = false;
  size_t total() const { return head_bytes + body_bytes; }
};

class RequestFramer {
 public:
  enum class State { kNeedMore, kHead, kRefused };

  explicit RequestFramer(const FramingLimits& limits) : limits_(limits) {}
  // `bytes`: everything received since this request began (it only grows between calls).
  // kHead: head() is parsed; the request is whole once bytes.size() >= head().total().
  State feed(std::string_view bytes);
  const RequestHead& head() const { return head_; }
  const Refusal& refusal() const { return refusal_; }
  // For the next request on the same connection.
  void reset();

 private:
  State refuse(int status, std::string code, std::string message);
  State parse_head(std::string_view head);

  const FramingLimits limits_;
  State state_ = State::kNeedMore;
  size_t scanned_ = 0;     // bytes already looked at
  size_t line_start_ = 0;  // where the current line begins
  size_t lines_ = 0;       // complete lines so far, the request line included
  RequestHead head_;
  Refusal refusal_;
};

}  // namespace zb::store
