// GET /api/v1/events: Server-Sent Events from the store's recent-event ring, falling back to
// the router's log for resume points older than the ring.
#include <atomic>
#include <memory>

#include <nlohmann/json.hpp>

#include "common/log.h"
#include "store/http_api.h"

namespace zb::store {
namespace {

using nlohmann::json;

constexpr auto kPingEvery = std::chrono::seconds(15);
constexpr auto kWaitSlice = std::chrono::milliseconds(250);  // how soon a stream notices stop()
constexpr size_t kBatch = 1000;

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
  if (!e.error.empty()) j["error"] = e.error;
  if (!e.result.empty()) {
    json r = json::parse(e.result, nullptr, false);
    j["result"] = r.is_discarded() ? json(e.result) : r;
  }
  if (!e.detail.empty()) {
    json d = json::parse(e.detail, nullptr, false);
    if (!d.is_discarded()) j["detail"] = d;
  }
  return "id: " + std::to_string(e.seq) + "\nevent: " + std::string(proto::event_type_name(e.type)) +
         "\ndata: " + j.dump() + "\n\n";
}

struct Stream {
  uint64_t cursor = 0;
  std::optional<Id> group;
  std::string queue;
  std::chrono::steady_clock::time_point last_write = std::chrono::steady_clock::now();
  bool matches(const proto::Event& e) const {
    if (group && e.group != *group) return false;
    if (!queue.empty() && e.queue != queue) return false;
    return true;
  }
};

}  // namespace

void install_event_stream(HttpServer& server, EventHub& hub, ClientPool& pool,
                          const std::atomic<bool>& stopping, size_t max_streams) {
  auto open_streams = std::make_shared<std::atomic<size_t>>(0);
  server.Get("/api/v1/events", [&hub, &pool, &stopping, open_streams, max_streams](
                                   const httplib::Request& req, httplib::Response& res) {
    auto stream = std::make_shared<Stream>();
    std::string resume = req.get_header_value("Last-Event-ID");
    if (resume.empty() && req.has_param("after")) resume = req.get_param_value("after");
    if (!resume.empty()) {
      char* end = nullptr;
      stream->cursor = std::strtoull(resume.c_str(), &end, 10);
      if (*end != '\0') {
        res.status = 400;
        res.set_content(json{{"error", {{"code", "bad_request"}, {"message", "Last-Event-ID must be a sequence number"}}}}.dump(),
                        "application/json");
        return;
      }
    } else {
      stream->cursor = hub.head();  // a new stream starts with what happens next
    }
    if (req.has_param("group")) {
      stream->group = Id::parse(req.get_param_value("group"));
      if (!stream->group) {
        res.status = 400;
        res.set_content(json{{"error", {{"code", "bad_request"}, {"message", "group must be a group id"}}}}.dump(),
                        "application/json");
        return;
      }
    }
    if (req.has_param("queue")) stream->queue = req.get_param_value("queue");
    if (open_streams->fetch_add(1) >= max_streams) {
      open_streams->fetch_sub(1);
      res.status = 503;
      res.set_content(json{{"error", {{"code", "unavailable"}, {"message", "too many event streams open"}}}}.dump(),
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
            if (oldest > stream->cursor + 1) {
              // Behind the ring: read the router's log.
              auto page = pool.with([&](Client& c) { return c.replay(stream->cursor, kBatch); });
              if (page && !page->events.empty()) events = std::move(page->events);
            }
            std::string out;
            for (const auto& e : events) {
              stream->cursor = e.seq;
              if (stream->matches(e)) out += sse_frame(e);
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
