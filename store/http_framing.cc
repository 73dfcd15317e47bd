#include "store/http_framing.h"

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <optional>
#include <vector>

namespace zb::store {
namespace {

bool space_or_tab(char c) { return c == ' ' || c == '\t'; }

std::string_view trimmed(std::string_view s) {
  while (!s.empty() && space_or_tab(s.front())) s.remove_prefix(1);
  while (!s.empty() && space_or_tab(s.back())) s.remove_suffix(1);
  return s;
}

// The non-empty, trimmed pieces of `s` between `sep`s: how cpp-httplib splits a request line
// and its target, so that the path seen here is the path its router sees.
std::vector<std::string_view> pieces(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t begin = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == sep) {
      std::string_view piece = trimmed(s.substr(begin, i - begin));
      if (!piece.empty()) out.push_back(piece);
      begin = i + 1;
    }
  }
  return out;
}

bool same_name(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

void RequestFramer::reset() {
  state_ = State::kNeedMore;
  scanned_ = line_start_ = lines_ = 0;
  head_ = {};
  refusal_ = {};
}

RequestFramer::State RequestFramer::refuse(int status, std::string code, std::string message) {
  refusal_ = {status, std::move(code), std::move(message)};
  return state_ = State::kRefused;
}

RequestFramer::State RequestFramer::feed(std::string_view bytes) {
  if (state_ != State::kNeedMore) return state_;
  for (; scanned_ < bytes.size(); ++scanned_) {
    if (bytes[scanned_] != '\n') continue;
    const std::string_view line = bytes.substr(line_start_, scanned_ + 1 - line_start_);
    if (line.size() < 2 || line[line.size() - 2] != '\r')
      return refuse(400, "bad_request", "request lines must end with CRLF");
    if (lines_ == 0 && line.size() - 2 > limits_.max_request_line_bytes)
      return refuse(414, "uri_too_long", "request line longer than " + std::to_string(limits_.max_request_line_bytes) + " bytes");
    if (lines_ > 0 && line.size() == 2) {
      ++scanned_;
      return parse_head(bytes.substr(0, scanned_));
    }
    if (lines_ > 0 && line.size() - 2 > limits_.max_header_line_bytes)
      return refuse(431, "headers_too_large", "a header line is longer than " + std::to_string(limits_.max_header_line_bytes) + " bytes");
    if (lines_ > limits_.max_headers)  // lines_ counts the request line too
      return refuse(431, "headers_too_large", "more than " + std::to_string(limits_.max_headers) + " headers");
    ++lines_;
    line_start_ = scanned_ + 1;
  }
  // The head is not complete yet: refuse as soon as it cannot fit any more.
  const size_t partial = bytes.size() - line_start_;
  if (lines_ == 0 && partial > limits_.max_request_line_bytes + 1)
    return refuse(414, "uri_too_long", "request line longer than " + std::to_string(limits_.max_request_line_bytes) + " bytes");
  if (lines_ > 0 && partial > limits_.max_header_line_bytes + 1)
    return refuse(431, "headers_too_large", "a header line is longer than " + std::to_string(limits_.max_header_line_bytes) + " bytes");
  if (bytes.size() > limits_.max_head_bytes)
    return refuse(431, "headers_too_large", "request head larger than " + std::to_string(limits_.max_head_bytes) + " bytes");
  return state_;
}

RequestFramer::State RequestFramer::parse_head(std::string_view head) {
  if (head.size() > limits_.max_head_bytes)
    return refuse(431, "headers_too_large", "request head larger than " + std::to_string(limits_.max_head_bytes) + " bytes");
  head_.head_bytes = head.size();
  const size_t first_end = head.find("\r\n");
  const auto words = pieces(head.substr(0, first_end), ' ');
  if (!words.empty()) head_.method = std::string(words[0]);
  if (words.size() > 1) {
    std::string_view target = words[1];
    target = target.substr(0, target.find('#'));
    const auto parts = pieces(target, '?');
    if (!parts.empty()) head_.path = httplib::detail::decode_url(std::string(parts[0]), false);
  }
  std::optional<size_t> length;
  for (size_t at = first_end + 2; at + 2 < head.size();) {
    const size_t end = head.find("\r\n", at);
    const std::string_view line = head.substr(at, end - at);
    at = end + 2;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string_view name = line.substr(0, colon);
    // Values as cpp-httplib reads them: trimmed, then percent-decoded.
    const std::string value = httplib::detail::decode_url(std::string(trimmed(line.substr(colon + 1))), false);
    if (same_name(name, "Transfer-Encoding"))
      return refuse(400, "bad_request", "chunked request bodies are not accepted; send Content-Length");
    if (same_name(name, "Content-Encoding") && !same_name(value, "identity"))
      return refuse(415, "unsupported_media_type",
                    "encoded request bodies are not accepted (Content-Encoding: " + value.substr(0, 40) + ")");
    if (same_name(name, "Expect") && same_name(value, "100-continue")) head_.expect_continue = true;
    if (same_name(name, "Content-Length")) {
      if (value.empty() || value.size() > 19 || value.find_first_not_of("0123456789") != std::string::npos)
        return refuse(400, "bad_request", "Content-Length must be a number of bytes");
      const size_t n = std::stoull(value);
      if (length && *length != n) return refuse(400, "bad_request", "two different Content-Length headers");
      length = n;
    }
  }
  head_.body_bytes = length.value_or(0);
  if (head_.body_bytes > limits_.max_body_bytes)
    return refuse(413, "too_large", "request body exceeds " + std::to_string(limits_.max_body_bytes) + " bytes");
  return state_ = State::kHead;
}

}  // namespace zb::store
