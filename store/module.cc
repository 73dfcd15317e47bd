// The store's entry points of the HTTP module (store/module.h).
#include "store/module.h"

extern "C" {

__attribute__((visibility("default"))) void zbatch_store_create(const zb::StoreOptions* options,
                                                                zmq::context_t* context, void** store,
                                                                zb::Status* status) {
  auto created = zb::Store::create(*options, context);
  if (!created) {
    *status = created.status();
    *store = nullptr;
    return;
  }
  *status = zb::Status::ok();
  *store = created->release();
}

__attribute__((visibility("default"))) void zbatch_store_run(void* store, zb::Status* status) {
  *status = static_cast<zb::Store*>(store)->run();
}

__attribute__((visibility("default"))) void zbatch_store_stop(void* store) { static_cast<zb::Store*>(store)->stop(); }

__attribute__((visibility("default"))) void zbatch_store_destroy(void* store) { delete static_cast<zb::Store*>(store); }
}
