// The coding agent's parts that do no network I/O (internal to worker/kinds/): the task's
// private workspace, the reading of the model's tool calls, and the clipping of what a
// transcript keeps. ollama.cc runs the loop around them (docs/kinds/agent.md).
//
// Confinement: every path a tool names is relative to the workspace. Absolute paths, ".."
// and empty names are refused before anything is opened; reads check where the opened file
// really is once symbolic links are resolved (open_inside); writes descend one name at a
// time through directory descriptors with O_NOFOLLOW, so no link, planted in the seed or
// made by a test run, can take a write out of the workspace. Refusals are Status values
// (kBadRequest) whose message names the path as the task gave it, never the folder's own.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "worker/process.h"
#include "worker/worker.h"

namespace zb::worker {

// `text` as valid UTF-8, at most about `max_bytes`; when cut, the kept part ends with
// "…[truncated: N more bytes]", so a reader of the transcript knows something is missing.
std::string clip(std::string_view text, size_t max_bytes);

// One entry of a reply's message.tool_calls, as Ollama sends it: {"function": {"name",
// "arguments": {...}}} (arguments may also be JSON text of an object, as OpenAI-style
// servers send them; an "id" is kept). An entry that cannot run gets `error`, in words the
// model is shown; the loop goes on.
struct ToolCall {
  std::string name;
  nlohmann::json arguments = nlohmann::json::object();
  std::string id;
  std::string error;
};
ToolCall read_tool_call(const nlohmann::json& entry, size_t max_argument_bytes);

// A task's workspace: a ScratchDir holding "a" (the seed, never touched by tools) and "b"
// (where the tools work), both made from seed_dir's copy and the task's files. Removed with
// everything in it when destroyed.
class Workspace {
 public:
  // `files`: a JSON object of relative name → content. `seed_dir`: a folder copied first
  // (folders, regular files and symbolic links as links; other kinds skipped); empty: none.
  static Result<std::unique_ptr<Workspace>> create(const nlohmann::json& files, const std::string& seed_dir);

  const std::filesystem::path& root() const { return work_; }
  // The files below `folder` ("" or "." = all), one per line: "path  N bytes" or
  // "path -> link"; at most max_entries lines, then a line saying how many more.
  Result<std::string> list(const std::string& folder, size_t max_entries) const;
  // A regular file's contents; kTooLarge past max_bytes, kNotFound when missing.
  Result<std::string> read(const std::string& path, size_t max_bytes) const;
  // Creates or replaces a regular file (and the folders on its way).
  Status write(const std::string& path, std::string_view content);
  // The paths (sorted, relative) whose content, kind or link target differ from the seed,
  // added and removed ones included.
  std::vector<std::string> changed() const;
  // `diff -u -r -N --no-dereference a b`, run in the workspace's folder, with the
  // timestamps taken out of its "---"/"+++" lines: "" when nothing changed.
  Result<std::string> diff(const TaskContext& ctx, size_t max_bytes) const;

 private:
  Workspace() = default;
  std::unique_ptr<ScratchDir> dir_;
  std::filesystem::path seed_, work_;
};

// Writes `content` to `relative` inside `root` as Workspace::write does (exposed for tests).
Status write_inside(const std::filesystem::path& root, const std::string& relative, std::string_view content);

}  // namespace zb::worker
