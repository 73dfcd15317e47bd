// An Ollama /api/chat answer, read as ollama.cc reads it. Input: a byte that seeds the piece
// sizes (bit 0 also: the task has an id), a 16-bit HTTP status, then the body. A status of 400
// or more goes to ollama_http_error, anything else to OllamaChatStream in pieces.
#include "tests/fuzz/fuzz.h"
#include "worker/kinds/replies.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace zb;
  using namespace zb::worker;
  fuzz::Reader in(data, size);
  const uint8_t seed = in.u8();
  const int status = in.u16() % 1000;
  const std::string body = in.rest();

  HandlerResult r;
  if (status >= 400) {
    r = ollama_http_error(status, body);
    FUZZ_CHECK(r.status == (status >= 500 || status == 429 ? proto::OutcomeStatus::kRetry : proto::OutcomeStatus::kFailed));
    FUZZ_CHECK(r.error.starts_with("Ollama") && r.error.size() < 600);
  } else {
    OllamaChatStream stream;
    uint32_t piece_seed = seed | 1u;
    bool reading = true;
    for (size_t at = 0; at < body.size() && reading;) {
      piece_seed = piece_seed * 1103515245u + 12345u;
      const size_t piece = std::min<size_t>(1 + (piece_seed >> 16) % 128, body.size() - at);
      reading = stream.feed(std::string_view(body).substr(at, piece));
      at += piece;
      FUZZ_CHECK(reading == stream.error().empty());
    }
    const nlohmann::json id = seed & 1 ? nlohmann::json("task-1") : nlohmann::json();
    r = stream.finish("llama3.2", id);
    if (r.status == proto::OutcomeStatus::kSucceeded) {
      auto result = nlohmann::json::parse(r.result, nullptr, false);
      FUZZ_CHECK(result.is_object());
      FUZZ_CHECK(result["message"]["content"].is_string() && result["model"].is_string());
      FUZZ_CHECK(result.contains("id") == !id.is_null());
    } else {
      FUZZ_CHECK(r.error.starts_with("Ollama"));
    }
  }
  FUZZ_CHECK(fuzz::is_utf8(r.error) && fuzz::is_utf8(r.result));
  return 0;
}
