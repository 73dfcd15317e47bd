// The store as the router's projection, against real router, worker and store processes: a
// group's status is the router's record, and a submission through the HTTP API reads back
// without the store asking the router anything.
#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "common/clock.h"
#include "common/protocol.h"
#include "common/wire.h"
#include "store/sse.h"
#include "store/task_output.h"
#include "tests/e2e_support.h"

namespace zb::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// Between the store and the router: forwards the frontend's messages both ways (one DEALER
// towards the router per peer of the store) and counts what the store asks, and forwards the
// router's events `events_delay` late, so a test can tell a store that waits for them from one
// that asks the router instead.
class Relay {
 public:
  Relay(std::string router_frontend, std::string router_events, std::chrono::milliseconds events_delay)
      : frontend_(tcp_endpoint(free_port())), events_(tcp_endpoint(free_port())),
        router_frontend_(std::move(router_frontend)), router_events_(std::move(router_events)), delay_(events_delay) {
    thread_ = std::thread([this] { run(); });
  }
  ~Relay() {
    stop_ = true;
    thread_.join();
  }
  const std::string& frontend() const { return frontend_; }
  const std::string& events() const { return events_; }
  // What the store sent the router: controls (and pings among them), and reads of a task or group.
  uint64_t controls() const { return controls_.load(); }
  uint64_t pings() const { return pings_.load(); }
  uint64_t reads() const { return reads_.load(); }

 private:
  void count(const zmq::message_t& header, const zmq::message_t& body) {
    auto m = proto::decode(header.to_string(), body.to_string());
    if (!m) return;
    if (auto* c = std::get_if<proto::Control>(&*m)) {
      ++controls_;
      if (c->op == "ping") ++pings_;
    } else if (std::holds_alternative<proto::GetTask>(*m) || std::holds_alternative<proto::GetGroup>(*m) ||
               std::holds_alternative<proto::WaitTasks>(*m)) {
      ++reads_;
    }
  }

  void run() {
    zmq::context_t ctx;
    zmq::socket_t front(ctx, zmq::socket_type::router), sub(ctx, zmq::socket_type::sub), pub(ctx, zmq::socket_type::pub);
    front.set(zmq::sockopt::linger, 0);
    pub.set(zmq::sockopt::linger, 0);
    sub.set(zmq::sockopt::linger, 0);
    front.bind(frontend_);
    pub.bind(events_);
    sub.set(zmq::sockopt::subscribe, "");
    sub.connect(router_events_);
    std::map<std::string, std::unique_ptr<zmq::socket_t>> dealers;  // per peer of the store
    std::deque<std::pair<uint64_t, std::vector<zmq::message_t>>> held;  // events, with when to send them
    auto recv_all = [](zmq::socket_t& s) {
      std::vector<zmq::message_t> parts;
      for (bool more = true; more;) {
        zmq::message_t m;
        if (!s.recv(m, zmq::recv_flags::dontwait)) break;
        more = m.more();
        parts.push_back(std::move(m));
      }
      return parts;
    };
    auto send_all = [](zmq::socket_t& s, std::vector<zmq::message_t>& parts, size_t from) {
      for (size_t i = from; i < parts.size(); ++i)
        s.send(parts[i], i + 1 < parts.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    };
    while (!stop_) {
      std::vector<zmq::pollitem_t> items = {{front.handle(), 0, ZMQ_POLLIN, 0}, {sub.handle(), 0, ZMQ_POLLIN, 0}};
      std::vector<std::pair<std::string, zmq::socket_t*>> order;
      for (auto& [rid, d] : dealers) {
        items.push_back({d->handle(), 0, ZMQ_POLLIN, 0});
        order.emplace_back(rid, d.get());
      }
      wire::poll(items, 10ms);
      if (items[0].revents & ZMQ_POLLIN) {
        auto parts = recv_all(front);
        if (parts.size() >= 3) {
          const std::string rid = parts[0].to_string();
          auto& d = dealers[rid];
          if (!d) {
            d = std::make_unique<zmq::socket_t>(ctx, zmq::socket_type::dealer);
            d->set(zmq::sockopt::linger, 0);
            d->connect(router_frontend_);
          }
          count(parts[1], parts[2]);
          send_all(*d, parts, 1);
        }
      }
      if (items[1].revents & ZMQ_POLLIN) held.emplace_back(now_steady_ms() + delay_.count(), recv_all(sub));
      for (size_t i = 0; i < order.size(); ++i) {
        if (!(items[2 + i].revents & ZMQ_POLLIN)) continue;
        auto parts = recv_all(*order[i].second);
        zmq::message_t rid(order[i].first.data(), order[i].first.size());
        front.send(rid, zmq::send_flags::sndmore);
        send_all(front, parts, 0);
      }
      while (!held.empty() && held.front().first <= now_steady_ms()) {
        send_all(pub, held.front().second, 0);
        held.pop_front();
      }
    }
  }

  std::string frontend_, events_, router_frontend_, router_events_;
  std::chrono::milliseconds delay_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> controls_{0}, pings_{0}, reads_{0};
  std::thread thread_;
};

class StoreProjection : public ::testing::Test {
 protected:
  void start_store(const std::string& router, const std::string& events) {
    http_port_ = free_port();
    store_ = std::make_unique<Process>(
        std::vector<std::string>{ZBATCH_BINARY, "store", "--router", router, "--events", events, "--data",
                                 cluster_.dir() + "/store", "--http", "127.0.0.1:" + std::to_string(http_port_)},
        std::map<std::string, std::string>{}, cluster_.dir() + "/store.log");
    http_ = std::make_unique<httplib::Client>("127.0.0.1", http_port_);
    http_->set_read_timeout(10, 0);
    ASSERT_TRUE(wait_until([&] { auto r = http_->Get("/readyz"); return r && r->status == 200; }, 15s)) << logs();
  }
  json get(const std::string& path) {
    auto r = http_->Get(path);
    if (!r) return json();
    json j = json::parse(r->body, nullptr, false);
    j["http_status"] = r->status;
    return j;
  }
  std::string logs() { return cluster_.logs() + (store_ ? "--- store\n" + store_->log() : ""); }

  Cluster cluster_;
  int http_port_ = 0;
  std::unique_ptr<Process> store_;
  std::unique_ptr<httplib::Client> http_;
};

TEST_F(StoreProjection, GroupStatusIsTheRoutersRecordAfterAMixedRun) {
  cluster_.start_router();
  cluster_.start_worker(4);
  ASSERT_TRUE(cluster_.ready(1)) << logs();
  start_store(cluster_.frontend(), cluster_.events_endpoint());
  auto client = cluster_.client();

  proto::TaskSpec retried = task("fail", R"({"error":"again","retry":true})");
  retried.max_retries = 1;
  std::vector<proto::TaskSpec> tasks = {task("echo", R"({"n":1})"), task("echo", R"({"n":2})"),
                                        task("fail", R"({"error":"no"})"), retried,
                                        task("sleep", R"({"seconds":60})")};
  GroupOptions go;
  go.parallel = 4;
  auto receipt = client->submit_group(tasks, go);
  ASSERT_TRUE(receipt) << receipt.status().to_string();
  EXPECT_GT(receipt->seq, 0u);
  const Id sleeper = receipt->tasks[4], failed = receipt->tasks[2];
  ASSERT_TRUE(wait_until([&] { auto t = client->status(sleeper); return t && t->state == TaskState::kStarted; }, 15s))
      << logs();
  auto revoked = client->revoke(sleeper, true);
  ASSERT_TRUE(revoked) << revoked.status().to_string();
  finish(*client, receipt->tasks);
  // An explicit retry reopens the group; the task fails again and the group finishes again.
  auto again = client->retry(failed);
  ASSERT_TRUE(again) << again.status().to_string();
  ASSERT_TRUE(wait_until([&] { auto t = client->status(failed); return t && t->state == TaskState::kFailed && t->attempt == 2; }, 15s))
      << logs();

  auto record = client->group(receipt->group);
  ASSERT_TRUE(record) << record.status().to_string();
  ASSERT_TRUE(record->ready());
  EXPECT_EQ(record->succeeded, 2u);
  EXPECT_EQ(record->failed, 2u);
  EXPECT_EQ(record->revoked, 1u);
  const std::string path = "/api/v1/groups/" + receipt->group.to_string();
  json shown;
  const bool same = wait_until([&] {
    shown = get(path);
    return shown.value("completed", 0u) == record->completed() && shown.value("ready", false);
  }, 10s);
  ASSERT_TRUE(same) << shown.dump() << "\n" << logs();
  EXPECT_EQ(shown["total"], record->total);
  EXPECT_EQ(shown["successful"], record->succeeded);
  EXPECT_EQ(shown["failed"], record->failed);
  EXPECT_EQ(shown["revoked"], record->revoked);
  EXPECT_EQ(shown["running"], record->running);
  EXPECT_EQ(shown["parallel"], record->parallel);
  // The retried task's history is the store's own: retried once, then failed twice.
  json history = get("/api/v1/tasks/" + receipt->tasks[3].to_string() + "/events");
  std::vector<std::string> kinds;
  for (const auto& e : history["events"]) kinds.push_back(e["event"]);
  EXPECT_NE(std::find(kinds.begin(), kinds.end(), "task-retried"), kinds.end()) << history.dump();
}

TEST_F(StoreProjection, AJustSubmittedGroupReadsBackWithoutAskingTheRouter) {
  cluster_.start_router();
  cluster_.start_worker(2);
  ASSERT_TRUE(cluster_.ready(1)) << logs();
  // The events reach the store 400 ms late: a read right after the submission finds nothing
  // applied yet, and has to wait for the acknowledged sequence number (or ask the router).
  Relay relay(cluster_.frontend(), cluster_.events_endpoint(), 400ms);
  start_store(relay.frontend(), relay.events());

  for (int round = 0; round < 3; ++round) {
    json body = {{"tasks", json::array({json{{"queue", "default"}, {"kind", "echo"}, {"payload", {{"round", round}}}},
                                        json{{"queue", "default"}, {"kind", "echo"}, {"payload", {{"n", 2}}}}})}};
    auto posted = http_->Post("/api/v1/tasks", body.dump(), "application/json");
    ASSERT_TRUE(posted) << logs();
    ASSERT_EQ(posted->status, 201) << posted->body;
    const json ack = json::parse(posted->body);
    const uint64_t controls = relay.controls(), reads = relay.reads();
    const json group = get("/api/v1/groups/" + ack["group_id"].get<std::string>());
    EXPECT_EQ(group["http_status"], 200) << group.dump();
    EXPECT_EQ(group["total"], 2) << group.dump();
    EXPECT_EQ(group["tasks"].size(), 2u) << group.dump();  // the store's own view, not the router's record
    EXPECT_EQ(relay.controls(), controls) << "the read sent a control request (pings: " << relay.pings() << ")";
    EXPECT_EQ(relay.reads(), reads) << "the read asked the router for its record";
  }
  EXPECT_EQ(relay.pings(), 0u);
}

// The detail object of each event type, as streams and the dashboard read it, built from the
// typed fields with the keys it had when it was JSON text.
TEST(SseFrameDetail, EachTypeKeepsItsKeys) {
  auto detail = [](const proto::Event& e) {
    const std::string frame = store::sse_frame(e);
    return json::parse(frame.substr(frame.find("data: ") + 6)).value("detail", json());
  };
  proto::Event e;
  e.type = proto::EventType::kGroupUpdated;
  e.group = Id::random();
  EXPECT_TRUE(detail(e).is_null());  // no record: nothing to say
  proto::GroupRecord g;
  g.id = e.group;
  g.total = 4;
  g.succeeded = 1;
  g.failed = 1;
  g.running = 2;
  g.parallel = 2;
  g.sealed = false;
  e.group_record = {g};
  EXPECT_EQ(detail(e), (json{{"total", 4}, {"parallel", 2}, {"sealed", false}, {"succeeded", 1}, {"failed", 1},
                             {"revoked", 0}, {"running", 2}}));
  e = {};
  e.type = proto::EventType::kWorkerOnline;
  e.worker_note = {{"host \"one\"", 42, 4, 16, ""}};
  EXPECT_EQ(detail(e), (json{{"hostname", "host \"one\""}, {"pid", 42}, {"concurrency", 4}, {"capacity", 16}}));
  e.type = proto::EventType::kWorkerOffline;
  e.worker_note[0].reason = "heartbeat";
  EXPECT_EQ(detail(e), (json{{"reason", "heartbeat"}}));
  e = {};
  e.task = Id::random();
  e.type = proto::EventType::kTaskRetried;
  e.state = TaskState::kRetrying;
  e.retries = 1;
  e.max_retries = 3;
  e.delay_ms = 250;
  EXPECT_EQ(detail(e), (json{{"retries", 1}, {"max_retries", 3}, {"delay_ms", 250}}));
  e.type = proto::EventType::kTaskSucceeded;
  e.state = TaskState::kSucceeded;
  e.runtime_us = 1500;
  EXPECT_EQ(detail(e), (json{{"runtime_us", 1500}, {"retries", 1}}));
  e = {};
  e.task = Id::random();
  e.type = proto::EventType::kTaskQueued;
  EXPECT_TRUE(detail(e).is_null());  // queued for the first time
  e.from = TaskState::kRevoked;
  EXPECT_EQ(detail(e), (json{{"retry_of", "revoked"}}));
  e = {};
  e.type = proto::EventType::kQueuePurged;
  e.count = 7;
  EXPECT_EQ(detail(e), (json{{"purged", 7}}));
  e.type = proto::EventType::kResultsExpired;
  e.before_ms = 1234;
  EXPECT_EQ(detail(e), (json{{"before_ms", 1234}}));
  e = {};
  e.type = proto::EventType::kWorkerOnline;
  e.worker_note = {{std::string(5000, 'h'), 1, 1, 1, ""}};
  const std::string frame = store::sse_frame(e);
  EXPECT_NE(frame.find("\"detail_truncated\":true"), std::string::npos);
}


// Live output in the store: positions per task, each task's newest bytes kept, the least
// recently written tasks forgotten first, and hostile chunks (unknown type, bad UTF-8, empty)
// held to the same rules as the router's.
TEST(OutputHub, KeepsEachTasksNewestOutputAndForgetsTheQuietestTask) {
  store::OutputHub hub;
  const Id a = Id::random(), b = Id::random();
  hub.add({{a, 1, 1, 0, "hello ", 1}, {b, 1, 1, 2, "log line\n", 2}, {a, 1, 2, 1, R"({"tool":"x"})", 3}});
  uint64_t oldest = 0;
  auto got = hub.since(a, 0, 1 << 20, &oldest);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(oldest, 1u);
  EXPECT_EQ(got[0].pos, 1u);
  EXPECT_EQ(got[0].text, "hello ");
  EXPECT_EQ(got[1].pos, 2u);
  EXPECT_EQ(got[1].type, 1);
  EXPECT_EQ(hub.since(a, 1, 1 << 20, &oldest).size(), 1u);
  EXPECT_TRUE(hub.since(a, 2, 1 << 20, &oldest).empty());
  EXPECT_TRUE(hub.wait(a, 1, std::chrono::milliseconds(0)));
  EXPECT_FALSE(hub.wait(a, 2, std::chrono::milliseconds(1)));
  // Hostile chunks: an unknown type and an empty text are dropped, bad UTF-8 is replaced.
  hub.add({{a, 1, 3, 9, "nope", 4}, {a, 1, 4, 0, "", 5}, {a, 1, 5, 0, std::string("bad \xff\xfe", 6), 6}});
  got = hub.since(a, 2, 1 << 20, &oldest);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].seq, 5u);
  EXPECT_EQ(got[0].text, "bad \uFFFD\uFFFD");
  // One task past its share keeps its newest bytes; the positions go on.
  const std::string big(proto::kMaxOutputChunkBytes, 'x');
  for (uint32_t i = 0; i < 20; ++i) hub.add({{b, 1, 10 + i, 0, big, 10}});
  got = hub.since(b, 0, 1 << 30, &oldest);
  size_t held = 0;
  for (const auto& c : got) held += c.text.size();
  EXPECT_LE(held, store::OutputHub::kTaskBytes);
  EXPECT_GT(oldest, 1u);  // the first ones were forgotten
  EXPECT_EQ(got.back().pos, 21u);
  // Too many tasks: the one written to least recently goes first; `a` was refreshed.
  hub.add({{a, 1, 6, 0, "still here", 7}});
  for (size_t i = 0; i < store::OutputHub::kTasks; ++i) hub.add({{Id::random(), 1, 1, 0, "t", 8}});
  EXPECT_LE(hub.tasks(), store::OutputHub::kTasks);
  EXPECT_TRUE(hub.since(b, 0, 1, &oldest).empty()) << "b was written to before a: it goes first";
  const std::string frame = store::output_frame(a, {3, 1, 7, 2, "x\"y", 9});
  EXPECT_EQ(frame.substr(0, 24), "id: 3\nevent: output\ndata");
  auto data = nlohmann::json::parse(frame.substr(frame.find("data: ") + 6));
  EXPECT_EQ(data["type"], "log");
  EXPECT_EQ(data["text"], "x\"y");
  EXPECT_EQ(data["task_id"], a.to_string());
}

}  // namespace
}  // namespace zb::testing
