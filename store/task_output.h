// Live output of running tasks (docs/STREAMING.md), internal to store/: the follower adds what
// the router forwards (proto::Output on the events PUB), GET /api/v1/tasks/{id}/stream serves
// it as Server-Sent Events.
//
// Held in memory only, bounded: per task the newest kTaskBytes, at most kTasks tasks and
// kTotalBytes in all, the tasks written to least recently forgotten first. Each chunk gets a
// position per task (1, 2, ...), the `id:` of its frame, so a reader resumes with
// Last-Event-ID; the chunk's own (attempt, seq) say whether the worker's numbering jumped
// (output lost on the way, which live output may be).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/protocol.h"

namespace zb::store {

class OutputHub {
 public:
  static constexpr size_t kTaskBytes = 256u << 10;
  static constexpr size_t kTotalBytes = 32u << 20;
  static constexpr size_t kTasks = 4096;

  struct Chunk {
    uint64_t pos = 0;  // per task, from 1
    uint32_t attempt = 0, seq = 0;
    uint8_t type = 0;
    std::string text;
    uint64_t ts_ms = 0;
  };

  void add(std::vector<proto::OutputChunk> chunks);
  // The task's chunks after position `after`, at most about `max_bytes` of text (at least one).
  // `oldest`: the first position still held (0: none held); a reader behind it lost output.
  std::vector<Chunk> since(const Id& task, uint64_t after, size_t max_bytes, uint64_t* oldest) const;
  // Waits until the task has a chunk after `after`, or `timeout` passes.
  bool wait(const Id& task, uint64_t after, std::chrono::milliseconds timeout) const;
  size_t bytes() const;
  size_t tasks() const;

 private:
  struct Log {
    std::deque<Chunk> chunks;
    uint64_t last_pos = 0;
    size_t bytes = 0;
    std::list<Id>::iterator lru;
  };
  void forget_oldest_locked();

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::unordered_map<Id, Log, IdHash> logs_;
  std::list<Id> lru_;  // most recently written first
  size_t bytes_ = 0;
};

// The Server-Sent Events frame of one chunk: "id: POS\nevent: output\ndata: {...}\n\n".
std::string output_frame(const Id& task, const OutputHub::Chunk& c);

}  // namespace zb::store
