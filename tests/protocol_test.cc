#include <gtest/gtest.h>

#include <random>

#include "common/protocol.h"
#include "common/wire.h"

namespace zb::proto {
namespace {

template <typename T>
T round_trip(const T& in) {
  Frames f = encode(in);
  auto out = decode(f.header, f.body);
  EXPECT_TRUE(out) << out.status().to_string();
  EXPECT_TRUE(std::holds_alternative<T>(*out));
  return std::get<T>(*out);
}

TEST(Protocol, SubmitRoundTrips) {
  Submit s;
  s.corr = 42;
  s.group = Id::random();
  s.parallel = 3;
  s.seal = false;
  s.idem_key = "k1";
  s.tasks.push_back({"agent_tasks", "echo", R"({"a":1})", 7, 1234, "task1", 3});
  s.tasks.push_back({});
  Submit out = round_trip(s);
  EXPECT_EQ(out.corr, 42u);
  EXPECT_EQ(out.group, s.group);
  EXPECT_EQ(out.parallel, 3u);
  EXPECT_FALSE(out.seal);
  EXPECT_EQ(out.idem_key, "k1");
  ASSERT_EQ(out.tasks.size(), 2u);
  EXPECT_EQ(out.tasks[0].queue, "agent_tasks");
  EXPECT_EQ(out.tasks[0].payload, R"({"a":1})");
  EXPECT_EQ(out.tasks[0].priority, 7);
  EXPECT_EQ(out.tasks[0].eta_ms, 1234u);
  EXPECT_EQ(out.tasks[0].ref, "task1");
  EXPECT_EQ(out.tasks[1].priority, -1);
}

TEST(Protocol, NumberedChunkRoundTripsAndAnOlderSubmitIsUnnumbered) {
  Submit s;
  s.group = Id::random();
  s.chunk = 2;
  s.chunks = 3;
  s.group_tasks = 2500;
  s.group_fingerprint = Id::random();
  Submit out = round_trip(s);
  EXPECT_EQ(out.chunk, 2u);
  EXPECT_EQ(out.chunks, 3u);
  EXPECT_EQ(out.group_tasks, 2500u);
  EXPECT_EQ(out.group_fingerprint, s.group_fingerprint);
  // A Submit of a client that knew only the first eight fields.
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_array(8);
  pk.pack(uint64_t{5});
  pk.pack(s.group);
  pk.pack(uint32_t{0});
  pk.pack(false);
  pk.pack(std::string("k"));
  pk.pack(std::vector<TaskSpec>{});
  pk.pack(uint64_t{0});
  pk.pack(Id());
  Frames f = encode(Submit{});
  auto old = decode(f.header, std::string_view(buf.data(), buf.size()));
  ASSERT_TRUE(old) << old.status().to_string();
  EXPECT_EQ(std::get<Submit>(*old).chunks, 0u) << "unnumbered";
  EXPECT_FALSE(std::get<Submit>(*old).seal);
}

TEST(Protocol, GroupRecordKeepsWhichChunksArePresent) {
  GroupRecord g;
  g.chunks = 20;
  EXPECT_EQ(g.chunks_received(), 0u);
  for (uint32_t i : {0u, 7u, 8u, 19u}) g.add_chunk(i);
  g.add_chunk(8);  // twice: still one chunk
  EXPECT_EQ(g.chunks_received(), 4u);
  for (uint32_t i = 0; i < 24; ++i) EXPECT_EQ(g.has_chunk(i), i == 0 || i == 7 || i == 8 || i == 19) << i;
  EXPECT_EQ(g.chunks_present.size(), 3u);
  GroupInfo info{1, g};
  GroupInfo back = round_trip(info);
  EXPECT_EQ(back.group.chunks, 20u);
  EXPECT_EQ(back.group.chunks_received(), 4u);
  EXPECT_TRUE(back.group.has_chunk(19));
}

TEST(Protocol, EveryMessageTypeRoundTrips) {
  TaskRecord rec;
  rec.id = Id::random();
  rec.state = TaskState::kSucceeded;
  rec.result = "{}";
  Event ev;
  ev.seq = 9;
  ev.type = EventType::kWorkerOffline;
  ev.state = TaskState::kRevoked;
  std::vector<Message> all = {
      Submit{}, GetTask{1, Id::random()}, GetGroup{2, Id::random()},
      WaitTasks{3, {Id::random()}, 500}, Control{4, "ping", "{}"}, Replay{5, 10, 100}, Confirm{11},
      SubmitAck{6, Id::random(), {Id::random()}, true}, TaskInfo{7, {rec}}, GroupInfo{8, {}},
      ControlReply{9, "{}"}, EventPage{10, Id::random(), 1, 2, {ev}}, Error{11, 404, "no"},
      Ready{"w@h", Id::random(), "h", 12, {"default"}, {"noop"}, 2, 2, {{Id::random(), 1}}},
      Welcome{1000, 3, {}},
      Tasks{{{Id::random(), 1, Id(), "r", "q", "k", "{}", 0, 0}}},
      Results{{{Id::random(), 1, OutcomeStatus::kRetry, "", "boom", 5}}},
      ResultsAck{{{Id::random(), 2}}}, Heartbeat{1}, Disconnect{"who?"}, Bye{"sigterm"},
      Revoke{{{Id::random(), 3}}},
      WorkerCommand{"pool", -2}, Started{{{Id::random(), 2}}},
      EventBatch{Id::random(), {ev}}, Hugz{Id::random(), 77}};
  EXPECT_EQ(all.size(), std::variant_size_v<Message>);
  for (const Message& m : all) {
    Frames f = encode(m);
    auto out = decode(f.header, f.body);
    ASSERT_TRUE(out) << command_name(command_of(m)) << ": " << out.status().to_string();
    EXPECT_EQ(command_of(*out), command_of(m));
    EXPECT_EQ(encode(*out).body, f.body) << command_name(command_of(m));
  }
}

TEST(Protocol, OlderPeerWithFewerFieldsDecodesWithDefaults) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_array(1);
  pk.pack(uint64_t{77});  // only corr
  Frames f = encode(Submit{});
  auto out = decode(f.header, std::string_view(buf.data(), buf.size()));
  ASSERT_TRUE(out) << out.status().to_string();
  EXPECT_EQ(std::get<Submit>(*out).corr, 77u);
  EXPECT_TRUE(std::get<Submit>(*out).seal);
}

TEST(Protocol, ReadyCarriesTestProfilesAndMcpServers) {
  Ready r{"w@h", Id::random(), "h", 12, {"tests"}, {"test", "mcp"}, 2, 4, {}};
  r.test_profiles = {"unittest", "junit"};
  r.mcp_servers = {"everything"};
  Ready out = round_trip(r);
  EXPECT_EQ(out.test_profiles, (std::vector<std::string>{"unittest", "junit"}));
  EXPECT_EQ(out.mcp_servers, (std::vector<std::string>{"everything"}));
  EXPECT_EQ(out.kinds, r.kinds);
  EXPECT_EQ(out.capacity, 4u);
}

TEST(Protocol, ReadyOfAnOlderWorkerDecodesWithoutProfilesOrServers) {
  // An older worker's READY: the nine fields before test_profiles and mcp_servers.
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_array(9);
  pk.pack(std::string("old@h"));
  pk.pack(Id::random());
  pk.pack(std::string("h"));
  pk.pack(uint32_t{7});
  pk.pack(std::vector<std::string>{"tests"});
  pk.pack(std::vector<std::string>{"test"});
  pk.pack(uint32_t{2});
  pk.pack(uint32_t{2});
  pk.pack(std::vector<Claim>{});
  Frames f = encode(Ready{});
  auto out = decode(f.header, std::string_view(buf.data(), buf.size()));
  ASSERT_TRUE(out) << out.status().to_string();
  const Ready& r = std::get<Ready>(*out);
  EXPECT_EQ(r.name, "old@h");
  EXPECT_EQ(r.kinds, std::vector<std::string>{"test"});
  EXPECT_TRUE(r.test_profiles.empty());
  EXPECT_TRUE(r.mcp_servers.empty());
}

TEST(Protocol, ReadyWithAProfileListOfTheWrongTypeIsRejected) {
  Ready r;
  r.name = "w";
  Frames good = encode(r);
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_array(10);
  pk.pack(std::string("w"));
  pk.pack(Id::random());
  pk.pack(std::string("h"));
  pk.pack(uint32_t{7});
  pk.pack(std::vector<std::string>{});
  pk.pack(std::vector<std::string>{});
  pk.pack(uint32_t{2});
  pk.pack(uint32_t{2});
  pk.pack(std::vector<Claim>{});
  pk.pack(uint32_t{5});  // test_profiles must be an array of strings
  auto out = decode(good.header, std::string_view(buf.data(), buf.size()));
  EXPECT_FALSE(out);
}

TEST(Protocol, NewerPeerWithExtraFieldsDecodes) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_array(2);
  pk.pack(uint64_t{5});
  pk.pack(std::string("a field from the future"));
  Frames f = encode(Confirm{});
  auto out = decode(f.header, std::string_view(buf.data(), buf.size()));
  ASSERT_TRUE(out) << out.status().to_string();
  EXPECT_EQ(std::get<Confirm>(*out).seq, 5u);
}

TEST(Protocol, RejectsBadHeaders) {
  Frames f = encode(Heartbeat{});
  EXPECT_EQ(decode("", f.body).status().code(), Code::kBadRequest);
  EXPECT_EQ(decode("ZB", f.body).status().code(), Code::kBadRequest);
  EXPECT_EQ(decode("XX\x01\x86", f.body).status().code(), Code::kBadRequest);
  EXPECT_EQ(decode(std::string("ZB\x02\x86"), f.body).status().code(), Code::kBadVersion);
  auto unknown = decode(std::string("ZB\x01\x33"), f.body);
  EXPECT_EQ(unknown.status().code(), Code::kBadRequest);
  EXPECT_NE(unknown.status().message().find("unknown command 0x33"), std::string::npos);
}

TEST(Protocol, RejectsTruncatedBodies) {
  Submit s;
  s.tasks.resize(3);
  s.tasks[0].payload = std::string(100, 'p');
  Frames f = encode(s);
  for (size_t n = 0; n < f.body.size(); ++n) {
    auto out = decode(f.header, std::string_view(f.body).substr(0, n));
    EXPECT_FALSE(out) << "prefix of " << n << " bytes decoded";
  }
}

TEST(Protocol, RejectsTrailingBytes) {
  Frames f = encode(Confirm{3});
  auto out = decode(f.header, f.body + "x");
  EXPECT_FALSE(out);
  EXPECT_NE(out.status().message().find("trailing"), std::string::npos);
}

TEST(Protocol, RejectsWrongTypes) {
  Frames f = encode(GetTask{1, Id::random()});
  // Same command, but the task id is a string, not a 16-byte bin.
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_array(2);
  pk.pack(uint64_t{1});
  pk.pack(std::string("0123456789abcdef"));
  EXPECT_EQ(decode(f.header, std::string_view(buf.data(), buf.size())).status().code(),
            Code::kBadRequest);
  // Not an array at all.
  msgpack::sbuffer map;
  msgpack::packer<msgpack::sbuffer> pm(map);
  pm.pack_map(0);
  EXPECT_FALSE(decode(f.header, std::string_view(map.data(), map.size())));
  // An out-of-range enum byte.
  Event ev;
  msgpack::sbuffer eb;
  msgpack::packer<msgpack::sbuffer> pe(eb);
  pe.pack_array(2);
  pe.pack(Id::random());
  pe.pack_array(1);
  pe.pack_array(3);
  pe.pack(uint64_t{1});
  pe.pack(uint64_t{1});
  pe.pack(uint8_t{200});  // EventType
  Frames eh = encode(EventBatch{});
  EXPECT_FALSE(decode(eh.header, std::string_view(eb.data(), eb.size())));
}

TEST(Protocol, HostileLengthPrefixDoesNotAllocate) {
  Frames f = encode(Submit{});
  // bin32 / array32 / str32 announcing ~4 GiB with nothing behind it.
  for (std::string body : {std::string("\xdd\xff\xff\xff\xff", 5), std::string("\xc6\xff\xff\xff\xff", 5),
                           std::string("\xdb\xff\xff\xff\xff", 5), std::string("\xdf\xff\xff\xff\xff", 5)}) {
    auto out = decode(f.header, body);
    EXPECT_FALSE(out);
  }
}

TEST(Protocol, DeepNestingIsRejected) {
  std::string body(100, '\x91');  // 100 nested one-element arrays
  body.push_back('\x00');
  Frames f = encode(Submit{});
  auto out = decode(f.header, body);
  EXPECT_FALSE(out);
}

TEST(Protocol, RandomBytesNeverCrash) {
  std::mt19937 rng(1234);
  const Command commands[] = {Command::kSubmit, Command::kResults, Command::kReady,
                              Command::kEventBatch, Command::kTasks, Command::kWaitTasks};
  for (int i = 0; i < 20000; ++i) {
    std::string body(rng() % 64, '\0');
    for (char& c : body) c = static_cast<char>(rng());
    std::string header = {'Z', 'B', 1, static_cast<char>(commands[i % 6])};
    (void)decode(header, body);  // must return, not crash or throw
  }
  // Mutations of a valid message.
  Submit s;
  s.tasks.resize(2);
  Frames f = encode(s);
  for (int i = 0; i < 20000; ++i) {
    std::string body = f.body;
    body[rng() % body.size()] = static_cast<char>(rng());
    (void)decode(f.header, body);
  }
  SUCCEED();
}

TEST(Wire, RejectsMessagesWithWrongFrameCounts) {
  zmq::context_t ctx;
  zmq::socket_t router(ctx, zmq::socket_type::router), dealer(ctx, zmq::socket_type::dealer);
  wire::configure(router, zmq::socket_type::router);
  wire::configure(dealer, zmq::socket_type::dealer);
  router.bind("inproc://wire-test");
  dealer.connect("inproc://wire-test");
  auto recv_blocking = [&] {
    zmq::pollitem_t item{router.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(2000));
    return wire::recv(router, true);
  };
  dealer.send(zmq::str_buffer("only one frame"), zmq::send_flags::none);
  auto one = recv_blocking();
  ASSERT_TRUE(one);
  EXPECT_FALSE(one->message);
  for (int i = 0; i < 4; ++i) dealer.send(zmq::str_buffer("x"), zmq::send_flags::sndmore);
  dealer.send(zmq::str_buffer("x"), zmq::send_flags::none);
  auto five = recv_blocking();
  ASSERT_TRUE(five);
  EXPECT_FALSE(five->message);
  ASSERT_TRUE(wire::send(dealer, Heartbeat{3}));
  auto good = recv_blocking();
  ASSERT_TRUE(good && good->message);
  EXPECT_EQ(std::get<Heartbeat>(*good->message).busy, 3u);
  EXPECT_FALSE(good->routing_id.empty());
  EXPECT_FALSE(wire::recv(router, true));  // nothing left
}

}  // namespace
}  // namespace zb::proto
