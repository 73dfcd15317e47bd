#include "cli/config.h"

#include <toml++/toml.h>

#include <set>

namespace zb::cli {
namespace {

std::string normalise(std::string key) {
  for (char& c : key)
    if (c == '_') c = '-';
  return key;
}

// The TOML value as the text CLI11 would have read from the command line.
std::optional<std::string> as_text(const toml::node& node) {
  if (auto s = node.value<std::string>()) return *s;
  if (auto i = node.value<int64_t>()) return std::to_string(*i);
  if (auto b = node.value<bool>()) return *b ? "true" : "false";
  if (auto f = node.value<double>()) return std::to_string(*f);
  if (auto arr = node.as_array()) {
    std::string joined;
    for (const auto& item : *arr) {
      auto t = item.value<std::string>();
      if (!t) return std::nullopt;
      joined += (joined.empty() ? "" : ",") + *t;
    }
    return joined;
  }
  return std::nullopt;
}

Status apply_queues(const toml::table& root, const std::string& path, std::vector<QueueConfig>* queues) {
  auto node = root.get("queue");
  if (!node) return Status::ok();
  auto arr = node->as_array();
  if (!arr) return Status(Code::kBadRequest, "config " + path + ": [[queue]] must be an array of tables");
  for (const auto& item : *arr) {
    auto t = item.as_table();
    if (!t) return Status(Code::kBadRequest, "config " + path + ": [[queue]] must be an array of tables");
    QueueConfig q;
    for (const auto& [k, v] : *t) {
      std::string key(k.str());
      if (key == "name" && v.value<std::string>()) q.name = *v.value<std::string>();
      else if (key == "priority" && v.value<int64_t>() && *v.value<int64_t>() >= 0 && *v.value<int64_t>() <= 255)
        q.priority = static_cast<uint8_t>(*v.value<int64_t>());
      else if (key == "default_kind" && v.value<std::string>()) q.default_kind = *v.value<std::string>();
      else if (key == "max_retries" && v.value<int64_t>() && *v.value<int64_t>() >= 0)
        q.max_retries = static_cast<uint32_t>(*v.value<int64_t>());
      else
        return Status(Code::kBadRequest, "config " + path + ": [[queue]] " + key +
                                             (key == "name" || key == "priority" || key == "default_kind" || key == "max_retries"
                                                  ? " has a bad value (priority 0..255, max_retries >= 0)"
                                                  : " is not a known key (name, priority, default_kind, max_retries)"));
    }
    if (q.name.empty()) return Status(Code::kBadRequest, "config " + path + ": [[queue]] needs a name");
    if (!queues) continue;
    auto same = std::find_if(queues->begin(), queues->end(), [&](const QueueConfig& e) { return e.name == q.name; });
    if (same != queues->end()) *same = q;
    else queues->push_back(q);
  }
  return Status::ok();
}

}  // namespace

Status apply_config_file(const std::string& path, const std::string& section, CLI::App& cmd,
                         std::vector<QueueConfig>* queues) {
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return Status(Code::kBadRequest, "config " + path + ": " + std::string(e.description()) + " at line " +
                                         std::to_string(e.source().begin.line));
  }
  static const std::set<std::string> kSections = {"router", "worker", "store", "up", "queue"};
  for (const auto& [k, v] : root)
    if (!kSections.count(std::string(k.str())))
      return Status(Code::kBadRequest, "config " + path + ": unknown section [" + std::string(k.str()) +
                                           "] (router, worker, store, up, queue)");
  if (Status s = apply_queues(root, path, queues); !s) return s;
  auto node = root.get(section);
  if (!node) return Status::ok();
  auto table = node->as_table();
  if (!table) return Status(Code::kBadRequest, "config " + path + ": [" + section + "] must be a table");
  for (const auto& [k, v] : *table) {
    const std::string key = normalise(std::string(k.str()));
    CLI::Option* opt = nullptr;
    try {
      opt = cmd.get_option("--" + key);
    } catch (const CLI::OptionNotFound&) {
      return Status(Code::kBadRequest, "config " + path + ": unknown key [" + section + "] " + std::string(k.str()));
    }
    if (key == "config") return Status(Code::kBadRequest, "config " + path + ": [" + section + "] config cannot nest");
    auto text = as_text(v);
    if (!text) return Status(Code::kBadRequest, "config " + path + ": [" + section + "] " + std::string(k.str()) + " has an unsupported type");
    if (opt->count() > 0) continue;  // a flag or an environment variable wins
    try {
      opt->clear();
      opt->add_result(*text);
      opt->run_callback();
    } catch (const CLI::Error& e) {
      return Status(Code::kBadRequest, "config " + path + ": [" + section + "] " + std::string(k.str()) + ": " + e.what());
    }
  }
  return Status::ok();
}

Result<bool> parse_durability(const std::string& text) {
  if (text == "fsync") return true;
  if (text == "nosync") return false;
  return Status(Code::kBadRequest, "--durability must be fsync or nosync, got '" + text + "'");
}

}  // namespace zb::cli
