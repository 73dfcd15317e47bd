// The agent's workspace: a seed copy "a" and a working copy "b" in one ScratchDir; confined
// reads and writes; what changed, and the unified diff (worker/kinds/agent.h).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "worker/kinds/agent.h"
#include "worker/kinds/replies.h"

namespace zb::worker {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr size_t kMaxSeedEntries = 20000;
constexpr uint64_t kMaxCompareBytes = 64u << 20;

// The plain names of a relative path; empty (with `why`) when it is not one.
std::vector<std::string> plain_names(const std::string& relative, std::string& why) {
  std::vector<std::string> names;
  if (relative.empty()) {
    why = "an empty path";
    return {};
  }
  if (relative.front() == '/') {
    why = "'" + utf8_prefix(relative, 200) + "' is an absolute path; give a path relative to the workspace";
    return {};
  }
  if (relative.find('\0') != std::string::npos) {
    why = "a path with a NUL byte";
    return {};
  }
  std::stringstream parts(relative);
  for (std::string name; std::getline(parts, name, '/');) {
    if (name.empty() || name == ".") continue;
    if (name == "..") {
      why = "'" + utf8_prefix(relative, 200) + "' climbs out with '..'; paths stay inside the workspace";
      return {};
    }
    names.push_back(name);
  }
  if (names.empty()) why = "'" + utf8_prefix(relative, 200) + "' names the workspace itself, not a file";
  return names;
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : "/") + n;
  return out;
}

// What a tree holds, by relative path: "f" + contents' size and path for files, "l" + target
// for links, "d" for folders. Compared afterwards; nothing is followed.
struct Entry {
  char kind = 'f';
  uint64_t size = 0;
  std::string target;  // link target
};
std::map<std::string, Entry> entries_of(const fs::path& root) {
  std::map<std::string, Entry> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const fs::file_status st = it->symlink_status(ec);
    if (ec) break;
    const std::string rel = it->path().lexically_relative(root).generic_string();  // links not resolved
    Entry e;
    if (fs::is_symlink(st)) {
      e.kind = 'l';
      e.target = fs::read_symlink(it->path(), ec).string();
    } else if (fs::is_directory(st)) {
      e.kind = 'd';
    } else if (fs::is_regular_file(st)) {
      e.size = it->file_size(ec);
    } else {
      e.kind = 'o';
    }
    out[rel] = e;
  }
  return out;
}

bool same_contents(const fs::path& a, const fs::path& b) {
  std::ifstream fa(a, std::ios::binary), fb(b, std::ios::binary);
  if (!fa || !fb) return false;
  char ba[65536], bb[65536];
  for (;;) {
    fa.read(ba, sizeof ba);
    fb.read(bb, sizeof bb);
    if (fa.gcount() != fb.gcount() || std::memcmp(ba, bb, static_cast<size_t>(fa.gcount())) != 0) return false;
    if (!fa || !fb) return !fa && !fb;
  }
}

// Copies the folder `from` into `to` (which exists): folders, regular files, links as links.
Status copy_tree(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  if (!fs::is_directory(from, ec)) return Status(Code::kNotFound, "the agent seed folder " + from.string() + " is not a folder");
  size_t n = 0;
  for (auto it = fs::recursive_directory_iterator(from, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (++n > kMaxSeedEntries)
      return Status(Code::kTooLarge, "the agent seed folder holds more than " + std::to_string(kMaxSeedEntries) + " entries");
    const fs::path dest = to / it->path().lexically_relative(from);
    const fs::file_status st = it->symlink_status(ec);
    if (ec) break;
    if (fs::is_symlink(st)) fs::copy_symlink(it->path(), dest, ec);
    else if (fs::is_directory(st)) fs::create_directory(dest, ec);
    else if (fs::is_regular_file(st)) fs::copy_file(it->path(), dest, ec);
    if (ec) return Status(Code::kIo, "cannot copy the agent seed " + it->path().string() + ": " + ec.message());
  }
  if (ec) return Status(Code::kIo, "cannot read the agent seed folder " + from.string() + ": " + ec.message());
  return Status::ok();
}

}  // namespace

Status write_inside(const fs::path& root, const std::string& relative, std::string_view content) {
  std::string why;
  const std::vector<std::string> names = plain_names(relative, why);
  if (names.empty()) return Status(Code::kBadRequest, why);
  UniqueFd dir(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (dir.get() < 0) return Status(Code::kIo, "the workspace cannot be opened: " + std::string(std::strerror(errno)));
  for (size_t i = 0; i + 1 < names.size(); ++i) {
    if (::mkdirat(dir.get(), names[i].c_str(), 0755) != 0 && errno != EEXIST)
      return Status(Code::kIo, "cannot make the folder '" + names[i] + "': " + std::strerror(errno));
    UniqueFd sub(::openat(dir.get(), names[i].c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (sub.get() < 0) {
      const int e = errno;
      if (e == ELOOP || e == ENOTDIR)
        return Status(Code::kBadRequest, "'" + utf8_prefix(relative, 200) + "': '" + utf8_prefix(names[i], 200) +
                                             "' is a symbolic link or not a folder; writes do not follow links");
      return Status(Code::kIo, "cannot open the folder '" + names[i] + "': " + std::strerror(e));
    }
    dir = std::move(sub);
  }
  UniqueFd file(::openat(dir.get(), names.back().c_str(),
                         O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0644));
  if (file.get() < 0) {
    const int e = errno;
    if (e == ELOOP)
      return Status(Code::kBadRequest, "'" + utf8_prefix(relative, 200) + "' is a symbolic link; writes do not follow links");
    if (e == EISDIR) return Status(Code::kBadRequest, "'" + utf8_prefix(relative, 200) + "' is a folder");
    return Status(Code::kIo, "cannot write '" + utf8_prefix(relative, 200) + "': " + std::strerror(e));
  }
  struct stat st {};
  if (::fstat(file.get(), &st) != 0 || !S_ISREG(st.st_mode))
    return Status(Code::kBadRequest, "'" + utf8_prefix(relative, 200) + "' is not a regular file");
  size_t off = 0;
  while (off < content.size()) {
    const ssize_t n = ::write(file.get(), content.data() + off, content.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status(Code::kIo, "cannot write '" + utf8_prefix(relative, 200) + "': " + std::strerror(errno));
    off += static_cast<size_t>(n);
  }
  return Status::ok();
}

Result<std::unique_ptr<Workspace>> Workspace::create(const json& files, const std::string& seed_dir) {
  auto dir = ScratchDir::create("agent");
  if (!dir) return dir.status();
  std::unique_ptr<Workspace> ws(new Workspace());
  ws->dir_ = std::move(dir.value());
  ws->seed_ = ws->dir_->path() / "a";
  ws->work_ = ws->dir_->path() / "b";
  for (const auto& folder : {ws->seed_, ws->work_}) {
    if (::mkdir(folder.c_str(), 0700) != 0)
      return Status(Code::kIo, "cannot make the workspace: " + std::string(std::strerror(errno)));
    if (!seed_dir.empty())
      if (Status s = copy_tree(seed_dir, folder); !s) return s;
  }
  if (files.is_object()) {
    for (const auto& [name, content] : files.items()) {
      if (!content.is_string()) return Status(Code::kBadRequest, "files[\"" + utf8_prefix(name, 60) + "\"] must be a string");
      for (const auto& folder : {ws->seed_, ws->work_})
        if (Status s = write_inside(folder, name, content.get_ref<const std::string&>()); !s)
          return Status(s.code(), "files[\"" + utf8_prefix(name, 60) + "\"]: " + s.message());
    }
  }
  return ws;
}

Result<std::string> Workspace::list(const std::string& folder, size_t max_entries) const {
  std::string prefix;
  if (!folder.empty() && folder != "." && folder != "./") {
    std::string why;
    auto names = plain_names(folder, why);
    if (names.empty()) return Status(Code::kBadRequest, why);
    prefix = joined(names);
    auto opened = open_inside(work_, prefix, O_RDONLY | O_DIRECTORY);
    if (!opened) {
      if (opened.status().code() == Code::kBadRequest)
        return Status(Code::kBadRequest, "'" + utf8_prefix(folder, 200) + "' is outside the workspace");
      return Status(Code::kNotFound, "'" + utf8_prefix(folder, 200) + "' is not a folder of the workspace");
    }
  }
  std::string out;
  size_t shown = 0, more = 0;
  for (const auto& [path, e] : entries_of(work_)) {
    if (e.kind == 'd') continue;
    if (!prefix.empty() && path.rfind(prefix + "/", 0) != 0) continue;
    if (shown == max_entries) {
      ++more;
      continue;
    }
    ++shown;
    if (e.kind == 'l') out += path + " -> " + e.target + " (symbolic link)\n";
    else if (e.kind == 'o') out += path + " (not a regular file)\n";
    else out += path + "  " + std::to_string(e.size) + " bytes\n";
  }
  if (more) out += "... and " + std::to_string(more) + " more files\n";
  if (out.empty()) out = "(no files)\n";
  return utf8_prefix(out, out.size() * 3);
}

Result<std::string> Workspace::read(const std::string& path, size_t max_bytes) const {
  std::string why;
  auto names = plain_names(path, why);
  if (names.empty()) return Status(Code::kBadRequest, why);
  auto text = read_inside(work_, joined(names), max_bytes);
  if (text) return text;
  const std::string shown = "'" + utf8_prefix(path, 200) + "'";
  switch (text.status().code()) {
    case Code::kBadRequest: return Status(Code::kBadRequest, shown + " is outside the workspace (symbolic links are resolved)");
    case Code::kNotFound: return Status(Code::kNotFound, shown + " does not exist in the workspace");
    case Code::kUnprocessable: return Status(Code::kUnprocessable, shown + " is not a regular file");
    case Code::kTooLarge: return Status(Code::kTooLarge, shown + " is larger than " + std::to_string(max_bytes) + " bytes");
    default: return Status(text.status().code(), shown + ": cannot be read");
  }
}

Status Workspace::write(const std::string& path, std::string_view content) { return write_inside(work_, path, content); }

std::vector<std::string> Workspace::changed() const {
  const auto before = entries_of(seed_), after = entries_of(work_);
  std::vector<std::string> out;
  auto differs = [&](const std::string& path, const Entry& a, const Entry& b) {
    if (a.kind != b.kind) return true;
    if (a.kind == 'l') return a.target != b.target;
    if (a.kind != 'f') return false;
    if (a.size != b.size) return true;
    return a.size > kMaxCompareBytes || !same_contents(seed_ / path, work_ / path);
  };
  for (const auto& [path, b] : after) {
    auto a = before.find(path);
    if (b.kind == 'd' && (a == before.end() || a->second.kind == 'd')) continue;
    if (a == before.end() || differs(path, a->second, b)) out.push_back(path);
  }
  for (const auto& [path, a] : before)
    if (a.kind != 'd' && !after.count(path)) out.push_back(path);
  std::sort(out.begin(), out.end());
  return out;
}

Result<std::string> Workspace::diff(const TaskContext& ctx, size_t max_bytes) const {
  // GNU diff (Debian's diffutils, always installed), not a diff of our own: its output is the
  // format patch(1) and git apply take, with its handling of binary files, missing trailing
  // newlines and links (--no-dereference: a link's target is compared, never read through).
  ProcessHandlerConfig cfg;
  cfg.kind = "agent-diff";
  cfg.argv = {"diff", "-u", "-r", "-N", "--no-dereference", "a", "b"};
  cfg.cwd = dir_->path().string();
  cfg.stdout_limit = max_bytes;
  SpawnOptions options;
  options.capture_stderr = true;
  options.inherit_env = false;
  auto child = Child::spawn(cfg, options);
  if (!child) return Status(Code::kIo, "cannot run diff: " + child.status().message());
  TaskContext limited = ctx;
  limited.soft_limit_ms = 0;
  limited.hard_limit_ms = 60000;
  limited.started = std::chrono::steady_clock::now();
  Exchange x = pump(**child, "", false, cfg, limited);
  if (x.killed != Killed::kNone) return Status(Code::kIo, ended_error(**child, x, limited, "DiffError"));
  const int st = (*child)->wait_status();
  if (!x.overflow && (!WIFEXITED(st) || WEXITSTATUS(st) > 1))
    return Status(Code::kIo, "diff failed: " + tail(x.err, 500));
  // "--- a/x\t2026-12-02 10:00:00.000 +0000" → "--- a/x": the same diff for the same change.
  std::string out;
  std::istringstream lines(x.out);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("--- ", 0) == 0 || line.rfind("+++ ", 0) == 0)
      if (auto tab = line.find('\t'); tab != std::string::npos) line.resize(tab);
    out += line + "\n";
  }
  if (x.overflow) out += "…[diff truncated at " + std::to_string(max_bytes) + " bytes]\n";
  return utf8_prefix(out, out.size() * 3);
}

}  // namespace zb::worker
