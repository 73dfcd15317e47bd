// Text from outside a process made safe to pass on.
//
// Task errors, worker names, hostnames, refs and results come from peers and child processes,
// and may hold bytes that are not UTF-8. nlohmann::json's dump() throws on such bytes by
// default; every JSON text zbatch writes goes through json_text(), which replaces them with
// U+FFFD instead, so no outside byte can turn a reply into an exception.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace zb {

// j as JSON text (compact, or indented by `indent`); never throws on invalid UTF-8.
inline std::string json_text(const nlohmann::json& j, int indent = -1) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

// `text` with every byte that does not belong to a well-formed UTF-8 sequence (RFC 3629:
// no overlongs, no surrogates, nothing above U+10FFFF) replaced by U+FFFD.
std::string valid_utf8(std::string_view text);
// The same in place; a text that is valid already (the usual case) is only read.
void make_valid_utf8(std::string& text);

// An Ollama server's address in any of OLLAMA_HOST's forms ("host", "host:port",
// "http://host:port/", "https://...") as "scheme://host:port" (http and port 11434 unless
// given), so that one server is always named the same way.
std::string ollama_address(std::string host);

}  // namespace zb
