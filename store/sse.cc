#include "store/sse.h"

#include <nlohmann/json.hpp>

namespace zb::store {
namespace {

using nlohmann::json;

std::optional<uint64_t> parse_seq(std::string_view text) {
  if (text.empty()) return std::nullopt;
  uint64_t v = 0;
  for (char ch : text) {
    if (ch < '0' || ch > '9') return std::nullopt;
    const uint64_t digit = static_cast<uint64_t>(ch - '0');
    if (v > (UINT64_MAX - digit) / 10) return std::nullopt;
    v = v * 10 + digit;
  }
  return v;
}

bool present(const std::optional<std::string_view>& v) { return v && !v->empty(); }

// Deeper JSON is kept as text: dumping (and copying) a value recurses once per level, so a
// result nested a million levels deep would exhaust the stack.
constexpr int kMaxDepth = 64;

// The JSON value of `text`, or discarded when it is not JSON or nests deeper than kMaxDepth.
json parse_shallow(std::string_view text) {
  bool deep = false;
  json j = json::parse(
      text, [&](int depth, json::parse_event_t, json&) { return !(deep = deep || depth > kMaxDepth); }, false);
  return deep ? json(json::value_t::discarded) : j;
}

// What the event's type adds to the frame, from its typed fields (docs/openapi.yaml,
// x-event-data): an empty object when it adds nothing, or lacks the fields it should carry.
json detail(const proto::Event& e) {
  using proto::EventType;
  json d = json::object();
  switch (e.type) {
    case EventType::kGroupUpdated:
      if (e.group_record.size() == 1) {
        const proto::GroupRecord& g = e.group_record.front();
        d = {{"total", g.total},         {"parallel", g.parallel}, {"sealed", g.sealed},
             {"succeeded", g.succeeded}, {"failed", g.failed},     {"revoked", g.revoked},
             {"running", g.running}};
      }
      break;
    case EventType::kWorkerOnline:
      if (e.worker_note.size() == 1) {
        const proto::WorkerNote& w = e.worker_note.front();
        d = {{"hostname", w.hostname}, {"pid", w.pid}, {"concurrency", w.concurrency}, {"capacity", w.capacity}};
      }
      break;
    case EventType::kWorkerOffline:
      if (e.worker_note.size() == 1) d = {{"reason", e.worker_note.front().reason}};
      break;
    case EventType::kTaskRetried:
      d = {{"retries", e.retries}, {"max_retries", e.max_retries}, {"delay_ms", e.delay_ms}};
      break;
    case EventType::kTaskSucceeded:
    case EventType::kTaskFailed:
      d = {{"runtime_us", e.runtime_us}, {"retries", e.retries}};
      break;
    case EventType::kTaskQueued:
      if (e.from == TaskState::kFailed || e.from == TaskState::kRevoked) d = {{"retry_of", state_name(e.from)}};
      break;
    case EventType::kQueuePurged:
      d = {{"purged", e.count}};
      break;
    case EventType::kResultsExpired:
      d = {{"before_ms", e.before_ms}};
      break;
    default:
      break;
  }
  return d;
}

}  // namespace

bool StreamQuery::matches(const proto::Event& e) const {
  if (group && e.group != *group) return false;
  if (!queue.empty() && e.queue != queue) return false;
  return true;
}

bool StreamQuery::matches(const StreamEntry& e) const {
  if (group && e.group != *group) return false;
  if (!queue.empty() && e.queue != queue) return false;
  return true;
}

StreamEntry stream_entry(const proto::Event& e) { return StreamEntry{e.seq, e.group, e.queue, sse_frame(e)}; }

Result<StreamQuery> parse_stream_query(std::optional<std::string_view> last_event_id,
                                       std::optional<std::string_view> after,
                                       std::optional<std::string_view> group,
                                       std::optional<std::string_view> queue) {
  StreamQuery q;
  if (present(last_event_id)) {
    q.after = parse_seq(*last_event_id);
    if (!q.after) return Status(Code::kBadRequest, "Last-Event-ID must be a sequence number");
  } else if (present(after)) {
    q.after = parse_seq(*after);
    if (!q.after) return Status(Code::kBadRequest, "after must be a sequence number");
  }
  if (group) {
    q.group = Id::parse(*group);
    if (!q.group) return Status(Code::kBadRequest, "group must be a group id");
  }
  if (queue) q.queue = std::string(*queue);
  return q;
}

std::string sse_frame(const proto::Event& e) {
  json j = {{"seq", e.seq}, {"type", proto::event_type_name(e.type)}, {"ts_ms", e.ts_ms}};
  if (!e.task.is_nil()) {
    j["task_id"] = e.task.to_string();
    j["state"] = state_name(e.state);
    j["attempt"] = e.attempt;
  }
  if (!e.group.is_nil()) j["group_id"] = e.group.to_string();
  if (!e.queue.empty()) j["queue"] = e.queue;
  if (!e.kind.empty()) j["kind"] = e.kind;
  if (!e.ref.empty()) j["id"] = e.ref;
  if (!e.worker.empty()) j["worker"] = e.worker;
  if (!e.error.empty() && e.error.size() <= kInlineErrorBytes) j["error"] = e.error;
  if (e.error.size() > kInlineErrorBytes) {
    size_t cut = kInlineErrorBytes;
    while (cut > 0 && (static_cast<unsigned char>(e.error[cut]) & 0xC0) == 0x80) --cut;  // not inside a UTF-8 sequence
    j["error"] = e.error.substr(0, cut);
    j["error_truncated"] = true;
  }
  if (e.result.size() > kInlineResultBytes) {
    // Never parsed here: a large result is fetched whole from the task itself.
    j["result_truncated"] = true;
    j["result_bytes"] = e.result.size();
  } else if (!e.result.empty()) {
    json r = parse_shallow(e.result);
    j["result"] = r.is_discarded() ? json(e.result) : std::move(r);
  }
  if (json d = detail(e); !d.empty()) {
    if (d.dump(-1, ' ', false, json::error_handler_t::replace).size() > kInlineDetailBytes) j["detail_truncated"] = true;
    else j["detail"] = std::move(d);
  }
  // A worker's error text is whatever its process wrote: not always UTF-8, which the strict
  // dump would throw on (and an exception here would end the HTTP server's thread).
  return "id: " + std::to_string(e.seq) + "\nevent: " + std::string(proto::event_type_name(e.type)) +
         "\ndata: " + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

std::string gap_frame(uint64_t first_missing, uint64_t resume_seq, std::string_view reason,
                      std::string_view snapshot_json) {
  json snapshot = json::parse(snapshot_json, nullptr, false);
  if (!snapshot.is_object()) snapshot = json::object();
  const json j = {{"first_missing", first_missing},
                  {"resume_seq", resume_seq},
                  {"missed", resume_seq > first_missing ? resume_seq - first_missing : 0},
                  {"reason", std::string(reason)},
                  {"snapshot", std::move(snapshot)}};
  return "id: " + std::to_string(resume_seq > 0 ? resume_seq - 1 : 0) + "\nevent: gap\ndata: " +
         j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

}  // namespace zb::store
