// What the agent loop reads from the model's tool calls, and how it clips what it keeps
// (worker/kinds/agent.h).
#include "worker/kinds/agent.h"
#include "worker/kinds/replies.h"

namespace zb::worker {

using nlohmann::json;

std::string clip(std::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return utf8_prefix(text, text.size() * 3);
  std::string kept = utf8_prefix(text, max_bytes);
  return kept + "…[truncated: " + std::to_string(text.size() - kept.size()) + " more bytes]";
}

ToolCall read_tool_call(const json& entry, size_t max_argument_bytes) {
  ToolCall call;
  if (!entry.is_object()) {
    call.error = "a tool call must be an object {\"function\": {\"name\", \"arguments\"}}";
    return call;
  }
  if (auto id = entry.find("id"); id != entry.end() && id->is_string()) call.id = utf8_prefix(id->get<std::string>(), 200);
  auto fn = entry.find("function");
  if (fn == entry.end() || !fn->is_object()) {
    call.error = "a tool call needs \"function\": {\"name\", \"arguments\"}";
    return call;
  }
  auto name = fn->find("name");
  if (name == fn->end() || !name->is_string() || name->get_ref<const std::string&>().empty()) {
    call.error = "a tool call needs \"function\".\"name\" (a string)";
    return call;
  }
  call.name = utf8_prefix(name->get<std::string>(), 100);
  auto args = fn->find("arguments");
  if (args == fn->end() || args->is_null()) return call;  // no arguments: {}
  if (args->is_string()) {
    const std::string& text = args->get_ref<const std::string&>();
    if (text.size() > max_argument_bytes) {
      call.error = "the arguments of " + call.name + " are " + std::to_string(text.size()) + " bytes, more than " +
                   std::to_string(max_argument_bytes);
      return call;
    }
    json parsed = parse_json_bounded(text.empty() ? std::string_view("{}") : std::string_view(text));
    if (!parsed.is_object()) {
      call.error = "the arguments of " + call.name + " must be a JSON object";
      return call;
    }
    call.arguments = std::move(parsed);
    return call;
  }
  if (!args->is_object()) {
    call.error = "the arguments of " + call.name + " must be a JSON object, not " + std::string(args->type_name());
    return call;
  }
  const size_t size = args->dump(-1, ' ', false, json::error_handler_t::replace).size();
  if (size > max_argument_bytes) {
    call.error = "the arguments of " + call.name + " are " + std::to_string(size) + " bytes, more than " +
                 std::to_string(max_argument_bytes);
    return call;
  }
  call.arguments = *args;
  return call;
}

}  // namespace zb::worker
