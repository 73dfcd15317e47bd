// The control bodies of the HTTP API without a router: the body read as its route reads it
// (parse_json_body for a worker pool, parse_optional_json_body for the others), then the
// request's typed arguments (store/control_request.h). Input: a byte choosing the request
// (purge, dead-letter retry, revoke, retry, worker shutdown, worker pool), the name in its
// path (a task id or a worker name, as the URL gives it: any bytes), then the body's text.
// Whatever is accepted is what the router takes: proto::check_control passes, and the Control
// carrying it decodes back to the same arguments.
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

// The arguments as the router decodes them from the Control the route sends.
zb::proto::ControlArgs sent(zb::proto::ControlOp op, zb::proto::ControlArgs args) {
  zb::proto::Control c = zb::proto::Control::make(op, std::move(args));
  FUZZ_CHECK(zb::proto::check_control(c));
  const zb::proto::Frames f = zb::proto::encode(c);
  auto back = zb::proto::decode(f.header, f.body);
  FUZZ_CHECK(back);
  FUZZ_CHECK(zb::proto::encode(*back).body == f.body);
  return std::get<zb::proto::Control>(*back).args;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace zb;
  using proto::ControlOp;
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

  auto refused = [](const Status& s) {
    FUZZ_CHECK(s.code() == Code::kBadRequest && !s.message().empty());
    FUZZ_CHECK(fuzz::is_utf8(json_text(json{{"message", s.message()}})));
    return 0;
  };
  switch (which) {
    case 0: {
      auto a = store::purge_args(*body);
      if (!a) return refused(a.status());
      FUZZ_CHECK(keys_within(*body, {"queue"}));
      FUZZ_CHECK(a->queue.has_value() == body->contains("queue"));
      if (a->queue) FUZZ_CHECK((*body)["queue"] == *a->queue);
      FUZZ_CHECK(std::get<proto::PurgeArgs>(sent(ControlOp::kPurge, *a)).queue == a->queue);
      break;
    }
    case 1: {
      auto a = store::dead_retry_args(*body);
      if (!a) return refused(a.status());
      FUZZ_CHECK(keys_within(*body, {"queue", "limit"}));
      FUZZ_CHECK(a->queue.has_value() == body->contains("queue"));
      if (body->contains("limit")) FUZZ_CHECK((*body)["limit"] == a->limit);
      else FUZZ_CHECK(a->limit == proto::kMaxControlLimit);
      auto back = std::get<proto::RetryFailedArgs>(sent(ControlOp::kRetryFailed, *a));
      FUZZ_CHECK(back.queue == a->queue && back.limit == a->limit);
      break;
    }
    case 2:
    case 3: {
      auto a = store::task_control_args(which == 2 ? "revoke" : "retry", name, *body);
      if (!a) return refused(a.status());
      FUZZ_CHECK(keys_within(*body, {"terminate"}));
      FUZZ_CHECK(which == 2 || body->empty());
      FUZZ_CHECK(Id::parse(name) && *Id::parse(name) == a->task);
      FUZZ_CHECK(a->terminate == body->value("terminate", false));
      auto back = std::get<proto::TaskArgs>(sent(which == 2 ? ControlOp::kRevoke : ControlOp::kRetry, *a));
      FUZZ_CHECK(back.task == a->task && back.terminate == a->terminate);
      break;
    }
    case 4: {
      auto a = store::worker_control_args("shutdown", name, *body);
      if (!a) return refused(a.status());
      FUZZ_CHECK(body->empty() && a->worker == name && a->delta == 0);
      FUZZ_CHECK(std::get<proto::WorkerArgs>(sent(ControlOp::kWorkerShutdown, *a)).worker == name);
      break;
    }
    default: {
      auto a = store::worker_control_args("pool", name, *body);
      if (!a) return refused(a.status());
      FUZZ_CHECK(keys_within(*body, {"delta"}) && body->contains("delta"));
      FUZZ_CHECK(a->worker == name && (*body)["delta"] == a->delta && a->delta != 0);
      auto back = std::get<proto::WorkerArgs>(sent(ControlOp::kWorkerPool, *a));
      FUZZ_CHECK(back.worker == name && back.delta == a->delta);
      break;
    }
  }
  return 0;
}
