// validate: syntax checks of source given in the task, as code or as files of the workspace.
//
// {"language": "python"|"javascript"|"c"|"cpp"|"json"|"toml"|"yaml"|"shell",
//  "code": "..." | "files": ["rel/path", ...], "filename"?: "name shown in diagnostics"}
// → {"language","passed","files":N,"diagnostics":[{"file","line","column","severity","message"}]}
// A finding is a successful task with passed = false; bad input fails the task.
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <toml++/toml.h>

#include "worker/kinds/kinds.h"
#include "worker/kinds/replies.h"
#include "worker/process.h"

namespace zb::worker {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

struct Source {
  std::string shown;  // name in diagnostics
  fs::path path;      // file to check
  std::string text;
};

json diagnostic(const std::string& file, int line, int column, std::string message, const char* severity = "error") {
  return {{"file", file}, {"line", line}, {"column", column}, {"severity", severity}, {"message", std::move(message)}};
}

// Runs a checker; returns its stdout + stderr, or a failed result (cannot start, timed out).
std::optional<std::pair<int, std::string>> run_checker(std::vector<std::string> argv, const ValidationConfig& cfg,
                                                        const TaskContext& ctx, HandlerResult& error) {
  ProcessHandlerConfig p;
  p.kind = "validate";
  p.argv = std::move(argv);
  p.stdout_limit = 4u << 20;
  p.stderr_limit = 1u << 20;
  TaskContext limited = ctx;
  if (!limited.hard_limit_ms || limited.hard_limit_ms > cfg.timeout_ms) limited.hard_limit_ms = cfg.timeout_ms;
  auto child = Child::spawn(p, true);
  if (!child) {
    error = HandlerResult::fail("ValidatorMissing: " + child.status().message());
    return std::nullopt;
  }
  Exchange x = pump(**child, "", false, p, limited);
  if (x.killed != Killed::kNone) {
    error = HandlerResult::fail(ended_error(**child, x, limited, "ValidatorError"));
    return std::nullopt;
  }
  const int st = (*child)->wait_status();
  if (!(*child)->exited() || !WIFEXITED(st)) {
    error = HandlerResult::fail(ended_error(**child, x, limited, "ValidatorError"));
    return std::nullopt;
  }
  return std::make_pair(WEXITSTATUS(st), x.out + x.err);
}

json diagnostic(const std::string& file, const Diagnostic& d) {
  return diagnostic(file, d.line, d.column, d.message, d.severity.c_str());
}

constexpr const char* kPythonCheck =
    "import json, sys\n"
    "path = sys.argv[1]\n"
    "try:\n"
    "    compile(open(path, 'rb').read(), sys.argv[2], 'exec', dont_inherit=True)\n"
    "except SyntaxError as e:\n"
    "    print(json.dumps({'line': e.lineno or 0, 'column': e.offset or 0, 'message': type(e).__name__ + ': ' + str(e.msg)}))\n"
    "except ValueError as e:\n"
    "    print(json.dumps({'line': 0, 'column': 0, 'message': 'ValueError: ' + str(e)}))\n";

constexpr const char* kYamlCheck =
    "import json, sys\n"
    "try:\n"
    "    import yaml\n"
    "except ImportError:\n"
    "    print(json.dumps({'missing': 'python3-yaml'})); sys.exit(0)\n"
    "try:\n"
    "    list(yaml.safe_load_all(open(sys.argv[1], 'rb')))\n"
    "except yaml.YAMLError as e:\n"
    "    m = getattr(e, 'problem_mark', None)\n"
    "    print(json.dumps({'line': m.line + 1 if m else 0, 'column': m.column + 1 if m else 0, 'message': str(getattr(e, 'problem', None) or e)}))\n";

std::optional<std::string> check_one(const std::string& language, const Source& src, const ValidationConfig& cfg,
                                     const TaskContext& ctx, json& diags, HandlerResult& error) {
  auto from_json_lines = [&](const std::string& out) {
    std::string missing;
    for (const auto& d : json_line_diagnostics(out, &missing)) diags.push_back(diagnostic(src.shown, d));
    if (!missing.empty()) return std::optional<std::string>("ValidatorMissing: install " + missing);
    return std::optional<std::string>();
  };
  if (language == "json") {
    try {
      [[maybe_unused]] json parsed = json::parse(src.text);
    } catch (const json::parse_error& e) {
      // e.byte is 1-based; turn it into line and column.
      size_t line = 1, col = 1;
      for (size_t i = 0; i + 1 < e.byte && i < src.text.size(); ++i) {
        if (src.text[i] == '\n') ++line, col = 1;
        else ++col;
      }
      std::string msg = e.what();
      if (auto p = msg.find("parse error"); p != std::string::npos) msg = msg.substr(p);
      diags.push_back(diagnostic(src.shown, static_cast<int>(line), static_cast<int>(col), msg));
    }
    return std::nullopt;
  }
  if (language == "toml") {
    try {
      [[maybe_unused]] toml::table parsed = toml::parse(src.text, src.shown);
    } catch (const toml::parse_error& e) {
      diags.push_back(diagnostic(src.shown, static_cast<int>(e.source().begin.line),
                                 static_cast<int>(e.source().begin.column), std::string(e.description())));
    }
    return std::nullopt;
  }
  std::vector<std::string> argv;
  if (language == "python") argv = {"/usr/bin/python3", "-c", kPythonCheck, src.path.string(), src.shown};
  else if (language == "yaml") argv = {"/usr/bin/python3", "-c", kYamlCheck, src.path.string()};
  else if (language == "javascript") argv = {"node", "--check", src.path.string()};
  else if (language == "c") argv = {"gcc", "-fsyntax-only", "-x", "c", src.path.string()};
  else if (language == "cpp") argv = {"g++", "-fsyntax-only", "-std=c++20", "-x", "c++", src.path.string()};
  else if (language == "shell") argv = {"bash", "-n", src.path.string()};
  auto ran = run_checker(argv, cfg, ctx, error);
  if (!ran) return std::string();  // error is set
  const auto& [code, output] = *ran;
  if (language == "python" || language == "yaml") return from_json_lines(output);
  if (language == "javascript") {
    // "path:LINE\n<source line>\n   ^\n\nSyntaxError: message"
    Diagnostic d = node_check_diagnostic(output);
    if (d.message.empty()) d.message = utf8_prefix(tail(output, 500), 600);
    if (code != 0) diags.push_back(diagnostic(src.shown, d));
    return std::nullopt;
  }
  const size_t before = diags.size();
  for (const auto& d : compiler_diagnostics(output)) diags.push_back(diagnostic(src.shown, d));
  // Paths in the tool's output are our temporary ones; the diagnostics name the source.
  if (code != 0 && diags.size() == before)
    diags.push_back(diagnostic(src.shown, 0, 0, utf8_prefix(tail(output, 500), 600)));
  return std::nullopt;
}

HandlerResult validate(const ValidationConfig& cfg, const TaskContext& ctx) {
  HandlerResult bad;
  auto task = payload_object(ctx, bad);
  if (!task) return bad;
  static const std::map<std::string, std::string> kExtension = {
      {"python", ".py"}, {"javascript", ".js"}, {"c", ".c"}, {"cpp", ".cpp"}, {"json", ".json"},
      {"toml", ".toml"}, {"yaml", ".yaml"}, {"shell", ".sh"}};
  auto lang = task->find("language");
  if (lang == task->end() || !lang->is_string())
    return HandlerResult::fail("BadTask: validation tasks need \"language\" (python, javascript, c, cpp, json, toml, yaml, shell)");
  std::string language = lang->get<std::string>();
  if (language == "js") language = "javascript";
  if (language == "c++") language = "cpp";
  if (language == "sh" || language == "bash") language = "shell";
  if (language == "yml") language = "yaml";
  if (!kExtension.count(language))
    return HandlerResult::fail("UnknownLanguage: '" + utf8_prefix(language, 40) +
                               "' (python, javascript, c, cpp, json, toml, yaml, shell)");

  std::vector<Source> sources;
  std::error_code ec;
  const fs::path scratch = fs::temp_directory_path() / ("zbatch-validate-" + ctx.task.to_string() + "-" +
                                                        std::to_string(ctx.attempt));
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code ignored;
      fs::remove_all(dir, ignored);
    }
  } cleanup{scratch};
  if (auto code = task->find("code"); code != task->end()) {
    if (!code->is_string()) return HandlerResult::fail("BadTask: \"code\" must be a string");
    std::string shown = "input" + kExtension.at(language);
    if (auto f = task->find("filename"); f != task->end() && f->is_string()) shown = f->get<std::string>();
    fs::create_directories(scratch, ec);
    const fs::path path = scratch / ("input" + kExtension.at(language));
    std::ofstream(path, std::ios::binary) << code->get<std::string>();
    sources.push_back({shown, path, code->get<std::string>()});
  } else if (auto files = task->find("files"); files != task->end()) {
    if (!files->is_array() || files->empty()) return HandlerResult::fail("BadTask: \"files\" must be a non-empty array of paths");
    const fs::path root = fs::weakly_canonical(cfg.workspace, ec);
    for (const auto& f : *files) {
      if (!f.is_string()) return HandlerResult::fail("BadTask: \"files\" must hold strings");
      const std::string rel = f.get<std::string>();
      const fs::path full = fs::weakly_canonical(root / rel, ec);
      auto [r, p] = std::mismatch(root.begin(), root.end(), full.begin(), full.end());
      if (ec || r != root.end() || fs::path(rel).is_absolute())
        return HandlerResult::fail("PathOutsideWorkspace: '" + rel + "' is not inside the workspace");
      std::ifstream in(full, std::ios::binary);
      if (!in) return HandlerResult::fail("FileNotFound: '" + rel + "' in the workspace");
      std::stringstream text;
      text << in.rdbuf();
      sources.push_back({rel, full, text.str()});
    }
  } else {
    return HandlerResult::fail("BadTask: validation tasks need \"code\" or \"files\"");
  }
  json diags = json::array();
  for (const auto& src : sources) {
    HandlerResult error;
    auto failed = check_one(language, src, cfg, ctx, diags, error);
    if (failed && failed->empty()) return error;
    if (failed) return HandlerResult::fail(*failed);
  }
  bool passed = true;
  for (const auto& d : diags)
    if (d["severity"] == "error") passed = false;
  return HandlerResult::ok(json{{"language", language}, {"passed", passed}, {"files", sources.size()},
                                {"diagnostics", diags}}.dump(-1, ' ', false, json::error_handler_t::replace));
}

}  // namespace

Handler make_validate_handler(ValidationConfig config) {
  return [cfg = std::move(config)](const TaskContext& ctx) { return validate(cfg, ctx); };
}

}  // namespace zb::worker
