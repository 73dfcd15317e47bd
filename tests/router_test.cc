// The router in-process over real sockets: the test plays clients (the client library) and
// workers (a raw DEALER speaking the protocol).
#include <gtest/gtest.h>

#include <thread>


#include "client/client.h"
#include "common/clock.h"
#include "common/wire.h"
#include "router/ready_queue.h"
#include "router/router.h"
#include "router/router_impl.h"
#include "tests/support/harness.h"

namespace zb {
namespace {

using namespace std::chrono_literals;
using testing::TempDir;
using testing::wait_until;

std::string packed(const proto::TaskRecord& rec) {
  msgpack::sbuffer b;
  msgpack::pack(b, rec);
  return std::string(b.data(), b.size());
}

proto::TaskRecord sample_record(size_t text, uint64_t big) {
  proto::TaskRecord r;
  r.id = Id::random();
  r.group = big % 2 ? Id::random() : Id();
  r.ref = std::string(text % 40, 'r');
  r.queue = "default";
  r.kind = "exec";
  r.payload = std::string(text, 'p');
  r.priority = static_cast<uint8_t>(big);
  r.state = static_cast<TaskState>(big % kTaskStateCount);
  r.attempt = static_cast<uint32_t>(big);
  r.max_retries = static_cast<uint32_t>(big >> 1);
  r.seq = big;
  r.created_ms = big ^ 0x5555;
  r.eta_ms = big / 3;
  r.started_ms = big / 5;
  r.finished_ms = big / 7;
  r.worker = std::string(text % 300, 'w');
  r.result = std::string(text / 2, 'x');
  r.error = text % 3 ? std::string() : "ValueError: " + std::string(text % 70000, 'e');
  r.retries = static_cast<uint32_t>(big % 11);
  r.soft_limit_ms = static_cast<uint32_t>(big);
  r.hard_limit_ms = static_cast<uint32_t>(big >> 3);
  r.trace = text % 2 ? "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" : "";
  r.unique_key = std::string(text % 257, 'u');
  if (text % 2) r.deps = proto::pack_dependencies({{Id::random(), Id::random()}, Id::random(), 2, 1, 1});
  r.inputs = std::string(text / 3, 'i');
  return r;
}

TEST(TaskRecordCodec, DirectReaderAgreesWithMsgpackAtEveryWidthOfEveryField) {
  for (size_t text : {0, 1, 31, 32, 255, 256, 65535, 65536, 70000})
    for (uint64_t big : {0ull, 1ull, 127ull, 128ull, 255ull, 256ull, 65535ull, 65536ull, 4294967295ull,
                         4294967296ull, 18446744073709551615ull}) {
      const proto::TaskRecord rec = sample_record(text, big);
      auto back = router::decode_task_record(packed(rec));
      ASSERT_TRUE(back) << back.status().to_string();
      EXPECT_EQ(packed(*back), packed(rec)) << "text=" << text << " big=" << big;
    }
}

// A record packed field by field: `fields` of them (an older layout is shorter), the state as
// any byte, the payload as bin or str.
std::string pack_fields(const proto::TaskRecord& r, uint32_t fields, uint8_t state, bool payload_bin) {
  msgpack::sbuffer b;
  msgpack::packer<msgpack::sbuffer> pk(b);
  pk.pack_array(fields);
  pk.pack(r.id), pk.pack(r.group), pk.pack(r.ref), pk.pack(r.queue), pk.pack(r.kind);
  if (payload_bin) {
    pk.pack_bin(static_cast<uint32_t>(r.payload.size()));
    pk.pack_bin_body(r.payload.data(), static_cast<uint32_t>(r.payload.size()));
  } else {
    pk.pack(r.payload);
  }
  pk.pack(r.priority), pk.pack_uint8(state), pk.pack(r.attempt), pk.pack(r.max_retries), pk.pack(r.seq);
  pk.pack(r.created_ms), pk.pack(r.eta_ms), pk.pack(r.started_ms), pk.pack(r.finished_ms);
  pk.pack(r.worker), pk.pack(r.result), pk.pack(r.error), pk.pack(r.retries), pk.pack(r.soft_limit_ms);
  if (fields > 20) pk.pack(r.hard_limit_ms);
  if (fields > 21) pk.pack(r.trace);
  if (fields > 22) pk.pack(r.unique_key);
  if (fields > 23) pk.pack(r.deps), pk.pack(r.inputs);
  return std::string(b.data(), b.size());
}

TEST(TaskRecordCodec, OtherLayoutsAreReadByTheGenericConversion) {
  const proto::TaskRecord rec = sample_record(100, 300);
  ASSERT_EQ(pack_fields(rec, 25, static_cast<uint8_t>(rec.state), false), packed(rec)) << "the helper packs as the record does";
  // The layout before dependencies: read directly, deps and inputs empty.
  auto no_deps = router::decode_task_record(pack_fields(rec, 23, static_cast<uint8_t>(rec.state), false));
  ASSERT_TRUE(no_deps) << no_deps.status().to_string();
  EXPECT_EQ(no_deps->unique_key, rec.unique_key);
  EXPECT_TRUE(no_deps->deps.empty());
  EXPECT_TRUE(no_deps->inputs.empty());
  // An older record: one field shorter (no hard limit yet), its payload as bin.
  auto back = router::decode_task_record(pack_fields(rec, 20, static_cast<uint8_t>(rec.state), true));
  ASSERT_TRUE(back) << back.status().to_string();
  EXPECT_EQ(back->id, rec.id);
  EXPECT_EQ(back->payload, rec.payload);
  EXPECT_EQ(back->soft_limit_ms, rec.soft_limit_ms);
  EXPECT_EQ(back->hard_limit_ms, 0u);
  // The layout before trace contexts and unique keys.
  auto before = router::decode_task_record(pack_fields(rec, 21, static_cast<uint8_t>(rec.state), false));
  ASSERT_TRUE(before) << before.status().to_string();
  EXPECT_EQ(before->hard_limit_ms, rec.hard_limit_ms);
  EXPECT_TRUE(before->trace.empty());
  EXPECT_TRUE(before->unique_key.empty());
}

TEST(TaskRecordCodec, CorruptRecordsAreAnErrorNeverACrash) {
  const proto::TaskRecord rec = sample_record(300, 70000);
  const std::string good = packed(rec);
  for (size_t cut = 0; cut < good.size(); cut += 1 + cut / 16) {
    auto r = router::decode_task_record(std::string_view(good.data(), cut));
    EXPECT_FALSE(r) << "a record cut at " << cut << " of " << good.size() << " bytes was read";
  }
  auto bad_state = router::decode_task_record(pack_fields(rec, 25, 200, false));
  EXPECT_FALSE(bad_state) << "a state outside the life cycle";
  uint64_t seed = 88172645463325252ull;
  for (int i = 0; i < 3000; ++i) {
    std::string bad = good;
    for (int flips = 0; flips < 3; ++flips) {
      seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
      bad[seed % bad.size()] = static_cast<char>(seed >> 40);
    }
    auto r = router::decode_task_record(bad);  // read or refused, never a crash
    if (r) {
      EXPECT_LE(r->payload.size() + r->result.size() + r->error.size(), bad.size());
    }
  }
}

TEST(RetryPolicy, BackoffDoublesUpToTheCapWithJitterInTheUpperHalf) {
  QueueConfig q;
  q.retry_backoff_ms = 100;
  q.retry_backoff_max_ms = 1000;
  q.retry_jitter = false;
  EXPECT_EQ(router::retry_delay_ms(q, 0, 12345), 100u);
  EXPECT_EQ(router::retry_delay_ms(q, 1, 12345), 200u);
  EXPECT_EQ(router::retry_delay_ms(q, 3, 12345), 800u);
  EXPECT_EQ(router::retry_delay_ms(q, 4, 12345), 1000u);
  EXPECT_EQ(router::retry_delay_ms(q, 4000000000u, 1), 1000u) << "no overflow for huge retry counts";
  q.retry_jitter = true;
  for (uint64_t r = 0; r < 2000; r += 7) {
    const uint64_t d = router::retry_delay_ms(q, 2, r * 2654435761u);
    EXPECT_GE(d, 200u);
    EXPECT_LE(d, 400u);
  }
  q.retry_backoff_ms = q.retry_backoff_max_ms = 0;
  EXPECT_EQ(router::retry_delay_ms(q, 5, 99), 0u);
}

TEST(RetryPolicy, ErrorClassIsTheIdentifierBeforeTheColon) {
  EXPECT_EQ(router::error_class("TimeoutError: took too long"), "TimeoutError");
  EXPECT_EQ(router::error_class("requests.ConnectionError: refused"), "requests.ConnectionError");
  EXPECT_EQ(router::error_class("no class here"), "");
  EXPECT_EQ(router::error_class(": empty"), "");
  EXPECT_EQ(router::error_class("404: not found"), "");
  EXPECT_EQ(router::error_class("Trailing"), "");
  EXPECT_EQ(router::error_class(""), "");
  QueueConfig q;
  EXPECT_FALSE(router::retry_matches(q, "TimeoutError: x")) << "no retry_on: failures are final";
  q.retry_on = {"TimeoutError"};
  EXPECT_TRUE(router::retry_matches(q, "TimeoutError: x"));
  EXPECT_FALSE(router::retry_matches(q, "ValueError: x"));
  EXPECT_FALSE(router::retry_matches(q, "TimeoutErrorX: x"));
  q.retry_on = {"*"};
  EXPECT_TRUE(router::retry_matches(q, "anything at all"));
}

TEST(RetryPolicy, RateBucketOpensAtItsRate) {
  router::RateBucket b;
  b.rate = 10;
  b.burst = 1;
  b.tokens = 0;
  b.refilled_ms = 1000;
  EXPECT_FALSE(b.open());
  EXPECT_EQ(b.ms_until_open(1000), 101u);
  b.refill(1050);
  EXPECT_FALSE(b.open());
  b.refill(1100);
  EXPECT_TRUE(b.open());
  b.refill(5000);
  EXPECT_DOUBLE_EQ(b.tokens, 1.0) << "saved-up tokens are capped at the burst";
}

TEST(ReadyQueue, HigherPriorityFirstThenFifo) {
  router::ReadyQueue q;
  Id a = Id::random(), b = Id::random(), c = Id::random(), d = Id::random();
  q.push(router::order_key(5, 10), a);
  q.push(router::order_key(5, 11), b);
  q.push(router::order_key(9, 12), c);
  q.push(router::order_key(5, 3), d);  // requeued at its original position
  EXPECT_EQ(q.pop(), c);
  EXPECT_EQ(q.pop(), d);
  EXPECT_EQ(q.pop(), a);
  EXPECT_EQ(q.pop(), b);
  EXPECT_TRUE(q.empty());
}

// The compact ordered store of a ready queue against std::map, under the operations the router
// makes: appends of new tasks, requeues at older positions, pops, erases, reads from a key.
TEST(OrderedIds, HoldsWhatAnOrderedMapHoldsUnderEveryOperation) {
  router::OrderedIds ids;
  std::map<uint64_t, Id> model;
  uint64_t next = 1000, rng = 42;
  auto random = [&] { return rng = rng * 6364136223846793005ull + 1442695040888963407ull, rng >> 33; };
  auto check = [&](const char* after) {
    ASSERT_EQ(ids.size(), model.size()) << after;
    if (model.empty()) return;
    ASSERT_EQ(ids.front().first, model.begin()->first) << after;
    ASSERT_EQ(ids.front().second, model.begin()->second) << after;
  };
  for (int op = 0; op < 200000; ++op) {
    const uint64_t r = random() % 100;
    if (r < 50) {  // a new task: the largest key so far
      const Id id = Id::random();
      ASSERT_TRUE(ids.insert(next, id));
      model.emplace(next++, id);
    } else if (r < 60) {  // requeued at an older position, or a key that is there already
      const uint64_t key = random() % next;
      const Id id = Id::random();
      ASSERT_EQ(ids.insert(key, id), model.emplace(key, id).second);
    } else if (r < 85) {
      if (model.empty()) continue;
      ASSERT_EQ(ids.pop_front(), model.begin()->second);
      model.erase(model.begin());
    } else if (r < 97) {  // revoked, claimed: an erase anywhere
      const uint64_t key = random() % next;
      auto want = model.find(key);
      auto got = ids.take(key);
      ASSERT_EQ(got.has_value(), want != model.end());
      if (got) {
        ASSERT_EQ(*got, want->second);
        model.erase(want);
      }
    } else {
      const uint64_t key = random() % next;
      auto got = ids.from(key, 700);
      std::vector<std::pair<uint64_t, Id>> want;
      for (auto it = model.lower_bound(key); it != model.end() && want.size() < 700; ++it) want.emplace_back(*it);
      ASSERT_EQ(got, want);
    }
    check("an operation");
  }
  ASSERT_EQ(ids.from(0, model.size()).size(), model.size());
  while (!model.empty()) {
    ASSERT_EQ(ids.pop_front(), model.begin()->second);
    model.erase(model.begin());
  }
  EXPECT_TRUE(ids.empty());
  EXPECT_FALSE(ids.take(5));
}

TEST(ReadyQueue, AFairQueuesGroupsTakeTurnsWithinAPriority) {
  router::ReadyQueue q(/*fair=*/true);
  const Id big = Id::random(), small = Id::random();
  std::vector<Id> b(1000), s(3);
  for (uint64_t i = 0; i < b.size(); ++i) q.push(router::order_key(5, i), b[i] = Id::random(), big);
  EXPECT_EQ(q.pop(), b[0]);
  for (uint64_t i = 0; i < s.size(); ++i) q.push(router::order_key(5, 1000 + i), s[i] = Id::random(), small);
  // The small batch joins the line at its back: it starts within its first three turns.
  EXPECT_EQ(q.front_key(), router::order_key(5, 1));
  for (Id want : {b[1], s[0], b[2], s[1], b[3], s[2], b[4], b[5]}) EXPECT_EQ(q.pop(), want);
  // Priority comes before turns.
  const Id urgent = Id::random();
  q.push(router::order_key(9, 5000), urgent, small);
  EXPECT_EQ(q.pop(), urgent);
  // Requeued at its original position: first of its group again.
  q.push(router::order_key(5, 0), b[0], big);
  EXPECT_EQ(q.pop(), b[0]);
  // Erasing keeps the line whole: everything left comes out once, in its group's order.
  EXPECT_TRUE(q.erase(router::order_key(5, 999)));
  EXPECT_FALSE(q.erase(router::order_key(5, 999)));
  EXPECT_EQ(q.size(), 993u);
  for (uint64_t i = 6; i < 999; ++i) EXPECT_EQ(q.pop(), b[i]);
  EXPECT_TRUE(q.empty());
  // take_all and clear leave no lane behind.
  q.push(router::order_key(5, 1), b[1], big);
  EXPECT_EQ(q.take_all().size(), 1u);
  q.push(router::order_key(5, 2), s[0], small);
  EXPECT_EQ(q.pop(), s[0]);
  EXPECT_TRUE(q.empty());
}

// A fair queue under random pushes, requeues, pops and erases: every task comes out once, each
// group's tasks in their key order, never a lower priority while a higher one waits (the
// turns themselves: AFairQueuesGroupsTakeTurnsWithinAPriority).
TEST(ReadyQueue, AFairQueueKeepsEveryTaskAndEachGroupsOrderUnderRandomOperations) {
  router::ReadyQueue q(/*fair=*/true);
  std::vector<Id> groups(6);
  for (auto& g : groups) g = Id::random();
  groups[0] = Id();  // tasks without a group
  struct Held {
    Id task, group;
  };
  std::map<uint64_t, Held> model;
  uint64_t seq = 0, rng = 7;
  auto random = [&] { return rng = rng * 6364136223846793005ull + 1442695040888963407ull, rng >> 33; };
  std::map<Id, uint64_t> last_key;  // per group, the key it last gave
  for (int op = 0; op < 100000; ++op) {
    const uint64_t r = random() % 100;
    if (r < 45) {
      const uint8_t priority = random() % 4 == 0 ? 7 : 5;
      const uint64_t key = router::order_key(priority, seq++);
      const Held h{Id::random(), groups[random() % groups.size()]};
      q.push(key, h.task, h.group);
      model.emplace(key, h);
    } else if (r < 85) {
      if (model.empty()) {
        EXPECT_TRUE(q.empty());
        continue;
      }
      const uint64_t key = q.front_key();
      auto it = model.find(key);
      ASSERT_NE(it, model.end());
      EXPECT_EQ(router::priority_of(key), router::priority_of(model.begin()->first)) << "a higher priority waits";
      // The group's own oldest task of that priority.
      for (const auto& [k, h] : model)
        if (h.group == it->second.group && router::priority_of(k) == router::priority_of(key)) {
          EXPECT_EQ(k, key) << "a group's tasks come out in their order";
          break;
        }
      EXPECT_EQ(q.pop(), it->second.task);
      model.erase(it);
    } else if (r < 95) {
      if (model.empty()) continue;
      auto it = std::next(model.begin(), static_cast<ptrdiff_t>(random() % model.size()));
      EXPECT_TRUE(q.erase(it->first));
      model.erase(it);
    } else if (!model.empty()) {  // a requeue at an original position: taken out and put back
      auto it = std::next(model.begin(), static_cast<ptrdiff_t>(random() % model.size()));
      EXPECT_TRUE(q.erase(it->first));
      q.push(it->first, it->second.task, it->second.group);
    }
    ASSERT_EQ(q.size(), model.size());
  }
  while (!model.empty()) {
    auto it = model.find(q.front_key());
    ASSERT_NE(it, model.end());
    EXPECT_EQ(q.pop(), it->second.task);
    model.erase(it);
  }
  EXPECT_TRUE(q.empty());
}

TEST(ReadyQueue, AFairQueuesTasksWithoutAGroupShareOneTurn) {
  router::ReadyQueue q(/*fair=*/true);
  const Id group = Id::random();
  std::vector<Id> loose(3), grouped(3);
  for (uint64_t i = 0; i < 3; ++i) q.push(router::order_key(5, i), loose[i] = Id::random());
  for (uint64_t i = 0; i < 3; ++i) q.push(router::order_key(5, 10 + i), grouped[i] = Id::random(), group);
  for (Id want : {loose[0], grouped[0], loose[1], grouped[1], loose[2], grouped[2]}) EXPECT_EQ(q.pop(), want);
}

TEST(ReadyQueue, BestQueueComparesHeadsAcrossServedQueues) {
  std::vector<router::ReadyQueue> qs(3);
  qs[0].push(router::order_key(5, 1), Id::random());
  qs[1].push(router::order_key(7, 2), Id::random());
  qs[2].push(router::order_key(9, 3), Id::random());
  EXPECT_EQ(router::best_queue(qs, std::vector<size_t>{0, 1}), 1u);
  EXPECT_EQ(router::best_queue(qs, std::vector<size_t>{0, 1, 2}), 2u);
  EXPECT_EQ(router::best_queue(qs, std::vector<size_t>{0}), 0u);
  std::vector<router::ReadyQueue> empty(2);
  EXPECT_FALSE(router::best_queue(empty, std::vector<size_t>{0, 1}));
}

// A router on inproc endpoints running on its own thread.
class RouterFixture : public ::testing::Test {
 protected:
  void start(RouterOptions options = {}) {
    tag_ = Id::random().to_string();  // inproc names are released asynchronously: never reuse
    options.data_dir = dir_.str();
    options.frontend = "inproc://fe-" + tag_;
    options.backend = "inproc://be-" + tag_;
    options.events = "inproc://ev-" + tag_;
    options.heartbeat_ms = 100;
    options.reclaim_grace_ms = 300;
    options_ = options;
    auto r = Router::create(options, &ctx_);
    ASSERT_TRUE(r) << r.status().to_string();
    router_ = std::move(r.value());
    thread_ = std::thread([this] { run_status_ = router_->run(); });
    ClientOptions co;
    co.router = options.frontend;
    co.timeout = 20s;  // generous: sanitizer builds run this suite several times slower
    client_ = std::move(Client::connect(co, &ctx_).value());
  }
  void stop() {
    if (!router_) return;
    router_->stop();
    thread_.join();
    client_.reset();
    router_.reset();
  }
  void TearDown() override {
    workers_.clear();
    stop();
  }

  // A fake worker: a DEALER that sends Ready and collects what the router sends.
  struct FakeWorker {
    zmq::socket_t socket;
    std::vector<proto::Assignment> received;
    std::vector<proto::Claim> acked;
    std::optional<proto::Welcome> welcome;
    bool disconnected = false;
    FakeWorker(zmq::context_t& ctx, const std::string& ep) : socket(ctx, zmq::socket_type::dealer) {
      wire::configure(socket, zmq::socket_type::dealer);
      socket.connect(ep);
    }
    // Reads what the router sent, and heartbeats as a live worker does.
    void pump() {
      beat();
      while (auto in = wire::recv(socket, false)) {
        if (!in->message) continue;
        if (auto* t = std::get_if<proto::Tasks>(&*in->message))
          received.insert(received.end(), t->tasks.begin(), t->tasks.end());
        if (auto* w = std::get_if<proto::Welcome>(&*in->message)) welcome = *w;
        if (auto* a = std::get_if<proto::ResultsAck>(&*in->message))
          acked.insert(acked.end(), a->claims.begin(), a->claims.end());
        if (std::get_if<proto::Disconnect>(&*in->message)) disconnected = true;
      }
    }
    void beat() { wire::send(socket, proto::Heartbeat{0}); }
    void finish(const proto::Assignment& a, proto::OutcomeStatus status = proto::OutcomeStatus::kSucceeded,
                std::string result = "null") {
      wire::send(socket, proto::Results{{{a.task, a.attempt, status, std::move(result), "err", 1}}});
    }
  };

  FakeWorker& add_worker(std::vector<std::string> queues, uint32_t capacity,
                         std::vector<proto::Claim> running = {}, Id session = Id::random()) {
    workers_.push_back(std::make_unique<FakeWorker>(ctx_, options_.backend));
    auto& w = *workers_.back();
    wire::send(w.socket, proto::Ready{"fake" + std::to_string(workers_.size()), session, "h", 1, queues,
                                      {"noop"}, capacity, capacity, running});
    EXPECT_TRUE(wait_until([&] { w.pump(); return w.welcome.has_value(); }, 5s));
    return w;
  }

  proto::TaskSpec spec(std::string queue, int priority = -1, std::string payload = "{}") {
    proto::TaskSpec t;
    t.queue = std::move(queue);
    t.kind = "noop";
    t.priority = priority;
    t.payload = std::move(payload);
    return t;
  }

  zmq::context_t ctx_;
  TempDir dir_;
  std::string tag_;
  RouterOptions options_;
  std::unique_ptr<Router> router_;
  std::thread thread_;
  Status run_status_;
  std::unique_ptr<Client> client_;
  std::vector<std::unique_ptr<FakeWorker>> workers_;
};

TEST_F(RouterFixture, DispatchesByPriorityAcrossQueuesAndFifoWithin) {
  start();
  std::vector<Id> low, high, mid;
  for (int i = 0; i < 3; ++i) low.push_back(*client_->submit(spec("low_priority")));
  for (int i = 0; i < 3; ++i) mid.push_back(*client_->submit(spec("default")));
  for (int i = 0; i < 3; ++i) high.push_back(*client_->submit(spec("high_priority")));
  auto& w = add_worker({"high_priority", "default", "low_priority"}, 1);
  std::vector<Id> order;
  for (int i = 0; i < 9; ++i) {
    ASSERT_TRUE(wait_until([&] { w.pump(); return w.received.size() > order.size(); }, 5s)) << i;
    order.push_back(w.received.back().task);
    w.finish(w.received.back());
  }
  std::vector<Id> expected = high;
  expected.insert(expected.end(), mid.begin(), mid.end());
  expected.insert(expected.end(), low.begin(), low.end());
  EXPECT_EQ(order, expected);
}

TEST_F(RouterFixture, NeverSendsMoreThanTheWorkersCapacity) {
  start();
  std::vector<proto::TaskSpec> tasks(20, spec("default"));
  ASSERT_TRUE(client_->submit_group(tasks));
  auto& w = add_worker({"default"}, 3);
  ASSERT_TRUE(wait_until([&] { w.pump(); return w.received.size() == 3; }, 5s));
  // More turns pass (heartbeats), yet nothing more arrives until a result frees credit.
  for (int i = 0; i < 5; ++i) {
    w.beat();
    ASSERT_TRUE(client_->ping());
  }
  w.pump();
  EXPECT_EQ(w.received.size(), 3u);
  w.finish(w.received[0]);
  ASSERT_TRUE(wait_until([&] { w.pump(); return w.received.size() == 4; }, 5s));
  ASSERT_TRUE(client_->ping());
  w.pump();
  EXPECT_EQ(w.received.size(), 4u);
}

TEST_F(RouterFixture, GroupParallelCapsRunningTasks) {
  start();
  std::vector<proto::TaskSpec> tasks(6, spec("default"));
  GroupOptions go;
  go.parallel = 2;
  auto receipt = client_->submit_group(tasks, go);
  ASSERT_TRUE(receipt);
  auto& w = add_worker({"default"}, 10);
  ASSERT_TRUE(wait_until([&] { w.pump(); return w.received.size() == 2; }, 5s));
  ASSERT_TRUE(client_->ping());
  w.pump();
  EXPECT_EQ(w.received.size(), 2u);  // capacity 10, but the group allows 2
  auto g = client_->group(receipt->group);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->running, 2u);
  EXPECT_EQ(g->parallel, 2u);
  for (size_t done = 0; done < 6; ++done) {
    ASSERT_TRUE(wait_until([&] { w.pump(); return w.received.size() > done; }, 5s));
    w.finish(w.received[done]);
    ASSERT_TRUE(client_->ping());
    w.pump();
    EXPECT_LE(w.received.size() - done - 1, 2u);
  }
  ASSERT_TRUE(wait_until([&] { auto g2 = client_->group(receipt->group); return g2 && g2->ready(); }, 5s));
  EXPECT_EQ(client_->group(receipt->group)->succeeded, 6u);
}

TEST_F(RouterFixture, EtaTaskWaitsUntilDue) {
  start();
  auto t = spec("default");
  t.eta_ms = now_unix_ms() + 400;
  auto id = client_->submit(t);
  ASSERT_TRUE(id);
  EXPECT_EQ(client_->status(*id)->state, TaskState::kScheduled);
  auto& w = add_worker({"default"}, 5);
  ASSERT_TRUE(wait_until([&] { w.pump(); w.beat(); return !w.received.empty(); }, 5s));
  const uint64_t received_ms = now_unix_ms();
  EXPECT_GE(received_ms, t.eta_ms);        // never before its ETA
  EXPECT_LT(received_ms, t.eta_ms + 1000);  // and soon after it
  auto sched = client_->inspect_scheduled();
  ASSERT_TRUE(sched);
  EXPECT_TRUE(sched->tasks.empty());
}

TEST_F(RouterFixture, StaleAttemptDoesNotOverwriteNewerResult) {
  start();
  auto id = client_->submit(spec("default"));
  auto& w1 = add_worker({"default"}, 1);
  ASSERT_TRUE(wait_until([&] { w1.pump(); return !w1.received.empty(); }, 5s));
  proto::Assignment first = w1.received[0];
  // w1 goes silent: it is declared dead and the task goes to w2 as attempt 2.
  auto& w2 = add_worker({"default"}, 1);
  ASSERT_TRUE(wait_until([&] { w2.pump(); w2.beat(); return !w2.received.empty(); }, 5s));
  EXPECT_EQ(w2.received[0].attempt, 2u);
  w2.finish(w2.received[0], proto::OutcomeStatus::kSucceeded, "\"second\"");
  ASSERT_TRUE(wait_until([&] { auto s = client_->status(*id); return s && s->state == TaskState::kSucceeded; }, 5s));
  // The late first attempt reports a failure; it is acknowledged and ignored.
  wire::send(w1.socket, proto::Ready{"late", Id::random(), "h", 1, {"default"}, {}, 1, 1, {}});
  w1.finish(first, proto::OutcomeStatus::kFailed);
  ASSERT_TRUE(client_->ping());
  auto s = client_->status(*id);
  EXPECT_EQ(s->state, TaskState::kSucceeded);
  EXPECT_EQ(s->attempt, 2u);
  EXPECT_EQ(s->result, "\"second\"");
}

TEST_F(RouterFixture, RetryableFailureRunsAgainUntilRetriesRunOut) {
  start();
  auto t = spec("default");
  t.max_retries = 2;
  auto id = client_->submit(t);
  auto& w = add_worker({"default"}, 1);
  for (uint32_t attempt = 1; attempt <= 3; ++attempt) {
    ASSERT_TRUE(wait_until([&] { w.pump(); return w.received.size() == attempt; }, 5s)) << attempt;
    EXPECT_EQ(w.received.back().attempt, attempt);
    w.finish(w.received.back(), proto::OutcomeStatus::kRetry);
  }
  ASSERT_TRUE(wait_until([&] { auto s = client_->status(*id); return s && s->state == TaskState::kFailed; }, 5s));
  EXPECT_EQ(client_->status(*id)->attempt, 3u);
}

TEST_F(RouterFixture, QueuedTasksAndSequenceSurviveRestart) {
  start();
  std::vector<Id> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(*client_->submit(spec("default")));
  auto head = client_->ping()->head_seq;
  stop();
  start();
  EXPECT_EQ(client_->ping()->head_seq, head);
  auto page = client_->replay(0, 100);
  ASSERT_TRUE(page);
  ASSERT_FALSE(page->events.empty());
  for (size_t i = 0; i < page->events.size(); ++i) EXPECT_EQ(page->events[i].seq, i + 1);  // gap-free
  auto& w = add_worker({"default"}, 10);
  ASSERT_TRUE(wait_until([&] { w.pump(); return w.received.size() == 5; }, 5s));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(w.received[i].task, ids[i]);  // FIFO kept
}

TEST_F(RouterFixture, UnclaimedLeasesAreRequeuedAfterGraceAndClaimedOnesAreNot) {
  start();
  Id a = *client_->submit(spec("default"));
  Id b = *client_->submit(spec("default"));
  Id session = Id::random();
  auto& w = add_worker({"default"}, 2, {}, session);
  ASSERT_TRUE(wait_until([&] { w.pump(); return w.received.size() == 2; }, 5s));
  workers_.clear();
  stop();
  start();
  // The worker comes back claiming only `a`; `b` is requeued after the grace period.
  auto& back = add_worker({"default"}, 1, {{a, 1}}, session);  // the same worker process
  EXPECT_TRUE(back.welcome->rejected.empty());
  auto& other = add_worker({"default"}, 1);
  ASSERT_TRUE(wait_until([&] { other.pump(); back.beat(); other.beat(); return !other.received.empty(); }, 5s));
  EXPECT_EQ(other.received[0].task, b);
  EXPECT_EQ(other.received[0].attempt, 2u);
  back.finish({a, 1, {}, {}, "default", "noop", "{}", 0, 0, "", ""});
  ASSERT_TRUE(wait_until([&] { auto s = client_->status(a); return s && s->state == TaskState::kSucceeded; }, 5s));
  EXPECT_EQ(client_->status(a)->attempt, 1u);
}

// Live output goes out on the events socket at once, only for the attempt the sender holds,
// cut to the chunk limit, valid UTF-8, and with an unknown type dropped.
TEST_F(RouterFixture, LiveOutputIsForwardedOnlyForTheSendersOwnLease) {
  start();
  zmq::socket_t sub(ctx_, zmq::socket_type::sub);
  wire::configure(sub, zmq::socket_type::sub);
  sub.set(zmq::sockopt::subscribe, "");
  sub.connect(options_.events);
  auto& holder = add_worker({"default"}, 1);
  Id leased = *client_->submit(spec("default"));
  ASSERT_TRUE(wait_until([&] { holder.pump(); return holder.received.size() == 1; }, 5s));
  auto& forger = add_worker({"default"}, 1);
  forger.pump();
  const std::string bad_utf8 = "\xff tail";
  wire::send(forger.socket, proto::Output{{{leased, 1, 1, 0, "forged", 1}}});
  wire::send(holder.socket, proto::Output{{{leased, 2, 1, 0, "old attempt? no: a later one", 2},
                                           {leased, 1, 2, 7, "unknown type", 3},
                                           {leased, 1, 3, 0, std::string(proto::kMaxOutputChunkBytes + 100, 'x'), 4},
                                           {leased, 1, 4, 2, bad_utf8, 5}}});
  std::vector<proto::OutputChunk> got;
  ASSERT_TRUE(wait_until([&] {
    holder.pump();
    while (auto in = wire::recv(sub, false))
      if (in->message)
        if (auto* o = std::get_if<proto::Output>(&*in->message)) got.insert(got.end(), o->chunks.begin(), o->chunks.end());
    return got.size() >= 2;
  }, 5s));
  ASSERT_EQ(got.size(), 2u) << "only the holder's chunks of attempt 1, of a known type";
  EXPECT_EQ(got[0].seq, 3u);
  EXPECT_LE(got[0].text.size(), proto::kMaxOutputChunkBytes + 3);
  EXPECT_EQ(got[1].seq, 4u);
  EXPECT_EQ(got[1].text, "\xEF\xBF\xBD tail");
  EXPECT_EQ(client_->status(leased)->state, TaskState::kStarted);
}

// A worker's results, claims and start notices count only for leases its own session holds;
// what it announces is bounded. Each refusal is counted.
TEST_F(RouterFixture, BackendMessagesCannotEndOrTakeTasksTheSenderDoesNotHold) {
  start();
  auto refused = [&] {
    return client_->inspect_stats()->router.refused;
  };
  Id queued = *client_->submit(spec("low_priority"));  // nobody serves low_priority yet
  auto& holder = add_worker({"default"}, 1);
  Id leased = *client_->submit(spec("default"));
  ASSERT_TRUE(wait_until([&] { holder.pump(); return holder.received.size() == 1; }, 5s));

  auto& forger = add_worker({"default"}, 1);
  // Attempt 0 of a task never dispatched, and the other worker's lease.
  forger.finish({queued, 0, {}, {}, "low_priority", "noop", "{}", 0, 0, "", ""});
  forger.finish({leased, 1, {}, {}, "default", "noop", "{}", 0, 0, "", ""});
  wire::send(forger.socket, proto::Started{{{leased, 1}}});
  ASSERT_TRUE(wait_until([&] { forger.pump(); return refused().foreign_results == 2; }, 5s));
  EXPECT_EQ(refused().foreign_started, 1u);
  EXPECT_EQ(client_->status(queued)->state, TaskState::kQueued);
  EXPECT_EQ(client_->status(leased)->state, TaskState::kStarted);
  EXPECT_EQ(client_->inspect_active()->total, 0u) << "the forged start notice";

  // A READY claiming a queued task, and one claiming the other worker's lease.
  auto& claimer = add_worker({"default"}, 1, {{queued, 0}, {leased, 1}});
  EXPECT_EQ(claimer.welcome->rejected.size(), 2u);
  EXPECT_EQ(refused().foreign_claims, 1u) << "the other worker's lease";
  EXPECT_EQ(client_->status(queued)->state, TaskState::kQueued);

  // The holder's own result still counts.
  holder.finish(holder.received[0]);
  ASSERT_TRUE(wait_until([&] { holder.pump(); return client_->status(leased)->state == TaskState::kSucceeded; }, 5s));
  EXPECT_EQ(client_->status(leased)->worker, "fake1");
}

TEST_F(RouterFixture, AnnouncedCountsAreBounded) {
  start();
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(client_->submit(spec("default")));
  workers_.push_back(std::make_unique<FakeWorker>(ctx_, options_.backend));
  auto& greedy = *workers_.back();
  wire::send(greedy.socket, proto::Ready{"greedy", Id::random(), "h", 1, {"default"}, {"noop"}, 8, 4294967295u, {}});
  ASSERT_TRUE(wait_until([&] { greedy.pump(); return greedy.disconnected; }, 5s));
  EXPECT_TRUE(greedy.received.empty()) << "no task reaches a READY that was refused";
  EXPECT_EQ(client_->inspect_stats()->router.refused.bad_counts, 1u);
  auto& w = add_worker({"default"}, 2);
  wire::send(w.socket, proto::Heartbeat{0, 4294967295u, 0, 0, 0});
  ASSERT_TRUE(wait_until([&] {
    w.pump();
    return client_->inspect_stats()->router.refused.bad_counts == 2;
  }, 5s));
  ASSERT_TRUE(wait_until([&] { w.pump(); return w.received.size() == 2; }, 5s));
  EXPECT_EQ(client_->inspect_stats()->workers.at(0).capacity, 2u);
}

TEST_F(RouterFixture, RepeatedIdempotencyKeyCreatesNothing) {
  start();
  // Speak the protocol directly, to choose the key, the fingerprint and the deadline.
  zmq::socket_t raw(ctx_, zmq::socket_type::dealer);
  wire::configure(raw, zmq::socket_type::dealer);
  raw.connect(options_.frontend);
  auto send = [&](proto::Submit submit) -> proto::Message {
    wire::send(raw, submit);
    std::optional<proto::Message> reply;
    EXPECT_TRUE(wait_until([&] {
      auto in = wire::recv(raw, false);
      if (in && in->message) reply = std::move(*in->message);
      return reply.has_value();
    }, 5s));
    return reply ? *reply : proto::Message{proto::Error{}};
  };
  const Id same = Id::random(), other = Id::random();
  auto first = std::get<proto::SubmitAck>(send(proto::Submit{1, Id(), 0, true, "key-1", {spec("default")}, 0, same, 0, 0, 0, Id(), {}}));
  auto second = std::get<proto::SubmitAck>(send(proto::Submit{2, Id(), 0, true, "key-1", {spec("default")}, 0, same, 0, 0, 0, Id(), {}}));
  EXPECT_FALSE(first.duplicate);
  EXPECT_TRUE(second.duplicate);
  EXPECT_EQ(first.tasks, second.tasks);
  // The same key for another request is a conflict, never a silent replay of the first ids.
  auto conflict = send(proto::Submit{3, Id(), 0, true, "key-1", {spec("low_priority")}, 0, other, 0, 0, 0, Id(), {}});
  ASSERT_TRUE(std::holds_alternative<proto::Error>(conflict));
  EXPECT_EQ(std::get<proto::Error>(conflict).code, static_cast<int32_t>(Code::kConflict));
  EXPECT_NE(std::get<proto::Error>(conflict).message.find("different request"), std::string::npos);
  EXPECT_EQ(client_->inspect_stats()->router.submitted, 1u);
}

// A raw DEALER on the router's frontend: sends a group's chunks one at a time, in whatever
// order a test chooses, exactly as GroupChunks builds them.
struct ChunkSender {
  zmq::socket_t socket;
  uint64_t corr = 100;
  ChunkSender(zmq::context_t& ctx, const std::string& frontend) : socket(ctx, zmq::socket_type::dealer) {
    wire::configure(socket, zmq::socket_type::dealer);
    socket.connect(frontend);
  }
  proto::Message send(proto::Submit submit) {
    submit.corr = ++corr;
    submit.deadline_ms = now_unix_ms() + 10000;
    wire::send(socket, submit);
    std::optional<proto::Message> reply;
    EXPECT_TRUE(wait_until([&] {
      auto in = wire::recv(socket, false);
      if (in && in->message) reply = std::move(*in->message);
      return reply.has_value();
    }, 5s));
    return reply ? *reply : proto::Message{proto::Error{0, 0, "no reply"}};
  }
  proto::SubmitAck accepted(proto::Submit submit) {
    auto reply = send(std::move(submit));
    auto* ack = std::get_if<proto::SubmitAck>(&reply);
    if (!ack) {
      auto* err = std::get_if<proto::Error>(&reply);
      ADD_FAILURE() << "refused: " << (err ? err->message : "unexpected reply");
      return {};
    }
    return *ack;
  }
  Status refused(proto::Submit submit) {
    auto reply = send(std::move(submit));
    if (auto* err = std::get_if<proto::Error>(&reply)) return Status(static_cast<Code>(err->code), err->message);
    ADD_FAILURE() << "accepted, yet a refusal was expected";
    return Status::ok();
  }
};

std::vector<proto::TaskSpec> numbered_tasks(size_t n, const std::string& queue = "default") {
  std::vector<proto::TaskSpec> tasks(n);
  for (size_t i = 0; i < n; ++i) {
    tasks[i].queue = queue;
    tasks[i].kind = "noop";
    tasks[i].payload = "{\"i\":" + std::to_string(i) + "}";
  }
  return tasks;
}

TEST_F(RouterFixture, GroupIsSealedOnlyWhenEveryChunkIsPresentWhateverTheOrderAndRestarts) {
  start();
  const auto tasks = numbered_tasks(5);
  GroupOptions go;
  go.idempotency_key = "chunks-1";
  go.chunk_tasks = 2;
  GroupChunks plan(tasks, go);
  ASSERT_EQ(plan.count(), 3u);
  auto sender = std::make_unique<ChunkSender>(ctx_, options_.frontend);
  // The last chunk first: the group exists with its declared size, unsealed.
  auto last = sender->accepted(plan.chunk(2));
  EXPECT_FALSE(last.duplicate);
  ASSERT_EQ(last.tasks.size(), 1u);
  auto g = client_->group(plan.group());
  ASSERT_TRUE(g) << g.status().to_string();
  EXPECT_FALSE(g->sealed);
  EXPECT_FALSE(g->ready());
  EXPECT_EQ(g->total, 5u);
  EXPECT_EQ(g->received, 1u);
  EXPECT_EQ(g->chunks, 3u);
  auto first = sender->accepted(plan.chunk(0));
  // A chunk sent twice is answered with the ids it got the first time.
  auto again = sender->accepted(plan.chunk(2));
  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(again.tasks, last.tasks);
  // The router restarts: which chunks it holds is durable.
  sender.reset();
  stop();
  start();
  sender = std::make_unique<ChunkSender>(ctx_, options_.frontend);
  g = client_->group(plan.group());
  ASSERT_TRUE(g);
  EXPECT_FALSE(g->sealed);
  EXPECT_TRUE(g->has_chunk(0) && !g->has_chunk(1) && g->has_chunk(2));
  EXPECT_EQ(g->received, 3u);
  EXPECT_TRUE(sender->accepted(plan.chunk(0)).duplicate);
  auto middle = sender->accepted(plan.chunk(1));
  EXPECT_FALSE(middle.duplicate);
  g = client_->group(plan.group());
  ASSERT_TRUE(g);
  EXPECT_TRUE(g->sealed);
  EXPECT_EQ(g->total, 5u);
  EXPECT_EQ(g->received, 5u);
  // The whole group repeated with its key: every chunk answered, nothing new.
  auto receipt = client_->submit_group(tasks, go);
  ASSERT_TRUE(receipt) << receipt.status().to_string();
  EXPECT_TRUE(receipt->duplicate);
  std::vector<Id> expected = first.tasks;
  expected.insert(expected.end(), middle.tasks.begin(), middle.tasks.end());
  expected.insert(expected.end(), last.tasks.begin(), last.tasks.end());
  EXPECT_EQ(receipt->tasks, expected);
  // Only the first router's 3 tasks and the second's 2 were created.
  EXPECT_EQ(client_->inspect_stats()->router.submitted, 2u);
}

TEST_F(RouterFixture, NumberedGroupIsNotFinishedBeforeItsLastChunkArrives) {
  start();
  const auto tasks = numbered_tasks(4);
  GroupOptions go;
  go.idempotency_key = "chunks-2";
  go.chunk_tasks = 2;
  GroupChunks plan(tasks, go);
  ChunkSender sender(ctx_, options_.frontend);
  sender.accepted(plan.chunk(1));
  auto& w = add_worker({"default"}, 10);
  ASSERT_TRUE(wait_until([&] { w.pump(); return w.received.size() == 2; }, 5s));
  for (const auto& a : w.received) w.finish(a);
  ASSERT_TRUE(wait_until([&] { auto g = client_->group(plan.group()); return g && g->succeeded == 2; }, 5s));
  auto g = client_->group(plan.group());
  EXPECT_FALSE(g->ready()) << "2 of 4 tasks done: the group is not finished";
  EXPECT_EQ(g->total, 4u);
  EXPECT_EQ(g->finished_ms, 0u);
  auto page = client_->replay(0, 1000);
  ASSERT_TRUE(page);
  // Each turn that changed the group announced its record: unsealed, 4 declared, and the
  // latest one as the router holds it now (without the chunk bitmap).
  std::optional<proto::GroupRecord> announced;
  for (const auto& ev : page->events)
    if (ev.type == proto::EventType::kGroupUpdated && ev.group == plan.group()) {
      ASSERT_EQ(ev.group_record.size(), 1u);
      announced = ev.group_record.front();
      EXPECT_EQ(announced->id, plan.group());
      EXPECT_EQ(announced->total, 4u);
      EXPECT_EQ(announced->parallel, 0u);
      EXPECT_FALSE(announced->sealed);
      EXPECT_TRUE(announced->chunks_present.empty());
    }
  ASSERT_TRUE(announced);
  EXPECT_EQ(announced->succeeded, g->succeeded);
  EXPECT_EQ(announced->running, g->running);
  EXPECT_EQ(announced->received, g->received);
  EXPECT_EQ(announced->created_ms, g->created_ms);
  EXPECT_EQ(announced->finished_ms, 0u);
  sender.accepted(plan.chunk(0));
  ASSERT_TRUE(wait_until([&] { w.pump(); return w.received.size() == 4; }, 5s));
  for (size_t i = 2; i < 4; ++i) w.finish(w.received[i]);
  ASSERT_TRUE(wait_until([&] { auto g2 = client_->group(plan.group()); return g2 && g2->ready(); }, 5s));
  g = client_->group(plan.group());
  EXPECT_EQ(g->succeeded, 4u);
  EXPECT_NE(g->finished_ms, 0u);
}

TEST_F(RouterFixture, ChunkWhoseContentDiffersFromTheGroupsIsAConflict) {
  start();
  const auto tasks = numbered_tasks(4);
  GroupOptions go;
  go.idempotency_key = "chunks-3";
  go.chunk_tasks = 2;
  GroupChunks plan(tasks, go);
  auto changed = tasks;
  changed[3].payload = R"({"i":"other"})";
  GroupChunks other(changed, go);
  ChunkSender sender(ctx_, options_.frontend);
  auto ack = sender.accepted(plan.chunk(0));
  // The same key and chunk index, another request: refused, never answered with the ids.
  Status s = sender.refused(other.chunk(0));
  EXPECT_EQ(s.code(), Code::kConflict) << s.message();
  EXPECT_NE(s.message().find("different request"), std::string::npos) << s.message();
  // A missing chunk of another request under the same key is refused too.
  s = sender.refused(other.chunk(1));
  EXPECT_EQ(s.code(), Code::kConflict) << s.message();
  // The same chunk under another key would run its tasks twice.
  go.idempotency_key = "chunks-3-again";
  go.group = plan.group();
  GroupChunks rekeyed(tasks, go);
  EXPECT_EQ(rekeyed.chunk(0).group_fingerprint, plan.chunk(0).group_fingerprint) << "the key is not content";
  s = sender.refused(rekeyed.chunk(0));
  EXPECT_EQ(s.code(), Code::kConflict) << s.message();
  EXPECT_NE(s.message().find("already accepted"), std::string::npos) << s.message();
  // An unnumbered submission cannot extend a numbered group.
  s = sender.refused(proto::Submit{0, plan.group(), 0, true, "plain", {spec("default")}, 0, Id(), 0, 0, 0, Id(), {}});
  EXPECT_EQ(s.code(), Code::kConflict) << s.message();
  auto g = client_->group(plan.group());
  ASSERT_TRUE(g);
  EXPECT_EQ(g->received, 2u);
  EXPECT_FALSE(g->sealed);
  EXPECT_TRUE(sender.accepted(plan.chunk(1)).tasks.size() == 2);
  EXPECT_TRUE(client_->group(plan.group())->sealed);
  EXPECT_EQ(ack.tasks.size(), 2u);
}

TEST_F(RouterFixture, MalformedChunksAreRefusedWithAReason) {
  start();
  const auto tasks = numbered_tasks(4);
  GroupOptions go;
  go.idempotency_key = "chunks-4";
  go.chunk_tasks = 2;
  GroupChunks plan(tasks, go);
  ChunkSender sender(ctx_, options_.frontend);
  auto beyond = plan.chunk(1);
  beyond.chunk = 2;
  beyond.idem_key = "chunks-4#2";
  Status s = sender.refused(beyond);
  EXPECT_EQ(s.code(), Code::kBadRequest);
  EXPECT_NE(s.message().find("does not exist"), std::string::npos) << s.message();
  auto orphan = plan.chunk(0);
  orphan.group = Id();
  s = sender.refused(orphan);
  EXPECT_EQ(s.code(), Code::kBadRequest);
  EXPECT_NE(s.message().find("needs a group"), std::string::npos) << s.message();
  auto huge = plan.chunk(0);
  huge.chunks = 1000000;
  EXPECT_EQ(sender.refused(huge).code(), Code::kTooLarge);
  // Chunks whose tasks do not add up to the declared size cannot seal the group.
  auto lying = plan.chunk(0);
  lying.group_tasks = 5;
  lying.group_fingerprint = Id();
  lying.fingerprint = Id();
  lying.idem_key = "lying";
  lying.group = Id::random();
  lying.chunks = 1;
  s = sender.refused(lying);
  EXPECT_EQ(s.code(), Code::kBadRequest);
  EXPECT_NE(s.message().find("declares 5"), std::string::npos) << s.message();
  EXPECT_EQ(client_->inspect_stats()->router.submitted, 0u);
}

TEST_F(RouterFixture, SubmissionArrivingAfterItsDeadlineIsRefusedAndNeverRuns) {
  start();
  zmq::socket_t raw(ctx_, zmq::socket_type::dealer);
  wire::configure(raw, zmq::socket_type::dealer);
  raw.connect(options_.frontend);
  wire::send(raw, proto::Submit{7, Id(), 0, true, "late", {spec("default")}, now_unix_ms() - 1, Id(), 0, 0, 0, Id(), {}});
  std::optional<proto::Message> reply;
  ASSERT_TRUE(wait_until([&] {
    auto in = wire::recv(raw, false);
    if (in && in->message) reply = std::move(*in->message);
    return reply.has_value();
  }, 5s));
  ASSERT_TRUE(std::holds_alternative<proto::Error>(*reply));
  EXPECT_EQ(std::get<proto::Error>(*reply).code, static_cast<int32_t>(Code::kTimeout));
  auto stats = client_->inspect_stats()->router;
  EXPECT_EQ(stats.submitted, 0u);
  EXPECT_EQ(stats.late_requests, 1u);
  // Nor does the key remember it: a repeat within its deadline is a fresh submission.
  auto again = client_->submit(spec("default"), "late");
  ASSERT_TRUE(again) << again.status().to_string();
  EXPECT_FALSE(again->duplicate);
}

TEST_F(RouterFixture, SubmissionsWithBadFieldsAreRefusedWhole) {
  start();
  std::vector<proto::TaskSpec> tasks = {spec("default"), spec("nope")};
  auto r = client_->submit_group(tasks);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().code(), Code::kUnprocessable);
  EXPECT_NE(r.status().message().find("unknown queue 'nope'"), std::string::npos);
  auto bad_priority = client_->submit(spec("default", 300));
  EXPECT_EQ(bad_priority.status().code(), Code::kBadRequest);
  auto big = client_->submit(spec("default", -1, std::string(17u << 20, 'x')));
  EXPECT_EQ(big.status().code(), Code::kTooLarge);
  EXPECT_EQ(client_->inspect_stats()->router.submitted, 0u);
  EXPECT_EQ(client_->status(Id::random()).status().code(), Code::kNotFound);
  // Arguments of another operation are refused before anything is sent.
  EXPECT_EQ(client_->control(proto::ControlOp::kPurge, proto::TaskArgs{}).status().code(), Code::kBadRequest);
}

TEST_F(RouterFixture, FullStorageRefusesNewTasksAndKeepsAcceptedOnes) {
  RouterOptions o;
  o.max_map_bytes = 16ull << 20;
  start(o);
  std::vector<Id> accepted;
  Status last;
  for (int i = 0; i < 256 && last.is_ok(); ++i) {
    auto r = client_->submit(spec("default", -1, "\"" + std::string(256u << 10, 'x') + "\""));
    if (r) accepted.push_back(*r);
    else last = r.status();
  }
  EXPECT_EQ(last.code(), Code::kStorageFull) << last.to_string();
  EXPECT_FALSE(accepted.empty());
  EXPECT_TRUE(client_->ping());  // everything else still answers
  for (const Id& id : accepted) EXPECT_TRUE(client_->status(id)) << id.to_string();
  stop();
  start(o);
  for (const Id& id : accepted) EXPECT_EQ(client_->status(id)->state, TaskState::kQueued);
}

TEST_F(RouterFixture, RevokedQueuedTaskNeverRunsEvenAfterRestart) {
  start();
  Id keep = *client_->submit(spec("default"));
  Id gone = *client_->submit(spec("default"));
  auto r = client_->revoke(gone);
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_EQ(r->revoked, gone);
  EXPECT_EQ(r->was, "queued");
  EXPECT_EQ(client_->revoke(gone).status().code(), Code::kConflict);  // already revoked
  stop();
  start();
  auto& w = add_worker({"default"}, 10);
  ASSERT_TRUE(wait_until([&] { w.pump(); return !w.received.empty(); }, 5s));
  ASSERT_TRUE(client_->ping());
  w.pump();
  ASSERT_EQ(w.received.size(), 1u);
  EXPECT_EQ(w.received[0].task, keep);
  EXPECT_EQ(client_->status(gone)->state, TaskState::kRevoked);
}

TEST_F(RouterFixture, RunningTaskIsRevokedOnlyWithTerminate) {
  start();
  std::vector<proto::TaskSpec> tasks(1, spec("default"));
  auto receipt = client_->submit_group(tasks);
  Id id = receipt->tasks[0];
  auto& w = add_worker({"default"}, 1);
  ASSERT_TRUE(wait_until([&] { w.pump(); return !w.received.empty(); }, 5s));
  EXPECT_EQ(client_->revoke(id, false).status().code(), Code::kConflict);
  auto r = client_->revoke(id, true);
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_EQ(r->was, "terminated");
  // The worker is told; its late result does not bring the task back.
  bool told = false;
  ASSERT_TRUE(wait_until([&] {
    while (auto in = wire::recv(w.socket, false))
      if (in->message && std::holds_alternative<proto::Revoke>(*in->message)) told = true;
    w.beat();
    return told;
  }, 5s));
  w.finish(w.received[0]);
  ASSERT_TRUE(client_->ping());
  EXPECT_EQ(client_->status(id)->state, TaskState::kRevoked);
  auto g = client_->group(receipt->group);
  EXPECT_EQ(g->revoked, 1u);
  EXPECT_EQ(g->running, 0u);
  EXPECT_TRUE(g->ready());
}

// revoke.group: the group's held, scheduled, reserved and queued tasks never run, a running
// one only stops with terminate, and the group takes no more tasks — across a restart too.
TEST_F(RouterFixture, RevokedGroupStopsEveryUnfinishedTaskAndTakesNoMore) {
  start();
  auto tasks = numbered_tasks(20);
  for (size_t i = 0; i < 3; ++i) tasks[i].countdown_ms = 600'000;  // waiting for their ETA
  GroupOptions go;
  go.idempotency_key = "revoked-group";
  go.chunk_tasks = 10;
  GroupChunks plan(tasks, go);
  ASSERT_EQ(plan.count(), 2u);
  auto sender = std::make_unique<ChunkSender>(ctx_, options_.frontend);
  sender->accepted(plan.chunk(0));  // the second chunk is still to come
  const Id other = *client_->submit(spec("default"));
  auto& w = add_worker({"default"}, 2);
  ASSERT_TRUE(wait_until([&] { w.pump(); return w.received.size() == 2; }, 5s));
  // The worker starts the first; the second waits behind it, reserved.
  wire::send(w.socket, proto::Started{{{w.received[0].task, w.received[0].attempt}}});
  ASSERT_TRUE(wait_until([&] {
    auto t = client_->status(w.received[0].task);
    return t && t->started_ms != 0;
  }, 5s));

  auto r = client_->revoke_group(plan.group(), false);
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_EQ(r->group, plan.group());
  EXPECT_EQ(r->revoked, 1u + 3u + 5u);  // the reserved one, the three scheduled and five queued ones
  EXPECT_EQ(r->terminated, 0u);
  EXPECT_EQ(r->running, 1u);
  EXPECT_FALSE(r->again);
  // The running one is left to finish.
  auto g = client_->group(plan.group());
  EXPECT_EQ(g->revoked, 9u);
  EXPECT_NE(g->revoked_ms, 0u);
  EXPECT_FALSE(g->ready());
  EXPECT_EQ(g->running, 1u);
  EXPECT_EQ(client_->status(w.received[1].task)->state, TaskState::kRevoked);
  EXPECT_EQ(client_->status(w.received[1].task)->error, "revoked: its group was revoked");

  // No more tasks: the missing chunk is refused, its repeat... and so is a retry of one.
  EXPECT_EQ(sender->refused(plan.chunk(1)).code(), Code::kConflict);
  EXPECT_EQ(client_->retry(w.received[1].task).status().code(), Code::kConflict);

  // The worker gets the task of no group next, and nothing else of the revoked one.
  ASSERT_TRUE(wait_until([&] { w.pump(); return w.received.size() == 3; }, 5s));
  EXPECT_EQ(w.received[2].task, other);

  // Again, with terminate: the running one stops (the worker is told).
  r = client_->revoke_group(plan.group(), true);
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_TRUE(r->again);
  EXPECT_EQ(r->terminated, 1u);
  g = client_->group(plan.group());
  EXPECT_TRUE(g->ready());  // the chunk that never came does not hold it open
  EXPECT_EQ(g->revoked, 10u);
  EXPECT_NE(g->finished_ms, 0u);
  EXPECT_EQ(client_->revoke_group(plan.group()).status().code(), Code::kConflict);  // finished
  EXPECT_EQ(client_->revoke_group(Id::random()).status().code(), Code::kNotFound);

  stop();
  start();
  g = client_->group(plan.group());
  ASSERT_TRUE(g);
  EXPECT_TRUE(g->ready());
  EXPECT_EQ(g->revoked, 10u);
  auto& w2 = add_worker({"default"}, 10);
  ASSERT_TRUE(client_->ping());
  w2.pump();
  for (const auto& a : w2.received) EXPECT_EQ(a.task, other) << "a task of the revoked group ran";
}

// A revoked group's queued tasks are revoked a bounded number per turn, with no worker serving
// their queue, and stay revoked after a restart.
TEST_F(RouterFixture, RevokedGroupOfTenThousandQueuedTasksEndsRevokedAndStaysSo) {
  start();
  const auto tasks = numbered_tasks(10'000);
  auto receipt = client_->submit_group(tasks);
  ASSERT_TRUE(receipt) << receipt.status().to_string();
  auto r = client_->revoke_group(receipt->group);
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_EQ(r->revoked, 4096u);  // the first turn's share; the others follow
  ASSERT_TRUE(wait_until([&] { auto g = client_->group(receipt->group); return g && g->ready(); }, 10s));
  stop();
  start();
  ASSERT_TRUE(wait_until([&] { auto g = client_->group(receipt->group); return g && g->ready(); }, 10s));
  auto g = client_->group(receipt->group);
  EXPECT_EQ(g->revoked, 10'000u);
  EXPECT_EQ(g->succeeded, 0u);
  auto& w = add_worker({"default"}, 10);
  ASSERT_TRUE(client_->ping());
  w.pump();
  EXPECT_TRUE(w.received.empty());
}

TEST_F(RouterFixture, RetryQueuesAFailedTaskAgain) {
  start();
  auto t = spec("default");
  t.max_retries = 0;
  std::vector<proto::TaskSpec> tasks{t};
  auto receipt = client_->submit_group(tasks);
  Id id = receipt->tasks[0];
  auto& w = add_worker({"default"}, 1);
  ASSERT_TRUE(wait_until([&] { w.pump(); return w.received.size() == 1; }, 5s));
  w.finish(w.received[0], proto::OutcomeStatus::kFailed);
  ASSERT_TRUE(wait_until([&] { return client_->status(id)->state == TaskState::kFailed; }, 5s));
  EXPECT_EQ(client_->group(receipt->group)->failed, 1u);
  EXPECT_EQ(client_->retry(Id::random()).status().code(), Code::kNotFound);
  ASSERT_TRUE(client_->retry(id));
  ASSERT_TRUE(wait_until([&] { w.pump(); return w.received.size() == 2; }, 5s));
  EXPECT_EQ(w.received[1].attempt, 2u);
  w.finish(w.received[1]);
  ASSERT_TRUE(wait_until([&] { return client_->status(id)->state == TaskState::kSucceeded; }, 5s));
  auto g = client_->group(receipt->group);
  EXPECT_EQ(g->failed, 0u);
  EXPECT_EQ(g->succeeded, 1u);
  EXPECT_TRUE(g->ready());
  EXPECT_EQ(client_->retry(id).status().code(), Code::kConflict);  // a succeeded task is not retried
}

TEST_F(RouterFixture, UnknownWorkerIsToldToReconnect) {
  start();
  FakeWorker stranger(ctx_, options_.backend);
  stranger.beat();
  ASSERT_TRUE(wait_until([&] { stranger.pump(); return stranger.disconnected; }, 5s));
}

TEST_F(RouterFixture, SecondRouterOnTheSameFolderIsRefused) {
  start();
  RouterOptions o = options_;
  o.frontend = "inproc://other-fe";
  o.backend = "inproc://other-be";
  o.events = "inproc://other-ev";
  auto second = Router::create(o, &ctx_);
  ASSERT_FALSE(second);
  EXPECT_NE(second.status().message().find("in use"), std::string::npos);
}

}  // namespace
}  // namespace zb
