// proto::decode on any bytes: the first four are the header frame, the rest the body. A body
// that decodes must encode back to a message that decodes to the same bytes again (decoding
// drops what it does not know, so the first re-encoding is the canonical form).
#include "common/protocol.h"
#include "tests/fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace zb;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::string_view header = input.substr(0, std::min<size_t>(proto::kHeaderSize, input.size()));
  const std::string_view body = input.substr(header.size());
  auto decoded = proto::decode(header, body);
  if (!decoded) {
    FUZZ_CHECK(!decoded.status().message().empty());
    return 0;
  }
  FUZZ_CHECK(static_cast<uint8_t>(proto::command_of(*decoded)) == static_cast<uint8_t>(header[3]));
  const proto::Frames canonical = proto::encode(*decoded);
  FUZZ_CHECK(canonical.header == header);
  auto again = proto::decode(canonical.header, canonical.body);
  FUZZ_CHECK(again);
  FUZZ_CHECK(proto::encode(*again).body == canonical.body);
  return 0;
}
