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

// One event as streams send it: its frame (built once) and what filters look at. The ring
// (EventHub) and the store's durable stream log (StatusDb) hold these.
struct StreamEntry {
  uint64_t seq = 0;
  Id group;
  std::string queue;
  std::string frame;  // sse_frame of the event
  MSGPACK_DEFINE(seq, group, queue, frame);
};

struct StreamQuery {
  std::optional<uint64_t> after;  // resume after this seq; nullopt: start with the next event
  std::optional<Id> group;        // only this group's events
  std::string queue;              // only this queue's events; empty: every queue
  bool matches(const proto::Event& e) const;
  bool matches(const StreamEntry& e) const;
};

// Each argument is nullopt when the request does not carry it; an empty value counts as
// absent. Last-Event-ID (what a reconnecting EventSource sends) wins over ?after=. A sequence
// number is decimal digits that fit 64 bits, nothing else (no sign, space or hex): anything
// else, or a group that is not an id, is kBadRequest with a message naming the parameter.
Result<StreamQuery> parse_stream_query(std::optional<std::string_view> last_event_id,
                                       std::optional<std::string_view> after,
                                       std::optional<std::string_view> group,
                                       std::optional<std::string_view> queue);

// What one frame carries inline at most (docs/SECURITY.md, Limits): a larger result is left
// out and the frame says so ("result_truncated": true, "result_bytes": N; the task's own
// GET /api/v1/tasks/{id} has it whole), a longer error is cut ("error_truncated": true), a
// larger detail (a worker's long hostname) is left out ("detail_truncated": true). So a frame stays under ~24 KiB
// whatever the event, and is built once per event, never per stream.
inline constexpr size_t kInlineResultBytes = 16 * 1024;
inline constexpr size_t kInlineErrorBytes = 4 * 1024;
inline constexpr size_t kInlineDetailBytes = 4 * 1024;

// "id: SEQ\nevent: TYPE\ndata: JSON\n\n" (docs/openapi.yaml, x-event-data). Bytes of the
// event's strings that are not UTF-8 come out as U+FFFD; `result` that is not JSON is a string.
// `detail` is what the type adds, built from the event's typed fields (group-updated: the
// record's counters; worker-online/-offline: the worker note; task-retried, -succeeded,
// -failed: retries and run time; task-queued after an explicit retry: retry_of; queue-purged:
// purged; results-expired: before_ms); left out when the type adds nothing.
std::string sse_frame(const proto::Event& e);
StreamEntry stream_entry(const proto::Event& e);

// "id: RESUME-1\nevent: gap\ndata: {...}\n\n": the events first_missing..resume_seq-1 are
// gone (`reason`: "retention" or "log-reset"); `snapshot_json` (a JSON object) is what to
// re-sync from. The id makes a reconnecting client resume at resume_seq.
std::string gap_frame(uint64_t first_missing, uint64_t resume_seq, std::string_view reason,
                      std::string_view snapshot_json);

}  // namespace zb::store
