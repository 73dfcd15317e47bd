// GET /api/v1/events: Server-Sent Events from the store's recent-event ring, falling back to
// the router's log for resume points older than the ring.
#include <atomic>
#include <memory>

#include <nlohmann/json.hpp>

#include "common/text.h"
#include "common/log.h"
#include "store/http_api.h"
#include "store/sse.h"

namespace zb::store {
namespace {

using nlohmann::json;

constexpr auto kPingEvery = std::chrono::seconds(15);
constexpr auto kWaitSlice = std::chrono::milliseconds(250);  // how soon a stream notices stop()
constexpr size_t kBatch = 1000;

struct Stream {
  StreamQuery query;
  uint64_t cursor = 0;
  std::chrono::steady_clock::time_point last_write = std::chrono::steady_clock::now();
};

}  // namespace

void install_event_stream(HttpServer& server, EventHub& hub, ClientPool& pool,
                          const std::atomic<bool>& stopping, size_t max_streams) {
  auto open_streams = std::make_shared<std::atomic<size_t>>(0);
  server.Get("/api/v1/events", [&hub, &pool, &stopping, open_streams, max_streams](
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
    // Without a resume point a new stream starts with what happens next.
    stream->cursor = stream->query.after ? *stream->query.after : hub.head();
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
        [&hub, &pool, &stopping, stream](size_t, httplib::DataSink& sink) {
          while (!stopping.load()) {
            if (!sink.is_writable()) return false;
            uint64_t oldest = 0;
            auto events = hub.since(stream->cursor, kBatch, &oldest);
            if (oldest > 0 && oldest - 1 > stream->cursor) {
              // Behind the ring: read the router's log.
              auto page = pool.with([&](Client& c) { return c.replay(stream->cursor, kBatch); });
              if (page && !page->events.empty()) events = std::move(page->events);
            }
            std::string out;
            for (const auto& e : events) {
              stream->cursor = e.seq;
              if (stream->query.matches(e)) out += sse_frame(e);
            }
            if (!out.empty()) {
              stream->last_write = std::chrono::steady_clock::now();
              return sink.write(out.data(), out.size());
            }
            if (!events.empty()) continue;  // filtered out: look further
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
