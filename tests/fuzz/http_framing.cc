// The store's own HTTP request framing (store/http_framing.h) on bytes that arrive in pieces,
// as a connection reads them. Input: a byte of limits (odd: small limits from the next bytes,
// so that 414 and 431 are reached; even: the defaults), a mode byte, a byte seeding the piece
// sizes, then
//   mode even: the bytes a client sends (requests one after the other, bodies included);
//   mode odd:  a request built from parts (method, path, headers, body length) and serialised.
// What must hold: feed() never throws; fed in pieces it finds the same head as fed at once;
// a head it accepts keeps every limit, ends in a blank line, and its method, path and
// Content-Length are what the request says (a built request's parts; a received request
// re-serialised from the head and its header lines reads back the same).
#include <algorithm>
#include <cctype>

#include "store/http_framing.h"
#include "tests/fuzz/fuzz.h"

namespace {

using zb::store::FramingLimits;
using zb::store::RequestFramer;
using zb::store::RequestHead;
using State = RequestFramer::State;

bool same_head(const RequestHead& a, const RequestHead& b) {
  return a.method == b.method && a.path == b.path && a.head_bytes == b.head_bytes && a.body_bytes == b.body_bytes &&
         a.expect_continue == b.expect_continue;
}

bool iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// Every byte but the unreserved ones as %XX: what httplib's decode_url turns back into `path`.
std::string percent_encoded(std::string_view path) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : path) {
    if (std::isalnum(c) || c == '/' || c == '.' || c == '_' || c == '~' || c == '-') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

// Piece sizes 1..64 from a small generator seeded by the input.
struct Pieces {
  uint32_t state;
  size_t next() {
    state = state * 1103515245u + 12345u;
    return 1 + (state >> 16) % 64;
  }
};

// Feeds a growing prefix of `bytes` until the framer decides; the state it ends in.
State feed_in_pieces(RequestFramer& framer, std::string_view bytes, Pieces& pieces) {
  size_t have = 0;
  State s = State::kNeedMore;
  while (have < bytes.size()) {
    have = std::min(bytes.size(), have + pieces.next());
    s = framer.feed(bytes.substr(0, have));
    if (s != State::kNeedMore) {
      FUZZ_CHECK(framer.feed(bytes.substr(0, have)) == s);  // a decision is final
      return s;
    }
  }
  return s;
}

// The lines of an accepted head, checked against the limits; returns its header lines.
std::vector<std::string_view> check_accepted(std::string_view bytes, const RequestHead& head, const FramingLimits& lim) {
  FUZZ_CHECK(head.head_bytes <= bytes.size() && head.head_bytes <= lim.max_head_bytes);
  FUZZ_CHECK(head.body_bytes <= lim.max_body_bytes);
  const std::string_view text = bytes.substr(0, head.head_bytes);
  FUZZ_CHECK(text.size() >= 4 && text.ends_with("\r\n\r\n"));
  std::vector<std::string_view> lines;
  for (size_t at = 0; at < text.size();) {
    const size_t nl = text.find('\n', at);
    FUZZ_CHECK(nl != std::string_view::npos && nl > at && text[nl - 1] == '\r');  // CRLF, never a bare LF
    lines.push_back(text.substr(at, nl - 1 - at));
    at = nl + 1;
  }
  FUZZ_CHECK(lines.size() >= 2 && lines.back().empty());
  FUZZ_CHECK(lines[0].size() <= lim.max_request_line_bytes);
  std::vector<std::string_view> headers(lines.begin() + 1, lines.end() - 1);
  FUZZ_CHECK(headers.size() <= lim.max_headers);
  std::optional<uint64_t> length;
  for (std::string_view h : headers) {
    FUZZ_CHECK(!h.empty() && h.size() <= lim.max_header_line_bytes);
    const size_t colon = h.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string_view name = h.substr(0, colon);
    FUZZ_CHECK(!iequal(name, "Transfer-Encoding"));  // chunked bodies are refused, never framed
    std::string_view value = h.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (iequal(name, "Content-Length") && !value.empty() && value.size() <= 19 &&
        value.find_first_not_of("0123456789") == std::string_view::npos)
      length = std::stoull(std::string(value));
  }
  if (length) FUZZ_CHECK(head.body_bytes == *length);
  return headers;
}

// A received request re-serialised from its head: the method, the path percent-encoded and
// the same header lines read back as the same head.
void check_reserialised(const RequestHead& head, const std::vector<std::string_view>& headers) {
  if (head.method.empty() || head.path.empty()) return;
  std::string again = head.method + " " + percent_encoded(head.path) + " HTTP/1.1\r\n";
  for (std::string_view h : headers) again += std::string(h) + "\r\n";
  again += "\r\n";
  FramingLimits roomy;
  roomy.max_request_line_bytes = roomy.max_header_line_bytes = roomy.max_head_bytes = SIZE_MAX / 2;
  roomy.max_headers = SIZE_MAX / 2;
  roomy.max_body_bytes = SIZE_MAX;
  RequestFramer framer(roomy);
  FUZZ_CHECK(framer.feed(again) == State::kHead);
  FUZZ_CHECK(framer.head().method == head.method);
  FUZZ_CHECK(framer.head().path == head.path);
  FUZZ_CHECK(framer.head().body_bytes == head.body_bytes);
  FUZZ_CHECK(framer.head().expect_continue == head.expect_continue);
}

void check_refused(const RequestFramer& framer) {
  const auto& r = framer.refusal();
  FUZZ_CHECK(r.status == 400 || r.status == 413 || r.status == 414 || r.status == 415 || r.status == 431);
  FUZZ_CHECK(!r.code.empty() && !r.message.empty());
}

// Received bytes: up to four requests one after another on one connection.
void run_received(std::string_view bytes, const FramingLimits& lim, Pieces pieces) {
  RequestFramer framer(lim);
  for (int request = 0; request < 4 && !bytes.empty(); ++request) {
    const State piecewise = feed_in_pieces(framer, bytes, pieces);
    RequestFramer whole(lim);
    const State at_once = whole.feed(bytes);
    FUZZ_CHECK((piecewise == State::kHead) == (at_once == State::kHead));
    if (piecewise == State::kRefused) check_refused(framer);
    if (at_once == State::kRefused) check_refused(whole);
    if (piecewise != State::kHead) return;
    FUZZ_CHECK(same_head(framer.head(), whole.head()));
    check_reserialised(framer.head(), check_accepted(bytes, framer.head(), lim));
    if (bytes.size() - framer.head().head_bytes < framer.head().body_bytes) return;
    bytes.remove_prefix(framer.head().total());
    framer.reset();
  }
}

// A request built from parts, within the default limits: accepted, with those parts.
void run_built(zb::fuzz::Reader& in, Pieces pieces) {
  static const char* kMethods[] = {"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "BREW"};
  const std::string method = kMethods[in.u8() % 8];
  std::string path = "/" + in.str();
  std::string query = in.u8() & 1 ? "?" + percent_encoded(in.str()) : "";
  std::string request = method + " " + percent_encoded(path) + query + " HTTP/1.1\r\n";
  const size_t n = in.u8() % 12;
  std::optional<uint64_t> length;
  bool expect = false;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t sort = in.u8();
    std::string value = in.str();
    value.erase(std::remove_if(value.begin(), value.end(), [](char c) { return c == '\r' || c == '\n' || c == '%'; }),
                value.end());
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.erase(0, 1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.pop_back();
    std::string name;
    switch (sort % 5) {
      case 0:
        if (length) continue;
        length = in.varint() % (32u << 20);
        name = sort & 0x80 ? "content-length" : "Content-Length";
        value = std::to_string(*length);
        break;
      case 1:
        name = "Expect";
        if (sort & 0x80) value = sort & 0x40 ? "100-Continue" : "100-continue";
        expect = expect || iequal(value, "100-continue");
        break;
      case 2: name = "Host"; break;
      case 3: name = "Content-Type"; break;
      default: {
        name = "X-";
        for (char c : in.str())
          if (std::isalnum(static_cast<unsigned char>(c)) || c == '-') name += c;
      }
    }
    request += name + ":" + (sort & 0x20 ? " " : "") + value + "\r\n";
  }
  request += "\r\n";
  const size_t head_bytes = request.size();
  request += std::string(std::min<uint64_t>(length.value_or(0), 64), 'b');

  const FramingLimits lim;
  RequestFramer framer(lim);
  const State s = feed_in_pieces(framer, request, pieces);
  if (head_bytes - 2 > lim.max_head_bytes) return;  // only a huge random header could do this
  FUZZ_CHECK(s == State::kHead);
  const RequestHead& head = framer.head();
  FUZZ_CHECK(head.method == method && head.path == path);
  FUZZ_CHECK(head.head_bytes == head_bytes && head.body_bytes == length.value_or(0));
  FUZZ_CHECK(head.expect_continue == expect);
  check_reserialised(head, check_accepted(request, head, lim));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  zb::fuzz::Reader in(data, size);
  FramingLimits lim;
  if (in.u8() & 1) {
    lim.max_request_line_bytes = 1 + in.u8();
    lim.max_header_line_bytes = 1 + in.u8();
    lim.max_headers = in.u8() % 16;
    lim.max_head_bytes = 4 + in.u16() % 2048;
    lim.max_body_bytes = in.varint();
  }
  const uint8_t mode = in.u8();
  Pieces pieces{in.u8()};
  if (mode & 1) run_built(in, pieces);
  else run_received(in.rest(), lim, pieces);
  return 0;
}
