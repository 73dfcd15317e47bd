// A cluster of real `zbatch` processes on free ports for end-to-end tests.
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "client/client.h"
#include "common/control_json.h"
#include "tests/support/harness.h"

namespace zb::testing {

class Cluster {
 public:
  Cluster() : frontend_(tcp_endpoint(free_port())), backend_(tcp_endpoint(free_port())),
              events_(tcp_endpoint(free_port())) {}

  const std::string& frontend() const { return frontend_; }
  const std::string& backend() const { return backend_; }
  const std::string& events_endpoint() const { return events_; }
  std::string data() const { return dir_.str() + "/router"; }
  std::string dir() const { return dir_.str(); }
  // Writes a file in the cluster's folder and returns its path.
  std::string write_file(const std::string& name, const std::string& text) const {
    std::string path = dir_.str() + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

  Process& start_router(std::vector<std::string> extra = {}, std::map<std::string, std::string> env = {}) {
    std::vector<std::string> argv = {ZBATCH_BINARY, "router", "--data", data(), "--frontend", frontend_,
                                     "--backend", backend_, "--events", events_, "--heartbeat-ms", "200",
                                     "--reclaim-grace-ms", "3000"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    router_ = std::make_unique<Process>(argv, std::move(env), dir_.str() + "/router.log");
    return *router_;
  }

  Process& start_worker(int concurrency = 2, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {ZBATCH_BINARY, "worker", "--router", backend_, "-c",
                                     std::to_string(concurrency), "--heartbeat-ms", "200",
                                     "--hostname", "w" + std::to_string(workers_.size() + 1) + "@test"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    workers_.push_back(std::make_unique<Process>(
        argv, std::map<std::string, std::string>{},
        dir_.str() + "/worker" + std::to_string(workers_.size() + 1) + ".log"));
    return *workers_.back();
  }

  Process& router() { return *router_; }
  Process& worker(size_t i) { return *workers_.at(i); }

  std::unique_ptr<Client> client(std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
    ClientOptions o;
    o.router = frontend_;
    o.timeout = timeout;
    auto c = Client::connect(o);
    EXPECT_TRUE(c) << c.status().to_string();
    return std::move(c.value());
  }

  // Waits until the router answers ping with `workers` workers online.
  bool ready(size_t workers, std::chrono::milliseconds timeout = std::chrono::milliseconds(10000)) {
    auto c = client(std::chrono::milliseconds(300));
    return wait_until([&] {
      auto r = c->ping();
      return r && r->workers == workers;
    }, timeout);
  }

  // inspect.stats in its JSON view (common/control_json.h).
  nlohmann::json stats() {
    auto r = client()->inspect_stats();
    EXPECT_TRUE(r) << r.status().to_string();
    return r ? control_json(proto::ControlResult(*r)) : nlohmann::json::object();
  }

  std::string logs() {
    std::string out = router_ ? "--- router\n" + router_->log() : "";
    for (size_t i = 0; i < workers_.size(); ++i) out += "--- worker " + std::to_string(i + 1) + "\n" + workers_[i]->log();
    return out;
  }

 private:
  TempDir dir_;
  std::string frontend_, backend_, events_;
  std::unique_ptr<Process> router_;
  std::vector<std::unique_ptr<Process>> workers_;
};

// Waits for every task to end; fails the test on timeout.
inline std::vector<proto::TaskRecord> finish(Client& client, const std::vector<Id>& ids, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<proto::TaskRecord> out;
  while (std::chrono::steady_clock::now() < deadline) {
    auto got = client.wait(ids, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()));
    if (!got) continue;
    out = std::move(*got);
    if (std::all_of(out.begin(), out.end(), [](const auto& r) { return is_terminal(r.state); })) return out;
  }
  ADD_FAILURE() << "tasks did not finish within " << timeout.count() << " ms";
  return out;
}

inline proto::TaskRecord finish_one(Client& client, const Id& id, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  auto all = finish(client, {id}, timeout);
  return all.empty() ? proto::TaskRecord{} : all[0];
}

inline proto::TaskSpec task(std::string kind, std::string payload, std::string queue = "default") {
  proto::TaskSpec t;
  t.kind = std::move(kind);
  t.payload = std::move(payload);
  t.queue = std::move(queue);
  return t;
}

}  // namespace zb::testing
