// Eager mode (Celery's task_always_eager): a whole zbatch cluster inside this process, for
// unit tests of programs that submit tasks.
//
// An EagerCluster is a real router (its own LMDB in a fresh temporary folder, removed at the
// end; nosync, since nothing outlives the process) and a real worker with the built-in and
// the seed's kinds plus any handlers given, joined by inproc endpoints. Its clients are normal
// Clients (client/client.h) with ClientOptions::eager set: a submission returns once its
// tasks have run — ended, or waiting for their ETA or a retry's backoff, which the router
// keeps and runs when due, as deployed. So a submission takes exactly the deployed code paths:
// the same queue table and default kinds, retries and their backoff, time and rate limits,
// and the same errors (an unknown queue is refused at submission, an unknown kind fails on the
// worker). What differs from a deployment is only where the parts run.
//
// The `zbatch` client commands use one when ZBATCH_ALWAYS_EAGER=1 (1, true or yes).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "client/client.h"
#include "common/status.h"
#include "router/router.h"
#include "worker/worker.h"

namespace zb {

struct EagerOptions {
  std::vector<QueueConfig> queues = default_queue_configs();
  uint32_t concurrency = 0;  // worker slots; 0 → number of CPUs, as a deployed worker
  std::vector<ProcessHandlerConfig> process_handlers;
  SeedKindsConfig kinds;
  // Kinds added to (or replacing) the worker's own, as Worker::register_handler.
  std::vector<std::pair<std::string, Handler>> handlers;
};

// True when ZBATCH_ALWAYS_EAGER asks for eager mode (1, true or yes, any case).
bool eager_from_environment();

class EagerCluster {
 public:
  static Result<std::unique_ptr<EagerCluster>> start(EagerOptions options = {});
  // Stops the worker (tasks still waiting for an ETA are dropped with the cluster) and the
  // router, and removes the data folder.
  ~EagerCluster();

  // A new client of this cluster (one per thread, as any Client).
  Result<std::unique_ptr<Client>> client(std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));

 private:
  struct Impl;
  explicit EagerCluster(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace zb
