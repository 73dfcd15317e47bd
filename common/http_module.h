// The zbatch binary's HTTP side, a module of its own (libzbatch_http.so): the store's HTTP
// server and the agent kind's HTTP client, with cpp-httplib and OpenSSL behind them. It is
// loaded on first use, so that a process that never speaks HTTP (the router, a worker without
// agent tasks, the client commands) does not map those libraries (docs/ARCHITECTURE.md).
//
// Contracts:
// - The module is looked for next to the running executable (/proc/self/exe), then in
//   ../lib/zbatch/ beside it, then where the build tree put it; the first found is loaded once
//   and stays loaded. Thread-safe.
// - The entry points it exports are extern "C" functions; each caller casts the address to the
//   type its header declares (store/module.h, worker/kinds/http_exchange.h).
#pragma once

#include "common/status.h"

namespace zb {

// The address of one of the module's entry points, or why the module or the symbol was not
// found (every path tried, and the loader's reason).
Result<void*> http_module_symbol(const char* name);

}  // namespace zb
