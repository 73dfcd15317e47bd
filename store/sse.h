// GET /api/v1/events without the I/O (internal to store/): what a request asks for
// (Last-Event-ID or ?after=, ?group=, ?queue=) and the Server-Sent Events frame of one event.
// Neither function throws, whatever the bytes; event_stream.cc serves the stream with them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/protocol.h"
#include "common/status.h"

namespace zb::store {

struct StreamQuery {
  std::optional<uint64_t> after;  // resume after this seq; nullopt: start with the next event
  std::optional<Id> group;        // only this group's events
  std::string queue;              // only this queue's events; empty: every queue
  bool matches(const proto::Event& e) const;
};

// Each argument is nullopt when the request does not carry it; an empty value counts as
// absent. Last-Event-ID (what a reconnecting EventSource sends) wins over ?after=. A sequence
// number is decimal digits that fit 64 bits, nothing else (no sign, space or hex): anything
// else, or a group that is not an id, is kBadRequest with a message naming the parameter.
Result<StreamQuery> parse_stream_query(std::optional<std::string_view> last_event_id,
                                       std::optional<std::string_view> after,
                                       std::optional<std::string_view> group,
                                       std::optional<std::string_view> queue);

// "id: SEQ\nevent: TYPE\ndata: JSON\n\n" (docs/openapi.yaml, x-event-data). Bytes of the
// event's strings that are not UTF-8 come out as U+FFFD; `result` that is not JSON is a string,
// `detail` that is not a JSON object is left out.
std::string sse_frame(const proto::Event& e);

}  // namespace zb::store
