// GET /api/v1/events: Server-Sent Events from the store's recent-event ring, else from its
// durable stream log, else from the router's log; events gone from all three are announced
// with an `event: gap` frame, never skipped in silence.
#include <atomic>
#include <memory>

#include <nlohmann/json.hpp>

#include "common/log.h"
#include "common/text.h"
#include "store/http_api.h"
#include "store/sse.h"

namespace zb::store {
namespace {

using nlohmann::json;

constexpr auto kPingEvery = std::chrono::seconds(15);
constexpr auto kWaitSlice = std::chrono::milliseconds(250);  // how soon a stream notices stop()
// What one write of a stream carries at most: a stream's own buffer (docs/SECURITY.md).
constexpr size_t kBatchEvents = 1000;
constexpr size_t kBatchBytes = 64 * 1024;
constexpr uint32_t kRouterPage = 64;  // the router's log is the last resort: small pages

struct Stream {
  StreamQuery query;
  uint64_t cursor = 0;
  uint64_t epoch = 0;
  std::chrono::steady_clock::time_point last_write = std::chrono::steady_clock::now();
};

std::vector<EntryPtr> shared(std::vector<StreamEntry> entries) {
  std::vector<EntryPtr> out;
  out.reserve(entries.size());
  for (auto& e : entries) out.push_back(std::make_shared<const StreamEntry>(std::move(e)));
  return out;
}

// The entries after `cursor`, in order: from the ring when it still holds cursor + 1, else
// from the stream log, else (for what neither holds) from the router's log. The first entry
// is above cursor + 1 only when no source has cursor + 1.
std::vector<EntryPtr> next_entries(const EventHub& hub, StatusDb& db, ClientPool& pool, uint64_t cursor) {
  uint64_t oldest = 0;
  auto out = hub.since(cursor, kBatchEvents, kBatchBytes, &oldest);
  if (oldest != 0 && oldest <= cursor + 1) return out;
  if (oldest == 0 && cursor >= db.applied()) return out;  // nothing newer exists yet
  if (auto logged = db.stream_since(cursor, kBatchEvents, kBatchBytes); logged && !logged->empty()) {
    out = shared(std::move(logged.value()));
    if (out.front()->seq == cursor + 1) return out;
  } else if (!logged) {
    spdlog::warn("store event stream log read failed reason=\"{}\"", logged.status().message());
  }
  auto page = pool.with([&](Client& c) { return c.replay(cursor, kRouterPage); });
  if (page && page->log_id == db.log_id() && !page->events.empty() && page->events.front().seq == cursor + 1) {
    std::vector<EntryPtr> routed;
    for (const auto& e : page->events) {
      if (!out.empty() && e.seq >= out.front()->seq) break;
      routed.push_back(std::make_shared<const StreamEntry>(stream_entry(e)));
    }
    return routed;
  }
  return out;
}

// What a client that missed events re-syncs from: the totals as of now and where to read the
// rest (docs/openapi.yaml, the gap event).
std::string snapshot(StatusDb& db, const StreamQuery& query) {
  json j = {{"as_of_seq", db.applied()},
            {"stats_url", "/api/v1/stats"},
            {"groups_url", "/api/v1/groups"},
            {"tasks_url", "/api/v1/tasks"}};
  if (auto c = db.counters(); c)
    j["counts"] = {{"received", c->received},   {"started", c->started}, {"succeeded", c->succeeded},
                   {"failed", c->failed},       {"retried", c->retried}, {"revoked", c->revoked}};
  if (query.group) {
    j["group_url"] = "/api/v1/groups/" + query.group->to_string();
    if (auto g = db.group(*query.group); g && g->has_value())
      j["group"] = {{"total", (*g)->total}, {"succeeded", (*g)->succeeded}, {"failed", (*g)->failed}};
  }
  return j.dump();
}

}  // namespace

void install_event_stream(HttpServer& server, EventHub& hub, StatusDb& db, ClientPool& pool,
                          const std::atomic<bool>& stopping, size_t max_streams) {
  auto open_streams = std::make_shared<std::atomic<size_t>>(0);
  server.Get("/api/v1/events", [&hub, &db, &pool, &stopping, open_streams, max_streams](
                                   const httplib::Request& req, httplib::Response& res) {
    auto header = [&](const char* name) -> std::optional<std::string> {
      if (!req.has_header(name)) return std::nullopt;
      return req.get_header_value(name);
    };
    auto param = [&](const char* name) -> std::optional<std::string> {
      if (!req.has_param(name)) return std::nullopt;
      return req.get_param_value(name);
    };
    const auto last_event_id = header("Last-Event-ID"), after = param("after"), group = param("group"),
               queue = param("queue");
    auto query = parse_stream_query(last_event_id, after, group, queue);
    if (!query) {
      res.status = 400;
      res.set_content(json_text(json{{"error", {{"code", "bad_request"}, {"message", query.status().message()}}}}),
                      "application/json");
      return;
    }
    auto stream = std::make_shared<Stream>();
    stream->query = std::move(*query);
    stream->epoch = hub.epoch();
    // Without a resume point a new stream starts with what happens next.
    stream->cursor = stream->query.after ? *stream->query.after : std::max(db.applied(), hub.head());
    if (open_streams->fetch_add(1) >= max_streams) {
      open_streams->fetch_sub(1);
      res.status = 503;
      res.set_content(json_text(json{{"error", {{"code", "unavailable"}, {"message", "too many event streams open"}}}}),
                      "application/json");
      return;
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [&hub, &db, &pool, &stopping, stream](size_t, httplib::DataSink& sink) {
          while (!stopping.load()) {
            if (!sink.is_writable()) return false;  // gone, or took nothing for --request-timeout
            std::string out;
            bool looked_at_any = false;
            if (const uint64_t epoch = hub.epoch(); epoch != stream->epoch) {
              // A new router log: the sequence numbers start over.
              stream->epoch = epoch;
              out = gap_frame(stream->cursor + 1, 1, "log-reset", snapshot(db, stream->query));
              spdlog::warn("store event stream gap reason=log-reset after={}", stream->cursor);
              stream->cursor = 0;
            } else {
              for (const auto& e : next_entries(hub, db, pool, stream->cursor)) {
                if (e->seq <= stream->cursor) continue;
                looked_at_any = true;
                if (e->seq > stream->cursor + 1) {
                  if (!out.empty()) break;  // send what comes before; the gap is found again next turn
                  out = gap_frame(stream->cursor + 1, e->seq, "retention", snapshot(db, stream->query));
                  spdlog::warn("store event stream gap reason=retention first_missing={} resume_seq={}",
                               stream->cursor + 1, e->seq);
                }
                stream->cursor = e->seq;
                if (stream->query.matches(*e)) out += e->frame;
                if (out.size() >= kBatchBytes) break;
              }
            }
            if (!out.empty()) {
              stream->last_write = std::chrono::steady_clock::now();
              return sink.write(out.data(), out.size());
            }
            if (looked_at_any) continue;  // filtered out: look further
            if (std::chrono::steady_clock::now() - stream->last_write >= kPingEvery) {
              stream->last_write = std::chrono::steady_clock::now();
              static constexpr char kPing[] = ": ping\n\n";
              return sink.write(kPing, sizeof kPing - 1);
            }
            hub.wait(stream->cursor, kWaitSlice);
          }
          sink.done();
          return false;
        },
        [open_streams](bool) { open_streams->fetch_sub(1); });
  });
}

}  // namespace zb::store
