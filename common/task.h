// The task's life cycle and the queues every deployment starts with.
//
//   scheduled ──► queued ──► started ──► succeeded
//       │           ▲  │        │  ├──► failed ──(explicit retry)──► queued
//       │           │  │        │  └──► retrying ──► queued
//       │           └──┼────────┘ (worker lost or task returned: requeued, attempt + 1)
//       └───────────►  └──────────► revoked ──(explicit retry)──► queued
//
//   waiting ──► queued | scheduled   (its dependencies ended as its trigger asks)
//      └──────► failed               (a dependency failed: DependencyFailed)
//      └──────► revoked              (revoked, or its trigger was not met: skipped)
//
// A result for an older attempt may still end a task that was requeued but not yet
// re-dispatched (queued → succeeded, failed or retrying), which saves a second run. The
// router changes a task's state only through Core::transition (router/core.h), which refuses
// any pair this table does not allow.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace zb {

enum class TaskState : uint8_t {
  kScheduled = 0,  // waiting for its ETA
  kQueued = 1,     // ready to run, in its queue
  kStarted = 2,    // leased to a worker
  kRetrying = 3,   // failed an attempt, waiting for its backoff
  kSucceeded = 4,
  kFailed = 5,
  kRevoked = 6,
  kWaiting = 7,    // waiting for the tasks or the group it depends on (docs/WORKFLOWS.md)
};
inline constexpr int kTaskStateCount = 8;

// True when `to` may follow `from`. The one place the life cycle above is written down.
bool can_transition(TaskState from, TaskState to);
bool is_terminal(TaskState state);
// "queued", "succeeded", ...
std::string_view state_name(TaskState state);
std::optional<TaskState> parse_state(std::string_view name);
// From a wire byte; nullopt for values outside the enum.
std::optional<TaskState> state_from_byte(uint8_t b);

struct QueueDefault {
  std::string_view name;
  uint8_t priority;
};

// The seed's queues and priorities (higher runs first).
inline constexpr std::array<QueueDefault, 7> kDefaultQueues{{
    {"high_priority", 10},
    {"agent_tasks", 7},
    {"validation", 6},
    {"tests", 6},
    {"default", 5},
    {"mcp_operations", 5},
    {"low_priority", 1},
}};
inline constexpr std::string_view kDefaultQueue = "default";
inline constexpr uint8_t kMaxPriority = 255;

}  // namespace zb
