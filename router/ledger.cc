#include "router/ledger.h"

#include <filesystem>
#include <functional>
#include <limits>

namespace zb::router {
namespace {

// One zone per thread, cleared after each record: a record costs no allocation of its own
// for the parse (msgpack's default is a fresh 8 KiB zone per unpack).
template <typename T>
Result<T> unpack(std::string_view bytes, const char* what) {
  thread_local msgpack::zone zone;
  struct Clear {
    msgpack::zone& z;
    ~Clear() { z.clear(); }
  } clear{zone};
  try {
    msgpack::object o = msgpack::unpack(zone, bytes.data(), bytes.size());
    T out;
    o.convert(out);
    return out;
  } catch (const std::exception& e) {
    return Status(Code::kIo, std::string("corrupt ") + what + " record: " + e.what());
  }
}

// Reads the msgpack that TaskRecord's MSGPACK_DEFINE writes straight into the struct, where
// the generic unpack first builds an object tree in a zone and then copies out of it: a task
// record is read at every dispatch and every result. It reads only the layout this build
// writes (the 23 fields, each in the type it is packed as); anything else (an older or newer
// layout, a field in another msgpack type, a corrupt byte) makes it give up, and the generic
// unpack, which accepts every layout msgpack's conversions do and reports corruption, decides.
class RecordReader {
 public:
  explicit RecordReader(std::string_view bytes)
      : p_(reinterpret_cast<const uint8_t*>(bytes.data())), end_(p_ + bytes.size()) {}

  bool done() const { return p_ == end_; }

  bool array(uint32_t& n) {
    if (p_ == end_) return false;
    const uint8_t b = *p_;
    if ((b & 0xf0) == 0x90) {
      n = b & 0x0f;
      ++p_;
      return true;
    }
    if (b == 0xdc) return big(1, 2, n);
    if (b == 0xdd) return big(1, 4, n);
    return false;
  }

  template <typename U>
  bool uint(U& out) {
    if (p_ == end_) return false;
    const uint8_t b = *p_;
    uint64_t v = 0;
    if (b < 0x80) {
      v = b;
      ++p_;
    } else if (b >= 0xcc && b <= 0xcf) {
      if (!big(1, size_t{1} << (b - 0xcc), v)) return false;
    } else {
      return false;
    }
    if (v > std::numeric_limits<U>::max()) return false;
    out = static_cast<U>(v);
    return true;
  }

  bool str(std::string& out) {
    if (p_ == end_) return false;
    const uint8_t b = *p_;
    uint64_t n = 0;
    if ((b & 0xe0) == 0xa0) {
      n = b & 0x1f;
      ++p_;
    } else if (b >= 0xd9 && b <= 0xdb) {
      if (!big(1, size_t{1} << (b - 0xd9), n)) return false;
    } else {
      return false;
    }
    if (n > static_cast<uint64_t>(end_ - p_)) return false;
    out.assign(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return true;
  }

  bool id(Id& out) {
    if (end_ - p_ < 2 + static_cast<ptrdiff_t>(Id::kSize) || p_[0] != 0xc4 || p_[1] != Id::kSize) return false;
    auto parsed = Id::from_bytes(std::string_view(reinterpret_cast<const char*>(p_ + 2), Id::kSize));
    if (!parsed) return false;
    out = *parsed;
    p_ += 2 + Id::kSize;
    return true;
  }

  bool state(TaskState& out) {
    uint8_t b = 0;
    if (!uint(b)) return false;
    auto s = state_from_byte(b);
    if (!s) return false;
    out = *s;
    return true;
  }

 private:
  // A big-endian integer of `width` bytes after `skip` bytes of type.
  template <typename U>
  bool big(size_t skip, size_t width, U& out) {
    if (static_cast<size_t>(end_ - p_) < skip + width) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < width; ++i) v = (v << 8) | p_[skip + i];
    if (v > std::numeric_limits<U>::max()) return false;
    out = static_cast<U>(v);
    p_ += skip + width;
    return true;
  }

  const uint8_t* p_;
  const uint8_t* end_;
};

bool read_task_record(std::string_view bytes, proto::TaskRecord& r) {
  RecordReader in(bytes);
  uint32_t n = 0;
  // 25 fields as this build writes them; 23 before dependencies (deps and inputs empty).
  return in.array(n) && (n == 23 || n == 25) && in.id(r.id) && in.id(r.group) && in.str(r.ref) && in.str(r.queue) &&
         in.str(r.kind) && in.str(r.payload) && in.uint(r.priority) && in.state(r.state) && in.uint(r.attempt) &&
         in.uint(r.max_retries) && in.uint(r.seq) && in.uint(r.created_ms) && in.uint(r.eta_ms) &&
         in.uint(r.started_ms) && in.uint(r.finished_ms) && in.str(r.worker) && in.str(r.result) &&
         in.str(r.error) && in.uint(r.retries) && in.uint(r.soft_limit_ms) && in.uint(r.hard_limit_ms) &&
         in.str(r.trace) && in.str(r.unique_key) && (n == 23 || (in.str(r.deps) && in.str(r.inputs))) && in.done();
}

}  // namespace

Result<proto::TaskRecord> decode_task_record(std::string_view bytes) {
  proto::TaskRecord rec;
  if (read_task_record(bytes, rec)) return rec;
  return unpack<proto::TaskRecord>(bytes, "task");
}

Result<Ledger> Ledger::open(const std::string& dir, const lmdb::EnvOptions& options) {
  // Durable commits are made by the Durability thread, not by LMDB's own sync in each commit.
  RestoreReport restored;
  const std::string boot_id = current_boot_id();
  if (options.sync) {
    std::error_code ec;
    if (std::filesystem::exists(dir + "/data.mdb", ec)) {
      auto r = Durability::restore(dir, boot_id);
      if (!r) return r.status();
      restored = *r;
    }
  }
  lmdb::EnvOptions env_options = options;
  env_options.sync = false;
  auto env = lmdb::Env::open(dir, env_options);
  if (!env) return env.status();
  Ledger ledger(std::move(env.value()));
  ledger.restored_ = restored;
  if (options.sync) {
    auto d = Durability::start(ledger.env_, dir, boot_id);
    if (!d) return d.status();
    ledger.durability_ = std::move(d.value());
  }
  auto txn = lmdb::Txn::begin(ledger.env_, false);
  if (!txn) return txn.status();
  struct { const char* name; lmdb::Dbi* dbi; } dbs[] = {
      {"tasks", &ledger.tasks_}, {"leases", &ledger.leases_}, {"groups", &ledger.groups_},
      {"events", &ledger.events_}, {"idem", &ledger.idem_}, {"meta", &ledger.meta_db_},
      {"dead", &ledger.dead_}, {"expiry", &ledger.expiry_}, {"schedules", &ledger.schedules_},
      {"firings", &ledger.firings_}, {"unique", &ledger.unique_}, {"waits", &ledger.waits_},
      {"members", &ledger.members_}};
  for (auto& db : dbs) {
    auto dbi = txn->open_db(db.name, MDB_CREATE);
    if (!dbi) return dbi.status();
    *db.dbi = *dbi;
  }
  if (Status s = txn->commit(); !s) return s;
  if (Status s = ledger.load_meta(); !s) return s;
  MDB_envinfo info;
  mdb_env_info(ledger.env_.get(), &info);
  ledger.last_commit_ = info.me_last_txnid;
  if (ledger.durability_) ledger.durability_->committed(ledger.last_commit_);
  return ledger;
}

Status Ledger::load_meta() {
  auto txn = lmdb::Txn::begin(env_, false);
  if (!txn) return txn.status();
  auto read_u64 = [&](const char* key, uint64_t& out) -> Status {
    auto v = txn->get(meta_db_, key);
    if (!v) return v.status();
    if (v->has_value() && (*v)->size() == 8) out = lmdb::from_be64(**v);
    return Status::ok();
  };
  auto id = txn->get(meta_db_, "log_id");
  if (!id) return id.status();
  if (id->has_value()) {
    auto parsed = Id::from_bytes(**id);
    if (!parsed) return Status(Code::kIo, "corrupt meta log_id");
    meta_.log_id = *parsed;
  } else {
    meta_.log_id = Id::random();
    if (Status s = txn->put(meta_db_, "log_id", meta_.log_id.bytes()); !s) return s;
  }
  for (auto [key, out] : {std::pair{"seq", &meta_.seq}, {"task_seq", &meta_.task_seq},
                          {"confirmed", &meta_.confirmed}})
    if (Status s = read_u64(key, *out); !s) return s;
  meta_.first_seq = meta_.seq + 1;
  {
    auto c = lmdb::Cursor::open(*txn, events_);  // closed before the commit, as LMDB requires
    if (!c) return c.status();
    if (c->first()) meta_.first_seq = lmdb::from_be64(c->key());
  }
  return txn->commit();
}

Status Ledger::begin() {
  auto txn = lmdb::Txn::begin(env_, false);
  if (!txn) return txn.status();
  txn_.emplace(std::move(txn.value()));
  return Status::ok();
}

Status Ledger::commit() {
  for (auto [key, v] : {std::pair{"seq", meta_.seq}, {"task_seq", meta_.task_seq},
                        {"confirmed", meta_.confirmed}})
    if (Status s = txn().put(meta_db_, key, lmdb::be64(v)); !s) {
      abort();
      return s;
    }
  const uint64_t id = txn_->id();
  const uint64_t writes = txn_->writes();
  Status s = txn_->commit();
  txn_.reset();
  if (!s) return s;
  last_commit_ = id;
  ++commits_;
  records_ += writes;
  if (durability_) durability_->committed(id);
  return s;
}

void Ledger::abort() { txn_.reset(); }

Status Ledger::reload_meta() {
  abort();
  return load_meta();
}

template <typename T>
static Status put_packed(lmdb::Txn& txn, lmdb::Dbi dbi, std::string_view key, const T& value,
                         msgpack::sbuffer& buffer) {
  buffer.clear();
  msgpack::pack(buffer, value);
  return txn.put(dbi, key, std::string_view(buffer.data(), buffer.size()));
}

template <typename T>
static Result<std::optional<T>> get_packed(lmdb::Txn& txn, lmdb::Dbi dbi, std::string_view key,
                                           const char* what) {
  auto v = txn.get(dbi, key);
  if (!v) return v.status();
  if (!v->has_value()) return std::optional<T>{};
  auto rec = unpack<T>(**v, what);
  if (!rec) return rec.status();
  return std::optional<T>{std::move(rec.value())};
}

Result<std::optional<proto::TaskRecord>> Ledger::get_task(const Id& id) {
  auto v = txn().get(tasks_, id.bytes());
  if (!v) return v.status();
  if (!v->has_value()) return std::optional<proto::TaskRecord>{};
  auto rec = decode_task_record(**v);
  if (!rec) return rec.status();
  return std::optional<proto::TaskRecord>{std::move(rec.value())};
}
Status Ledger::put_task(const proto::TaskRecord& task) {
  return put_packed(txn(), tasks_, task.id.bytes(), task, buffer_);
}
Status Ledger::put_lease(const Id& id, const Lease& lease) {
  return put_packed(txn(), leases_, id.bytes(), lease, buffer_);
}
Status Ledger::del_lease(const Id& id) { return txn().del(leases_, id.bytes()); }
Result<std::optional<proto::GroupRecord>> Ledger::get_group(const Id& id) {
  return get_packed<proto::GroupRecord>(txn(), groups_, id.bytes(), "group");
}
Status Ledger::put_group(const proto::GroupRecord& group) {
  return put_packed(txn(), groups_, group.id.bytes(), group, buffer_);
}
Result<std::optional<IdemRecord>> Ledger::get_idem(const std::string& key) {
  return get_packed<IdemRecord>(txn(), idem_, key, "idempotency");
}
Status Ledger::put_idem(const std::string& key, const IdemRecord& record) {
  return put_packed(txn(), idem_, key, record, buffer_);
}

Status Ledger::del_task(const Id& id) { return txn().del(tasks_, id.bytes()); }
Status Ledger::del_group(const Id& id) { return txn().del(groups_, id.bytes()); }
Status Ledger::del_idem(const std::string& key) { return txn().del(idem_, key); }

namespace {
std::string unique_index_key(std::string_view queue, std::string_view key) {
  std::string k(queue);
  k.push_back('\0');
  k.append(key);
  return k;
}
}  // namespace

Result<std::optional<Id>> Ledger::get_unique(std::string_view queue, std::string_view key) {
  auto v = txn().get(unique_, unique_index_key(queue, key));
  if (!v) return v.status();
  if (!v->has_value()) return std::optional<Id>();
  auto id = Id::from_bytes(**v);
  if (!id) return Status(Code::kIo, "corrupt unique-key record");
  return std::optional<Id>(*id);
}
Status Ledger::put_unique(std::string_view queue, std::string_view key, const Id& task) {
  return txn().put(unique_, unique_index_key(queue, key), task.bytes());
}
Status Ledger::del_unique(std::string_view queue, std::string_view key, const Id& task) {
  auto held = get_unique(queue, key);
  if (!held) return held.status();
  if (!held->has_value() || **held != task) return Status::ok();  // held by another, or by none
  return txn().del(unique_, unique_index_key(queue, key));
}

Status Ledger::put_dead(const Id& id) { return txn().put(dead_, id.bytes(), {}); }
Status Ledger::del_dead(const Id& id) { return txn().del(dead_, id.bytes()); }
Result<uint64_t> Ledger::count_dead() { return txn().count(dead_); }

namespace {
std::string wait_key(bool group, const Id& awaited) {
  std::string k(1, group ? 'G' : 'T');
  k.append(awaited.bytes());
  return k;
}
}  // namespace

Status Ledger::put_wait(bool group, const Id& awaited, const Id& waiter) {
  return txn().put(waits_, wait_key(group, awaited) + std::string(waiter.bytes()), "");
}
Status Ledger::del_wait(bool group, const Id& awaited, const Id& waiter) {
  return txn().del(waits_, wait_key(group, awaited) + std::string(waiter.bytes()));
}
Status Ledger::waiters_of(bool group, const Id& awaited, std::vector<Id>& out) {
  const std::string prefix = wait_key(group, awaited);
  auto c = lmdb::Cursor::open(txn(), waits_);
  if (!c) return c.status();
  for (bool ok = c->seek(prefix); ok && c->key().starts_with(prefix); ok = c->next()) {
    auto id = Id::from_bytes(c->key().substr(prefix.size()));
    if (!id) return Status(Code::kIo, "corrupt dependency key");
    out.push_back(*id);
  }
  return Status::ok();
}
Status Ledger::for_each_wait(const std::function<void(bool, const Id&, const Id&)>& fn) {
  auto c = lmdb::Cursor::open(txn(), waits_);
  if (!c) return c.status();
  for (bool ok = c->first(); ok; ok = c->next()) {
    const std::string_view k = c->key();
    if (k.size() != 1 + 2 * Id::kSize || (k[0] != 'T' && k[0] != 'G')) return Status(Code::kIo, "corrupt dependency key");
    auto awaited = Id::from_bytes(k.substr(1, Id::kSize));
    auto waiter = Id::from_bytes(k.substr(1 + Id::kSize));
    if (!awaited || !waiter) return Status(Code::kIo, "corrupt dependency key");
    fn(k[0] == 'G', *awaited, *waiter);
  }
  return Status::ok();
}
Status Ledger::put_member(const Id& group, uint64_t seq, const Id& task) {
  return txn().put(members_, std::string(group.bytes()) + lmdb::be64(seq), task.bytes());
}
Status Ledger::for_each_member(const Id& group, const std::function<bool(const Id&)>& fn) {
  const std::string prefix(group.bytes());
  auto c = lmdb::Cursor::open(txn(), members_);
  if (!c) return c.status();
  for (bool ok = c->seek(prefix); ok && c->key().starts_with(prefix); ok = c->next()) {
    auto id = Id::from_bytes(c->value());
    if (!id) return Status(Code::kIo, "corrupt group member");
    if (!fn(*id)) break;
  }
  return Status::ok();
}
Status Ledger::del_members(const Id& group) {
  const std::string prefix(group.bytes());
  auto c = lmdb::Cursor::open(txn(), members_);
  if (!c) return c.status();
  bool ok = c->seek(prefix);
  while (ok && c->key().starts_with(prefix)) {
    if (Status s = c->del(); !s) return s;
    ok = c->next();
  }
  return Status::ok();
}

Status Ledger::for_each_dead(const Id& after, const std::function<bool(const Id&)>& fn) {
  auto c = lmdb::Cursor::open(txn(), dead_);
  if (!c) return c.status();
  bool ok = after.is_nil() ? c->first() : c->seek(after.bytes());
  if (ok && !after.is_nil() && c->key() == after.bytes()) ok = c->next();
  for (; ok; ok = c->next()) {
    auto id = Id::from_bytes(c->key());
    if (!id) return Status(Code::kIo, "corrupt dead-letter key");
    if (!fn(*id)) break;
  }
  return Status::ok();
}

namespace {
std::string firing_key(const std::string& name, uint64_t slot_ms) {
  std::string k = name;
  k.push_back('\0');
  k.append(lmdb::be64(slot_ms));
  return k;
}
}  // namespace

Status Ledger::put_schedule(const proto::ScheduleRow& row) {
  return put_packed(txn(), schedules_, row.spec.name, row, buffer_);
}

Status Ledger::del_schedule(const std::string& name) {
  if (Status s = txn().del(schedules_, name); !s) return s;
  return trim_firings(name, 0);
}

Status Ledger::for_each_schedule(const std::function<void(proto::ScheduleRow&&)>& fn) {
  auto c = lmdb::Cursor::open(txn(), schedules_);
  if (!c) return c.status();
  for (bool ok = c->first(); ok; ok = c->next()) {
    auto row = unpack<proto::ScheduleRow>(c->value(), "schedule");
    if (!row) return row.status();
    fn(std::move(*row));
  }
  return Status::ok();
}

Status Ledger::put_firing(const std::string& name, const proto::ScheduleFiring& firing) {
  return put_packed(txn(), firings_, firing_key(name, firing.slot_ms), firing, buffer_);
}

Result<bool> Ledger::has_firing(const std::string& name, uint64_t slot_ms) {
  auto v = txn().get(firings_, firing_key(name, slot_ms));
  if (!v) return v.status();
  return v->has_value();
}

Status Ledger::for_each_firing(const std::string& name,
                               const std::function<bool(const proto::ScheduleFiring&)>& fn) {
  std::string prefix = name;
  prefix.push_back('\0');
  auto c = lmdb::Cursor::open(txn(), firings_);
  if (!c) return c.status();
  for (bool ok = c->seek(prefix); ok && c->key().substr(0, prefix.size()) == prefix; ok = c->next()) {
    auto f = unpack<proto::ScheduleFiring>(c->value(), "firing");
    if (!f) return f.status();
    if (!fn(*f)) break;
  }
  return Status::ok();
}

Result<std::vector<proto::ScheduleFiring>> Ledger::firings_before(const std::string& name, uint64_t before_ms,
                                                                   size_t limit) {
  std::string prefix = name;
  prefix.push_back('\0');
  std::vector<proto::ScheduleFiring> out;
  auto c = lmdb::Cursor::open(txn(), firings_);
  if (!c) return c.status();
  // From the first key at or past the bound (or past the schedule's keys), backwards.
  bool ok = before_ms ? c->seek(prefix + lmdb::be64(before_ms)) : c->seek(name + std::string(1, '\1'));
  ok = ok ? c->prev() : c->last();
  for (; ok && out.size() < limit && c->key().substr(0, prefix.size()) == prefix; ok = c->prev()) {
    auto f = unpack<proto::ScheduleFiring>(c->value(), "firing");
    if (!f) return f.status();
    out.push_back(std::move(*f));
  }
  return out;
}

Status Ledger::trim_firings(const std::string& name, size_t keep) {
  std::string prefix = name;
  prefix.push_back('\0');
  size_t total = 0;
  {
    auto c = lmdb::Cursor::open(txn(), firings_);
    if (!c) return c.status();
    for (bool ok = c->seek(prefix); ok && c->key().substr(0, prefix.size()) == prefix; ok = c->next()) ++total;
  }
  if (total <= keep) return Status::ok();
  size_t drop = total - keep;
  auto c = lmdb::Cursor::open(txn(), firings_);
  if (!c) return c.status();
  bool ok = c->seek(prefix);
  while (drop > 0 && ok && c->key().substr(0, prefix.size()) == prefix) {
    if (Status s = c->del(); !s) return s;
    --drop;
    ok = c->seek(prefix);
  }
  return Status::ok();
}

Status Ledger::put_expiry(uint64_t at_ms, Expiring kind, std::string_view key) {
  std::string k = lmdb::be64(at_ms);
  k.push_back(static_cast<char>(kind));
  k.append(key);
  return txn().put(expiry_, k, {});
}

Result<size_t> Ledger::sweep_expired(uint64_t upto_ms, size_t max,
                                     const std::function<Status(Expiring, std::string_view, uint64_t)>& fn) {
  // Collect first: fn deletes from other databases, which is fine, but keep the cursor simple.
  std::vector<std::string> keys;
  {
    auto c = lmdb::Cursor::open(txn(), expiry_);
    if (!c) return c.status();
    for (bool ok = c->first(); ok && keys.size() < max; ok = c->next()) {
      if (c->key().size() < 9) return Status(Code::kIo, "corrupt expiry key");
      if (lmdb::from_be64(c->key()) > upto_ms) break;
      keys.emplace_back(c->key());
    }
  }
  for (const auto& k : keys) {
    const uint8_t kind = static_cast<uint8_t>(k[8]);
    if (kind > 2) return Status(Code::kIo, "corrupt expiry kind");
    if (Status s = fn(static_cast<Expiring>(kind), std::string_view(k).substr(9), lmdb::from_be64(k)); !s) return s;
    if (Status s = txn().del(expiry_, k); !s) return s;
  }
  return keys.size();
}

Status Ledger::append_event(proto::Event& event, PackedEvents& out) {
  event.seq = ++meta_.seq;
  buffer_.clear();
  msgpack::pack(buffer_, event);
  const std::string_view packed(buffer_.data(), buffer_.size());
  if (Status s = txn().put(events_, lmdb::be64(event.seq), packed, MDB_APPEND); !s) return s;
  out.append(packed);
  return Status::ok();
}

namespace {
// A msgpack stream that appends to a string.
struct StringSink {
  std::string& s;
  void write(const char* p, size_t n) { s.append(p, n); }
};
}  // namespace

proto::Frames PackedEvents::encode_batch(const Id& log_id) const {
  proto::Frames f;
  f.header = {'Z', 'B', static_cast<char>(proto::kVersion), static_cast<char>(proto::Command::kEventBatch)};
  f.body.reserve(bytes_.size() + 32);
  StringSink sink{f.body};
  msgpack::packer<StringSink> pk(sink);
  pk.pack_array(2);  // proto::EventBatch: log_id, events
  pk.pack(log_id);
  pk.pack_array(static_cast<uint32_t>(count_));
  f.body.append(bytes_);
  return f;
}

std::vector<proto::Event> PackedEvents::decode() const {
  std::vector<proto::Event> out;
  size_t offset = 0;
  while (offset < bytes_.size()) {
    msgpack::object_handle h = msgpack::unpack(bytes_.data(), bytes_.size(), offset);
    out.push_back(h.get().as<proto::Event>());
  }
  return out;
}

Result<std::vector<proto::Event>> Ledger::read_events(uint64_t after, size_t max) {
  auto rtxn = lmdb::Txn::begin(env_, true);
  if (!rtxn) return rtxn.status();
  auto c = lmdb::Cursor::open(*rtxn, events_);
  if (!c) return c.status();
  std::vector<proto::Event> out;
  for (bool ok = c->seek(lmdb::be64(after + 1)); ok && out.size() < max; ok = c->next()) {
    auto ev = unpack<proto::Event>(c->value(), "event");
    if (!ev) return ev.status();
    out.push_back(std::move(ev.value()));
  }
  return out;
}

Status Ledger::trim_events(uint64_t upto, size_t max) {
  auto c = lmdb::Cursor::open(txn(), events_);
  if (!c) return c.status();
  size_t n = 0;
  for (bool ok = c->first(); ok && n < max && lmdb::from_be64(c->key()) <= upto; ++n) {
    if (Status s = c->del(); !s) return s;
    ok = c->next();
    if (ok) meta_.first_seq = lmdb::from_be64(c->key());
    else meta_.first_seq = meta_.seq + 1;
  }
  return Status::ok();
}

Status Ledger::for_each_task(const std::function<void(const proto::TaskRecord&)>& fn) {
  auto rtxn = lmdb::Txn::begin(env_, true);
  if (!rtxn) return rtxn.status();
  auto c = lmdb::Cursor::open(*rtxn, tasks_);
  if (!c) return c.status();
  for (bool ok = c->first(); ok; ok = c->next()) {
    auto rec = decode_task_record(c->value());
    if (!rec) return rec.status();
    fn(*rec);
  }
  return Status::ok();
}

Status Ledger::for_each_lease(const std::function<void(const Id&, const Lease&)>& fn) {
  auto rtxn = lmdb::Txn::begin(env_, true);
  if (!rtxn) return rtxn.status();
  auto c = lmdb::Cursor::open(*rtxn, leases_);
  if (!c) return c.status();
  for (bool ok = c->first(); ok; ok = c->next()) {
    auto lease = unpack<Lease>(c->value(), "lease");
    auto id = Id::from_bytes(c->key());
    if (!lease || !id) return Status(Code::kIo, "corrupt lease record");
    fn(*id, *lease);
  }
  return Status::ok();
}

}  // namespace zb::router
