#include "store/store.h"

namespace zb {

struct Store::Impl {};

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

Result<std::unique_ptr<Store>> Store::create(StoreOptions, zmq::context_t*) {
  return Status(Code::kUnavailable, "the status store is not built in this version");
}

Status Store::run() { return Status(Code::kUnavailable, "the status store is not built in this version"); }
void Store::stop() {}

}  // namespace zb
