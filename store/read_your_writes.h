// Reading what a submission made a moment ago (internal to store/). The router acknowledges a
// submission before the store has applied its events, so a caller that reads its task or group
// right after submitting it may find nothing here yet. These reads then let the store catch up
// with the router's log first, and answer the router's own record only when the store is too
// far behind, so that a read never shows an older state than one shown before it.
#pragma once

#include "common/id.h"
#include "common/status.h"
#include "store/http_api.h"
#include "store/status_db.h"

namespace zb::store {

// Lets the store apply the router's log up to its head as of now (for at most 2 s); true when
// it did. What the store answers afterwards is then at least as new as what the router knew.
bool catch_up(const Api& api);

// The task: the store's, else after catching up, else the router's record (its 404 for a
// task it does not know).
Result<TaskStatus> read_task(const Api& api, const Id& id);

// The group's counters: the store's, else after catching up, else the router's record marked
// unsealed (the store cannot list its results yet, so it is not ready for the caller).
Result<GroupStatus> read_group(const Api& api, const Id& id);

}  // namespace zb::store
