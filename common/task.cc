#include "common/task.h"

namespace zb {

bool can_transition(TaskState from, TaskState to) {
  using S = TaskState;
  switch (from) {
    case S::kScheduled:
      return to == S::kQueued || to == S::kRevoked;
    case S::kQueued:  // a late result of a requeued task ends it (or retries it) from here
      return to == S::kStarted || to == S::kRevoked || to == S::kSucceeded || to == S::kFailed ||
             to == S::kRetrying;
    case S::kStarted:
      return to == S::kSucceeded || to == S::kFailed || to == S::kRetrying || to == S::kQueued ||
             to == S::kRevoked;
    case S::kRetrying:
      return to == S::kQueued || to == S::kRevoked;
    case S::kFailed:
    case S::kRevoked:
      return to == S::kQueued || to == S::kWaiting;  // an explicit retry (waiting: it has dependencies)
    case S::kSucceeded:
      return false;
    case S::kWaiting:
      return to == S::kQueued || to == S::kScheduled || to == S::kFailed || to == S::kRevoked;
  }
  return false;
}

bool is_terminal(TaskState state) {
  return state == TaskState::kSucceeded || state == TaskState::kFailed ||
         state == TaskState::kRevoked;
}

std::string_view state_name(TaskState state) {
  switch (state) {
    case TaskState::kScheduled: return "scheduled";
    case TaskState::kQueued: return "queued";
    case TaskState::kStarted: return "started";
    case TaskState::kRetrying: return "retrying";
    case TaskState::kSucceeded: return "succeeded";
    case TaskState::kFailed: return "failed";
    case TaskState::kRevoked: return "revoked";
    case TaskState::kWaiting: return "waiting";
  }
  return "unknown";
}

std::optional<TaskState> state_from_byte(uint8_t b) {
  if (b >= kTaskStateCount) return std::nullopt;
  return static_cast<TaskState>(b);
}

std::optional<TaskState> parse_state(std::string_view name) {
  for (int i = 0; i < kTaskStateCount; ++i) {
    auto s = static_cast<TaskState>(i);
    if (state_name(s) == name) return s;
  }
  return std::nullopt;
}

}  // namespace zb
