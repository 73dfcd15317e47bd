#include "common/id.h"

#include <random>

namespace zb {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

Id Id::random() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  Id id;
  uint64_t a = rng(), b = rng();
  std::memcpy(id.bytes_.data(), &a, 8);
  std::memcpy(id.bytes_.data() + 8, &b, 8);
  id.bytes_[6] = static_cast<uint8_t>((id.bytes_[6] & 0x0f) | 0x40);  // version 4
  id.bytes_[8] = static_cast<uint8_t>((id.bytes_[8] & 0x3f) | 0x80);  // RFC 4122 variant
  return id;
}

std::optional<Id> Id::from_bytes(std::string_view raw) {
  if (raw.size() != kSize) return std::nullopt;
  Id id;
  std::memcpy(id.bytes_.data(), raw.data(), kSize);
  return id;
}

std::optional<Id> Id::parse(std::string_view text) {
  if (text.size() != 36 && text.size() != 32) return std::nullopt;
  Id id;
  size_t out = 0;
  for (size_t i = 0; i < text.size();) {
    if (text.size() == 36 && (i == 8 || i == 13 || i == 18 || i == 23)) {
      if (text[i] != '-') return std::nullopt;
      ++i;
      continue;
    }
    int hi = hex_value(text[i]), lo = i + 1 < text.size() ? hex_value(text[i + 1]) : -1;
    if (hi < 0 || lo < 0 || out >= kSize) return std::nullopt;
    id.bytes_[out++] = static_cast<uint8_t>(hi << 4 | lo);
    i += 2;
  }
  if (out != kSize) return std::nullopt;
  return id;
}

bool Id::is_nil() const {
  for (uint8_t b : bytes_)
    if (b != 0) return false;
  return true;
}

std::string Id::to_string() const {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  s.reserve(36);
  for (size_t i = 0; i < kSize; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s.push_back('-');
    s.push_back(kHex[bytes_[i] >> 4]);
    s.push_back(kHex[bytes_[i] & 0xf]);
  }
  return s;
}

}  // namespace zb
