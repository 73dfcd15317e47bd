// validate: syntax checks of source given in the task, as code or as files of the workspace.
//
// {"language": "python"|"javascript"|"c"|"cpp"|"json"|"toml"|"yaml"|"shell",
//  "code": "..." | "files": ["rel/path", ...], "filename"?: "name shown in diagnostics"}
// → {"language","passed","files":N,"diagnostics":[{"file","line","column","severity","message"}]}
// A finding is a successful task with passed = false; bad input fails the task.
//
// What a task's source can make the worker read is confined (docs/kinds/validation.md):
// - each task gets a ScratchDir (mkdtemp, 0700, removed afterwards); checkers run in it on
//   copies, written there with O_CREAT | O_EXCL | O_NOFOLLOW, and read nothing else of the task;
// - "files" are read by the worker with read_inside(): a path that symbolic links take out
//   of the workspace fails the task (PathOutsideWorkspace), checked on the opened file;
// - C and C++: every operand that makes the preprocessor open a file must be a literal
//   relative name without '..' (IncludeRefused otherwise, before anything is compiled); gcc
//   runs with -nostdinc and its own system include folders given explicitly, and with a clean
//   environment (no CPATH); workspace headers a source includes with "..." are checked and
//   copied the same way;
// - where the kernel has Landlock, a checker cannot open anything but the scratch folder and
//   the system's program and header folders;
// - only diagnostics about the task's own files reach the result, so nothing a checker read
//   elsewhere is echoed.
#include <sys/wait.h>

#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

#include <toml++/toml.h>

#include "common/log.h"
#include "worker/kinds/kinds.h"
#include "worker/kinds/replies.h"
#include "worker/process.h"

namespace zb::worker {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr size_t kMaxSourceBytes = 32u << 20;
constexpr size_t kMaxIncludedFiles = 256;

struct Source {
  std::string shown;  // name in diagnostics
  std::string tool;   // its path in the scratch folder, as the checker is given it
  std::string text;
};

json diagnostic(const std::string& file, int line, int column, std::string message, const char* severity = "error") {
  return {{"file", file}, {"line", line}, {"column", column}, {"severity", severity}, {"message", std::move(message)}};
}

// Plain string reading, linear in the text: std::regex recurses per character and a task's
// source or a checker's output can hold lines long enough to overflow the stack.

// A path with a ".." component.
bool climbs_out(std::string_view name) {
  for (size_t start = 0; start <= name.size();) {
    size_t end = name.find('/', start);
    if (end == std::string_view::npos) end = name.size();
    if (name.substr(start, end - start) == "..") return true;
    start = end + 1;
  }
  return false;
}

bool word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// `word` in `text` with no letter, digit or '_' on either side.
bool has_word(std::string_view text, std::string_view word) {
  for (size_t at = text.find(word); at != std::string_view::npos; at = text.find(word, at + 1)) {
    const bool left = at == 0 || !word_char(text[at - 1]);
    const size_t after = at + word.size();
    if (left && (after == text.size() || !word_char(text[after]))) return true;
  }
  return false;
}

// gcc's "[fatal error: ]PATH: No such file or directory" (or "Permission denied") about a path
// outside the task (absolute, or climbing with ".."): that path.
std::optional<std::string> unopened_outside(std::string_view message) {
  constexpr std::string_view kFatal = "fatal error: ";
  if (message.substr(0, kFatal.size()) == kFatal) message.remove_prefix(kFatal.size());
  for (std::string_view reason : {": No such file or directory", ": Permission denied"}) {
    if (message.size() < reason.size() || message.substr(message.size() - reason.size()) != reason) continue;
    const std::string_view path = message.substr(0, message.size() - reason.size());
    if ((!path.empty() && path[0] == '/') || path.find("..") != std::string_view::npos) return std::string(path);
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// C and C++: what a source may make the preprocessor open.
//
// The scan does not try to be a lexer that agrees with gcc's: a directive is looked for at the
// start of every line and after every comment, whatever the scan believes about literals and
// comments, and identifiers are looked for everywhere (inside literals and comments too). So a
// literal or comment it reads differently from gcc can hide nothing; at worst it refuses code
// that only mentions an include in a comment.

struct Include {
  int line = 0;
  std::string name;  // of #include "name": relative, without '..'
};

struct IncludeScan {
  std::string refusal;  // empty: nothing refused
  int refusal_line = 0;
  std::vector<Include> quoted;
};

bool ident_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == '$'; }
bool ident_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$'; }
bool blank(char c) { return c == ' ' || c == '\t' || c == '\f' || c == '\v'; }

class IncludeScanner {
 public:
  // `text` with its line splices removed (splice = true) or kept, line endings as '\n'.
  IncludeScanner(std::string_view source, bool splice) {
    int line = 1;
    for (size_t i = 0; i < source.size(); ++i) {
      char c = source[i];
      if (splice && c == '\\') {
        size_t j = i + 1;
        while (j < source.size() && blank(source[j])) ++j;  // gcc splices "\ <blanks> newline" too
        if (j < source.size() && (source[j] == '\n' || source[j] == '\r')) {
          if (source[j] == '\r' && j + 1 < source.size() && source[j + 1] == '\n') ++j;
          i = j;
          ++line;
          continue;
        }
      }
      if (c == '\r') {
        if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
        c = '\n';
      }
      text_.push_back(c);
      line_.push_back(line);
      if (c == '\n') ++line;
    }
  }

  IncludeScan scan() {
    // Directives: at every line start, and after every "*/" (a comment is blank space).
    for (size_t i = 0; i < text_.size() && scan_.refusal.empty();) {
      size_t j = i;
      skip_blank(j);
      directive(j);
      module_import(j);
      const size_t nl = text_.find('\n', i);
      if (nl == std::string::npos) break;
      i = nl + 1;
    }
    for (size_t c = text_.find("*/"); c != std::string::npos && scan_.refusal.empty(); c = text_.find("*/", c + 2)) {
      size_t j = c + 2;
      skip_blank(j);
      directive(j);
    }
    identifiers();
    return std::move(scan_);
  }

 private:
  char at(size_t i) const { return i < text_.size() ? text_[i] : '\0'; }
  int line_of(size_t i) const { return line_.empty() ? 1 : line_[std::min(i, line_.size() - 1)]; }

  void refuse(size_t where, std::string why) {
    if (!scan_.refusal.empty()) return;
    scan_.refusal = std::move(why);
    scan_.refusal_line = line_of(where);
  }

  // Blanks and block comments (a comment may span lines: it is one space).
  void skip_blank(size_t& i) const {
    for (;;) {
      while (blank(at(i))) ++i;
      if (at(i) == '/' && at(i + 1) == '*') {
        const size_t end = text_.find("*/", i + 2);
        i = end == std::string::npos ? text_.size() : end + 2;
        continue;
      }
      return;
    }
  }

  std::string identifier(size_t& i) const {
    const size_t start = i;
    if (!ident_start(at(i))) return {};
    while (ident_char(at(i))) ++i;
    return text_.substr(start, i - start);
  }

  // A "name" or <name> operand at i; false (and a refusal) for anything else.
  bool literal_operand(size_t i, const std::string& what, std::string* quoted_name) {
    const char open = at(i);
    if (open != '"' && open != '<') {
      refuse(i, what + " with a computed operand (a macro or an expression): only \"file\" or <file> can be "
                       "checked before compiling");
      return false;
    }
    const size_t end = text_.find_first_of(open == '"' ? "\"\n" : ">\n", i + 1);
    if (end == std::string::npos || text_[end] == '\n') {
      refuse(i, what + " with an unterminated file name");
      return false;
    }
    const std::string name = text_.substr(i + 1, end - i - 1);
    const std::string shown = what + " " + open + name.substr(0, 80) + (open == '"' ? '"' : '>');
    if (!name.empty() && name[0] == '/') {
      refuse(i, shown + " names an absolute path; a task may include its own files (relative names) and "
                        "system headers only");
      return false;
    }
    if (climbs_out(name)) {
      refuse(i, shown + " climbs out with '..'; a task may include its own files (relative names) and "
                        "system headers only");
      return false;
    }
    if (quoted_name && open == '"') *quoted_name = name;
    return true;
  }

  void directive(size_t i) {
    size_t q = i;
    if (at(q) == '#') q += 1;
    else if (at(q) == '%' && at(q + 1) == ':') q += 2;
    else if (at(q) == '?' && at(q + 1) == '?' && at(q + 2) == '=') q += 3;  // trigraph (off in gcc's modes, refused anyway)
    else return;
    skip_blank(q);
    const std::string name = identifier(q);
    if (name == "include" || name == "include_next" || name == "import" || name == "embed") {
      skip_blank(q);
      std::string quoted;
      if (literal_operand(q, "#" + name, &quoted) && !quoted.empty()) scan_.quoted.push_back({line_of(q), quoted});
    } else if (name == "pragma") {
      const size_t nl = text_.find('\n', q);
      const std::string rest = text_.substr(q, nl == std::string::npos ? std::string::npos : nl - q);
      if (has_word(rest, "dependency") || has_word(rest, "pch_preprocess"))
        refuse(q, "#pragma GCC dependency / pch_preprocess opens a file by name, and is not accepted");
    }
  }

  // C++20 header units: [export] import "name"; (only under -fmodules-ts, checked anyway).
  void module_import(size_t i) {
    size_t q = i;
    std::string word = identifier(q);
    if (word == "export") {
      skip_blank(q);
      word = identifier(q);
    }
    if (word != "import") return;
    skip_blank(q);
    if (at(q) == '"' || at(q) == '<') literal_operand(q, "import", nullptr);
  }

  // The identifier before i (blanks and one '(' skipped), to tell `defined(__has_include)`.
  std::string word_before(size_t i) const {
    size_t j = i;
    auto back_blank = [&] {
      while (j > 0 && blank(text_[j - 1])) --j;
    };
    back_blank();
    if (j > 0 && text_[j - 1] == '(') {
      --j;
      back_blank();
    }
    const size_t end = j;
    while (j > 0 && ident_char(text_[j - 1])) --j;
    return text_.substr(j, end - j);
  }

  // Whether `target` is two or more of `words` written one after another: what token pasting
  // (a##b) could make of the source's identifiers.
  static bool pastable(const std::string& target, const std::set<std::string>& words) {
    std::vector<bool> made(target.size() + 1, false);  // target[0, i) is a run of words
    made[0] = true;
    for (size_t i = 0; i < target.size(); ++i) {
      if (!made[i]) continue;
      for (size_t j = i + 1; j <= target.size(); ++j)
        if (j - i < target.size() && words.count(target.substr(i, j - i))) made[j] = true;  // pieces, not the word
    }
    return made[target.size()];
  }

  void identifiers() {
    bool pragma_operator = false;
    size_t dependency = std::string::npos;  // where the word first appears
    std::set<std::string> words;
    for (size_t i = 0; i < text_.size() && scan_.refusal.empty();) {
      if (!ident_start(text_[i]) || (i > 0 && ident_char(text_[i - 1]))) {
        ++i;
        continue;
      }
      const size_t start = i;
      const std::string word = identifier(i);
      words.insert(word);
      if (word.rfind("__has_include", 0) == 0 || word.rfind("__has_embed", 0) == 0) {
        size_t q = i;
        skip_blank(q);
        if (at(q) == '(') {
          ++q;
          skip_blank(q);
          literal_operand(q, word, nullptr);
        } else {
          // Only asking whether it exists is harmless: #ifdef __has_include, defined(__has_include).
          const std::string before = word_before(start);
          if (before != "defined" && before != "ifdef" && before != "ifndef")
            refuse(start, word + " used without its (\"file\") operand (through a macro): its file cannot be "
                                 "checked before compiling");
        }
      } else if (word == "pch_preprocess") {
        refuse(start, "pch_preprocess opens a file by name, and is not accepted");
      } else if (word == "_Pragma") {
        pragma_operator = true;
      } else if (word == "dependency" && dependency == std::string::npos) {
        dependency = start;
      }
    }
    if (pragma_operator && dependency != std::string::npos)
      refuse(dependency, "_Pragma together with the word 'dependency' (#pragma GCC dependency opens a file by name), "
                "which is not accepted");
    // A name the checks above look for could also be pasted together out of pieces.
    const size_t paste = std::min(text_.find("##"), text_.find("%:%:"));
    if (paste == std::string::npos) return;
    std::vector<std::string> names = {"__has_include", "__has_include_next", "__has_embed"};
    if (pragma_operator) names.insert(names.end(), {"dependency", "pch_preprocess"});
    for (const auto& name : names)
      if (pastable(name, words))
        refuse(paste, "token pasting (##) with identifiers that could be pasted into " + name +
                          ", whose file cannot be checked before compiling");
  }

  std::string text_;
  std::vector<int> line_;
  IncludeScan scan_;
};

// The source's quoted includes, or why it may not be compiled: both views of its lines (line
// splices applied, and not) must pass.
IncludeScan scan_includes(std::string_view source) {
  IncludeScan spliced = IncludeScanner(source, true).scan();
  if (!spliced.refusal.empty()) return spliced;
  IncludeScan raw = IncludeScanner(source, false).scan();
  if (!raw.refusal.empty()) return raw;
  return spliced;
}

// ---------------------------------------------------------------------------------------------
// Running checkers

// What checkers need, found once per handler: gcc's and g++'s system include folders.
class Checkers {
 public:
  explicit Checkers(ValidationConfig cfg) : cfg_(std::move(cfg)) {}
  const ValidationConfig& config() const { return cfg_; }

  // The folders `compiler` searches for <...> (gcc -E -v), asked once and remembered.
  Result<std::vector<std::string>> include_dirs(const std::string& compiler, const std::string& language) {
    {
      std::lock_guard lock(mu_);
      if (auto it = include_dirs_.find(compiler); it != include_dirs_.end()) return it->second;
    }
    ProcessHandlerConfig p;
    p.kind = "validate";
    p.argv = {compiler, "-x", language, "-E", "-v", "/dev/null"};
    p.limits = cfg_.limits;
    SpawnOptions options;
    options.capture_stderr = true;
    options.inherit_env = false;
    auto child = Child::spawn(p, options);
    if (!child) return child.status();
    TaskContext bounded;
    bounded.hard_limit_ms = 30000;
    bounded.started = std::chrono::steady_clock::now();
    Exchange x = pump(**child, "", false, p, bounded);
    std::vector<std::string> dirs;
    bool listing = false;
    std::istringstream lines(x.err);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("#include <...> search starts here:", 0) == 0) listing = true;
      else if (line.rfind("End of search list.", 0) == 0) listing = false;
      else if (listing && line.size() > 1 && line[0] == ' ' && line[1] == '/') dirs.push_back(line.substr(1));
    }
    if (dirs.empty()) return Status(Code::kIo, "cannot read the system include folders of " + compiler);
    std::lock_guard lock(mu_);
    include_dirs_[compiler] = dirs;
    return dirs;
  }

  // A Landlock confinement to the system's folders, `extra` (read) and the scratch folder, or
  // none where the kernel has no Landlock (said once in the log).
  std::unique_ptr<Confinement> confinement(const std::string& program, const std::vector<std::string>& extra,
                                           const fs::path& scratch) {
    std::vector<fs::path> readable = {"/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin",
                                      "/etc/ld.so.cache", "/etc/ssl/openssl.cnf"};
    if (auto prefix = install_prefix(program)) readable.push_back(*prefix);
    for (const auto& d : extra) readable.emplace_back(d);
    auto c = Confinement::create(readable, {scratch, "/dev/null"});
    if (c) return std::move(c.value());
    std::call_once(landlock_note_, [&] {
      spdlog::info("validation checkers run without a Landlock confinement: {}; the include checks, the clean "
                   "environment and the diagnostics filter still apply", c.status().message());
    });
    return nullptr;
  }

 private:
  // The folder a program was installed under (/usr for /usr/bin/gcc, /opt/node for
  // /opt/node/bin/node), so a checker outside the system folders can still load its own files.
  static std::optional<fs::path> install_prefix(const std::string& program) {
    fs::path found = program;
    if (program.find('/') == std::string::npos) {
      const char* env_path = std::getenv("PATH");
      std::stringstream dirs(env_path && *env_path ? env_path : "/bin:/usr/bin");
      found.clear();
      for (std::string dir; std::getline(dirs, dir, ':');) {
        std::error_code ec;
        if (!dir.empty() && fs::exists(fs::path(dir) / program, ec)) {
          found = fs::path(dir) / program;
          break;
        }
      }
    }
    std::error_code ec;
    const fs::path real = fs::canonical(found, ec);
    if (ec || real.empty()) return std::nullopt;
    fs::path prefix = real.parent_path();
    if (prefix.filename() == "bin" && prefix.parent_path() != prefix.root_path()) prefix = prefix.parent_path();
    return prefix;
  }

  ValidationConfig cfg_;
  std::mutex mu_;  // guards include_dirs_
  std::map<std::string, std::vector<std::string>> include_dirs_;
  std::once_flag landlock_note_;
};

// The lines of a checker's output that begin with "<file>:" for one of the task's files (the
// names the checker was given), by file; nothing about any other file reaches the result.
std::map<std::string, std::string> lines_by_file(const std::string& output, const std::vector<std::string>& files) {
  std::map<std::string, std::string> out;
  std::istringstream in(output);
  for (std::string line; std::getline(in, line);)
    for (const auto& f : files)
      if (line.size() > f.size() && line.compare(0, f.size(), f) == 0 && line[f.size()] == ':') {
        out[f] += line + "\n";
        break;
      }
  return out;
}

// Runs a checker in the scratch folder; returns its exit code and stdout + stderr, or a failed
// result (cannot start, timed out, killed).
std::optional<std::pair<int, std::string>> run_checker(Checkers& checkers, std::vector<std::string> argv,
                                                        const std::vector<std::string>& readable, const ScratchDir& scratch,
                                                        const TaskContext& ctx, HandlerResult& error) {
  const ValidationConfig& cfg = checkers.config();
  ProcessHandlerConfig p;
  p.kind = "validate";
  p.argv = std::move(argv);
  p.cwd = scratch.path().string();
  p.stdout_limit = 4u << 20;
  p.stderr_limit = 1u << 20;
  p.limits = cfg.limits;
  TaskContext limited = ctx;
  if (!limited.hard_limit_ms || limited.hard_limit_ms > cfg.timeout_ms) limited.hard_limit_ms = cfg.timeout_ms;
  auto confinement = checkers.confinement(p.argv[0], readable, scratch.path());
  SpawnOptions options;
  options.capture_stderr = true;
  options.inherit_env = false;
  options.tmpdir = scratch.path().string();
  options.confinement = confinement.get();
  auto child = Child::spawn(p, options);
  if (!child) {
    error = HandlerResult::fail("ValidatorMissing: " + child.status().message());
    return std::nullopt;
  }
  Exchange x = pump(**child, "", false, p, limited);
  const int st = (*child)->wait_status();
  if (x.killed != Killed::kNone || !(*child)->exited() || !WIFEXITED(st)) {
    // The checker's own words may quote what it read: only the reason it stopped is told.
    Exchange reason = x;
    reason.err.clear();
    error = HandlerResult::fail(ended_error(**child, reason, limited, "ValidatorError"));
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

// The task's C/C++ files as the compiler sees them (name given → name shown): its sources and
// the workspace headers they include.
using CompiledFiles = std::vector<std::pair<std::string, std::string>>;

std::optional<std::string> check_one(Checkers& checkers, const std::string& language, const Source& src,
                                     const CompiledFiles& compiled, const ScratchDir& scratch, const TaskContext& ctx,
                                     json& diags, HandlerResult& error) {
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
  std::vector<std::string> argv, readable;
  if (language == "python") argv = {"/usr/bin/python3", "-I", "-c", kPythonCheck, src.tool, src.shown};
  else if (language == "yaml") argv = {"/usr/bin/python3", "-I", "-c", kYamlCheck, src.tool};
  else if (language == "javascript") argv = {"node", "--check", src.tool};
  else if (language == "shell") argv = {"bash", "-n", src.tool};
  else {
    const bool c = language == "c";
    const std::string compiler = c ? "gcc" : "g++";
    auto dirs = checkers.include_dirs(compiler, c ? "c" : "c++");
    if (!dirs) {
      error = HandlerResult::fail((dirs.status().message().rfind("cannot start", 0) == 0 ? "ValidatorMissing: "
                                                                                         : "ValidatorError: ") +
                                  dirs.status().message());
      return std::string();
    }
    readable = *dirs;
    argv = {compiler, "-fsyntax-only", "-fdiagnostics-plain-output", "-nostdinc"};
    for (const auto& d : *dirs) argv.insert(argv.end(), {"-isystem", d});
    argv.insert(argv.end(), {"-x", c ? "c" : "c++"});
    if (!c) argv.push_back("-std=c++20");
    argv.push_back(src.tool);
  }
  auto ran = run_checker(checkers, argv, readable, scratch, ctx, error);
  if (!ran) return std::string();  // error is set
  const auto& [code, output] = *ran;
  if (language == "python" || language == "yaml") return from_json_lines(output);
  if (language == "javascript") {
    // "path:LINE\n<source line>\n   ^\n\nSyntaxError: message" (node --check reads only the file)
    Diagnostic d = node_check_diagnostic(output);
    if (d.message.empty()) d.message = utf8_prefix(tail(output, 500), 600);
    if (code != 0) diags.push_back(diagnostic(src.shown, d));
    return std::nullopt;
  }
  const size_t before = diags.size();
  std::vector<std::string> names = {src.tool};
  for (const auto& [given, shown] : compiled)
    if (given != src.tool) names.push_back(given);
  for (const auto& [given, lines] : lines_by_file(output, names)) {
    std::string shown = src.shown;
    for (const auto& [g, s] : compiled)
      if (g == given) shown = s;
    for (const auto& d : compiler_diagnostics(lines)) diags.push_back(diagnostic(shown, d));
  }
  // The same words whether a file outside exists or not.
  for (size_t i = before; i < diags.size(); ++i) {
    const std::string message = diags[i]["message"];
    if (auto outside = unopened_outside(message))
      diags[i]["message"] = "'" + utf8_prefix(*outside, 200) + "' cannot be opened: it is outside the task";
  }
  if (code != 0 && diags.size() == before)
    diags.push_back(diagnostic(src.shown, 0, 0,
                               std::string(language == "shell" ? "bash" : "the compiler") + " exited with code " +
                                   std::to_string(code) + " without a diagnostic about the task's files"));
  return std::nullopt;
}

// Scans the C/C++ sources and the workspace headers they include with "..." (copied into the
// scratch folder, so the compiler reads what was checked); a failed result when one is refused.
std::optional<HandlerResult> check_includes(const ValidationConfig& cfg, bool from_workspace, ScratchDir& scratch,
                                            const std::vector<Source>& sources, std::set<std::string>& written,
                                            CompiledFiles& compiled) {
  std::deque<Source> todo(sources.begin(), sources.end());
  for (const auto& s : sources) compiled.emplace_back(s.tool, s.shown);
  size_t copied = 0;
  while (!todo.empty()) {
    const Source src = std::move(todo.front());
    todo.pop_front();
    const IncludeScan scan = scan_includes(src.text);
    if (!scan.refusal.empty())
      return HandlerResult::fail("IncludeRefused: " + src.shown + " line " + std::to_string(scan.refusal_line) + ": " +
                                 scan.refusal);
    if (!from_workspace) continue;
    for (const auto& inc : scan.quoted) {
      // gcc looks for "name" next to the file that includes it first; the copy must be there.
      const std::string rel = (fs::path(src.tool).parent_path() / inc.name).lexically_normal().string();
      if (written.count(rel)) continue;
      auto text = read_inside(cfg.workspace, rel, kMaxSourceBytes);
      if (!text) {
        const Code code = text.status().code();
        if (code == Code::kNotFound || code == Code::kUnprocessable) continue;  // then it is a system header
        if (code == Code::kBadRequest)
          return HandlerResult::fail("PathOutsideWorkspace: '" + rel + "' (included by " + src.shown + " line " +
                                     std::to_string(inc.line) + ") is not inside the workspace");
        return HandlerResult::fail("ValidatorError: " + text.status().message());
      }
      if (++copied > kMaxIncludedFiles)
        return HandlerResult::fail("TooManyIncludes: the task's sources include more than " +
                                   std::to_string(kMaxIncludedFiles) + " workspace headers");
      if (Status s = scratch.write(rel, *text); !s) return HandlerResult::fail("ValidatorError: " + s.message());
      written.insert(rel);
      compiled.emplace_back(rel, rel);
      todo.push_back({rel, rel, std::move(text.value())});
    }
  }
  return std::nullopt;
}

HandlerResult validate(Checkers& checkers, const TaskContext& ctx) {
  const ValidationConfig& cfg = checkers.config();
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

  auto scratch = ScratchDir::create("validate");
  if (!scratch) return HandlerResult::fail("ValidatorError: " + scratch.status().message());
  const bool in_process = language == "json" || language == "toml";
  std::vector<Source> sources;
  std::set<std::string> written;
  auto copy = [&](const Source& src) -> std::optional<HandlerResult> {
    if (in_process || written.count(src.tool)) return std::nullopt;
    if (Status s = (*scratch)->write(src.tool, src.text); !s) return HandlerResult::fail("ValidatorError: " + s.message());
    written.insert(src.tool);
    return std::nullopt;
  };
  const auto code = task->find("code");
  if (code != task->end()) {
    if (!code->is_string()) return HandlerResult::fail("BadTask: \"code\" must be a string");
    const std::string tool = "input" + kExtension.at(language);
    std::string shown = tool;
    if (auto f = task->find("filename"); f != task->end() && f->is_string()) shown = f->get<std::string>();
    sources.push_back({shown, tool, code->get<std::string>()});
    if (auto failed = copy(sources.back())) return *failed;
  } else if (auto files = task->find("files"); files != task->end()) {
    if (!files->is_array() || files->empty()) return HandlerResult::fail("BadTask: \"files\" must be a non-empty array of paths");
    for (const auto& f : *files) {
      if (!f.is_string()) return HandlerResult::fail("BadTask: \"files\" must hold strings");
      const std::string rel = f.get<std::string>();
      const fs::path normal = fs::path(rel).lexically_normal();
      if (rel.empty() || fs::path(rel).is_absolute() || normal.empty() || *normal.begin() == "..")
        return HandlerResult::fail("PathOutsideWorkspace: '" + rel + "' is not inside the workspace");
      auto text = read_inside(cfg.workspace, normal.string(), kMaxSourceBytes);
      if (!text) {
        switch (text.status().code()) {
          case Code::kBadRequest: return HandlerResult::fail("PathOutsideWorkspace: '" + rel + "' is not inside the workspace");
          case Code::kNotFound: return HandlerResult::fail("FileNotFound: '" + rel + "' in the workspace");
          case Code::kUnprocessable: return HandlerResult::fail("FileNotFound: '" + rel + "' is not a regular file in the workspace");
          case Code::kTooLarge: return HandlerResult::fail("FileTooLarge: " + text.status().message());
          default: return HandlerResult::fail("ValidatorError: " + text.status().message());
        }
      }
      sources.push_back({rel, normal.string(), std::move(text.value())});
      if (auto failed = copy(sources.back())) return *failed;
    }
  } else {
    return HandlerResult::fail("BadTask: validation tasks need \"code\" or \"files\"");
  }
  CompiledFiles compiled;
  if (language == "c" || language == "cpp")
    if (auto refused = check_includes(cfg, code == task->end(), **scratch, sources, written, compiled)) return *refused;
  json diags = json::array();
  for (const auto& src : sources) {
    HandlerResult error;
    auto failed = check_one(checkers, language, src, compiled, **scratch, ctx, diags, error);
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
  auto checkers = std::make_shared<Checkers>(std::move(config));
  return [checkers](const TaskContext& ctx) { return validate(*checkers, ctx); };
}

}  // namespace zb::worker
