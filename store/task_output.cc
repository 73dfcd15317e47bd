// Live output: the store's hub of it, and GET /api/v1/tasks/{id}/stream (docs/STREAMING.md).
#include "store/task_output.h"

#include <atomic>
#include <memory>

#include <nlohmann/json.hpp>

#include "common/log.h"
#include "common/text.h"
#include "store/http_api.h"

namespace zb::store {

using nlohmann::json;

void OutputHub::add(std::vector<proto::OutputChunk> chunks) {
  if (chunks.empty()) return;
  {
    std::lock_guard lock(mu_);
    for (auto& c : chunks) {
      if (c.type >= proto::kOutputTypeCount || c.text.empty()) continue;
      if (c.text.size() > proto::kMaxOutputChunkBytes) c.text.resize(proto::kMaxOutputChunkBytes);
      make_valid_utf8(c.text);  // the router did; a forged PUB message is held to it too
      auto [it, fresh] = logs_.try_emplace(c.task);
      Log& log = it->second;
      if (fresh) {
        lru_.push_front(c.task);
        log.lru = lru_.begin();
      } else {
        lru_.splice(lru_.begin(), lru_, log.lru);
      }
      log.bytes += c.text.size();
      bytes_ += c.text.size();
      log.chunks.push_back({++log.last_pos, c.attempt, c.seq, c.type, std::move(c.text), c.ts_ms});
      while (log.bytes > kTaskBytes && log.chunks.size() > 1) {
        log.bytes -= log.chunks.front().text.size();
        bytes_ -= log.chunks.front().text.size();
        log.chunks.pop_front();
      }
    }
    while ((logs_.size() > kTasks || bytes_ > kTotalBytes) && logs_.size() > 1) forget_oldest_locked();
  }
  cv_.notify_all();
}

void OutputHub::forget_oldest_locked() {
  const Id oldest = lru_.back();
  lru_.pop_back();
  auto it = logs_.find(oldest);
  bytes_ -= it->second.bytes;
  logs_.erase(it);
}

std::vector<OutputHub::Chunk> OutputHub::since(const Id& task, uint64_t after, size_t max_bytes,
                                               uint64_t* oldest) const {
  std::lock_guard lock(mu_);
  std::vector<Chunk> out;
  *oldest = 0;
  auto it = logs_.find(task);
  if (it == logs_.end() || it->second.chunks.empty()) return out;
  const auto& chunks = it->second.chunks;
  *oldest = chunks.front().pos;
  size_t bytes = 0;
  // Positions are consecutive within the deque: the first one after `after` is found by index.
  size_t at = after < chunks.front().pos ? 0 : static_cast<size_t>(after - chunks.front().pos + 1);
  for (; at < chunks.size() && (out.empty() || bytes < max_bytes); ++at) {
    bytes += chunks[at].text.size();
    out.push_back(chunks[at]);
  }
  return out;
}

bool OutputHub::wait(const Id& task, uint64_t after, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] {
    auto it = logs_.find(task);
    return it != logs_.end() && it->second.last_pos > after;
  });
}

size_t OutputHub::bytes() const {
  std::lock_guard lock(mu_);
  return bytes_;
}

size_t OutputHub::tasks() const {
  std::lock_guard lock(mu_);
  return logs_.size();
}

std::string output_frame(const Id& task, const OutputHub::Chunk& c) {
  const json data = {{"task_id", task.to_string()}, {"attempt", c.attempt}, {"seq", c.seq},
                     {"type", proto::output_type_name(static_cast<proto::OutputType>(c.type))},
                     {"text", c.text}, {"ts_ms", c.ts_ms}};
  return "id: " + std::to_string(c.pos) + "\nevent: output\ndata: " + json_text(data) + "\n\n";
}

namespace {

constexpr auto kPingEvery = std::chrono::seconds(15);
constexpr auto kWaitSlice = std::chrono::milliseconds(250);
constexpr size_t kBatchBytes = 64 * 1024;

json error_body(const char* code, const std::string& message) {
  return json{{"error", {{"code", code}, {"message", message}}}};
}

struct TaskStream {
  Id task;
  uint64_t cursor = 0;
  std::chrono::steady_clock::time_point last_write = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_look{};
};

}  // namespace

void install_task_stream(HttpServer& server, OutputHub& hub, StatusDb& db, ClientPool& pool,
                         const std::atomic<bool>& stopping, size_t max_streams) {
  auto open_streams = std::make_shared<std::atomic<size_t>>(0);
  server.Get("/api/v1/tasks/([^/]+)/stream", [&hub, &db, &pool, &stopping, open_streams, max_streams](
                                                 const httplib::Request& req, httplib::Response& res) {
    auto fail = [&](int status, const char* code, const std::string& message) {
      res.status = status;
      res.set_content(json_text(error_body(code, message)), "application/json");
    };
    auto id = Id::parse(req.matches[1].str());
    if (!id) return fail(400, "bad_request", "not a task id: " + valid_utf8(req.matches[1].str().substr(0, 60)));
    uint64_t after = 0;
    const std::string resume = req.has_header("Last-Event-ID") ? req.get_header_value("Last-Event-ID")
                               : req.has_param("after")        ? req.get_param_value("after")
                                                               : "";
    if (!resume.empty()) {
      if (resume.size() > 20 || resume.find_first_not_of("0123456789") != std::string::npos)
        return fail(400, "bad_request", "Last-Event-ID (or after) must be a chunk position: decimal digits");
      try {
        after = std::stoull(resume);
      } catch (const std::exception&) {
        return fail(400, "bad_request", "Last-Event-ID (or after) is out of range");
      }
    }
    auto known = db.task(*id);
    if (!known) return fail(503, "unavailable", known.status().message());
    uint64_t oldest = 0;
    if (!known->has_value() && hub.since(*id, 0, 1, &oldest).empty()) {
      // Not applied here yet (a task submitted a moment ago): the router knows.
      auto rec = pool.with([&](Client& c) { return c.status(*id); });
      if (!rec && rec.status().code() == Code::kNotFound) return fail(404, "not_found", "no task " + id->to_string());
      if (!rec) return fail(503, "unavailable", rec.status().message());
    }
    if (open_streams->fetch_add(1) >= max_streams) {
      open_streams->fetch_sub(1);
      return fail(503, "unavailable", "too many event streams open");
    }
    auto stream = std::make_shared<TaskStream>();
    stream->task = *id;
    stream->cursor = after;
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [&hub, &db, &stopping, stream](size_t, httplib::DataSink& sink) {
          while (!stopping.load()) {
            if (!sink.is_writable()) return false;
            uint64_t oldest = 0;
            std::string out;
            const auto chunks = hub.since(stream->task, stream->cursor, kBatchBytes, &oldest);
            if (!chunks.empty() && chunks.front().pos > stream->cursor + 1 && stream->cursor > 0) {
              // Forgotten before this reader came back for it: said, not skipped in silence.
              out += "event: gap\ndata: " +
                     json_text(json{{"first_missing", stream->cursor + 1}, {"resume", chunks.front().pos},
                                    {"reason", "the store keeps the newest output of each task"}}) +
                     "\n\n";
            }
            for (const auto& c : chunks) {
              out += output_frame(stream->task, c);
              stream->cursor = c.pos;
            }
            if (!out.empty()) {
              stream->last_write = std::chrono::steady_clock::now();
              return sink.write(out.data(), out.size());
            }
            // Nothing new: has it ended? Its last output came before its end (the router
            // forwards output at once and events once durable), so the stream is complete.
            auto t = db.task(stream->task);
            if (t && t->has_value() && is_terminal((*t)->state)) {
              out = "event: end\ndata: " +
                    json_text(json{{"task_id", stream->task.to_string()}, {"state", state_name((*t)->state)},
                                   {"url", "/api/v1/tasks/" + stream->task.to_string()}}) +
                    "\n\n";
              sink.write(out.data(), out.size());
              sink.done();
              return false;
            }
            if (std::chrono::steady_clock::now() - stream->last_write >= kPingEvery) {
              stream->last_write = std::chrono::steady_clock::now();
              static constexpr char kPing[] = ": ping\n\n";
              return sink.write(kPing, sizeof kPing - 1);
            }
            hub.wait(stream->task, stream->cursor, kWaitSlice);
          }
          sink.done();
          return false;
        },
        [open_streams](bool) { open_streams->fetch_sub(1); });
  });
}

}  // namespace zb::store
