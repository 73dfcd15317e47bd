// Writes the generated part of the seed corpus (tests/fuzz/corpus/<target>/gen-*): encoded
// valid messages of every protocol type, frame sets, and event sequences, some of them the
// hostile ones the store must survive. The output is the same on every run (fixed ids), so
// regenerating after a protocol change shows in the diff exactly what changed.
//
//   zbatch_fuzz_corpus tests/fuzz/corpus
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "common/protocol.h"
#include "tests/fuzz/events.h"

namespace {

using namespace zb;
using namespace zb::proto;
namespace fs = std::filesystem;
using fuzz::EventSpec;

fs::path root;

void write(const std::string& target, const std::string& name, const std::string& bytes) {
  fs::create_directories(root / target);
  std::ofstream(root / target / ("gen-" + name), std::ios::binary) << bytes;
}

Id fixed(uint8_t n) {
  std::string raw(Id::kSize, '\0');
  for (size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<char>(n * 17 + i);
  return *Id::from_bytes(raw);
}

std::string message_bytes(const Message& m) {
  Frames f = encode(m);
  return f.header + f.body;
}

// A request of each shape of arguments and a reply of each operation.
void control_messages(const TaskRecord& rec) {
  auto control = [](ControlOp op, ControlArgs args) {
    Control c = Control::make(op, std::move(args));
    c.corr = 8;
    return c;
  };
  write("proto_decode", "control-ping", message_bytes(control(ControlOp::kPing, {})));
  write("proto_decode", "control-purge", message_bytes(control(ControlOp::kPurge, PurgeArgs{"default"})));
  write("proto_decode", "control-revoke", message_bytes(control(ControlOp::kRevoke, TaskArgs{fixed(1), true})));
  write("proto_decode", "control-retry-failed", message_bytes(control(ControlOp::kRetryFailed, RetryFailedArgs{{}, 500})));
  write("proto_decode", "control-worker-pool", message_bytes(control(ControlOp::kWorkerPool, WorkerArgs{"w1@host", -2})));
  TaskRow row{rec.id, "task-1", "agent_tasks", "agent", TaskState::kStarted, 1, 7, fixed(2), 0, 1700000000000,
              "w1@host", 1700000001000, "", 0, 0};
  TaskRow dead = row;
  dead.state = TaskState::kFailed;
  dead.error = "ValueError: boom";
  dead.retries = 3;
  dead.finished_ms = 1700000002000;
  InspectStatsReply stats;
  stats.router.submitted = 10;
  stats.router.refused.forbidden = 1;
  stats.router.durability = "fsync";
  stats.workers.push_back({"w1@host", fixed(4), "host", 4242, 4, 16, 1, 1, 9, 1, 1700000003000, 1700000000000, false,
                           {"default", "agent_tasks"}});
  const std::vector<std::pair<std::string, ControlResult>> replies = {
      {"ping", PingReply{fixed(9), 41, 1, 5000}},
      {"inspect.active", InspectActiveReply{{{"w1@host", fixed(4), {row}}}, 1}},
      {"inspect.scheduled", TaskListReply{{row}, 1200}},
      {"inspect.stats", stats},
      {"inspect.registered", InspectRegisteredReply{{{"w1@host", {"echo", "agent"}, {"unit"}, {"filesystem"}}}}},
      {"inspect.failed", InspectFailedReply{3, {dead}, dead.id}},
      {"revoke", RevokeReply{fixed(1), "terminated"}},
      {"retry.failed", RetryFailedReply{2, 1}},
      {"worker.pool", WorkerCommandReply{"w1@host", "worker.pool"}},
  };
  for (const auto& [op, reply] : replies) {
    std::string name = op;
    std::replace(name.begin(), name.end(), '.', '-');
    write("proto_decode", "control-reply-" + name, message_bytes(ControlReply{8, op, reply}));
  }
}

void protocol_messages() {
  TaskSpec spec{"agent_tasks", "agent", R"({"description":"review","files":{"a.py":"x=1"}})", 7, 0, "task-1", 3, 0, 0, 1500,
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "review:a.py", 1, {fixed(7)}, {1}, fixed(8), 2};
  TaskRecord rec;
  rec.id = fixed(1);
  rec.group = fixed(2);
  rec.ref = "task-1";
  rec.queue = "agent_tasks";
  rec.kind = "agent";
  rec.payload = spec.payload;
  rec.state = TaskState::kSucceeded;
  rec.attempt = 1;
  rec.result = R"({"message":{"content":"ok"}})";
  Event ev;
  ev.seq = 41;
  ev.ts_ms = 1700000000000;
  ev.type = EventType::kTaskSucceeded;
  ev.task = fixed(1);
  ev.group = fixed(2);
  ev.queue = "agent_tasks";
  ev.state = TaskState::kSucceeded;
  ev.attempt = 1;
  ev.result = rec.result;
  ev.runtime_us = 1500;
  GroupRecord group{fixed(2), 2, 1, 0, 0, 1, 1, true, 1700000000000, 0, 1, std::string(1, '\x01'), 2, fixed(6)};
  Event group_ev;
  group_ev.seq = 40;
  group_ev.type = EventType::kGroupUpdated;
  group_ev.group = fixed(2);
  group_ev.group_record.push_back(group);
  group_ev.group_record.back().chunks_present.clear();
  Event online;
  online.seq = 39;
  online.type = EventType::kWorkerOnline;
  online.worker = "w1@host";
  online.worker_note.push_back({"host", 4242, 4, 16, ""});
  Control failed_control = Control::make(ControlOp::kInspectFailed, InspectFailedArgs{"agent_tasks", 10, fixed(1)});
  failed_control.corr = 5;
  failed_control.deadline_ms = 1700000030000;
  const std::vector<std::pair<std::string, Message>> all = {
      {"submit", Submit{1, fixed(2), 2, true, "idem-1", {spec, TaskSpec{}}, 1700000030000, fixed(5), 0, 1, 2, fixed(6), {}}},
      {"get-task", GetTask{2, fixed(1)}},
      {"get-group", GetGroup{3, fixed(2)}},
      {"wait-tasks", WaitTasks{4, {fixed(1), fixed(3)}, 5000}},
      {"control", failed_control},
      {"replay", Replay{6, 39, 10000}},
      {"confirm", Confirm{41}},
      {"submit-ack", SubmitAck{1, fixed(2), {fixed(1), fixed(3)}, false, 41, {1}, {fixed(4)}}},
      {"task-info", TaskInfo{2, {rec}}},
      {"group-info", GroupInfo{3, group}},
      {"control-reply", ControlReply{5, "inspect.queues", InspectQueuesReply{{{"default", 5, "echo", 3, 1, 0, 2}}}}},
      {"event-page", EventPage{6, fixed(9), 1, 41, {online, group_ev, ev}}},
      {"error", Error{7, 422, "unknown queue 'nope'"}},
      {"ready", Ready{"w1@host", fixed(4), "host", 4242, {"default", "agent_tasks"}, {"echo", "agent"}, 4, 16, {{fixed(1), 1}},
                      {"unit"}, {"filesystem"}}},
      {"welcome", Welcome{1000, 3, {{fixed(3), 2}}}},
      {"tasks", Tasks{{{fixed(1), 1, fixed(2), "task-1", "agent_tasks", "agent", spec.payload, 3300000, 3600000, spec.trace, "{\"tasks\":[]}"}}}},
      {"results", Results{{{fixed(1), 1, OutcomeStatus::kSucceeded, rec.result, "", 1500},
                           {fixed(3), 2, OutcomeStatus::kRetry, "", "OllamaUnavailable: connection refused", 10}}}},
      {"results-ack", ResultsAck{{{fixed(1), 1}}}},
      {"heartbeat", Heartbeat{2, 16, 4, 0, 0}},
      {"disconnect", Disconnect{"unknown worker"}},
      {"bye", Bye{"sigterm"}},
      {"revoke", Revoke{{{fixed(1), 1}}}},
      {"worker-command", WorkerCommand{"pool", -1}},
      {"started", Started{{{fixed(1), 1}, {fixed(3), 2}}}},
      {"event-batch", EventBatch{fixed(9), {group_ev, ev}}},
      {"hugz", Hugz{fixed(9), 41}},
      {"recall", Recall{{{fixed(1), 1}, {fixed(3), 2}}}},
      {"output", Output{{{fixed(1), 1, 1, 0, "Hello, ", 1700000000000}, {fixed(1), 1, 2, 1, "{\"tool\":\"write_file\"}", 1700000000001}}}},
  };
  if (all.size() != std::variant_size_v<Message>) {
    std::cerr << "make_corpus: a message type has no example\n";
    std::exit(1);
  }
  for (const auto& [name, m] : all) write("proto_decode", name, message_bytes(m));
  control_messages(rec);

  // wire_frames: a flags byte, then 16-bit length-prefixed frames.
  auto frames = [](bool routed, const std::vector<std::string>& parts) {
    fuzz::Writer w;
    w.u8(routed ? 1 : 0);
    for (const auto& p : parts) w.u16(static_cast<uint16_t>(p.size())).raw(p);
    return w.data();
  };
  Frames hb = encode(Heartbeat{1, 0, 0, 0, 0}), sub = encode(Submit{1, Id(), 0, true, "", {spec}, 0, Id(), 0, 0, 0, Id(), {}});
  write("wire_frames", "dealer", frames(false, {hb.header, hb.body}));
  write("wire_frames", "router", frames(true, {"\x00\x6b\x8b\x45\x67", sub.header, sub.body}));
  write("wire_frames", "router-missing-body", frames(true, {"id", sub.header}));
  write("wire_frames", "too-many", frames(false, {hb.header, hb.body, "x", "y"}));
}

std::string events(bool raw, const std::vector<EventSpec>& list) {
  fuzz::Writer w;
  w.u8(raw ? 1 : 0);
  for (const auto& e : list) fuzz::write_event(w, e);
  return w.data();
}

EventSpec task_event(EventType type, TaskState state, unsigned task, unsigned group, uint64_t ts) {
  EventSpec e;
  e.type = type;
  e.state = state;
  e.task = task;
  e.group = group;
  e.ts_ms = ts;
  e.queue = "default";
  e.kind = "echo";
  return e;
}

// A group-updated event of `group` carrying `records` (the router sends exactly one, of the
// event's own group).
EventSpec group_event(unsigned group, std::vector<fuzz::RecordSpec> records, uint64_t ts) {
  EventSpec e;
  e.type = EventType::kGroupUpdated;
  e.group = group;
  e.ts_ms = ts;
  e.records = std::move(records);
  return e;
}

fuzz::RecordSpec record(unsigned group, uint32_t total, uint32_t succeeded, uint32_t failed, uint32_t running,
                        uint64_t created_ms, uint64_t finished_ms) {
  fuzz::RecordSpec r;
  r.group = group;
  r.total = total;
  r.succeeded = succeeded;
  r.failed = failed;
  r.running = running;
  r.parallel = 1;
  r.created_ms = created_ms;
  r.finished_ms = finished_ms;
  return r;
}

void store_events() {
  using S = TaskState;
  using T = EventType;
  // A group of two: received, started, one succeeds, one fails, then an explicit retry; the
  // group's record after each turn.
  std::vector<EventSpec> life = {
      task_event(T::kTaskReceived, S::kQueued, 1, 1, 1000), task_event(T::kTaskReceived, S::kQueued, 2, 1, 1000),
      group_event(1, {record(1, 2, 0, 0, 0, 1000, 0)}, 1000),
      task_event(T::kTaskStarted, S::kStarted, 1, 1, 1010), task_event(T::kTaskSucceeded, S::kSucceeded, 1, 1, 1020),
      task_event(T::kTaskStarted, S::kStarted, 2, 1, 1030), task_event(T::kTaskRetried, S::kRetrying, 2, 1, 1040),
      task_event(T::kTaskQueued, S::kQueued, 2, 1, 1100), task_event(T::kTaskStarted, S::kStarted, 2, 1, 1110),
      task_event(T::kTaskFailed, S::kFailed, 2, 1, 1120), group_event(1, {record(1, 2, 1, 1, 0, 1000, 1120)}, 1120),
      task_event(T::kTaskQueued, S::kQueued, 2, 1, 1200), group_event(1, {record(1, 2, 1, 0, 0, 1000, 0)}, 1200),
  };
  life[2].new_batch = true;
  life[4].runtime_us = 1500;
  life[4].result = R"({"echo":1})";
  life[4].worker = "w1@host";
  life[6].error = "OllamaUnavailable: connection refused";
  life[6].retries = 1;
  life[6].max_retries = 3;
  life[6].delay_ms = 60;
  life[9].error = "BadTask: no description";
  life[9].runtime_us = 90;
  life[9].retries = 1;
  life[9].new_batch = true;
  life[11].from = S::kFailed;
  write("status_db_apply", "life-cycle", events(false, life));

  // Records the store must not apply, each followed by a good event: none, two, one naming
  // another group, counters beyond the total, a group-updated without a group id.
  fuzz::RecordSpec too_many = record(1, 2, 2, 1, 0, 5, 5);
  fuzz::RecordSpec runaway = record(1, 2, 0, 0, 4294967295u, 5, 0);
  write("status_db_apply", "group-record-missing",
        events(false, {group_event(1, {}, 5), task_event(T::kTaskReceived, S::kQueued, 1, 1, 6)}));
  std::vector<EventSpec> hostile = {
      group_event(1, {record(1, 2, 0, 0, 0, 1, 0), record(1, 3, 0, 0, 0, 1, 0)}, 1),
      group_event(1, {record(2, 2, 0, 0, 0, 2, 0)}, 2),
      group_event(1, {too_many}, 3), group_event(1, {runaway}, 4),
      group_event(0, {record(0, 1, 0, 0, 0, 5, 0)}, 5),
      task_event(T::kTaskSucceeded, S::kSucceeded, 1, 1, 8), task_event(T::kTaskFailed, S::kQueued, 2, 1, 9),
      task_event(T::kTaskReceived, S::kSucceeded, 3, 0, 10), task_event(T::kTaskStarted, S::kStarted, 0, 1, 11),
  };
  EventSpec expired;
  expired.type = T::kResultsExpired;
  hostile.push_back(expired);  // no instant
  expired.before_ms = UINT64_MAX;
  hostile.push_back(expired);
  write("status_db_apply", "hostile-details", events(false, hostile));

  // Absurd numbers and seqs: a repeated seq, a gap inside a batch, a jump to the top.
  std::vector<EventSpec> absurd = {task_event(T::kTaskReceived, S::kQueued, 1, 2, UINT64_MAX),
                                   task_event(T::kTaskStarted, S::kStarted, 1, 2, 0),
                                   task_event(T::kTaskSucceeded, S::kSucceeded, 1, 2, UINT64_MAX)};
  absurd[1].seq_step = 0;
  absurd[1].attempt = UINT32_MAX;
  absurd[2].seq_step = 5;
  absurd[2].runtime_us = UINT64_MAX;
  EventSpec top = task_event(T::kTaskQueued, S::kQueued, 1, 2, 1);
  top.seq_step = UINT64_MAX / 2;
  top.new_batch = true;
  absurd.push_back(top);
  write("status_db_apply", "absurd-numbers", events(false, absurd));

  // Unknown enum values, handed to the store without the codec.
  std::vector<EventSpec> unknown = {task_event(static_cast<T>(200), S::kQueued, 1, 1, 1),
                                    task_event(T::kTaskReceived, static_cast<S>(99), 2, 1, 2),
                                    task_event(T::kTaskQueued, S::kQueued, 2, 1, 3),
                                    task_event(T::kTaskReceived, S::kQueued, 3, 1, 4)};
  unknown[2].from = static_cast<S>(77);
  write("status_db_apply", "unknown-enums", events(true, unknown));

  // sse_query: four parameters (presence byte, string), then one event.
  auto query = [](std::initializer_list<std::optional<std::string>> params, const EventSpec& e) {
    fuzz::Writer w;
    for (const auto& p : params) {
      w.u8(p ? 1 : 0);
      if (p) w.str(*p);
    }
    fuzz::write_event(w, e);
    return w.data();
  };
  EventSpec ok = life[4];
  ok.seq_step = 42;
  write("sse_query", "resume-header", query({"41", std::nullopt, std::nullopt, std::nullopt}, ok));
  write("sse_query", "after-group-queue", query({std::nullopt, "7", fixed(2).to_string(), "default"}, ok));
  write("sse_query", "bad-resume", query({"-1", "18446744073709551616", "not-a-group", ""}, ok));
  EventSpec binary = life[6];
  binary.error = "ProcessExitError: exit code 1: \xff\xfe\xc3(";
  binary.result = "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]";
  write("sse_query", "invalid-utf8-error", query({"", "18446744073709551615", std::nullopt, std::nullopt}, binary));
  // A worker-supplied hostname, not UTF-8 and full of quotes, in the typed note.
  EventSpec online;
  online.type = T::kWorkerOnline;
  online.worker = "w1@host";
  online.worker_note = proto::WorkerNote{"h\"o\\st\xff\n", 4242, 4, 16, ""};
  write("sse_query", "worker-online-hostname", query({std::nullopt, std::nullopt, std::nullopt, std::nullopt}, online));
  write("sse_query", "group-record", query({std::nullopt, std::nullopt, fixed(2).to_string(), std::nullopt}, life[10]));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: zbatch_fuzz_corpus CORPUS_DIR\n";
    return 2;
  }
  root = argv[1];
  protocol_messages();
  store_events();
  return 0;
}
