// The control bodies of the HTTP API without a router: the body read as its route reads it
// (parse_json_body for a worker pool, parse_optional_json_body for the others), then the
// request's arguments (store/control_request.h). Input: a byte choosing the request (purge,
// dead-letter retry, revoke, retry, worker shutdown, worker pool), the name in its path (a
// task id or a worker name, as the URL gives it: any bytes), then the body's text.
#include "common/text.h"
#include "store/control_request.h"
#include "store/http_json.h"
#include "tests/fuzz/fuzz.h"

namespace {

using nlohmann::json;

bool keys_within(const json& j, std::initializer_list<const char*> keys) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool found = false;
    for (const char* k : keys) found = found || it.key() == k;
    if (!found) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace zb;
  fuzz::Reader in(data, size);
  const uint8_t which = in.u8() % 6;
  const std::string name = in.str();
  const std::string text = in.rest();

  auto body = which == 5 ? store::parse_json_body(text) : store::parse_optional_json_body(text);
  if (!body) {
    FUZZ_CHECK(body.status().code() == Code::kBadRequest && !body.status().message().empty());
    return 0;
  }
  FUZZ_CHECK(body->is_object());
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) FUZZ_CHECK(body->empty());

  const Result<json> args = [&]() -> Result<json> {
    switch (which) {
      case 0: return store::purge_args(*body);
      case 1: return store::dead_retry_args(*body);
      case 2: return store::task_control_args("revoke", name, *body);
      case 3: return store::task_control_args("retry", name, *body);
      case 4: return store::worker_control_args("shutdown", name, *body);
      default: return store::worker_control_args("pool", name, *body);
    }
  }();
  if (!args) {
    FUZZ_CHECK(args.status().code() == Code::kBadRequest && !args.status().message().empty());
    FUZZ_CHECK(fuzz::is_utf8(json_text(json{{"message", args.status().message()}})));
    return 0;
  }
  const json& a = *args;
  FUZZ_CHECK(a.is_object());
  switch (which) {
    case 0:
      FUZZ_CHECK(keys_within(*body, {"queue"}) && keys_within(a, {"queue"}));
      FUZZ_CHECK(a.contains("queue") == body->contains("queue"));
      if (a.contains("queue")) FUZZ_CHECK(a["queue"].is_string() && a["queue"] == (*body)["queue"]);
      break;
    case 1:
      FUZZ_CHECK(keys_within(*body, {"queue", "limit"}) && a == *body);
      break;
    case 2:
    case 3:
      FUZZ_CHECK(keys_within(*body, {"terminate"}) && keys_within(a, {"task", "terminate"}));
      FUZZ_CHECK(a["task"] == name);
      FUZZ_CHECK(which == 2 || body->empty());
      FUZZ_CHECK(a.contains("terminate") == body->contains("terminate"));
      if (a.contains("terminate")) FUZZ_CHECK(a["terminate"].is_boolean() && a["terminate"] == (*body)["terminate"]);
      break;
    case 4:
      FUZZ_CHECK(body->empty() && a.size() == 1 && a["worker"] == name);
      break;
    default:
      FUZZ_CHECK(keys_within(*body, {"delta"}) && body->contains("delta"));
      FUZZ_CHECK(a.size() == 2 && a["worker"] == name && a["delta"] == (*body)["delta"]);
      break;
  }
  // What the route sends to the router: JSON text that reads back as the arguments (a name
  // that is not UTF-8 is replaced, as everywhere).
  const std::string sent = json_text(a);
  const json back = json::parse(sent, nullptr, false);
  FUZZ_CHECK(back.is_object());
  if (fuzz::is_utf8(name)) FUZZ_CHECK(back == a);
  return 0;
}
