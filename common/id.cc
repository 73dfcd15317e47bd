#include "common/id.h"

#include <atomic>
#include <chrono>
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

Id Id::from_hash(std::string_view data) {
  uint64_t a = 0xcbf29ce484222325ull, b = 0x84222325cbf29ce4ull;
  for (unsigned char c : data) {
    a = (a ^ c) * 0x100000001b3ull;
    b = (b ^ c) * 0x100000001b3ull + 0x9e37;
  }
  Id id;
  for (int i = 0; i < 8; ++i) {
    id.bytes_[i] = static_cast<uint8_t>(a >> (56 - 8 * i));
    id.bytes_[8 + i] = static_cast<uint8_t>(b >> (56 - 8 * i));
  }
  return id;
}

Id Id::time_ordered() {
  static std::atomic<uint64_t> counter{0};
  thread_local std::mt19937_64 rng{std::random_device{}()};
  const uint64_t ms = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count());
  const uint64_t n = counter.fetch_add(1, std::memory_order_relaxed);
  Id id;
  for (int i = 0; i < 6; ++i) id.bytes_[i] = static_cast<uint8_t>(ms >> (40 - 8 * i));
  // 12 bits of counter after the version nibble, 2 variant bits, then 14 more counter bits and
  // 48 random bits: ids of one millisecond sort by the counter.
  id.bytes_[6] = static_cast<uint8_t>(0x70 | ((n >> 22) & 0x0f));
  id.bytes_[7] = static_cast<uint8_t>(n >> 14);
  id.bytes_[8] = static_cast<uint8_t>(0x80 | ((n >> 8) & 0x3f));
  id.bytes_[9] = static_cast<uint8_t>(n);
  uint64_t r = rng();
  std::memcpy(id.bytes_.data() + 10, &r, 6);
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
