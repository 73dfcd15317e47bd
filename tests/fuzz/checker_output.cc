// What validate.cc's checkers print (gcc/g++, bash -n, node --check, its python and yaml
// scripts), read by the parsers of worker/kinds/replies.h. For lines short enough for it, the
// std::regex reading the worker used before is the reference: both must find the same.
#include <regex>

#include "tests/fuzz/fuzz.h"
#include "worker/kinds/replies.h"

namespace {

using zb::worker::Diagnostic;

constexpr size_t kReferenceLine = 256;  // std::regex recurses per character: keep it short

bool plain(std::string_view line) {
  return line.size() < kReferenceLine && line.find('\r') == std::string_view::npos;
}

// The former regex reading of one line (gcc first, then bash); nullopt when neither matches
// or a number has more digits than the reference's int parsing can take.
std::optional<Diagnostic> reference(const std::string& line, bool* comparable) {
  static const std::regex gcc(R"(^(.*?):(\d+):(\d+): (error|warning|fatal error): (.*)$)");
  static const std::regex bash(R"(^(.*?): line (\d+): (.*)$)");
  std::smatch m;
  *comparable = true;
  auto number = [&](const std::string& digits) {
    if (digits.size() > 9) *comparable = false;
    return digits.size() > 9 ? 0 : std::stoi(digits);
  };
  if (std::regex_match(line, m, gcc)) {
    Diagnostic d;
    d.line = number(m[2]);
    d.column = number(m[3]);
    d.severity = m[4] == "warning" ? "warning" : "error";
    d.message = zb::worker::utf8_prefix(m[5].str(), 2000);
    return d;
  }
  if (std::regex_match(line, m, bash)) {
    Diagnostic d;
    d.line = number(m[2]);
    d.message = zb::worker::utf8_prefix(m[3].str(), 2000);
    return d;
  }
  return std::nullopt;
}

void check(const Diagnostic& d) {
  FUZZ_CHECK(d.line >= 0 && d.column >= 0);
  FUZZ_CHECK(d.severity == "error" || d.severity == "warning");
  FUZZ_CHECK(d.message.size() <= 2000 && zb::fuzz::is_utf8(d.message));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace zb::worker;
  const std::string output(reinterpret_cast<const char*>(data), size);

  const std::vector<Diagnostic> found = compiler_diagnostics(output);
  for (const auto& d : found) check(d);
  // Line by line against the reference, where it can be used.
  bool all_plain = true;
  std::vector<Diagnostic> expected;
  bool comparable = true;
  for (size_t start = 0; start <= output.size();) {
    size_t nl = output.find('\n', start);
    if (nl == std::string::npos) nl = output.size();
    const std::string line = output.substr(start, nl - start);
    if (!plain(line)) all_plain = false;
    else if (!line.empty() || nl < output.size()) {
      bool ok = true;
      if (auto d = reference(line, &ok)) expected.push_back(*d);
      comparable = comparable && ok;
    }
    start = nl + 1;
  }
  if (all_plain && comparable) {
    FUZZ_CHECK(found.size() == expected.size());
    for (size_t i = 0; i < found.size(); ++i) {
      FUZZ_CHECK(found[i].line == expected[i].line && found[i].column == expected[i].column);
      FUZZ_CHECK(found[i].severity == expected[i].severity && found[i].message == expected[i].message);
    }
  }

  std::string missing;
  for (const auto& d : json_line_diagnostics(output, &missing)) check(d);
  FUZZ_CHECK(zb::fuzz::is_utf8(missing));
  check(node_check_diagnostic(output));
  return 0;
}
