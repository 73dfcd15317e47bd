#include "common/text.h"

namespace zb {
namespace {

// The length of the well-formed sequence starting at text[i], or 0.
size_t sequence_at(std::string_view text, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(text[i + k]); };
  const unsigned char c = b(0);
  if (c < 0x80) return 1;
  size_t n;
  unsigned char lo = 0x80, hi = 0xbf;  // the range of the second byte
  if (c >= 0xc2 && c <= 0xdf) n = 2;
  else if (c == 0xe0) n = 3, lo = 0xa0;
  else if (c == 0xed) n = 3, hi = 0x9f;  // no surrogates
  else if (c >= 0xe1 && c <= 0xef) n = 3;
  else if (c == 0xf0) n = 4, lo = 0x90;
  else if (c == 0xf4) n = 4, hi = 0x8f;  // nothing above U+10FFFF
  else if (c >= 0xf1 && c <= 0xf3) n = 4;
  else return 0;
  if (i + n > text.size()) return 0;
  if (b(1) < lo || b(1) > hi) return 0;
  for (size_t k = 2; k < n; ++k)
    if ((b(k) & 0xc0) != 0x80) return 0;
  return n;
}

}  // namespace

std::string valid_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const size_t n = sequence_at(text, i);
    if (n) {
      out.append(text.substr(i, n));
      i += n;
    } else {
      out += "\xef\xbf\xbd";
      ++i;
    }
  }
  return out;
}

void make_valid_utf8(std::string& text) {
  for (size_t i = 0; i < text.size();) {
    const size_t n = sequence_at(text, i);
    if (!n) {
      text = valid_utf8(text);
      return;
    }
    i += n;
  }
}

std::string ollama_address(std::string host) {
  while (!host.empty() && host.back() == '/') host.pop_back();
  if (host.find("://") == std::string::npos) host = "http://" + host;
  // http://host without a port: Ollama's default port.
  const auto authority = host.substr(host.find("://") + 3);
  if (authority.find(':') == std::string::npos && authority.find(']') == std::string::npos) host += ":11434";
  return host;
}

}  // namespace zb
