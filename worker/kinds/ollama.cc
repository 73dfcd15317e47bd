// agent: one chat with an Ollama server (POST /api/chat, streamed NDJSON).
//
// Errors: the server unreachable, a timeout or a 5xx is transient (the task is retried);
// a 4xx or an error inside the stream is permanent. The soft time limit or a revoke
// cancels the request between two chunks.
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/http_module.h"
#include "common/text.h"
#include "worker/kinds/http_exchange.h"
#include "worker/kinds/kinds.h"
#include "worker/kinds/replies.h"

namespace zb::worker {
namespace {

using nlohmann::json;

// "host:port", "http://host:port", "https://..." (OLLAMA_HOST's forms) → a client address.
std::string client_address(std::string host) {
  while (!host.empty() && host.back() == '/') host.pop_back();
  if (host.find("://") == std::string::npos) host = "http://" + host;
  // http://host without a port: Ollama's default port.
  const auto authority = host.substr(host.find("://") + 3);
  if (authority.find(':') == std::string::npos && authority.find(']') == std::string::npos) host += ":11434";
  return host;
}

HandlerResult chat(const OllamaConfig& cfg, const TaskContext& ctx) {
  HandlerResult bad;
  auto task = payload_object(ctx, bad);
  if (!task) return bad;
  auto text = [&](const char* key) -> std::optional<std::string> {
    auto it = task->find(key);
    if (it == task->end() || it->is_null()) return std::string();
    if (!it->is_string()) return std::nullopt;
    return it->get<std::string>();
  };
  auto description = text("description");
  if (!description || description->empty())
    return HandlerResult::fail("BadTask: agent tasks need \"description\" (a non-empty string)");
  auto system = text("system");
  auto model = text("model");
  if (!system || !model) return HandlerResult::fail("BadTask: \"system\" and \"model\" must be strings");

  std::string user = *description;
  if (auto files = task->find("files"); files != task->end()) {
    // {"files": {"name": "content", ...}} is given to the model as context.
    if (!files->is_object()) return HandlerResult::fail("BadTask: \"files\" must be an object of name → content");
    for (const auto& [name, content] : files->items()) {
      if (!content.is_string()) return HandlerResult::fail("BadTask: files[\"" + name + "\"] must be a string");
      user += "\n\n--- " + name + " ---\n" + content.get<std::string>();
    }
  }
  json messages = json::array();
  const std::string sys = system->empty() ? cfg.system : *system;
  if (!sys.empty()) messages.push_back({{"role", "system"}, {"content", sys}});
  messages.push_back({{"role", "user"}, {"content", user}});
  json request{{"model", model->empty() ? cfg.model : *model}, {"messages", messages}, {"stream", true}};
  if (auto options = task->find("options"); options != task->end()) {
    if (!options->is_object()) return HandlerResult::fail("BadTask: \"options\" must be an object");
    request["options"] = *options;
  }

  std::string host = cfg.host;
  if (host.empty()) {
    const char* env = std::getenv("OLLAMA_HOST");
    host = env && *env ? env : "http://127.0.0.1:11434";
  }
  OllamaChatStream stream;
  std::string body_head;
  bool cancelled = false;
  int status = 0;
  HttpExchange exchange;
  exchange.address = client_address(host);
  exchange.path = "/api/chat";
  exchange.body = json_text(request);
  exchange.connect_timeout_ms = cfg.connect_timeout_ms;
  exchange.read_timeout_ms = cfg.read_timeout_ms;
  exchange.on_status = [&](int s) { status = s; };
  exchange.on_data = [&](std::string_view data) {
    if (ctx.is_cancelled()) {
      cancelled = true;
      return false;
    }
    if (status >= 400) {  // keep the error body for the message
      if (body_head.size() < 2000) body_head.append(data.substr(0, 2000 - body_head.size()));
      return true;
    }
    return stream.feed(data);
  };
  const HttpOutcome res = http_exchange(exchange);
  if (cancelled) return HandlerResult::fail("Cancelled: the chat was cancelled (time limit or revoke)");
  if (!stream.error().empty()) return HandlerResult::fail(stream.error());
  if (!res.answered) {
    if (res.read_failed && status > 0 && status < 400)
      return HandlerResult::retry("OllamaTimeout: no reply chunk within " + std::to_string(cfg.read_timeout_ms) + " ms");
    return HandlerResult::retry("OllamaUnavailable: " + client_address(host) + ": " + res.failure);
  }
  if (res.status >= 400) return ollama_http_error(res.status, body_head.empty() ? res.body : body_head);
  return stream.finish(request["model"].get<std::string>(), task->value("id", json()));
}

}  // namespace

HttpOutcome http_exchange(const HttpExchange& request) {
  HttpOutcome outcome;
  auto entry = http_module_symbol("zbatch_http_exchange");
  if (!entry) {
    outcome.failure = entry.status().message();
    return outcome;
  }
  reinterpret_cast<zbatch_http_exchange_fn>(*entry)(&request, &outcome);
  return outcome;
}

std::optional<nlohmann::json> payload_object(const TaskContext& ctx, HandlerResult& error) {
  json j = parse_json_bounded(ctx.payload.empty() ? std::string_view("{}") : ctx.payload);
  if (!j.is_object()) {
    error = HandlerResult::fail("BadTask: the " + utf8_prefix(ctx.kind, 100) + " task must be a JSON object (nested at most " +
                                std::to_string(kMaxJsonDepth) + " deep)");
    return std::nullopt;
  }
  return j;
}

Handler make_ollama_handler(OllamaConfig config) {
  return [cfg = std::move(config)](const TaskContext& ctx) { return chat(cfg, ctx); };
}

}  // namespace zb::worker
