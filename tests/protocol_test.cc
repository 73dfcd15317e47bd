#include <gtest/gtest.h>

#include <functional>
#include <random>

#include "common/control_json.h"
#include "common/protocol.h"
#include "common/text.h"
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
  s.tasks.push_back({"agent_tasks", "echo", R"({"a":1})", 7, 1234, "task1", 3, 0, 0, 0,
                     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "key-1", 1, {}, {}, Id(), 0});
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
  EXPECT_EQ(out.tasks[0].trace, s.tasks[0].trace);
  EXPECT_EQ(out.tasks[0].unique_key, "key-1");
  EXPECT_EQ(out.tasks[0].on_duplicate, 1);
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

TEST(Protocol, AnOutcomeCarriesItsRetryDelayAndAnOlderOneHasNone) {
  Results r{{{Id::random(), 3, OutcomeStatus::kRetry, "", "OllamaServerError: HTTP 429", 7, 2000}}};
  EXPECT_EQ(round_trip(r).outcomes.at(0).retry_after_ms, 2000u);
  // An outcome of a worker that knew only the first six fields.
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_array(1);
  pk.pack_array(1);
  pk.pack_array(6);
  pk.pack(r.outcomes[0].task);
  pk.pack(uint32_t{3});
  pk.pack(OutcomeStatus::kRetry);
  pk.pack(std::string());
  pk.pack(std::string("boom"));
  pk.pack(uint64_t{7});
  Frames f = encode(Results{});
  auto old = decode(f.header, std::string_view(buf.data(), buf.size()));
  ASSERT_TRUE(old) << old.status().to_string();
  const Outcome& o = std::get<Results>(*old).outcomes.at(0);
  EXPECT_EQ(o.attempt, 3u);
  EXPECT_EQ(o.error, "boom");
  EXPECT_EQ(o.retry_after_ms, 0u);
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
      WaitTasks{3, {Id::random()}, 500}, Control::make(ControlOp::kPing), Replay{5, 10, 100}, Confirm{11},
      SubmitAck{6, Id::random(), {Id::random()}, true, 0, {0}, {}}, TaskInfo{7, {rec}}, GroupInfo{8, {}},
      ControlReply{9, "ping", PingReply{Id::random(), 3, 1, 10}}, EventPage{10, Id::random(), 1, 2, {ev}}, Error{11, 404, "no"},
      Ready{"w@h", Id::random(), "h", 12, {"default"}, {"noop"}, 2, 2, {{Id::random(), 1}}},
      Welcome{1000, 3, {}},
      Tasks{{{Id::random(), 1, Id(), "r", "q", "k", "{}", 0, 0, "", ""}}},
      Results{{{Id::random(), 1, OutcomeStatus::kRetry, "", "boom", 5, 2000}}},
      ResultsAck{{{Id::random(), 2}}}, Heartbeat{1}, Disconnect{"who?"}, Bye{"sigterm"},
      Revoke{{{Id::random(), 3}}},
      WorkerCommand{"pool", -2}, Started{{{Id::random(), 2}}},
      EventBatch{Id::random(), {ev}}, Hugz{Id::random(), 77}, Recall{{{Id::random(), 4}}},
      Output{{{Id::random(), 1, 1, 0, "tok", 5}}}};
  EXPECT_EQ(all.size(), std::variant_size_v<Message>);
  for (const Message& m : all) {
    Frames f = encode(m);
    auto out = decode(f.header, f.body);
    ASSERT_TRUE(out) << command_name(command_of(m)) << ": " << out.status().to_string();
    EXPECT_EQ(command_of(*out), command_of(m));
    EXPECT_EQ(encode(*out).body, f.body) << command_name(command_of(m));
  }
}

// Control: every operation's arguments and reply, decoded by the operation's name.
Control control(ControlOp op, ControlArgs args) {
  Control c = Control::make(op, std::move(args));
  c.corr = 4;
  c.deadline_ms = 1700000000000;
  return c;
}

Frames raw_control(const std::string& op, const std::function<void(msgpack::packer<msgpack::sbuffer>&)>& args) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_array(args ? 5 : 4);
  pk.pack(uint64_t{4});
  pk.pack(op);
  pk.pack(std::string("{}"));
  pk.pack(uint64_t{0});
  if (args) args(pk);
  return Frames{encode(Control{}).header, std::string(buf.data(), buf.size())};
}

TEST(Protocol, EveryControlOperationRoundTripsWithItsArgumentsAndReply) {
  for (int i = 0; i < kControlOpCount; ++i) {
    const auto op = static_cast<ControlOp>(i);
    EXPECT_EQ(parse_control_op(control_op_name(op)), op);
    ControlArgs args = default_control_args(op);
    if (auto* a = std::get_if<WorkerArgs>(&args)) *a = {"w1@host", op == ControlOp::kWorkerPool ? -3 : 0};
    if (auto* a = std::get_if<TaskArgs>(&args)) *a = {Id::random(), op == ControlOp::kRevoke};
    if (auto* a = std::get_if<GroupArgs>(&args)) *a = {Id::random(), true};
    if (auto* a = std::get_if<ScheduleArgs>(&args)) a->name = "nightly";
    if (auto* a = std::get_if<ScheduleSpec>(&args)) {
      a->name = "nightly";
      a->cron = "30 3 * * *";
      a->timezone = "Europe/Berlin";
      a->task.kind = "echo";
    }
    const Control in = control(op, args);
    const Control out = round_trip(in);
    EXPECT_EQ(out.op, control_op_name(op));
    EXPECT_EQ(out.corr, 4u);
    EXPECT_EQ(out.deadline_ms, 1700000000000u);
    EXPECT_EQ(out.args.index(), args.index()) << out.op;
    EXPECT_EQ(encode(out).body, encode(in).body) << out.op;
    const ControlReply reply{7, std::string(control_op_name(op)), default_control_result(op)};
    const ControlReply back = round_trip(reply);
    EXPECT_EQ(back.reply.index(), reply.reply.index()) << out.op;
    EXPECT_EQ(encode(back).body, encode(reply).body) << out.op;
  }
  EXPECT_FALSE(parse_control_op("inspect"));
  EXPECT_TRUE(control_op_reads(ControlOp::kInspectFailed));
  EXPECT_FALSE(control_op_reads(ControlOp::kPurge));
  EXPECT_TRUE(control_op_reads(ControlOp::kScheduleList));
  EXPECT_FALSE(control_op_reads(ControlOp::kScheduleCreate));
  EXPECT_FALSE(control_op_reads(ControlOp::kScheduleRun));
}

TEST(Protocol, ScheduleOperationsAreCheckedOnDecode) {
  ScheduleSpec spec;
  spec.name = "tick";
  spec.every_ms = 5000;
  spec.task.payload = "{\"n\":1}";
  auto made = round_trip(control(ControlOp::kScheduleCreate, spec));
  const auto& got = std::get<ScheduleSpec>(made.args);
  EXPECT_EQ(got.every_ms, 5000u);
  EXPECT_EQ(got.task.payload, "{\"n\":1}");
  EXPECT_EQ(got.catch_up, "one");
  // A bad spec or name from a peer is refused by decode, with the operation named.
  for (auto edit : std::vector<std::function<void(ScheduleSpec&)>>{
           [](ScheduleSpec& s) { s.cron = "*/0 * * * *", s.every_ms = 0; },
           [](ScheduleSpec& s) { s.every_ms = 1; }, [](ScheduleSpec& s) { s.name = "../x"; },
           [](ScheduleSpec& s) { s.overlap = "maybe"; }}) {
    ScheduleSpec bad = spec;
    edit(bad);
    Control c = Control::make(ControlOp::kScheduleCreate, bad);
    EXPECT_FALSE(check_control(c)) << bad.name;
    EXPECT_NE(check_control(c).message().find("schedule.create: "), std::string::npos);
  }
  EXPECT_FALSE(check_control(Control::make(ControlOp::kSchedulePause, ScheduleArgs{""})));
  EXPECT_TRUE(check_control(Control::make(ControlOp::kScheduleList, ScheduleArgs{""})));
  EXPECT_FALSE(check_control(Control::make(ControlOp::kScheduleRun, ScheduleArgs{std::string(200, 'a')})));
}

TEST(Protocol, ControlArgumentsAndRepliesKeepTheirFields) {
  const Id task = Id::random(), after = Id::random();
  auto failed = round_trip(control(ControlOp::kInspectFailed, InspectFailedArgs{"tests", 7, after}));
  const auto& fa = std::get<InspectFailedArgs>(failed.args);
  EXPECT_EQ(fa.queue, "tests");
  EXPECT_EQ(fa.limit, 7u);
  EXPECT_EQ(fa.after, after);
  auto purge_all = round_trip(control(ControlOp::kPurge, PurgeArgs{}));
  EXPECT_FALSE(std::get<PurgeArgs>(purge_all.args).queue) << "no queue: every queue, not the queue named ''";
  auto purge_empty = round_trip(control(ControlOp::kPurge, PurgeArgs{""}));
  EXPECT_EQ(std::get<PurgeArgs>(purge_empty.args).queue, "");
  auto revoke = round_trip(control(ControlOp::kRevoke, TaskArgs{task, true}));
  EXPECT_EQ(std::get<TaskArgs>(revoke.args).task, task);
  EXPECT_TRUE(std::get<TaskArgs>(revoke.args).terminate);

  TaskRow row{task, "r", "q", "k", TaskState::kFailed, 3, 9, Id(), 5, 6, "w", 7, "boom", 2, 8};
  auto reply = round_trip(ControlReply{1, "inspect.failed", InspectFailedReply{10, {row}, task}});
  const auto& r = std::get<InspectFailedReply>(reply.reply);
  EXPECT_EQ(r.total, 10u);
  EXPECT_EQ(r.next, task);
  ASSERT_EQ(r.tasks.size(), 1u);
  EXPECT_EQ(r.tasks[0].state, TaskState::kFailed);
  EXPECT_EQ(r.tasks[0].error, "boom");
  EXPECT_EQ(r.tasks[0].finished_ms, 8u);
  InspectStatsReply stats;
  stats.router.refused.bad_counts = 4;
  stats.router.durability = "nosync";
  stats.workers.push_back({"w", Id::random(), "h", 1, 2, 3, 4, 5, 6, 7, 8, 9, true, {"default"}});
  auto s = std::get<InspectStatsReply>(round_trip(ControlReply{2, "inspect.stats", stats}).reply);
  EXPECT_EQ(s.router.refused.bad_counts, 4u);
  EXPECT_EQ(s.router.durability, "nosync");
  ASSERT_EQ(s.workers.size(), 1u);
  EXPECT_TRUE(s.workers[0].draining);
  EXPECT_EQ(s.workers[0].queues, std::vector<std::string>{"default"});
}

TEST(Protocol, ControlArgumentsOutOfRangeAreRejectedWithTheirReason) {
  auto refused = [](const Control& c) {
    Frames f = encode(c);
    auto out = decode(f.header, f.body);
    EXPECT_FALSE(out) << c.op;
    EXPECT_EQ(check_control(c).code(), Code::kBadRequest) << c.op;  // what the client checks before sending
    return out ? std::string() : out.status().message();
  };
  EXPECT_EQ(refused(control(ControlOp::kInspectFailed, InspectFailedArgs{{}, 0, Id()})), "inspect.failed: limit must be 1..100000");
  EXPECT_EQ(refused(control(ControlOp::kRetryFailed, RetryFailedArgs{{}, 100001})), "retry.failed: limit must be 1..100000");
  EXPECT_EQ(refused(control(ControlOp::kWorkerPool, WorkerArgs{"w", 0})),
            "worker.pool: delta must be a non-zero integer, -1024..1024");
  EXPECT_EQ(refused(control(ControlOp::kWorkerPool, WorkerArgs{"w", 1025})),
            "worker.pool: delta must be a non-zero integer, -1024..1024");
  EXPECT_EQ(refused(control(ControlOp::kWorkerPool, WorkerArgs{"", 1})), "worker.pool: worker must be a worker name");
  EXPECT_EQ(refused(control(ControlOp::kWorkerShutdown, WorkerArgs{"w", 1})), "worker.shutdown: takes no delta");
  EXPECT_EQ(refused(control(ControlOp::kRetry, TaskArgs{Id::random(), true})), "retry: terminate is for revoke");
  EXPECT_EQ(refused(control(ControlOp::kScheduleList, ScheduleArgs{"s", 1001, 0})), "schedule.list: firings must be 1..1000");
  EXPECT_EQ(refused(control(ControlOp::kScheduleList, ScheduleArgs{"", 10, 0})),
            "schedule.list: firings and before are for the list of one schedule");
  EXPECT_EQ(refused(control(ControlOp::kSchedulePause, ScheduleArgs{"s", 10, 5})),
            "schedule.pause: firings and before are for the list of one schedule");
  EXPECT_TRUE(check_control(Control::make(ControlOp::kScheduleList, ScheduleArgs{"s", 1000, 1})));
  Control unknown = Control::make(ControlOp::kPing);
  unknown.op = "bogus";
  EXPECT_EQ(refused(unknown), "unknown control operation 'bogus'");
  // Arguments of another operation: built locally (the variant), or on the wire (their fields
  // do not convert).
  EXPECT_EQ(check_control(Control::make(ControlOp::kPurge, TaskArgs{})).code(), Code::kBadRequest);
  Frames wrong = raw_control("purge", [](auto& pk) {  // worker.pool's (name, delta): a queue that is a number
    pk.pack_array(2);
    pk.pack(uint64_t{5});
    pk.pack(int32_t{-1});
  });
  EXPECT_EQ(decode(wrong.header, wrong.body).status().code(), Code::kBadRequest);
  Frames not_array = raw_control("revoke", [](auto& pk) { pk.pack(std::string("x")); });
  EXPECT_FALSE(decode(not_array.header, not_array.body));
  Frames bad_id = raw_control("revoke", [](auto& pk) {
    pk.pack_array(1);
    pk.pack(std::string("0123456789abcdef"));
  });
  EXPECT_FALSE(decode(bad_id.header, bad_id.body));
}

TEST(Protocol, AControlWithoutTheArgumentsItsOperationTakesIsRefused) {
  // An older peer's four fields (JSON arguments in the third): a purge without its queue must
  // not purge every queue.
  for (const char* op : {"purge", "inspect.failed", "revoke", "worker.pool"}) {
    Frames f = raw_control(op, nullptr);
    auto out = decode(f.header, f.body);
    ASSERT_FALSE(out) << op;
    EXPECT_EQ(out.status().message(), std::string(op) + ": its arguments are missing or of another operation");
    Frames nil = raw_control(op, [](auto& pk) { pk.pack_nil(); });
    EXPECT_FALSE(decode(nil.header, nil.body)) << op;
  }
  // An operation without arguments needs none, and ignores what a newer peer puts there.
  Frames ping = raw_control("ping", nullptr);
  EXPECT_TRUE(decode(ping.header, ping.body));
  Frames extra = raw_control("ping", [](auto& pk) { pk.pack(uint64_t{9}); });
  EXPECT_TRUE(decode(extra.header, extra.body));
  // What this peer sends in the old arguments' place is not JSON, so an older router refuses it.
  Frames sent = encode(Control::make(ControlOp::kPurge, PurgeArgs{"default"}));
  msgpack::object_handle h = msgpack::unpack(sent.body.data(), sent.body.size());
  EXPECT_EQ(h.get().via.array.ptr[2].as<std::string>(), "typed");
}

TEST(Protocol, HostileControlRepliesAreRejected) {
  auto reply_frames = [](const std::string& op, const std::function<void(msgpack::packer<msgpack::sbuffer>&)>& body) {
    msgpack::sbuffer buf;
    msgpack::packer<msgpack::sbuffer> pk(buf);
    pk.pack_array(4);
    pk.pack(uint64_t{1});
    pk.pack(std::string());
    pk.pack(op);
    body(pk);
    return Frames{encode(ControlReply{}).header, std::string(buf.data(), buf.size())};
  };
  Frames unknown = reply_frames("bogus", [](auto& pk) { pk.pack_nil(); });
  auto out = decode(unknown.header, unknown.body);
  ASSERT_FALSE(out);
  EXPECT_NE(out.status().message().find("unknown control operation 'bogus'"), std::string::npos);
  // A task row whose state byte is outside the enum.
  Frames bad_state = reply_frames("inspect.scheduled", [](auto& pk) {
    pk.pack_array(2);
    pk.pack_array(1);
    pk.pack_array(5);
    pk.pack(Id::random());
    pk.pack(std::string());
    pk.pack(std::string());
    pk.pack(std::string());
    pk.pack(uint8_t{200});
    pk.pack(uint64_t{1});
  });
  EXPECT_FALSE(decode(bad_state.header, bad_state.body));
  // A list claiming more rows than the body holds.
  Frames claims = reply_frames("inspect.reserved", [](auto& pk) {
    pk.pack_array(2);
    pk.pack_array(1000000);
  });
  EXPECT_FALSE(decode(claims.header, claims.body));
  EXPECT_EQ(check_control_reply(ControlReply{1, "ping", PurgeReply{}}).code(), Code::kBadRequest);
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

TEST(Protocol, RecallKeepsItsClaims) {
  const Id a = Id::random(), b = Id::random();
  Recall out = round_trip(Recall{{{a, 1}, {b, 7}}});
  ASSERT_EQ(out.claims.size(), 2u);
  EXPECT_EQ(out.claims[0], (Claim{a, 1}));
  EXPECT_EQ(out.claims[1], (Claim{b, 7}));
  EXPECT_EQ(command_name(Command::kRecall), "RECALL");
}

TEST(Protocol, OutputKeepsItsChunksAndAHeartbeatItsResources) {
  const Id a = Id::random();
  Output out = round_trip(Output{{{a, 2, 7, static_cast<uint8_t>(OutputType::kStep), R"({"tool":"x"})", 99}}});
  ASSERT_EQ(out.chunks.size(), 1u);
  EXPECT_EQ(out.chunks[0].task, a);
  EXPECT_EQ(out.chunks[0].attempt, 2u);
  EXPECT_EQ(out.chunks[0].seq, 7u);
  EXPECT_EQ(out.chunks[0].type, 1);
  EXPECT_EQ(out.chunks[0].text, R"({"tool":"x"})");
  EXPECT_EQ(out.chunks[0].ts_ms, 99u);
  EXPECT_EQ(command_name(Command::kOutput), "OUTPUT");
  EXPECT_EQ(output_type_name(OutputType::kLog), "log");
  Heartbeat beat = round_trip(Heartbeat{1, 0, 0, 9500, 1250});
  EXPECT_EQ(beat.rss_kb, 9500u);
  EXPECT_EQ(beat.load_milli, 1250u);
  // an older worker's heartbeat, three fields: no resources
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_array(3);
  pk.pack(1);
  pk.pack(2);
  pk.pack(3);
  auto old = decode(encode(Heartbeat{}).header, std::string_view(buf.data(), buf.size()));
  ASSERT_TRUE(old) << old.status().message();
  EXPECT_EQ(std::get<Heartbeat>(*old).rss_kb, 0u);
  EXPECT_EQ(std::get<Heartbeat>(*old).capacity, 2u);
}

// What a worker must survive from a peer posing as its router: a Recall whose claims are not
// claims, whose ids are not 16 bytes, or whose claim list announces more than it holds.
TEST(Protocol, HostileRecallsAreRejectedWithAReason) {
  const Frames f = encode(Recall{});
  auto body = [](const std::function<void(msgpack::packer<msgpack::sbuffer>&)>& fill) {
    msgpack::sbuffer buf;
    msgpack::packer<msgpack::sbuffer> pk(buf);
    fill(pk);
    return std::string(buf.data(), buf.size());
  };
  const std::vector<std::string> hostile = {
      body([](auto& pk) { pk.pack_array(1); pk.pack(std::string("claims")); }),      // not a list
      body([](auto& pk) {                                                             // a 3-byte id
        pk.pack_array(1); pk.pack_array(1); pk.pack_array(2); pk.pack_bin(3); pk.pack_bin_body("abc", 3);
        pk.pack(uint32_t{1});
      }),
      body([](auto& pk) {                                                             // attempt a string
        pk.pack_array(1); pk.pack_array(1); pk.pack_array(2); pk.pack(Id::random()); pk.pack(std::string("1"));
      }),
      body([](auto& pk) { pk.pack_array(1); pk.pack_array(1); pk.pack(uint64_t{5}); }),  // a claim not an array
      std::string("\x91\xdd\xff\xff\xff\xff", 6),                                     // 4 G claims announced
      body([](auto& pk) { pk.pack_array(1); pk.pack_array(0); }) + "x",                 // trailing bytes
  };
  for (size_t i = 0; i < hostile.size(); ++i) {
    auto out = decode(f.header, hostile[i]);
    EXPECT_FALSE(out) << "case " << i;
    if (!out) {
      EXPECT_FALSE(out.status().message().empty()) << "case " << i;
    }
  }
  // An empty recall is well formed: nothing to give back.
  auto empty = decode(f.header, body([](auto& pk) { pk.pack_array(1); pk.pack_array(0); }));
  ASSERT_TRUE(empty) << empty.status().to_string();
  EXPECT_TRUE(std::get<Recall>(*empty).claims.empty());
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

namespace zb {
namespace {

// The JSON view is what the HTTP API answers and `--json` prints: its text is a contract
// (docs/openapi.yaml), so these pin it byte for byte.
TEST(ControlJson, RepliesReadAsTheHttpApiAnswersThem) {
  using namespace proto;
  const Id log = Id::random(), task = Id::random(), group = Id::random(), session = Id::random();
  EXPECT_EQ(json_text(control_json(PingReply{log, 41, 1, 5000})),
            R"({"head_seq":41,"log_id":")" + log.to_string() + R"(","pong":true,"uptime_ms":5000,"workers":1})");
  TaskRow row{task, "r", "q", "k", TaskState::kStarted, 1, 9, group, 5, 6, "w", 7, "", 0, 0};
  EXPECT_EQ(json_text(control_json(InspectActiveReply{{{"w", session, {row}}}, 1})),
            R"({"total":1,"workers":[{"name":"w","session":")" + session.to_string() +
                R"(","tasks":[{"attempt":1,"created_ms":6,"eta_ms":5,"group":")" + group.to_string() + R"(","id":")" +
                task.to_string() + R"(","kind":"k","priority":9,"queue":"q","ref":"r","started_ms":7,"state":"started","worker":"w"}]}]})");
  row.group = Id();
  EXPECT_EQ(json_text(control_json(TaskListReply{{row}, 3})),
            R"({"tasks":[{"attempt":1,"created_ms":6,"eta_ms":5,"group":null,"id":")" + task.to_string() +
                R"(","kind":"k","priority":9,"queue":"q","ref":"r","state":"started","worker":"w"}],"total":3})");
  TaskRow dead{task, "r", "q", "k", TaskState::kFailed, 3, 9, Id(), 5, 6, "w", 7, "boom", 2, 8};
  EXPECT_EQ(json_text(control_json(InspectFailedReply{10, {dead}, task})),
            R"({"next":")" + task.to_string() + R"(","tasks":[{"attempt":3,"error":"boom","finished_ms":8,"group":null,"id":")" +
                task.to_string() + R"(","kind":"k","queue":"q","ref":"r","retries":2,"state":"failed","worker":"w"}],"total":10})");
  EXPECT_EQ(json_text(control_json(InspectFailedReply{0, {}, Id()})), R"({"tasks":[],"total":0})");
  EXPECT_EQ(json_text(control_json(InspectQueuesReply{{{"default", 5, "echo", 3, 1, 0, 2}}})),
            R"({"queues":[{"default_kind":"echo","depth":3,"fair":false,"name":"default","priority":5,"reserved":0,"running":2,"scheduled":1}]})");
  // A pooled queue carries its pool's model and servers.
  InspectQueuesReply pooled{{{"agents", 7, "agent", 0, 0, 0, 1, true, "coder"}}, {{"coder", "m", {{"http://a:1", 2, 1, 1500}}}}};
  EXPECT_EQ(json_text(control_json(pooled)),
            R"({"queues":[{"default_kind":"agent","depth":0,"fair":true,"hosts":[{"cooling_ms":1500,"host":"http://a:1","parallel":2,"running":1}],"model":"m","name":"agents","pool":"coder","priority":7,"reserved":0,"running":1,"scheduled":0}]})");
  EXPECT_EQ(json_text(control_json(RevokeReply{task, "held"})), R"({"revoked":")" + task.to_string() + R"(","was":"held"})");
  EXPECT_EQ(json_text(control_json(RetryReply{task, 2})), R"({"attempts_so_far":2,"retried":")" + task.to_string() + R"("})");
  EXPECT_EQ(json_text(control_json(RetryFailedReply{4, 1})), R"({"left":1,"retried":4})");
  EXPECT_EQ(json_text(control_json(PurgeReply{7})), R"({"purged":7})");
  EXPECT_EQ(json_text(control_json(WorkerCommandReply{"w", "worker.pool"})), R"({"sent":"worker.pool","worker":"w"})");
  InspectStatsReply stats;
  stats.router.durability = "fsync";
  const std::string text = json_text(control_json(stats));
  for (const char* key : {"\"uptime_ms\"", "\"refused\":{\"bad_counts\":0,\"forbidden\":0,\"foreign_claims\":0,"
                          "\"foreign_results\":0,\"foreign_started\":0,\"unknown_keys\":0}", "\"durability\":\"fsync\"",
                          "\"storage_full\":false", "\"workers\":[]"})
    EXPECT_NE(text.find(key), std::string::npos) << key << " in " << text;
}

}  // namespace
}  // namespace zb
