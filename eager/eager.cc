#include "eager/eager.h"

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include <zmq.hpp>

#include "common/id.h"
#include "common/log.h"

namespace zb {

bool eager_from_environment() {
  const char* v = std::getenv("ZBATCH_ALWAYS_EAGER");
  if (!v) return false;
  std::string s(v);
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s == "1" || s == "true" || s == "yes";
}

struct EagerCluster::Impl {
  zmq::context_t context{1};
  std::string data_dir;
  std::string frontend, backend, events;
  std::unique_ptr<Router> router;
  std::unique_ptr<Worker> worker;
  std::thread router_thread, worker_thread;

  ~Impl() {
    if (worker) {
      worker->stop();
      if (worker_thread.joinable()) worker_thread.join();
    }
    if (router) {
      router->stop();
      if (router_thread.joinable()) router_thread.join();
    }
    worker.reset();
    router.reset();
    if (!data_dir.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(data_dir, ec);
    }
  }
};

EagerCluster::EagerCluster(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EagerCluster::~EagerCluster() = default;

Result<std::unique_ptr<EagerCluster>> EagerCluster::start(EagerOptions options) {
  auto impl = std::make_unique<Impl>();
  std::string pattern = (std::filesystem::temp_directory_path() / "zbatch-eager-XXXXXX").string();
  if (!::mkdtemp(pattern.data())) return Status(Code::kIo, "cannot create a folder for the eager router's data");
  impl->data_dir = pattern;
  const std::string name = "inproc://zbatch-eager-" + Id::random().to_string();
  impl->frontend = name + "-frontend";
  impl->backend = name + "-backend";
  impl->events = name + "-events";

  RouterOptions ro;
  ro.data_dir = impl->data_dir;
  ro.frontend = impl->frontend;
  ro.backend = impl->backend;
  ro.events = impl->events;
  ro.fsync = false;
  ro.max_map_bytes = 4ull << 30;
  ro.queues = std::move(options.queues);
  auto router = Router::create(std::move(ro), &impl->context);
  if (!router) return router.status();
  impl->router = std::move(router.value());

  WorkerOptions wo;
  wo.router = impl->backend;
  wo.concurrency = options.concurrency;
  wo.name = "eager@" + std::to_string(::getpid());
  wo.shutdown_timeout_ms = 1000;
  wo.process_handlers = std::move(options.process_handlers);
  wo.kinds = std::move(options.kinds);
  auto worker = Worker::create(std::move(wo), &impl->context);
  if (!worker) return worker.status();
  impl->worker = std::move(worker.value());
  for (auto& [kind, handler] : options.handlers) impl->worker->register_handler(kind, std::move(handler));

  Impl* p = impl.get();
  impl->router_thread = std::thread([p] {
    if (Status s = p->router->run(); !s) spdlog::error("eager router stopped reason=\"{}\"", s.message());
  });
  impl->worker_thread = std::thread([p] {
    if (Status s = p->worker->run(); !s) spdlog::error("eager worker stopped reason=\"{}\"", s.message());
  });
  return std::unique_ptr<EagerCluster>(new EagerCluster(std::move(impl)));
}

Result<std::unique_ptr<Client>> EagerCluster::client(std::chrono::milliseconds timeout) {
  ClientOptions o;
  o.router = impl_->frontend;
  o.timeout = timeout;
  o.eager = true;
  return Client::connect(o, &impl_->context);
}

}  // namespace zb
