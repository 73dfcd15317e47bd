// An embedding program: a worker with a task kind of its own.
//
//   zbatch_example_worker [ROUTER_BACKEND_ENDPOINT]
//   zbatch submit --kind reverse '{"text": "stressed"}' --wait     → {"text":"desserts"}
#include <csignal>
#include <iostream>

#include <nlohmann/json.hpp>

#include "worker/worker.h"

namespace {
zb::Worker* g_worker = nullptr;
void on_signal(int) {
  if (g_worker) g_worker->stop();
}
}  // namespace

int main(int argc, char** argv) {
  zb::WorkerOptions options;
  if (argc > 1) options.router = argv[1];
  options.concurrency = 2;
  auto worker = zb::Worker::create(options);
  if (!worker) {
    std::cerr << "example: " << worker.status().to_string() << "\n";
    return 1;
  }
  (*worker)->register_handler("reverse", [](const zb::TaskContext& task) {
    auto payload = nlohmann::json::parse(task.payload, nullptr, false);
    if (payload.is_discarded() || !payload.contains("text") || !payload["text"].is_string())
      return zb::HandlerResult::fail("reverse: payload needs a string field \"text\"");
    // Reversed by characters (UTF-8 sequences kept whole), not by bytes.
    const std::string text = payload["text"];
    std::string reversed;
    for (size_t end = text.size(); end > 0;) {
      size_t start = end - 1;
      while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xc0) == 0x80) --start;
      reversed.append(text, start, end - start);
      end = start;
    }
    return zb::HandlerResult::ok(nlohmann::json{{"text", reversed}}.dump());
  });
  g_worker = worker->get();
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  zb::Status s = (*worker)->run();
  if (!s) std::cerr << "example: " << s.to_string() << "\n";
  return s ? 0 : 1;
}
