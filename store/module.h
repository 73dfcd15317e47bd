// The store's entry points in the HTTP module (libzbatch_http.so, common/http_module.h): what
// the zbatch binary calls, through cli/store_stub.cc, to create, run, stop and destroy a Store
// whose code (and cpp-httplib and OpenSSL with it) it does not link. A store is an opaque
// pointer on this side; a Status comes back through an out-parameter.
#pragma once

#include <zmq.hpp>

#include "common/status.h"
#include "store/store.h"

extern "C" {
using zbatch_store_create_fn = void (*)(const zb::StoreOptions* options, zmq::context_t* context, void** store,
                                        zb::Status* status);
using zbatch_store_run_fn = void (*)(void* store, zb::Status* status);
using zbatch_store_stop_fn = void (*)(void* store);  // thread-safe and async-signal-safe, as Store::stop
using zbatch_store_destroy_fn = void (*)(void* store);
}
