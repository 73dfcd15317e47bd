// Id: a 128-bit identifier for tasks (time-ordered, UUID version 7 layout), groups and worker
// sessions (random, version 4), and ids derived from text (a hash: the same text always gives
// the same id). 16 bytes on the wire and in LMDB keys; the canonical 36-character text form at
// the edges (CLI, HTTP, logs). The all-zero Id means "none".
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace zb {

class Id {
 public:
  static constexpr size_t kSize = 16;

  Id() { bytes_.fill(0); }
  // A fresh random v4 id. Thread-safe.
  static Id random();
  // A time-ordered id (UUID version 7 layout: 48-bit unix ms, then a per-process counter and
  // random bits). Ids made one after another sort in creation order, so LMDB inserts append
  // at the end of the B-tree instead of touching random pages. Thread-safe.
  static Id time_ordered();
  // The same id for the same bytes (two 64-bit FNV-1a lanes): group ids derived from an
  // idempotency key, fingerprints of requests. Not a cryptographic hash.
  static Id from_hash(std::string_view data);
  // From exactly 16 raw bytes; nullopt otherwise.
  static std::optional<Id> from_bytes(std::string_view raw);
  // From "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" or 32 hex digits; nullopt otherwise.
  static std::optional<Id> parse(std::string_view text);

  bool is_nil() const;
  std::string to_string() const;
  std::string_view bytes() const {
    return {reinterpret_cast<const char*>(bytes_.data()), bytes_.size()};
  }
  const uint8_t* data() const { return bytes_.data(); }

  friend bool operator==(const Id& a, const Id& b) { return a.bytes_ == b.bytes_; }
  friend auto operator<=>(const Id& a, const Id& b) { return a.bytes_ <=> b.bytes_; }

 private:
  std::array<uint8_t, kSize> bytes_;
};

struct IdHash {
  size_t operator()(const Id& id) const {
    uint64_t a, b;
    std::memcpy(&a, id.data(), 8);
    std::memcpy(&b, id.data() + 8, 8);
    return static_cast<size_t>(a ^ (b * 0x9e3779b97f4a7c15ULL));
  }
};

}  // namespace zb
