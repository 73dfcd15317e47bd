// The store's application of router events (StatusDb::apply) on a real LMDB in a temporary
// folder, emptied before each input. Input: a mode byte, then events (tests/fuzz/events.h),
// cut into batches where an event says so. Mode bit 0 set: the events reach the store as they
// are, unknown enum values included. Otherwise they go through the codec first, as an
// EVENT_BATCH encoded and decoded like on the wire (type, state and from-state taken modulo their enums,
// which the decoder range-checks).
//
// Whatever the events, apply() must succeed (a hostile event is skipped and counted, never an
// error), applied() must follow the rule of consecutive seqs, and every record the store wrote
// must read back. A group the store holds never counts more tasks completed or running than
// it has: such a record is skipped, not applied.
#include <unistd.h>

#include <filesystem>

#include <spdlog/spdlog.h>

#include "store/status_db.h"
#include "tests/fuzz/events.h"

namespace {

using namespace zb;

store::StatusDb* db = nullptr;
std::filesystem::path folder;

void remove_folder() {
  std::error_code ec;
  std::filesystem::remove_all(folder, ec);
}

// Applies one batch the way the follower does, and checks applied() against the rule.
void apply_batch(const std::vector<proto::Event>& batch, bool through_codec) {
  std::vector<proto::Event> events = batch;
  if (through_codec) {
    for (auto& e : events) {
      e.type = static_cast<proto::EventType>(static_cast<uint8_t>(e.type) % proto::kEventTypeCount);
      e.state = static_cast<TaskState>(static_cast<uint8_t>(e.state) % kTaskStateCount);
      e.from = static_cast<TaskState>(static_cast<uint8_t>(e.from) % kTaskStateCount);
    }
    proto::Frames f = proto::encode(proto::EventBatch{db->log_id(), std::move(events)});
    auto decoded = proto::decode(f.header, f.body);
    FUZZ_CHECK(decoded);
    events = std::get<proto::EventBatch>(std::move(*decoded)).events;
    FUZZ_CHECK(events.size() == batch.size());
  }
  uint64_t expected = db->applied();
  bool any = false;
  for (const auto& e : events) {
    if (e.seq <= expected) continue;
    if (any && e.seq != expected + 1) break;
    expected = e.seq;
    any = true;
  }
  const uint64_t skipped_before = db->skipped();
  const Status s = db->apply(db->log_id(), events);
  FUZZ_CHECK(s);
  FUZZ_CHECK(db->applied() == expected);
  FUZZ_CHECK(db->skipped() >= skipped_before);
}

void read_back() {
  auto counters = db->counters();
  FUZZ_CHECK(counters);
  FUZZ_CHECK(counters->skipped == db->skipped());
  for (unsigned i = 0; i < 8; ++i) {
    const Id task = fuzz::pool_id(i, 0x7a), group = fuzz::pool_id(i, 0x67);
    auto t = db->task(task);
    FUZZ_CHECK(t);
    if (t->has_value()) FUZZ_CHECK(state_from_byte(static_cast<uint8_t>((*t)->state)));
    FUZZ_CHECK(db->timeline(task));
    auto g = db->group(group);
    FUZZ_CHECK(g);
    if (g->has_value()) {
      const store::GroupStatus& r = **g;
      FUZZ_CHECK(r.id == group);
      FUZZ_CHECK(uint64_t{r.succeeded} + r.failed + r.revoked <= r.total && r.running <= r.total);
    }
    FUZZ_CHECK(db->group_tasks(group, 0, 100));
    store::TaskFilter by_group;
    by_group.group = group;
    bool all = false;
    FUZZ_CHECK(db->list_tasks(by_group, &all));
  }
  store::TaskFilter every;
  bool all = false;
  FUZZ_CHECK(db->list_tasks(every, &all));
  FUZZ_CHECK(db->list_groups(100, false, 0));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);  // skipped events are logged: not here
  const char* shm = "/dev/shm";
  std::error_code ec;
  const std::filesystem::path base = std::filesystem::is_directory(shm, ec) ? std::filesystem::path(shm)
                                                                             : std::filesystem::temp_directory_path();
  std::string templ = (base / "zbatch-fuzz-store-XXXXXX").string();
  FUZZ_CHECK(::mkdtemp(templ.data()) != nullptr);
  folder = templ;
  std::atexit(remove_folder);
  lmdb::EnvOptions options;
  options.sync = false;  // what is tested is the apply logic, not the disk
  options.map_bytes = 64u << 20;
  auto opened = store::StatusDb::open(folder.string(), options);
  FUZZ_CHECK(opened);
  static store::StatusDb kept = std::move(opened.value());
  db = &kept;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace zb;
  if (!db) LLVMFuzzerInitialize(nullptr, nullptr);
  FUZZ_CHECK(db->reset(fuzz::pool_id(1, 0x10)));
  FUZZ_CHECK(db->applied() == 0 && db->skipped() == 0);
  fuzz::Reader in(data, size);
  const bool through_codec = !(in.u8() & 1);
  std::vector<proto::Event> batch;
  uint64_t seq = 0;
  for (int n = 0; !in.empty() && n < 256; ++n) {
    fuzz::FuzzEvent e = fuzz::read_event(in, seq);
    if (e.new_batch && !batch.empty()) {
      apply_batch(batch, through_codec);
      batch.clear();
    }
    batch.push_back(std::move(e.event));
  }
  if (!batch.empty()) apply_batch(batch, through_codec);
  read_back();
  return 0;
}
