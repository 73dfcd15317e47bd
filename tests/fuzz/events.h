// Events from fuzz bytes, for the targets that take router events (sse_query,
// status_db_apply) and for the corpus generator that writes them. One event is:
//
//   u8 type, u8 state             raw bytes: values outside the enums are kept (hostile input)
//   u8 ids                        bits 0-2: task (0 = nil, else one of 7 fixed ids), bits 3-5:
//                                 group (the same), bit 7: the event starts a new batch
//   varint seq step               seq = previous seq + step (0 repeats a seq, huge ones jump)
//   varint ts_ms, varint attempt, u8 priority
//   str queue, kind, ref, worker, payload, result, error   (u8 length, bytes)
//   u8 from                       raw byte, like state
//   varint retries, max_retries, delay_ms, runtime_us, count, before_ms
//   u8 parts                      bit 0: a worker note follows, bits 1-2: 0-3 group records
//   worker note: str hostname, reason, varint pid, concurrency, capacity
//   group record: u8 id (a pool index, as above: it may name another group than the event's),
//                 varint total, succeeded, failed, revoked, running, parallel, created_ms,
//                 finished_ms, u8 sealed
#pragma once

#include <algorithm>
#include <optional>
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
  e.from = static_cast<TaskState>(in.u8());
  e.retries = static_cast<uint32_t>(in.varint());
  e.max_retries = static_cast<uint32_t>(in.varint());
  e.delay_ms = in.varint();
  e.runtime_us = in.varint();
  e.count = in.varint();
  e.before_ms = in.varint();
  const uint8_t parts = in.u8();
  if (parts & 1) {
    proto::WorkerNote& w = e.worker_note.emplace_back();
    w.hostname = in.str();
    w.reason = in.str();
    w.pid = static_cast<uint32_t>(in.varint());
    w.concurrency = static_cast<uint32_t>(in.varint());
    w.capacity = static_cast<uint32_t>(in.varint());
  }
  for (int i = 0; i < (parts >> 1 & 3); ++i) {
    proto::GroupRecord& g = e.group_record.emplace_back();
    g.id = pool_id(in.u8() & 7, 0x67);
    for (uint32_t* n : {&g.total, &g.succeeded, &g.failed, &g.revoked, &g.running, &g.parallel})
      *n = static_cast<uint32_t>(in.varint());
    g.created_ms = in.varint();
    g.finished_ms = in.varint();
    g.sealed = in.u8() & 1;
  }
  return out;
}

// A group record as the generator writes it; `group` is a pool index.
struct RecordSpec {
  unsigned group = 0;
  uint32_t total = 0, succeeded = 0, failed = 0, revoked = 0, running = 0, parallel = 0;
  uint64_t created_ms = 0, finished_ms = 0;
  bool sealed = true;
};

// What the generator writes for one event.
struct EventSpec {
  proto::EventType type = proto::EventType::kTaskReceived;
  TaskState state = TaskState::kQueued;
  unsigned task = 0, group = 0;  // pool indexes, 0 = nil
  bool new_batch = false;
  uint64_t seq_step = 1, ts_ms = 0, attempt = 0;
  uint8_t priority = 5;
  std::string queue, kind, ref, worker, payload, result, error;
  TaskState from = TaskState::kQueued;
  uint64_t retries = 0, max_retries = 0, delay_ms = 0, runtime_us = 0, count = 0, before_ms = 0;
  std::optional<proto::WorkerNote> worker_note;
  std::vector<RecordSpec> records;  // at most 3
};

inline void write_event(Writer& w, const EventSpec& e) {
  w.u8(static_cast<uint8_t>(e.type)).u8(static_cast<uint8_t>(e.state));
  w.u8(static_cast<uint8_t>((e.task & 7) | (e.group & 7) << 3 | (e.new_batch ? 0x80 : 0)));
  w.varint(e.seq_step).varint(e.ts_ms).varint(e.attempt).u8(e.priority);
  for (const std::string* s : {&e.queue, &e.kind, &e.ref, &e.worker, &e.payload, &e.result, &e.error}) w.str(*s);
  w.u8(static_cast<uint8_t>(e.from));
  for (uint64_t n : {e.retries, e.max_retries, e.delay_ms, e.runtime_us, e.count, e.before_ms}) w.varint(n);
  const size_t records = std::min<size_t>(e.records.size(), 3);
  w.u8(static_cast<uint8_t>((e.worker_note ? 1 : 0) | records << 1));
  if (e.worker_note) {
    w.str(e.worker_note->hostname).str(e.worker_note->reason);
    w.varint(e.worker_note->pid).varint(e.worker_note->concurrency).varint(e.worker_note->capacity);
  }
  for (size_t i = 0; i < records; ++i) {
    const RecordSpec& g = e.records[i];
    w.u8(static_cast<uint8_t>(g.group & 7));
    for (uint64_t n : {uint64_t{g.total}, uint64_t{g.succeeded}, uint64_t{g.failed}, uint64_t{g.revoked},
                       uint64_t{g.running}, uint64_t{g.parallel}, g.created_ms, g.finished_ms})
      w.varint(n);
    w.u8(g.sealed ? 1 : 0);
  }
}

}  // namespace zb::fuzz
