// The submission bodies of the HTTP API without a router: parse_json_body (the routes' body
// reading), then parse_api_submission (POST /api/v1/tasks) or parse_seed_batch (POST
// /batch[/celery]/<endpoint>), against a ClusterView that asks fixed replies instead of a
// router; and parse_datetime_ms on its own. Input: a mode byte, a byte of facts (which
// replies the view gets), a byte for the task limit, then the body's text (or the date-time).
#include <ctime>

#include "common/text.h"
#include "store/http_json.h"
#include "store/task_request.h"
#include "tests/fuzz/fuzz.h"

namespace {

using nlohmann::json;
using zb::Code;
using zb::Result;
using zb::Status;

// The queues of the seed's endpoints and what a router declares for them (zbatch.example.toml).
zb::proto::InspectQueuesReply queues_reply() {
  zb::proto::InspectQueuesReply r;
  for (auto [name, kind] : {std::pair{"agent_tasks", "agent"}, {"validation", "validate"}, {"tests", "test"},
                            {"mcp_operations", "mcp"}, {"default", ""}, {"shell", "exec"}})
    r.queues.push_back({name, 5, kind, 0, 0, 0, 0});
  return r;
}
zb::proto::InspectRegisteredReply registered_reply() {
  return {{{"w1", {}, {"unit", "lint"}, {"fs"}}, {"w2", {}, {"unit"}, {"git"}}, {"odd", {}, {}, {}}}};
}
constexpr const char* kSeedQueues[] = {"agent_tasks", "validation", "tests", "mcp_operations", "nowhere"};

// facts & 3: 0 the replies above, 1 no worker announces anything, 2 the router does not
// answer, 3 it answers with the reply of another operation.
zb::store::ClusterView::Ask fixed_router(uint8_t facts) {
  using zb::proto::ControlOp;
  using zb::proto::ControlResult;
  return [facts](ControlOp op) -> Result<ControlResult> {
    switch (facts & 3) {
      case 0: return op == ControlOp::kInspectQueues ? ControlResult(queues_reply()) : ControlResult(registered_reply());
      case 1: return op == ControlOp::kInspectQueues ? ControlResult(queues_reply()) : ControlResult(zb::proto::InspectRegisteredReply{});
      case 2: return Status(Code::kTimeout, "no reply");
      default: return ControlResult(zb::proto::PingReply{});
    }
  };
}

constexpr uint64_t kMaxEtaMs = (253402300799ull + 86400) * 1000;  // 9999-12-31, plus an offset's day
constexpr uint64_t kMaxCountdownMs = 10ull * 366 * 86400 * 1000;

void check_refusal(const Status& s, uint8_t facts) {
  FUZZ_CHECK(!s.message().empty());
  const bool router_down = (facts & 3) >= 2;
  FUZZ_CHECK(s.code() == Code::kBadRequest || s.code() == Code::kTooLarge ||
             (router_down && s.code() == Code::kUnavailable));
  // What send_error writes: JSON text, whatever the message quotes from the body.
  const std::string reply = zb::json_text(json{{"error", {{"code", zb::code_name(s.code())}, {"message", s.message()}}}});
  FUZZ_CHECK(zb::fuzz::is_utf8(reply));
}

void check_submission(const zb::store::Submission& sub, const json& body, const char* seed_queue, size_t max_tasks) {
  FUZZ_CHECK(!sub.tasks.empty());
  if (sub.group) {
    FUZZ_CHECK(body.contains("tasks") && body["tasks"].is_array());
    FUZZ_CHECK(sub.tasks.size() == body["tasks"].size());
    FUZZ_CHECK(sub.tasks.size() <= max_tasks);
    FUZZ_CHECK(sub.parallel <= 1'000'000);
  } else {
    FUZZ_CHECK(!seed_queue && sub.tasks.size() == 1 && sub.parallel == 0);
  }
  for (size_t i = 0; i < sub.tasks.size(); ++i) {
    const auto& t = sub.tasks[i];
    FUZZ_CHECK(t.priority >= -1 && t.priority <= 255);
    FUZZ_CHECK(t.max_retries >= -1 && t.max_retries <= 1000);
    FUZZ_CHECK(!(t.eta_ms && t.countdown_ms));
    FUZZ_CHECK(t.eta_ms <= kMaxEtaMs && t.countdown_ms <= kMaxCountdownMs);
    FUZZ_CHECK(!(t.hard_limit_ms && t.soft_limit_ms && t.soft_limit_ms > t.hard_limit_ms));
    FUZZ_CHECK(t.hard_limit_ms <= 4'000'000'000u && t.soft_limit_ms <= 4'000'000'000u);
    const json payload = json::parse(t.payload, nullptr, false);
    FUZZ_CHECK(!payload.is_discarded());
    if (seed_queue) {
      // The guide's tasks go to the handler whole, on the endpoint's queue.
      FUZZ_CHECK(t.queue == seed_queue);
      FUZZ_CHECK(payload == body["tasks"][i]);
    } else if (sub.group) {
      const json& task = body["tasks"][i];
      FUZZ_CHECK(task.contains("payload") ? payload == task["payload"] : payload.is_null());
      if (task.contains("queue")) FUZZ_CHECK(task["queue"] == t.queue);
    } else {
      FUZZ_CHECK(body.contains("payload") ? payload == body["payload"] : payload.is_null());
      FUZZ_CHECK(body.contains("queue") ? body["queue"] == t.queue : t.queue.empty());
    }
    FUZZ_CHECK(zb::fuzz::is_utf8(t.queue) && zb::fuzz::is_utf8(t.kind) && zb::fuzz::is_utf8(t.ref));
  }
}

// A date-time that parsed: written back as YYYY-MM-DDTHH:MM:SS.mmmZ it reads the same, and the
// plain "YYYY-MM-DDTHH:MM:SSZ" form agrees with timegm.
void check_datetime(const std::string& text, uint64_t ms) {
  const time_t seconds = static_cast<time_t>(ms / 1000);
  std::tm tm{};
  FUZZ_CHECK(gmtime_r(&seconds, &tm) != nullptr);
  char canonical[64];
  std::snprintf(canonical, sizeof canonical, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<unsigned>(ms % 1000));
  auto again = zb::store::parse_datetime_ms(canonical);
  if (tm.tm_year + 1900 <= 9999) FUZZ_CHECK(again && *again == ms);
  int y, mo, d, h, mi, s;
  char z, end;
  if (text.size() == 20 && std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%c%c", &y, &mo, &d, &h, &mi, &s, &z, &end) == 7 &&
      z == 'Z' && s < 60) {
    std::tm ref{};
    ref.tm_year = y - 1900, ref.tm_mon = mo - 1, ref.tm_mday = d, ref.tm_hour = h, ref.tm_min = mi, ref.tm_sec = s;
    FUZZ_CHECK(static_cast<uint64_t>(timegm(&ref)) * 1000 == ms);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace zb;
  fuzz::Reader in(data, size);
  const uint8_t mode = in.u8();
  const uint8_t facts = in.u8();
  const size_t max_tasks = 1 + in.u8() % 64;
  const std::string text = in.rest();

  if (mode % 3 == 2) {
    auto ms = store::parse_datetime_ms(text);
    if (ms) check_datetime(text, *ms);
    else check_refusal(ms.status(), 0);
    return 0;
  }
  auto body = store::parse_json_body(text);
  if (!body) {
    FUZZ_CHECK(body.status().code() == Code::kBadRequest);
    return 0;
  }
  FUZZ_CHECK(body->is_object());
  store::ClusterView cluster(fixed_router(facts));
  const char* seed_queue = mode % 3 == 1 ? kSeedQueues[(facts >> 2) % std::size(kSeedQueues)] : nullptr;
  auto sub = seed_queue ? store::parse_seed_batch(*body, seed_queue, cluster, max_tasks)
                        : store::parse_api_submission(*body, cluster, max_tasks);
  if (!sub) check_refusal(sub.status(), facts);
  else check_submission(*sub, *body, seed_queue, max_tasks);
  return 0;
}
