// Events from fuzz bytes, for the targets that take router events (sse_query,
// status_db_apply) and for the corpus generator that writes them. One event is:
//
//   u8 type, u8 state             raw bytes: values outside the enums are kept (hostile input)
//   u8 ids                        bits 0-2: task (0 = nil, else one of 7 fixed ids), bits 3-5:
//                                 group (the same), bit 7: the event starts a new batch
//   varint seq step               seq = previous seq + step (0 repeats a seq, huge ones jump)
//   varint ts_ms, varint attempt, u8 priority
//   str queue, kind, ref, worker, payload, result, error, detail   (u8 length, bytes)
#pragma once

#include <vector>

#include "common/protocol.h"
#include "tests/fuzz/fuzz.h"

namespace zb::fuzz {

// One of the fixed ids (1..7), or nil (0).
inline Id pool_id(unsigned index, uint8_t salt) {
  if (index == 0) return Id();
  std::string raw(Id::kSize, '\0');
  raw[0] = static_cast<char>(salt);
  raw[15] = static_cast<char>(index);
  return *Id::from_bytes(raw);
}

struct FuzzEvent {
  proto::Event event;
  bool new_batch = false;
};

inline FuzzEvent read_event(Reader& in, uint64_t& seq) {
  FuzzEvent out;
  proto::Event& e = out.event;
  e.type = static_cast<proto::EventType>(in.u8());
  e.state = static_cast<TaskState>(in.u8());
  const uint8_t ids = in.u8();
  e.task = pool_id(ids & 7, 0x7a);
  e.group = pool_id((ids >> 3) & 7, 0x67);
  out.new_batch = ids & 0x80;
  seq += in.varint();
  e.seq = seq;
  e.ts_ms = in.varint();
  e.attempt = static_cast<uint32_t>(in.varint());
  e.priority = in.u8();
  e.queue = in.str();
  e.kind = in.str();
  e.ref = in.str();
  e.worker = in.str();
  e.payload = in.str();
  e.result = in.str();
  e.error = in.str();
  e.unused_detail = in.str();
  return out;
}

// What the generator writes for one event.
struct EventSpec {
  proto::EventType type = proto::EventType::kTaskReceived;
  TaskState state = TaskState::kQueued;
  unsigned task = 0, group = 0;  // pool indexes, 0 = nil
  bool new_batch = false;
  uint64_t seq_step = 1, ts_ms = 0, attempt = 0;
  uint8_t priority = 5;
  std::string queue, kind, ref, worker, payload, result, error, detail;
};

inline void write_event(Writer& w, const EventSpec& e) {
  w.u8(static_cast<uint8_t>(e.type)).u8(static_cast<uint8_t>(e.state));
  w.u8(static_cast<uint8_t>((e.task & 7) | (e.group & 7) << 3 | (e.new_batch ? 0x80 : 0)));
  w.varint(e.seq_step).varint(e.ts_ms).varint(e.attempt).u8(e.priority);
  for (const std::string* s : {&e.queue, &e.kind, &e.ref, &e.worker, &e.payload, &e.result, &e.error, &e.detail}) w.str(*s);
}

}  // namespace zb::fuzz
