// Shared by the fuzz targets of tests/fuzz (see docs/FUZZING.md). Each target defines
// LLVMFuzzerTestOneInput: libFuzzer drives it in the fuzz build (-DZBATCH_FUZZ=ON, clang),
// smoke_main.cc in the normal one (CTest feeds it the corpus and mutations of it).
//
// A target states what must hold for every input with FUZZ_CHECK; a failed check aborts, which
// libFuzzer reports as a crash and CTest as a failed test. An exception escaping a target is a
// finding too: every entry point under test promises not to throw.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#define FUZZ_CHECK(cond)                                                               \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      std::fprintf(stderr, "fuzz check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                                    \
    }                                                                                  \
  } while (0)

namespace zb::fuzz {

// True when `text` is valid UTF-8, by nlohmann's strict serializer (a second opinion, separate
// from the code under test).
inline bool is_utf8(std::string_view text) {
  try {
    (void)nlohmann::json(std::string(text)).dump();
    return true;
  } catch (const nlohmann::json::exception&) {
    return false;
  }
}

// Reads a fuzz input front to back; past the end every read is zero or empty, so any byte
// string is a valid input.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : p_(data), end_(data + size) {}
  bool empty() const { return p_ == end_; }
  size_t left() const { return static_cast<size_t>(end_ - p_); }
  uint8_t u8() { return p_ == end_ ? 0 : *p_++; }
  uint16_t u16() { return static_cast<uint16_t>(u8() | u8() << 8); }
  // LEB128: small numbers in one byte, any 64-bit number in at most ten.
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && !empty(); shift += 7) {
      const uint8_t b = u8();
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) break;
    }
    return v;
  }
  // A length byte, then that many bytes (fewer at the end of the input).
  std::string str() { return bytes(u8()); }
  std::string bytes(size_t n) {
    n = std::min(n, left());
    std::string out(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return out;
  }
  std::string rest() { return bytes(left()); }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

// The writing side of Reader, for the corpus generator and the tests.
class Writer {
 public:
  Writer& u8(uint8_t v) { out_.push_back(static_cast<char>(v)); return *this; }
  Writer& u16(uint16_t v) { return u8(static_cast<uint8_t>(v)).u8(static_cast<uint8_t>(v >> 8)); }
  Writer& varint(uint64_t v) {
    do {
      const uint8_t b = v & 0x7f;
      v >>= 7;
      u8(static_cast<uint8_t>(b | (v ? 0x80 : 0)));
    } while (v);
    return *this;
  }
  Writer& str(std::string_view s) {
    s = s.substr(0, 255);
    u8(static_cast<uint8_t>(s.size()));
    out_.append(s);
    return *this;
  }
  Writer& raw(std::string_view s) { out_.append(s); return *this; }
  const std::string& data() const { return out_; }

 private:
  std::string out_;
};

}  // namespace zb::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
