// Trust boundaries of the ZeroMQ links, with real processes: CURVE keys from `zbatch keygen`,
// the router's allow-list with roles, unknown keys and plaintext peers refused, the events
// PUB encrypted, allow-list changes without a restart, and off-loopback endpoints refused
// without CURVE.
#include "tests/e2e_support.h"

#include <sys/stat.h>

#include <fstream>

#include "common/curve.h"
#include "common/wire.h"

namespace zb::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class Curve : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"router", "w1", "ops", "dash", "ci", "stranger", "late"}) {
      auto r = run_command({ZBATCH_BINARY, "keygen", name, "--dir", keys_.str()}, 10s);
      ASSERT_EQ(r.exit_code, 0) << r.err;
      public_[name] = r.out.substr(0, r.out.find('\n'));
    }
    allow_ = cluster_.write_file("allow.list", "# role key name\nworker " + public_["w1"] + " w1\nadmin " +
                                                   public_["ops"] + " ops\nread " + public_["dash"] +
                                                   " dashboard\nsubmit " + key("ci") + "\n");
  }
  std::string key(const std::string& name) const { return keys_.str() + "/" + name + ".key"; }
  std::string secret(const std::string& name) const { return keys_.str() + "/" + name + ".key_secret"; }
  std::vector<std::string> router_args() const {
    return {"--curve-secret", secret("router"), "--curve-allow", allow_};
  }
  std::vector<std::string> worker_args(const std::string& name) const {
    return {"--curve-server-key", key("router"), "--curve-secret", secret(name)};
  }
  std::unique_ptr<Client> client(const std::string& name, std::chrono::milliseconds timeout = 3000ms) {
    ClientOptions o;
    o.router = cluster_.frontend();
    o.timeout = timeout;
    if (!name.empty()) o.curve = curve::client_keys(key("router"), secret(name)).value();
    return std::move(Client::connect(o).value());
  }
  uint64_t workers_online() {
    auto r = client("ops")->ping();
    return r ? r->workers : 0;
  }

  TempDir keys_;
  Cluster cluster_;
  std::map<std::string, std::string> public_;
  std::string allow_;
};

TEST_F(Curve, KeygenWritesCzmqCertificatesWithAPrivateSecret) {
  struct stat st {};
  ASSERT_EQ(::stat(secret("w1").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const std::string pub = read_file(key("w1"));
  EXPECT_NE(pub.find("public-key = \"" + public_["w1"] + "\""), std::string::npos);
  EXPECT_EQ(pub.find("secret-key"), std::string::npos);
  auto pair = curve::read_certificate(secret("w1"));
  ASSERT_TRUE(pair) << pair.status().to_string();
  EXPECT_EQ(pair->public_key, public_["w1"]);
  EXPECT_TRUE(curve::valid_key(pair->secret_key));
  auto again = run_command({ZBATCH_BINARY, "keygen", "w1", "--dir", keys_.str()}, 10s);
  EXPECT_NE(again.exit_code, 0) << "an existing key is never overwritten";
}

TEST_F(Curve, EachRoleDoesOnlyItsPart) {
  cluster_.start_router(router_args());
  cluster_.start_worker(2, worker_args("w1"));
  ASSERT_TRUE(wait_until([&] { return workers_online() == 1; }, 10s)) << cluster_.logs();

  auto ops = client("ops");
  auto id = ops->submit(task("echo", R"({"secret":"payload"})"));
  ASSERT_TRUE(id) << id.status().to_string();
  EXPECT_EQ(finish_one(*ops, *id).state, TaskState::kSucceeded);

  auto dash = client("dash");
  EXPECT_TRUE(dash->ping());
  EXPECT_TRUE(dash->status(*id));
  EXPECT_TRUE(dash->inspect_queues());
  auto submitted = dash->submit(task("echo", "{}"));
  ASSERT_FALSE(submitted);
  EXPECT_EQ(submitted.status().code(), Code::kForbidden) << submitted.status().message();
  EXPECT_EQ(dash->purge().status().code(), Code::kForbidden);

  auto ci = client("ci");
  EXPECT_TRUE(ci->submit(task("echo", "{}"))) << cluster_.logs();
  auto revoke = ci->revoke(*id);
  EXPECT_EQ(revoke.status().code(), Code::kForbidden);
  EXPECT_EQ(ci->replay(0, 10).status().code(), Code::kForbidden) << "only the store's key replays events";
  EXPECT_TRUE(ops->purge());
  EXPECT_GE(ops->inspect_stats()->router.refused.forbidden, 4u);
}

TEST_F(Curve, UnknownKeysPlaintextPeersAndWrongRolesGetNothing) {
  cluster_.start_router(router_args());
  cluster_.start_worker(1, worker_args("w1"));
  ASSERT_TRUE(wait_until([&] { return workers_online() == 1; }, 10s)) << cluster_.logs();
  for (const std::string who : {"stranger", "", "w1"}) {  // unknown key, plaintext, a worker's key on the frontend
    auto c = client(who, 500ms);
    auto ping = c->ping();
    ASSERT_FALSE(ping) << (who.empty() ? "plaintext" : who);
    EXPECT_EQ(ping.status().code(), Code::kUnavailable) << ping.status().message();
  }
  EXPECT_TRUE(wait_until([&] { return cluster_.router().log().find("key=" + public_["stranger"]) != std::string::npos; }, 5s))
      << "the refusal is logged with the key\n" << cluster_.logs();
  // An admin's key cannot pose as a worker.
  cluster_.start_worker(1, worker_args("ops"));
  EXPECT_TRUE(wait_until([&] { return cluster_.router().log().find("domain=backend") != std::string::npos; }, 5s));
  EXPECT_EQ(workers_online(), 1u);

  // The events PUB: a stranger's subscription receives nothing; a read key's receives events.
  zmq::context_t ctx;
  auto subscriber = [&](const std::string& who) {
    auto sub = std::make_unique<zmq::socket_t>(ctx, zmq::socket_type::sub);
    wire::configure(*sub, zmq::socket_type::sub);
    curve::apply_client(*sub, curve::client_keys(key("router"), secret(who)).value());
    sub->set(zmq::sockopt::subscribe, "");
    sub->connect(cluster_.events_endpoint());
    return sub;
  };
  auto stranger = subscriber("stranger");
  auto dash = subscriber("dash");
  bool dash_got = false, stranger_got = false;
  auto ops = client("ops");
  ASSERT_TRUE(wait_until([&] {
    EXPECT_TRUE(ops->submit(task("noop", "{}")));
    while (auto in = wire::recv(*dash, false))
      if (in->message && std::holds_alternative<proto::EventBatch>(*in->message)) dash_got = true;
    while (wire::recv(*stranger, false)) stranger_got = true;
    return dash_got;
  }, 10s));
  EXPECT_FALSE(stranger_got);
}

TEST_F(Curve, AllowListChangesTakeEffectWithoutARestart) {
  cluster_.start_router(router_args());
  ASSERT_TRUE(wait_until([&] { return client("ops")->ping().is_ok(); }, 10s)) << cluster_.logs();
  EXPECT_FALSE(client("late", 500ms)->ping());
  std::ofstream(allow_, std::ios::app) << "read " << public_["late"] << " late-comer\n";
  EXPECT_TRUE(wait_until([&] { return client("late", 500ms)->ping().is_ok(); }, 10s)) << cluster_.logs();
  // A broken list is not applied: the previous one stays.
  std::ofstream(allow_, std::ios::app) << "superuser " << public_["stranger"] << "\n";
  EXPECT_TRUE(wait_until([&] { return cluster_.router().log().find("not reloaded") != std::string::npos; }, 10s));
  EXPECT_TRUE(client("late", 1000ms)->ping());
}

TEST(CurveRules, EndpointsOffLoopbackNeedCurveOrAnExplicitOptOut) {
  TempDir dir;
  const std::string off = "tcp://0.0.0.0:" + std::to_string(free_port());
  const std::string local = tcp_endpoint(free_port()), local2 = tcp_endpoint(free_port());
  auto refused = run_command({ZBATCH_BINARY, "router", "--data", dir.str() + "/r", "--frontend", off, "--backend",
                              local, "--events", local2}, 10s);
  EXPECT_EQ(refused.exit_code, 2) << refused.err;
  EXPECT_NE(refused.err.find("not a loopback address"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("--insecure-plaintext"), std::string::npos) << refused.err;

  Process opted({ZBATCH_BINARY, "router", "--data", dir.str() + "/r2", "--frontend", off, "--backend", local,
                 "--events", local2, "--insecure-plaintext"}, {}, dir.str() + "/opted.log");
  EXPECT_TRUE(wait_until([&] { return opted.log().find("router INSECURE") != std::string::npos; }, 10s)) << opted.log();
  EXPECT_EQ(opted.stop(), 0);

  auto worker = run_command({ZBATCH_BINARY, "worker", "--router", "tcp://10.255.255.1:5556"}, 10s);
  EXPECT_EQ(worker.exit_code, 2) << worker.err;
  EXPECT_NE(worker.err.find("not a loopback address"), std::string::npos) << worker.err;
  auto client = run_command({ZBATCH_BINARY, "ping", "--router", "tcp://10.255.255.1:5555"}, 10s);
  EXPECT_EQ(client.exit_code, 2) << client.err;
  EXPECT_TRUE(curve::is_local_endpoint("tcp://127.0.0.1:5555"));
  EXPECT_TRUE(curve::is_local_endpoint("tcp://localhost:5555"));
  EXPECT_TRUE(curve::is_local_endpoint("tcp://[::1]:5555"));
  EXPECT_TRUE(curve::is_local_endpoint("ipc:///tmp/zbatch"));
  EXPECT_FALSE(curve::is_local_endpoint("tcp://*:5555"));
  EXPECT_FALSE(curve::is_local_endpoint("tcp://127.lan.example:5555")) << "a name is resolved, not read";
  EXPECT_FALSE(curve::is_local_endpoint("tcp://127.0.0.1;10.0.0.1:5555")) << "the destination decides";
}

}  // namespace
}  // namespace zb::testing
