// wire::decode_frames, the frame-count checks of wire::recv without a socket. Input: a flags
// byte (bit 0: a ROUTER socket, with a routing-id frame first), then frames, each a 16-bit
// little-endian length and that many bytes. As recv does, at most three frames are handed
// over, and a count above three is reported as four.
#include <vector>

#include "common/wire.h"
#include "tests/fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace zb;
  fuzz::Reader in(data, size);
  const bool routed = in.u8() & 1;
  std::vector<std::string> frames;
  while (!in.empty() && frames.size() < 64) frames.push_back(in.bytes(in.u16()));
  std::vector<std::string_view> kept;
  for (size_t i = 0; i < frames.size() && i < 3; ++i) kept.push_back(frames[i]);
  const size_t total = frames.size() > 3 ? 4 : frames.size();
  wire::Incoming got = wire::decode_frames(kept, total, routed);

  const size_t first = routed ? 1 : 0;
  if (routed && !frames.empty()) FUZZ_CHECK(got.routing_id == frames[0]);
  if (!routed) FUZZ_CHECK(got.routing_id.empty());
  if (frames.size() != first + 2) {
    FUZZ_CHECK(!got.message);
    FUZZ_CHECK(got.message.status().code() == Code::kBadRequest);
    return 0;
  }
  auto direct = proto::decode(frames[first], frames[first + 1]);
  FUZZ_CHECK(got.message.is_ok() == direct.is_ok());
  if (!direct) FUZZ_CHECK(got.message.status().message() == direct.status().message());
  else FUZZ_CHECK(proto::encode(*got.message).body == proto::encode(*direct).body);
  return 0;
}
