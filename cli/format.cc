#include "common/text.h"
#include "cli/format.h"

#include <algorithm>
#include <ctime>
#include <set>
#include <sstream>
#include <vector>

namespace zb::cli {
namespace {

using nlohmann::json;

// A field as text: strings as they are, null or missing as "", anything else as JSON.
std::string text(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return {};
  return j[key].is_string() ? j[key].get<std::string>() : json_text(j[key]);
}

bool has_number(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_number_integer() && j[key].get<int64_t>() >= 0;
}

uint64_t number(const json& j, const char* key, uint64_t fallback = 0) {
  return has_number(j, key) ? j[key].get<uint64_t>() : fallback;
}

const json& list(const json& j, const char* key) {
  static const json kEmpty = json::array();
  return j.is_object() && j.contains(key) && j[key].is_array() ? j[key] : kEmpty;
}

std::string utc(uint64_t unix_ms) {
  const std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// One task of an inspect list: id, queue, kind, attempt, and its ETA when it has one.
void task_line(std::ostream& out, const json& t) {
  out << "  " << text(t, "id");
  for (const char* key : {"queue", "kind"})
    if (std::string v = text(t, key); !v.empty()) out << " " << v;
  if (has_number(t, "attempt")) out << " attempt " << number(t, "attempt");
  if (number(t, "eta_ms") > 0) out << " eta " << utc(number(t, "eta_ms"));
  if (std::string w = text(t, "worker"); !w.empty()) out << " worker " << w;
  out << "\n";
}

// A table whose columns are as wide as their widest cell: nothing is cut.
void table(std::ostream& out, const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], row[i].size());
    }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    out << line << "\n";
  }
}

// inspect active | reserved | scheduled: per worker ({"workers":[{"name","tasks","total"?}]})
// or one list ({"tasks":[...],"total"?}).
void task_lists(std::ostream& out, const json& j) {
  if (j.is_object() && j.contains("workers") && j["workers"].is_array()) {
    size_t shown = 0;
    uint64_t sum = 0;
    for (const auto& w : j["workers"]) {
      const size_t n = list(w, "tasks").size();
      shown += n;
      sum += number(w, "total", n);
    }
    out << task_count(number(j, "total", sum), shown) << " on " << j["workers"].size() << " worker(s)\n";
    for (const auto& w : j["workers"]) {
      const auto& tasks = list(w, "tasks");
      out << text(w, "name") << ": " << task_count(number(w, "total", tasks.size()), tasks.size()) << "\n";
      for (const auto& t : tasks) task_line(out, t);
    }
    return;
  }
  const auto& tasks = list(j, "tasks");
  out << task_count(number(j, "total", tasks.size()), tasks.size()) << "\n";
  for (const auto& t : tasks) task_line(out, t);
}

}  // namespace

std::string task_count(uint64_t total, size_t shown) {
  std::string s = std::to_string(total) + " task(s)";
  if (total != shown) s += ", showing " + std::to_string(shown);
  return s;
}

std::string format_inspect(const std::string& what, const json& j) {
  std::ostringstream out;
  if (what == "queues") {
    std::vector<std::vector<std::string>> rows = {{"QUEUE", "PRIORITY", "DEPTH", "SCHEDULED", "RUNNING"}};
    for (const auto& q : list(j, "queues"))
      rows.push_back({text(q, "name"), text(q, "priority"), text(q, "depth"), text(q, "scheduled"), text(q, "running")});
    table(out, rows);
    // The model pools the queues run on, once each: every server's places and cool-down.
    std::set<std::string> shown;
    for (const auto& q : list(j, "queues")) {
      if (!q.contains("pool") || !q["pool"].is_string() || !shown.insert(q["pool"].get<std::string>()).second) continue;
      out << "pool " << text(q, "pool") << " (model " << text(q, "model") << "):\n";
      for (const auto& h : list(q, "hosts")) {
        out << "  " << text(h, "host") << "  " << text(h, "running") << "/" << text(h, "parallel") << " running";
        if (number(h, "cooling_ms") > 0) out << ", cooling down " << number(h, "cooling_ms") / 1000 << " s";
        out << "\n";
      }
    }
  } else if (what == "stats") {
    const json r = j.is_object() && j.contains("router") ? j["router"] : json::object();
    out << "router: uptime " << number(r, "uptime_ms") / 1000 << " s, submitted " << text(r, "submitted")
        << ", succeeded " << text(r, "succeeded") << ", failed " << text(r, "failed") << ", in flight "
        << text(r, "in_flight") << ", durability " << text(r, "durability") << "\n";
    for (const auto& w : list(j, "workers"))
      out << text(w, "name") << ": pid " << text(w, "pid") << ", concurrency " << text(w, "concurrency")
          << ", in flight " << text(w, "in_flight") << ", processed " << text(w, "processed") << ", failed "
          << text(w, "failed") << "\n";
  } else if (what == "registered") {
    for (const auto& w : list(j, "workers")) {
      out << text(w, "name") << ":";
      for (const auto& k : list(w, "kinds")) out << " " << (k.is_string() ? k.get<std::string>() : json_text(k));
      out << "\n";
    }
  } else if (what == "failed") {
    const auto& tasks = list(j, "tasks");
    out << "failed for good: " << task_count(number(j, "total", tasks.size()), tasks.size()) << "\n";
    for (const auto& t : tasks) {
      out << "  " << text(t, "id") << " " << text(t, "queue") << " " << text(t, "kind") << " attempts "
          << number(t, "attempt") << "\n";
      if (std::string e = text(t, "error"); !e.empty()) out << "    error: " << e << "\n";
    }
  } else {
    task_lists(out, j);
  }
  return out.str();
}

}  // namespace zb::cli
