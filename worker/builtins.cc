#include "common/text.h"
#include "worker/builtins.h"

#include <chrono>
#include <cmath>
#include <thread>

#include <nlohmann/json.hpp>

namespace zb::worker {
namespace {

using nlohmann::json;

// Parses the payload as a JSON object; nullopt (and `error` set) otherwise.
std::optional<json> payload_object(const TaskContext& ctx, std::string& error) {
  json j = json::parse(ctx.payload.empty() ? std::string_view("{}") : ctx.payload, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    error = std::string(ctx.kind) + ": payload must be a JSON object";
    return std::nullopt;
  }
  return j;
}

HandlerResult noop(const TaskContext&) { return HandlerResult::ok("null"); }

// Returns the task back: the payload as given (the seed's default handler).
HandlerResult echo(const TaskContext& ctx) {
  return HandlerResult::ok(ctx.payload.empty() ? "null" : std::string(ctx.payload));
}

// {"seconds": S}: sleeps S seconds, waking early when the task is cancelled.
HandlerResult sleep(const TaskContext& ctx) {
  std::string error;
  auto p = payload_object(ctx, error);
  if (!p) return HandlerResult::fail(error);
  auto s = p->find("seconds");
  if (s == p->end() || !s->is_number() || s->get<double>() < 0 || !std::isfinite(s->get<double>()))
    return HandlerResult::fail("sleep: \"seconds\" must be a number >= 0");
  const double seconds = s->get<double>();
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6));
  // Sleeping is this handler's behaviour; the short steps keep cancellation prompt.
  while (std::chrono::steady_clock::now() < deadline) {
    if (ctx.is_cancelled()) return HandlerResult::fail("Cancelled: sleep interrupted");
    auto left = deadline - std::chrono::steady_clock::now();
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(left, std::chrono::milliseconds(10)));
  }
  return HandlerResult::ok(json_text(json{{"slept", seconds}}));
}

// {"error": "message", "retry": false}: fails (or asks for a retry) with that message.
HandlerResult fail(const TaskContext& ctx) {
  std::string error;
  auto p = payload_object(ctx, error);
  if (!p) return HandlerResult::fail(error);
  std::string message = "failed on request";
  if (auto e = p->find("error"); e != p->end() && e->is_string()) message = e->get<std::string>();
  bool retry = false;
  if (auto r = p->find("retry"); r != p->end() && r->is_boolean()) retry = r->get<bool>();
  return retry ? HandlerResult::retry(message) : HandlerResult::fail(message);
}

}  // namespace

void add_builtin_handlers(Slots::Handlers& handlers) {
  for (auto& [kind, h] : builtin_handlers()) handlers[kind] = std::move(h);
}

}  // namespace zb::worker

namespace zb {

std::vector<std::pair<std::string, Handler>> builtin_handlers() {
  return {{"noop", worker::noop}, {"echo", worker::echo}, {"sleep", worker::sleep}, {"fail", worker::fail}};
}

}  // namespace zb
