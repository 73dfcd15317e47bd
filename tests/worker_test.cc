// The worker against a test that plays the router with a real ROUTER socket.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>
#include <unistd.h>

#include "common/wire.h"
#include "tests/support/harness.h"
#include "worker/worker.h"

namespace zb {
namespace {

using namespace std::chrono_literals;
using testing::wait_until;

class WorkerFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    endpoint_ = "inproc://router-" + Id::random().to_string();
    router_.emplace(ctx_, zmq::socket_type::router);
    wire::configure(*router_, zmq::socket_type::router);
    router_->bind(endpoint_);
  }
  void TearDown() override {
    if (worker_) {
      worker_->stop();
      worker_->stop();
      if (thread_.joinable()) thread_.join();
    }
  }
  void start(WorkerOptions o = {}, std::function<void(Worker&)> setup = {}) {
    o.router = endpoint_;
    o.heartbeat_ms = 100;
    o.reconnect_initial_ms = 50;
    if (!o.concurrency) o.concurrency = 2;
    auto w = Worker::create(o, &ctx_);
    ASSERT_TRUE(w) << w.status().to_string();
    worker_ = std::move(w.value());
    if (setup) setup(*worker_);
    thread_ = std::thread([this] { run_status_ = worker_->run(); });
  }
  // Receives the next message of type T (others are kept in `seen_`), polling with a deadline.
  template <typename T>
  std::optional<T> expect(std::chrono::milliseconds timeout = 5s) {
    std::optional<T> got;
    wait_until([&] {
      // Like a real router, keep the worker's liveness up unless the test wants silence.
      if (keepalive_ && !peer_.empty()) wire::send(*router_, proto::Heartbeat{0}, peer_);
      while (auto in = wire::recv(*router_, true)) {
        peer_ = in->routing_id;
        if (!in->message) continue;
        if (auto* m = std::get_if<T>(&*in->message)) {
          got = *m;
          return true;
        }
      }
      return false;
    }, timeout);
    return got;
  }
  void send(const proto::Message& m) { ASSERT_TRUE(wire::send(*router_, m, peer_)); }
  proto::Assignment task(std::string kind, std::string payload, uint32_t attempt = 1) {
    return {Id::random(), attempt, Id(), "ref", "default", std::move(kind), std::move(payload), 0, 0, "", ""};
  }
  std::vector<proto::Outcome> outcomes(size_t n) {
    std::vector<proto::Outcome> out;
    wait_until([&] {
      if (auto r = expect<proto::Results>(50ms)) out.insert(out.end(), r->outcomes.begin(), r->outcomes.end());
      return out.size() >= n;
    }, 5s);
    return out;
  }

  zmq::context_t ctx_;
  std::string endpoint_, peer_;
  bool keepalive_ = true;
  std::optional<zmq::socket_t> router_;
  std::unique_ptr<Worker> worker_;
  std::thread thread_;
  Status run_status_;
};

TEST_F(WorkerFixture, ReadyAnnouncesItself) {
  WorkerOptions o;
  o.queues = {"agent_tasks", "validation"};
  o.concurrency = 3;
  o.prefetch_multiplier = 2;
  o.name = "w1@here";
  start(o);
  auto ready = expect<proto::Ready>();
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->name, "w1@here");
  EXPECT_EQ(ready->queues, (std::vector<std::string>{"agent_tasks", "validation"}));
  EXPECT_EQ(ready->concurrency, 3u);
  EXPECT_EQ(ready->capacity, 6u);
  EXPECT_EQ(ready->pid, static_cast<uint32_t>(::getpid()));
  for (const char* k : {"noop", "echo", "sleep", "fail"})
    EXPECT_NE(std::find(ready->kinds.begin(), ready->kinds.end(), k), ready->kinds.end()) << k;
  EXPECT_FALSE(ready->session.is_nil());
}

TEST_F(WorkerFixture, RunsBuiltInKindsAndReportsOutcomes) {
  start({}, [](Worker& w) {
    w.register_handler("throws", [](const TaskContext&) -> HandlerResult { throw std::runtime_error("kaboom"); });
  });
  ASSERT_TRUE(expect<proto::Ready>());
  send(proto::Welcome{100, 3, {}});
  auto echo = task("echo", "{\"x\":1}"), noop = task("noop", "{}"), fail = task("fail", "{\"error\":\"nope\"}"),
       retry = task("fail", "{\"retry\":true}"), unknown = task("mystery", "{}"), thrower = task("throws", "{}"),
       bad_sleep = task("sleep", "{\"seconds\":\"x\"}");
  send(proto::Tasks{{echo, noop, fail, retry, unknown, thrower, bad_sleep}});
  auto got = outcomes(7);
  ASSERT_EQ(got.size(), 7u);
  auto find = [&](const proto::Assignment& a) {
    return *std::find_if(got.begin(), got.end(), [&](const proto::Outcome& o) { return o.task == a.task; });
  };
  EXPECT_EQ(find(echo).result, "{\"x\":1}");
  EXPECT_EQ(find(echo).status, proto::OutcomeStatus::kSucceeded);
  EXPECT_EQ(find(noop).result, "null");
  EXPECT_EQ(find(fail).status, proto::OutcomeStatus::kFailed);
  EXPECT_EQ(find(fail).error, "nope");
  EXPECT_EQ(find(retry).status, proto::OutcomeStatus::kRetry);
  EXPECT_EQ(find(unknown).status, proto::OutcomeStatus::kFailed);
  EXPECT_NE(find(unknown).error.find("no handler for kind 'mystery'"), std::string::npos);
  EXPECT_EQ(find(thrower).status, proto::OutcomeStatus::kFailed);
  EXPECT_NE(find(thrower).error.find("kaboom"), std::string::npos);
  EXPECT_EQ(find(bad_sleep).status, proto::OutcomeStatus::kFailed);
  // The worker keeps serving after all that.
  auto again = task("echo", "1");
  send(proto::Tasks{{again}});
  auto more = outcomes(1);
  ASSERT_EQ(more.size(), 1u);
  EXPECT_EQ(more[0].result, "1");
}

TEST_F(WorkerFixture, ResendsUnacknowledgedResultsAfterReconnect) {
  keepalive_ = false;
  start();
  ASSERT_TRUE(expect<proto::Ready>());
  send(proto::Welcome{100, 3, {}});
  auto t = task("echo", "\"kept\"");
  send(proto::Tasks{{t}});
  ASSERT_EQ(outcomes(1).size(), 1u);  // not acknowledged
  // We fall silent: the worker gives up on us, reconnects and re-claims the finished task.
  auto ready = expect<proto::Ready>(5s);
  ASSERT_TRUE(ready);
  ASSERT_EQ(ready->running.size(), 1u);
  EXPECT_EQ(ready->running[0].task, t.task);
  send(proto::Welcome{100, 3, {}});
  auto resent = outcomes(1);
  ASSERT_EQ(resent.size(), 1u);
  EXPECT_EQ(resent[0].task, t.task);
  EXPECT_EQ(resent[0].result, "\"kept\"");
  send(proto::ResultsAck{{{t.task, 1}}});
}

TEST_F(WorkerFixture, DisconnectMakesItSendReadyAgain) {
  start();
  auto first = expect<proto::Ready>();
  ASSERT_TRUE(first);
  send(proto::Disconnect{"who are you"});
  auto second = expect<proto::Ready>(2s);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->session, first->session);  // same process, same session
}

TEST_F(WorkerFixture, WarmStopReturnsQueuedTasksAndFinishesRunningOnes) {
  WorkerOptions o;
  o.concurrency = 1;
  start(o);
  ASSERT_TRUE(expect<proto::Ready>());
  send(proto::Welcome{100, 3, {}});
  auto running = task("sleep", "{\"seconds\":0.3}"), queued = task("noop", "{}");
  send(proto::Tasks{{running, queued}});
  // Let the first task start before asking for the stop.
  std::optional<proto::Heartbeat> beat;
  ASSERT_TRUE(wait_until([&] { beat = expect<proto::Heartbeat>(50ms); return beat && beat->busy == 1; }, 5s));
  worker_->stop();
  ASSERT_TRUE(expect<proto::Bye>());
  auto got = outcomes(2);
  ASSERT_EQ(got.size(), 2u);
  for (const auto& out : got) {
    if (out.task == queued.task) EXPECT_EQ(out.status, proto::OutcomeStatus::kReturned);
    else EXPECT_EQ(out.status, proto::OutcomeStatus::kSucceeded);
  }
  send(proto::ResultsAck{{{running.task, 1}, {queued.task, 1}}});
  thread_.join();
  EXPECT_TRUE(run_status_);
  worker_.reset();
}

// Work stealing from the holder's side: a recall hands back what waits for a slot, and
// leaves what already runs alone, so a recalled task that started meanwhile runs once.
TEST_F(WorkerFixture, RecallReturnsReservedTasksAndLetsAStartedOneRun) {
  WorkerOptions o;
  o.concurrency = 1;
  start(o);
  ASSERT_TRUE(expect<proto::Ready>());
  send(proto::Welcome{100, 3, {}});
  auto running = task("sleep", "{\"seconds\":0.3}"), reserved = task("echo", "\"later\""),
       stale = task("echo", "1", 2);
  send(proto::Tasks{{running, reserved}});
  auto started = expect<proto::Started>();
  ASSERT_TRUE(started);
  ASSERT_EQ(started->claims.size(), 1u);
  ASSERT_EQ(started->claims[0].task, running.task);
  // The running task, the reserved one, one for an attempt it does not hold, one it never had.
  send(proto::Recall{{{running.task, 1}, {reserved.task, 1}, {stale.task, 1}, {Id::random(), 1}}});
  auto got = outcomes(2);
  ASSERT_EQ(got.size(), 2u);
  for (const auto& out : got) {
    if (out.task == reserved.task) {
      EXPECT_EQ(out.status, proto::OutcomeStatus::kReturned);
      EXPECT_EQ(out.error, "recalled");
    } else {
      EXPECT_EQ(out.task, running.task);
      EXPECT_EQ(out.status, proto::OutcomeStatus::kSucceeded) << "a started task runs to its end";
    }
  }
  // The returned task is not run here afterwards: nothing else comes.
  send(proto::ResultsAck{{{running.task, 1}, {reserved.task, 1}}});
  EXPECT_FALSE(expect<proto::Results>(300ms));
}

// After a reconnect the router rejects a claim of a task it has given to another worker: a
// rejected task that is still reserved must not run here too.
TEST_F(WorkerFixture, ARejectedClaimOfAReservedTaskNeverRuns) {
  keepalive_ = false;
  WorkerOptions o;
  o.concurrency = 1;
  auto ran = std::make_shared<std::atomic<int>>(0);  // runs of the rejected task here
  start(o, [ran](Worker& w) {
    w.register_handler("count", [ran](const TaskContext&) {
      ran->fetch_add(1);
      return HandlerResult::ok("1");
    });
  });
  ASSERT_TRUE(expect<proto::Ready>());
  send(proto::Welcome{100, 3, {}});
  auto running = task("sleep", "{\"seconds\":1.5}"), reserved = task("count", "{}"),
       kept = task("echo", "\"kept\"");
  send(proto::Tasks{{running, reserved, kept}});
  ASSERT_TRUE(expect<proto::Started>());
  // We fall silent: the worker reconnects and claims all three; we reject the reserved one.
  auto ready = expect<proto::Ready>(5s);
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->running.size(), 3u);
  keepalive_ = true;
  send(proto::Welcome{100, 3, {{reserved.task, 1}}});
  auto got = outcomes(2);
  ASSERT_EQ(got.size(), 2u);
  for (const auto& out : got) {
    EXPECT_NE(out.task, reserved.task) << "a rejected reserved task ran";
    EXPECT_EQ(out.status, proto::OutcomeStatus::kSucceeded);
  }
  send(proto::ResultsAck{{{running.task, 1}, {kept.task, 1}}});
  EXPECT_FALSE(expect<proto::Results>(300ms));
  EXPECT_EQ(ran->load(), 0) << "the rejected reserved task ran on this worker";
}

// A router silent past a heartbeat and a half may be about to declare this worker lost and
// give its reserved tasks to another: none of them starts until the router speaks again.
TEST_F(WorkerFixture, AReservedTaskWaitsWhileTheRouterIsSilent) {
  WorkerOptions o;
  o.concurrency = 1;
  o.liveness = 20;  // silence of 2 s before a reconnect: this test stays on one connection
  auto ran = std::make_shared<std::atomic<int>>(0);
  start(o, [ran](Worker& w) {
    w.register_handler("count", [ran](const TaskContext&) {
      ran->fetch_add(1);
      return HandlerResult::ok("1");
    });
  });
  ASSERT_TRUE(expect<proto::Ready>());
  send(proto::Welcome{100, 20, {}});
  auto running = task("sleep", "{\"seconds\":0.5}"), reserved = task("count", "{}");
  send(proto::Tasks{{running, reserved}});
  ASSERT_TRUE(expect<proto::Started>());
  keepalive_ = false;  // silent from now on: 0.5 s later the slot frees, 0.35 s past the hold
  auto first = outcomes(1);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].task, running.task);
  EXPECT_FALSE(expect<proto::Results>(300ms)) << "a reserved task ran while the router was silent";
  EXPECT_EQ(ran->load(), 0);
  keepalive_ = true;  // the router speaks: the held task starts
  auto second = outcomes(1);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].task, reserved.task);
  EXPECT_EQ(ran->load(), 1);
}

TEST_F(WorkerFixture, WithoutAPrefetchMultiplierItAnnouncesTheAutomaticCap) {
  WorkerOptions o;
  o.concurrency = 3;
  start(o);
  auto ready = expect<proto::Ready>();
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->capacity, 3u * kAutoPrefetch);
}

TEST(WorkerOptions, InvalidOptionsHavePreciseMessages) {
  WorkerOptions o;
  o.prefetch_multiplier = 0;
  EXPECT_EQ(Worker::create(o).status().message(), "--prefetch-multiplier must be >= 1, got 0");
  o.prefetch_multiplier = 1;
  o.concurrency = 5000;
  EXPECT_EQ(Worker::create(o).status().message(), "-c must be between 1 and 1024, got 5000");
  o.concurrency = 1;
  o.heartbeat_ms = 1;
  EXPECT_EQ(Worker::create(o).status().message(), "--heartbeat-ms must be >= 10, got 1");
}

}  // namespace
}  // namespace zb
