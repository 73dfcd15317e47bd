// The built-in task kinds every worker has: noop, echo, sleep, fail (internal to worker/).
#pragma once

#include "worker/slots.h"

namespace zb::worker {

void add_builtin_handlers(Slots::Handlers& handlers);

}  // namespace zb::worker
