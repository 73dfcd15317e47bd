// The store's public functions (store/store.h) as the zbatch binary has them: each forwards to
// the store inside the HTTP module (common/http_module.h, store/module.h), loaded by the first
// Store::create. The binary does not link the store's library, so only `zbatch store` and
// `zbatch up` map cpp-httplib and OpenSSL. The module keeps its own definition of Store; the two
// never meet, since the module exports only its extern "C" entry points.
#include "common/http_module.h"
#include "store/module.h"
#include "store/store.h"

namespace zb {

struct Store::Impl {
  void* store = nullptr;  // the module's Store
  zbatch_store_run_fn run = nullptr;
  zbatch_store_stop_fn stop = nullptr;
  zbatch_store_destroy_fn destroy = nullptr;
};

namespace {

template <typename Fn>
Result<Fn> entry(const char* name) {
  auto address = http_module_symbol(name);
  if (!address) return address.status();
  return reinterpret_cast<Fn>(*address);
}

}  // namespace

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Store::~Store() {
  if (impl_ && impl_->store) impl_->destroy(impl_->store);
}

Result<std::unique_ptr<Store>> Store::create(StoreOptions options, zmq::context_t* context) {
  auto create = entry<zbatch_store_create_fn>("zbatch_store_create");
  if (!create) return create.status();
  auto impl = std::make_unique<Impl>();
  auto run = entry<zbatch_store_run_fn>("zbatch_store_run");
  auto stop = entry<zbatch_store_stop_fn>("zbatch_store_stop");
  auto destroy = entry<zbatch_store_destroy_fn>("zbatch_store_destroy");
  if (!run) return run.status();
  if (!stop) return stop.status();
  if (!destroy) return destroy.status();
  impl->run = *run;
  impl->stop = *stop;
  impl->destroy = *destroy;
  Status status;
  (*create)(&options, context, &impl->store, &status);
  if (!status) return status;
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

Status Store::run() {
  Status status;
  impl_->run(impl_->store, &status);
  return status;
}

void Store::stop() { impl_->stop(impl_->store); }

}  // namespace zb
