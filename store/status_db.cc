#include "store/status_db.h"

#include "common/log.h"

namespace zb::store {

void Counters::normalize() {
  constexpr size_t runtime = std::size(kRuntimeBucketsMs) + 1;
  if (runtime_buckets.size() == kRuntimeBucketsBefore + 1) {  // the +Inf count of the shorter table
    const uint64_t beyond = runtime_buckets.back();
    runtime_buckets.back() = 0;
    runtime_buckets.resize(runtime);
    runtime_buckets.back() = beyond;
  }
  runtime_buckets.resize(runtime);
  wait_buckets.resize(std::size(kWaitBucketsMs) + 1);
}
namespace {

// An event this store cannot make sense of: skipped and counted, never fatal.
Status undecodable(std::string what) { return Status(Code::kBadRequest, std::move(what)); }

// A group's record as group-updated carries it, checked: one record, the event's group, and
// counters that fit its size (each task completed once at most, and running ones among them). kBadRequest (skipped by apply) otherwise.
Result<const GroupStatus*> checked_record(const proto::Event& ev) {
  if (ev.group.is_nil()) return undecodable("group-updated without a group id");
  if (ev.group_record.size() != 1)
    return undecodable("group-updated with " + std::to_string(ev.group_record.size()) + " records, not one");
  const GroupStatus& g = ev.group_record.front();
  if (g.id != ev.group) return undecodable("group-updated whose record names group " + g.id.to_string());
  const uint64_t completed = uint64_t{g.succeeded} + g.failed + g.revoked;
  if (completed > g.total || g.running > g.total)
    return undecodable("group-updated counts " + std::to_string(completed) + " completed and " +
                       std::to_string(g.running) + " running of " + std::to_string(g.total) + " tasks");
  return &g;
}

// The state a task event must carry: the one its type stands for (a received task is scheduled
// or queued). False for a state the type contradicts or outside the enum.
bool state_fits(proto::EventType type, TaskState state) {
  using proto::EventType;
  if (!state_from_byte(static_cast<uint8_t>(state))) return false;
  switch (type) {
    case EventType::kTaskReceived:
      return state == TaskState::kScheduled || state == TaskState::kQueued || state == TaskState::kWaiting;
    case EventType::kTaskScheduled: return state == TaskState::kScheduled;
    case EventType::kTaskQueued: return state == TaskState::kQueued || state == TaskState::kWaiting;  // waiting: retried
    case EventType::kTaskStarted: return state == TaskState::kStarted;
    case EventType::kTaskRetried: return state == TaskState::kRetrying;
    case EventType::kTaskSucceeded: return state == TaskState::kSucceeded;
    case EventType::kTaskFailed: return state == TaskState::kFailed;
    case EventType::kTaskRevoked: return state == TaskState::kRevoked;
    default: return false;
  }
}

bool is_task_event(proto::EventType type) {
  return static_cast<uint8_t>(type) <= static_cast<uint8_t>(proto::EventType::kTaskRevoked);
}

template <typename T>
std::string pack(const T& v) {
  msgpack::sbuffer buf;
  msgpack::pack(buf, v);
  return std::string(buf.data(), buf.size());
}

template <typename T>
Result<T> unpack(std::string_view bytes) {
  try {
    auto h = msgpack::unpack(bytes.data(), bytes.size());
    T out;
    h.get().convert(out);
    return out;
  } catch (const std::exception& e) {
    return Status(Code::kIo, std::string("corrupt status record: ") + e.what());
  }
}

Result<TaskStatus> unpack_task(std::string_view bytes) { return unpack<TaskStatus>(bytes); }

template <typename T>
Result<std::optional<T>> read(lmdb::Txn& txn, lmdb::Dbi dbi, std::string_view key) {
  auto v = txn.get(dbi, key);
  if (!v) return v.status();
  if (!v->has_value()) return std::optional<T>{};
  auto out = unpack<T>(**v);
  if (!out) return out.status();
  return std::optional<T>{std::move(*out)};
}

}  // namespace

Result<StatusDb> StatusDb::open(const std::string& dir, const lmdb::EnvOptions& options) {
  auto env = lmdb::Env::open(dir, options);
  if (!env) return env.status();
  StatusDb db(std::move(env.value()));
  auto txn = lmdb::Txn::begin(db.env_, false);
  if (!txn) return txn.status();
  for (auto [name, dbi] : {std::pair{"tasks", &db.tasks_}, {"group_tasks", &db.group_tasks_},
                           {"groups", &db.groups_}, {"meta", &db.meta_},
                           {"expiry", &db.expiry_}, {"timeline", &db.timeline_},
                           {"group_times", &db.group_times_}, {"stream_log", &db.stream_log_},
                           {"series", &db.series_}, {"workers", &db.workers_}}) {
    auto d = txn->open_db(name, MDB_CREATE);
    if (!d) return d.status();
    *dbi = *d;
  }
  auto id = txn->get(db.meta_, "log_id");
  if (id && id->has_value()) db.log_id_ = Id::from_bytes(**id).value_or(Id());
  auto applied = txn->get(db.meta_, "applied");
  if (applied && applied->has_value() && (*applied)->size() == 8) db.applied_ = lmdb::from_be64(**applied);
  if (auto counts = read<Counters>(*txn, db.meta_, "counts"); counts && counts->has_value())
    db.skipped_ = (*counts)->skipped;
  if (Status s = txn->commit(); !s) return s;
  return db;
}

Status StatusDb::reset(const Id& log_id) {
  auto txn = lmdb::Txn::begin(env_, false);
  if (!txn) return txn.status();
  for (auto dbi : {tasks_, group_tasks_, groups_, meta_, expiry_, timeline_, group_times_, stream_log_})
    if (Status s = txn->drop(dbi); !s) return s;
  if (Status s = txn->put(meta_, "log_id", log_id.bytes()); !s) return s;
  if (Status s = txn->commit(); !s) return s;
  log_id_ = log_id;
  std::atomic_ref<uint64_t>(applied_).store(0);
  std::atomic_ref<uint64_t>(skipped_).store(0);
  std::atomic_ref<uint64_t>(resets_).fetch_add(1);
  return Status::ok();
}

Status StatusDb::apply(const Id& log_id, const std::vector<proto::Event>& events,
                       std::vector<StreamEntry>* entries) {
  const size_t entries_before = entries ? entries->size() : 0;
  auto fail = [&](Status s) {
    if (entries) entries->resize(entries_before);
    return s;
  };
  auto txn = lmdb::Txn::begin(env_, false);
  if (!txn) return txn.status();
  auto counts = read<Counters>(*txn, meta_, "counts");
  if (!counts) return counts.status();
  Counters c = counts->value_or(Counters{});
  c.normalize();
  series_batch_ = SeriesBatch();
  worker_batch_.clear();
  uint64_t applied = applied_;
  bool any = false;
  size_t count = 0;
  GroupCache groups;
  for (const auto& ev : events) {
    if (ev.seq <= applied) continue;
    if (any && ev.seq != applied + 1) break;  // a gap: applied() tells the caller where to replay
    Status s = apply_checked(*txn, ev, c, groups);
    if (s.code() == Code::kBadRequest) {
      ++c.skipped;
      spdlog::warn("store skipped event seq={} type={} reason=\"{}\"", ev.seq, proto::event_type_name(ev.type),
                   s.message());
    } else if (!s) {
      return fail(s);
    }
    StreamEntry entry = stream_entry(ev);
    if (Status s = txn->put(stream_log_, lmdb::be64(ev.seq), pack(entry)); !s) return fail(s);
    if (entries) entries->push_back(std::move(entry));
    applied = ev.seq;
    ++count;
    any = true;
  }
  if (!any) return Status::ok();
  // Deletes a little more than it adds, so a log that was once longer shrinks back.
  if (Status s = trim_stream_log(*txn, applied, 2 * count + 64); !s) return fail(s);
  if (Status s = series_batch_.merge(*txn, series_, 2 * count + 64); !s) return fail(s);
  if (Status s = merge_workers(*txn); !s) return fail(s);
  for (const auto& [id, group] : groups)
    if (Status s = txn->put(groups_, id.bytes(), pack(group)); !s) return fail(s);
  if (Status s = txn->put(meta_, "counts", pack(c)); !s) return fail(s);
  if (Status s = txn->put(meta_, "applied", lmdb::be64(applied)); !s) return fail(s);
  if (Status s = txn->put(meta_, "log_id", log_id.bytes()); !s) return fail(s);
  if (Status s = txn->commit(); !s) return fail(s);
  std::atomic_ref<uint64_t>(applied_).store(applied);
  std::atomic_ref<uint64_t>(skipped_).store(c.skipped);
  log_id_ = log_id;
  return Status::ok();
}

Status StatusDb::trim_stream_log(lmdb::Txn& txn, uint64_t applied, size_t max_deletes) {
  if (applied <= stream_retention_) return Status::ok();
  const uint64_t keep_from = applied - stream_retention_ + 1;
  auto cursor = lmdb::Cursor::open(txn, stream_log_);
  if (!cursor) return cursor.status();
  for (size_t n = 0; n < max_deletes && cursor->first() && cursor->key().size() == 8 &&
                     lmdb::from_be64(cursor->key()) < keep_from;
       ++n)
    if (Status s = cursor->del(); !s) return s;
  return Status::ok();
}

Result<std::vector<StreamEntry>> StatusDb::stream_since(uint64_t after, size_t max_events, size_t max_bytes) {
  auto txn = lmdb::Txn::begin(env_, true);
  if (!txn) return txn.status();
  std::vector<StreamEntry> out;
  {
    auto cursor = lmdb::Cursor::open(*txn, stream_log_);
    if (!cursor) return cursor.status();
    size_t bytes = 0;
    if (after == UINT64_MAX) return out;
    for (bool ok = cursor->seek(lmdb::be64(after + 1)); ok && out.size() < max_events && (out.empty() || bytes < max_bytes);
         ok = cursor->next()) {
      auto entry = unpack<StreamEntry>(cursor->value());
      if (!entry) return entry.status();
      bytes += entry->frame.size();
      out.push_back(std::move(*entry));
    }
  }
  txn->abort();
  return out;
}

// The exception boundary of one event: apply_one reads every field through checked accessors,
// so a throw here is a defect, not hostile input; it still only costs this event (skipped as
// undecodable) and never the process. Running out of memory fails the whole batch instead,
// which the follower retries.
Status StatusDb::apply_checked(lmdb::Txn& txn, const proto::Event& ev, Counters& c, GroupCache& groups) {
  try {
    return apply_one(txn, ev, c, groups);
  } catch (const std::bad_alloc&) {
    return Status(Code::kInternal, "out of memory applying event " + std::to_string(ev.seq));
  } catch (const std::exception& e) {
    return undecodable(std::string("apply threw: ") + e.what());
  }
}

Result<GroupStatus*> StatusDb::cached_group(lmdb::Txn& txn, GroupCache& cache, const Id& id) {
  if (auto it = cache.find(id); it != cache.end()) return &it->second;
  auto g = read<GroupStatus>(txn, groups_, id.bytes());
  if (!g) return g.status();
  GroupStatus& group = cache[id] = g->value_or(GroupStatus{});
  group.id = id;
  return &group;
}

Status StatusDb::apply_one(lmdb::Txn& txn, const proto::Event& ev, Counters& c, GroupCache& groups) {
  using proto::EventType;
  if (ev.type == EventType::kGroupUpdated) {
    // The router's record replaces this store's: the counters are the router's decision, so
    // the two never disagree. Checked whole before anything changes.
    auto record = checked_record(ev);
    if (!record) return record.status();
    auto cached = cached_group(txn, groups, ev.group);
    if (!cached) return cached.status();
    GroupStatus& group = **cached;
    const GroupStatus before = group;
    group = **record;
    group.chunks_present.clear();
    if (!group.created_ms) group.created_ms = before.created_ms ? before.created_ms : ev.ts_ms;
    if (group.created_ms != before.created_ms) {
      if (before.created_ms)
        if (Status s = txn.del(group_times_, lmdb::be64(before.created_ms) + std::string(ev.group.bytes())); !s) return s;
      if (Status s = txn.put(group_times_, lmdb::be64(group.created_ms) + std::string(ev.group.bytes()), {}); !s) return s;
    }
    if (group.ready() && group.finished_ms && group.finished_ms != before.finished_ms)
      if (Status s = put_expiry(txn, group.finished_ms, 1, group.id); !s) return s;
    return Status::ok();
  }
  if (ev.type == EventType::kResultsExpired) {
    if (!ev.before_ms) return undecodable("results-expired without before_ms");
    return expire(txn, ev.before_ms, groups);
  }
  if (!is_task_event(ev.type)) {
    if (static_cast<uint8_t>(ev.type) >= proto::kEventTypeCount)
      return undecodable("unknown event type " + std::to_string(static_cast<unsigned>(ev.type)));
    return Status::ok();  // worker and queue events: not kept here
  }
  if (ev.task.is_nil()) return undecodable("a task event without a task id");
  if (!state_fits(ev.type, ev.state))
    return undecodable("state " + std::to_string(static_cast<unsigned>(ev.state)) + " does not fit the event type");
  if (!state_from_byte(static_cast<uint8_t>(ev.from)))
    return undecodable("from-state " + std::to_string(static_cast<unsigned>(ev.from)) + " is not a state");

  auto found = read<TaskStatus>(txn, tasks_, ev.task.bytes());
  if (!found) return found.status();
  TaskStatus t = found->value_or(TaskStatus{});
  const bool known = found->has_value();
  switch (ev.type) {
    case EventType::kTaskReceived:
      t.id = ev.task;
      t.group = ev.group;
      t.ref = ev.ref;
      t.queue = ev.queue;
      t.kind = ev.kind;
      t.payload = ev.payload;
      t.state = ev.state;
      t.created_ms = ev.ts_ms;
      t.trace = ev.trace;
      t.unique_key = ev.unique_key;
      t.deps = ev.deps;
      ++c.received;
      if (!ev.group.is_nil()) {
        std::string key = std::string(ev.group.bytes()) + lmdb::be64(ev.seq);
        if (Status s = txn.put(group_tasks_, key, ev.task.bytes()); !s) return s;
      }
      break;
    case EventType::kTaskScheduled:
    case EventType::kTaskQueued:
      // A finished task queued again (an explicit retry) starts over without its outcome.
      if (is_terminal(ev.from) || (known && is_terminal(t.state))) {
        t.result.clear();
        t.finished_ms = 0;
      }
      t.state = ev.type == EventType::kTaskQueued && ev.state == TaskState::kWaiting ? TaskState::kWaiting : TaskState::kQueued;
      if (!ev.error.empty()) t.error = ev.error;
      break;
    case EventType::kTaskStarted:
      t.state = TaskState::kStarted;
      t.attempt = ev.attempt;
      t.worker = ev.worker;
      t.started_ms = ev.ts_ms;
      ++c.started;
      if (ev.attempt == 1 && t.created_ms && ev.ts_ms >= t.created_ms) {
        const uint64_t wait_ms = ev.ts_ms - t.created_ms;
        c.wait_sum_us += wait_ms * 1000;
        ++c.waits;
        size_t b = 0;
        while (b < std::size(kWaitBucketsMs) && static_cast<double>(wait_ms) > kWaitBucketsMs[b]) ++b;
        ++c.wait_buckets[b];
        series_batch_.wait(ev.ts_ms, static_cast<double>(wait_ms));
      }
      break;
    case EventType::kTaskRetried:
      t.state = TaskState::kRetrying;
      t.error = ev.error;
      ++c.retried;
      break;
    case EventType::kTaskSucceeded:
    case EventType::kTaskFailed:
    case EventType::kTaskRevoked: {
      t.state = ev.state;
      t.attempt = std::max(t.attempt, ev.attempt);
      if (!ev.worker.empty()) t.worker = ev.worker;
      t.result = ev.result;
      t.error = ev.error;
      t.finished_ms = ev.ts_ms;
      if (ev.type != EventType::kTaskRevoked) {  // a handler ran: its run time
        t.runtime_us = ev.runtime_us;
        const double ms = t.runtime_us / 1000.0;
        size_t b = 0;
        while (b < std::size(kRuntimeBucketsMs) && ms > kRuntimeBucketsMs[b]) ++b;
        ++c.runtime_buckets[b];
        c.runtime_sum_us += t.runtime_us;
        series_batch_.run(ev.ts_ms, ms);
      }
      if (ev.type == EventType::kTaskSucceeded) ++c.succeeded;
      else if (ev.type == EventType::kTaskFailed) ++c.failed;
      else ++c.revoked;
      break;
    }
    default:
      return Status::ok();
  }
  if (!known && ev.type != EventType::kTaskReceived) t.id = ev.task;
  if (Status s = txn.put(tasks_, ev.task.bytes(), pack(t)); !s) return s;
  TimelineEntry entry{ev.seq, ev.ts_ms, ev.type, ev.state, ev.attempt, ev.worker, ev.error};
  if (Status s = txn.put(timeline_, std::string(ev.task.bytes()) + lmdb::be64(ev.seq), pack(entry)); !s) return s;
  const std::string& queue = t.queue.empty() ? ev.queue : t.queue;
  switch (ev.type) {
    case EventType::kTaskReceived: series_batch_.count(ev.ts_ms, queue, SeriesEvent::kReceived); break;
    case EventType::kTaskStarted: series_batch_.count(ev.ts_ms, queue, SeriesEvent::kStarted); break;
    case EventType::kTaskSucceeded: series_batch_.count(ev.ts_ms, queue, SeriesEvent::kSucceeded); break;
    case EventType::kTaskFailed: series_batch_.count(ev.ts_ms, queue, SeriesEvent::kFailed); break;
    case EventType::kTaskRevoked: series_batch_.count(ev.ts_ms, queue, SeriesEvent::kRevoked); break;
    case EventType::kTaskRetried: series_batch_.count(ev.ts_ms, queue, SeriesEvent::kRetried); break;
    default: break;
  }
  if (!ev.worker.empty() && (ev.type == EventType::kTaskStarted || ev.type == EventType::kTaskSucceeded ||
                             ev.type == EventType::kTaskFailed)) {
    // LMDB keys end at 511 bytes; router-checked names are far shorter.
    WorkerTotals& w = worker_batch_[ev.worker.substr(0, 256)];
    if (!w.first_ms) w.first_ms = ev.ts_ms;
    w.last_ms = std::max(w.last_ms, ev.ts_ms);
    if (ev.type == EventType::kTaskStarted) ++w.started[queue];
    else if (ev.type == EventType::kTaskSucceeded) ++w.succeeded;
    else ++w.failed;
  }
  for (QueueCounts* q : {&c.queues[queue], &c.kinds[t.kind.empty() ? ev.kind : t.kind]}) {
    switch (ev.type) {
      case EventType::kTaskReceived: ++q->received; break;
      case EventType::kTaskStarted: ++q->started; break;
      case EventType::kTaskSucceeded: ++q->succeeded; break;
      case EventType::kTaskFailed: ++q->failed; break;
      case EventType::kTaskRevoked: ++q->revoked; break;
      case EventType::kTaskRetried: ++q->retried; break;
      default: break;
    }
  }
  if (is_terminal(t.state) && t.finished_ms == ev.ts_ms)
    if (Status s = put_expiry(txn, t.finished_ms, 0, t.id); !s) return s;
  return Status::ok();
}

Status StatusDb::del_prefix(lmdb::Txn& txn, lmdb::Dbi dbi, std::string_view prefix) {
  std::vector<std::string> keys;
  {
    auto c = lmdb::Cursor::open(txn, dbi);
    if (!c) return c.status();
    for (bool ok = c->seek(prefix); ok && c->key().substr(0, prefix.size()) == prefix; ok = c->next())
      keys.emplace_back(c->key());
  }
  for (const auto& k : keys)
    if (Status s = txn.del(dbi, k); !s) return s;
  return Status::ok();
}

Status StatusDb::put_expiry(lmdb::Txn& txn, uint64_t at_ms, uint8_t kind, const Id& id) {
  std::string key = lmdb::be64(at_ms);
  key.push_back(static_cast<char>(kind));
  key.append(id.bytes());
  return txn.put(expiry_, key, {});
}

// Deletes finished tasks and groups whose finish time is <= before_ms (the router's TTL
// sweep). An entry whose record finished again later (a retry) is only dropped.
Status StatusDb::expire(lmdb::Txn& txn, uint64_t before_ms, GroupCache& groups) {
  std::vector<std::string> keys;
  {
    auto c = lmdb::Cursor::open(txn, expiry_);
    if (!c) return c.status();
    for (bool ok = c->first(); ok; ok = c->next()) {
      if (c->key().size() != 9 + Id::kSize) return Status(Code::kIo, "corrupt store expiry key");
      if (lmdb::from_be64(c->key()) > before_ms) break;
      keys.emplace_back(c->key());
    }
  }
  for (const auto& key : keys) {
    const uint64_t at = lmdb::from_be64(key);
    const Id id = *Id::from_bytes(std::string_view(key).substr(9));
    if (key[8] == 0) {
      auto t = read<TaskStatus>(txn, tasks_, id.bytes());
      if (!t) return t.status();
      if (t->has_value() && is_terminal((*t)->state) && (*t)->finished_ms == at) {
        if (Status s = txn.del(tasks_, id.bytes()); !s) return s;
        if (Status s = del_prefix(txn, timeline_, id.bytes()); !s) return s;
      }
    } else {
      std::optional<GroupStatus> g;
      if (auto cached = groups.find(id); cached != groups.end()) g = cached->second;
      else {
        auto r = read<GroupStatus>(txn, groups_, id.bytes());
        if (!r) return r.status();
        g = std::move(*r);
      }
      if (g && g->ready() && g->finished_ms == at) {
        groups.erase(id);
        if (Status s = txn.del(groups_, id.bytes()); !s) return s;
        if (Status s = txn.del(group_times_, lmdb::be64(g->created_ms) + std::string(id.bytes())); !s) return s;
        if (Status s = del_prefix(txn, group_tasks_, id.bytes()); !s) return s;
      }
    }
    if (Status s = txn.del(expiry_, key); !s) return s;
  }
  return Status::ok();
}

Result<std::optional<TaskStatus>> StatusDb::task(const Id& id) {
  auto txn = lmdb::Txn::begin(env_, true);
  if (!txn) return txn.status();
  return read<TaskStatus>(*txn, tasks_, id.bytes());
}

Result<std::optional<GroupStatus>> StatusDb::group(const Id& id) {
  auto txn = lmdb::Txn::begin(env_, true);
  if (!txn) return txn.status();
  return read<GroupStatus>(*txn, groups_, id.bytes());
}

Result<std::vector<TaskStatus>> StatusDb::group_tasks(const Id& id, size_t offset, size_t limit) {
  auto txn = lmdb::Txn::begin(env_, true);
  if (!txn) return txn.status();
  auto c = lmdb::Cursor::open(*txn, group_tasks_);
  if (!c) return c.status();
  std::vector<TaskStatus> out;
  const std::string prefix(id.bytes());
  size_t index = 0;
  for (bool ok = c->seek(prefix); ok && out.size() < limit; ok = c->next()) {
    if (c->key().substr(0, Id::kSize) != prefix) break;
    if (index++ < offset) continue;
    auto t = read<TaskStatus>(*txn, tasks_, c->value());
    if (!t) return t.status();
    if (t->has_value()) out.push_back(std::move(**t));
  }
  return out;
}

Result<std::vector<TaskStatus>> StatusDb::group_tasks_after(const Id& id, uint64_t* after_seq, size_t limit) {
  auto txn = lmdb::Txn::begin(env_, true);
  if (!txn) return txn.status();
  auto c = lmdb::Cursor::open(*txn, group_tasks_);
  if (!c) return c.status();
  std::vector<TaskStatus> out;
  if (*after_seq == UINT64_MAX) return out;
  const std::string prefix(id.bytes());
  for (bool ok = c->seek(prefix + lmdb::be64(*after_seq + 1)); ok && out.size() < limit; ok = c->next()) {
    if (c->key().size() != Id::kSize + 8 || c->key().substr(0, Id::kSize) != prefix) break;
    *after_seq = lmdb::from_be64(c->key().substr(Id::kSize));
    auto t = read<TaskStatus>(*txn, tasks_, c->value());
    if (!t) return t.status();
    if (t->has_value()) out.push_back(std::move(**t));
  }
  return out;
}

Result<std::vector<TaskStatus>> StatusDb::list_tasks(const TaskFilter& f, bool* scanned_all) {
  auto txn = lmdb::Txn::begin(env_, true);
  if (!txn) return txn.status();
  std::vector<TaskStatus> out;
  auto matches = [&](const TaskStatus& t) {
    if (f.state && t.state != *f.state) return false;
    if (!f.queue.empty() && t.queue != f.queue) return false;
    if (!f.kind.empty() && t.kind != f.kind) return false;
    if (f.since_ms && t.created_ms < f.since_ms) return false;
    if (f.until_ms && t.created_ms > f.until_ms) return false;
    if (!f.text.empty() && t.id.to_string().find(f.text) == std::string::npos &&
        t.ref.find(f.text) == std::string::npos && t.error.find(f.text) == std::string::npos)
      return false;
    return true;
  };
  *scanned_all = true;
  size_t scanned = 0;
  if (!f.group.is_nil()) {
    // A group's tasks through its index, newest first.
    auto c = lmdb::Cursor::open(*txn, group_tasks_);
    if (!c) return c.status();
    const std::string prefix(f.group.bytes());
    std::string upper = prefix + std::string(8, '\xff');
    bool ok = c->seek(upper) ? c->prev() : c->last();
    for (; ok && c->key().substr(0, Id::kSize) == prefix && out.size() < f.limit; ok = c->prev()) {
      if (++scanned > f.max_scan) {
        *scanned_all = false;
        break;
      }
      auto t = read<TaskStatus>(*txn, tasks_, c->value());
      if (!t) return t.status();
      if (!t->has_value() || (!f.before.is_nil() && !((*t)->id < f.before))) continue;
      if (matches(**t)) out.push_back(std::move(**t));
    }
    return out;
  }
  auto c = lmdb::Cursor::open(*txn, tasks_);
  if (!c) return c.status();
  bool ok = f.before.is_nil() ? c->last() : (c->seek(f.before.bytes()) ? c->prev() : c->last());
  for (; ok && out.size() < f.limit; ok = c->prev()) {
    if (++scanned > f.max_scan) {
      *scanned_all = false;
      break;
    }
    auto t = unpack_task(c->value());
    if (!t) return t.status();
    if (!f.before.is_nil() && !(t->id < f.before)) continue;
    if (f.since_ms && t->created_ms && t->created_ms < f.since_ms) break;  // ids are time-ordered
    if (matches(*t)) out.push_back(std::move(*t));
  }
  return out;
}

Result<std::vector<TimelineEntry>> StatusDb::timeline(const Id& task) {
  auto txn = lmdb::Txn::begin(env_, true);
  if (!txn) return txn.status();
  auto c = lmdb::Cursor::open(*txn, timeline_);
  if (!c) return c.status();
  std::vector<TimelineEntry> out;
  const std::string prefix(task.bytes());
  for (bool ok = c->seek(prefix); ok && c->key().substr(0, Id::kSize) == prefix && out.size() < 10000; ok = c->next()) {
    auto e = unpack<TimelineEntry>(c->value());
    if (!e) return e.status();
    out.push_back(std::move(*e));
  }
  return out;
}

Result<std::vector<GroupStatus>> StatusDb::list_groups(size_t limit, bool running_only, uint64_t before_ms) {
  auto txn = lmdb::Txn::begin(env_, true);
  if (!txn) return txn.status();
  auto c = lmdb::Cursor::open(*txn, group_times_);
  if (!c) return c.status();
  std::vector<GroupStatus> out;
  bool ok = before_ms ? (c->seek(lmdb::be64(before_ms)) ? c->prev() : c->last()) : c->last();
  size_t scanned = 0;
  for (; ok && out.size() < limit && scanned < 100000; ok = c->prev(), ++scanned) {
    if (c->key().size() != 8 + Id::kSize) continue;
    auto g = read<GroupStatus>(*txn, groups_, c->key().substr(8));
    if (!g) return g.status();
    if (!g->has_value() || (running_only && (*g)->ready())) continue;
    out.push_back(std::move(**g));
  }
  return out;
}

void WorkerTotals::add(const WorkerTotals& o) {
  succeeded += o.succeeded;
  failed += o.failed;
  if (o.first_ms && (!first_ms || o.first_ms < first_ms)) first_ms = o.first_ms;
  last_ms = std::max(last_ms, o.last_ms);
  for (const auto& [q, n] : o.started) started[q] += n;
}

Status StatusDb::merge_workers(lmdb::Txn& txn) {
  for (auto& [name, batch] : worker_batch_) {
    auto stored = read<WorkerTotals>(txn, workers_, name);
    if (!stored) return stored.status();
    WorkerTotals w = stored->value_or(WorkerTotals{});
    w.add(batch);
    if (Status s = txn.put(workers_, name, pack(w)); !s) return s;
  }
  worker_batch_.clear();
  return Status::ok();
}

Result<std::map<std::string, WorkerTotals>> StatusDb::worker_totals(size_t limit) {
  auto txn = lmdb::Txn::begin(env_, true);
  if (!txn) return txn.status();
  auto c = lmdb::Cursor::open(*txn, workers_);
  if (!c) return c.status();
  std::map<std::string, WorkerTotals> out;
  for (bool ok = c->first(); ok && out.size() < limit; ok = c->next()) {
    auto w = unpack<WorkerTotals>(c->value());
    if (w) out.emplace(std::string(c->key()), std::move(*w));
  }
  return out;
}

Result<SeriesRange> StatusDb::series(uint64_t from_s, uint64_t until_s, uint64_t step_s) {
  auto txn = lmdb::Txn::begin(env_, true);
  if (!txn) return txn.status();
  return read_series(*txn, series_, from_s, until_s, step_s);
}

Result<Counters> StatusDb::counters() {
  auto txn = lmdb::Txn::begin(env_, true);
  if (!txn) return txn.status();
  auto c = read<Counters>(*txn, meta_, "counts");
  if (!c) return c.status();
  Counters out = c->value_or(Counters{});
  out.normalize();
  return out;
}

}  // namespace zb::store
