#include "cli/config.h"


#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include <spdlog/spdlog.h>

#include "common/text.h"

namespace zb::cli {
namespace {

std::string normalise(std::string key) {
  for (char& c : key)
    if (c == '_') c = '-';
  return key;
}

// Typed reads of a TOML value. toml++'s own value<T>() is not used for numbers and booleans:
// it turns an integer into a bool (acks_late = 5 read as true) and casts a float to int64
// before checking the range (undefined for 1e90).
std::optional<bool> boolean(const toml::node& v) {
  if (auto b = v.as_boolean()) return b->get();
  return std::nullopt;
}

// An integer, or a float with an integral value within int64.
std::optional<int64_t> integer(const toml::node& v) {
  if (auto i = v.as_integer()) return i->get();
  if (auto f = v.as_floating_point()) {
    const double d = f->get();
    if (d >= -9.2e18 && d <= 9.2e18 && std::trunc(d) == d) return static_cast<int64_t>(d);
  }
  return std::nullopt;
}

// An integer or a float (possibly inf or nan: the callers check the range).
std::optional<double> number(const toml::node& v) {
  if (auto i = v.as_integer()) return static_cast<double>(i->get());
  if (auto f = v.as_floating_point()) return f->get();
  return std::nullopt;
}

// The TOML value as the text CLI11 would have read from the command line.
std::optional<std::string> as_text(const toml::node& node) {
  if (auto s = node.value<std::string>()) return *s;
  if (auto i = integer(node)) return std::to_string(*i);
  if (auto b = boolean(node)) return *b ? "true" : "false";
  if (auto f = number(node)) return std::to_string(*f);
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

Status bad(const std::string& path, const std::string& where, const std::string& what) {
  return Status(Code::kBadRequest, "config " + path + ": " + where + " " + what);
}

bool known(const std::string& table, const std::string& key) {
  const auto& keys = table_keys().at(table);
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

// "[[queue]] 'x' foo is not a known key (name, priority, ...)", the list from table_keys().
Status unknown_key(const std::string& path, const std::string& where, const std::string& table) {
  std::string list;
  for (const auto& k : table_keys().at(table)) list += (list.empty() ? "" : ", ") + k;
  return bad(path, where, "is not a known key (" + list + ")");
}

// Seconds (integer or float, >= 0) as milliseconds.
std::optional<uint32_t> seconds_ms(const toml::node& v) {
  auto s = number(v);
  if (!s || !(*s >= 0) || *s > 4'000'000) return std::nullopt;
  return static_cast<uint32_t>(*s * 1000.0 + 0.5);
}

std::optional<uint64_t> count(const toml::node& v, uint64_t max) {
  auto i = integer(v);
  if (!i || *i < 0 || static_cast<uint64_t>(*i) > max) return std::nullopt;
  return static_cast<uint64_t>(*i);
}

std::optional<std::vector<std::string>> strings(const toml::node& v) {
  auto arr = v.as_array();
  if (!arr) return std::nullopt;
  std::vector<std::string> out;
  for (const auto& item : *arr) {
    auto t = item.value<std::string>();
    if (!t) return std::nullopt;
    out.push_back(*t);
  }
  return out;
}

// The resource-limit keys of [[handler]], [validation], [[test_profile]] and [[mcp_server]]
// (ResourceLimits in worker/worker.h).
const std::vector<std::string>& limit_keys() {
  static const std::vector<std::string> kKeys = {"cpu_time", "address_space_mb", "file_size_mb", "processes",
                                                 "open_files"};
  return kKeys;
}

// Applies one resource-limit key; nullopt when `key` is not one.
std::optional<Status> parse_limit(const std::string& key, const toml::node& v, const std::string& path,
                                  const std::string& where, ResourceLimits& l) {
  if (key == "cpu_time") {
    auto n = count(v, 100000000);
    if (!n) return bad(path, where, "must be whole seconds of CPU time (an integer >= 0; 0 = no limit)");
    l.cpu_time_s = static_cast<uint32_t>(*n);
  } else if (key == "address_space_mb" || key == "file_size_mb") {
    auto n = count(v, 1u << 30);
    if (!n) return bad(path, where, "must be MiB (an integer >= 0; 0 = no limit)");
    (key == "file_size_mb" ? l.file_size_bytes : l.address_space_bytes) = *n << 20;
  } else if (key == "processes") {
    auto n = count(v, 1000000);
    if (!n) return bad(path, where, "must be an integer >= 0 (0 = no limit)");
    l.processes = static_cast<uint32_t>(*n);
  } else if (key == "open_files") {
    auto n = count(v, 1u << 20);
    if (!n || (*n && *n < 16)) return bad(path, where, "must be 0 (no limit) or 16..1048576");
    l.open_files = static_cast<uint32_t>(*n);
  } else {
    return std::nullopt;
  }
  return Status::ok();
}

// The rate as written, in tasks per second; rate() checks its range.
std::optional<double> rate_value(const toml::node& v) {
  if (auto n = number(v)) return *n >= 0 ? n : std::nullopt;
  auto text = v.value<std::string>();
  if (!text) return std::nullopt;
  auto slash = text->find('/');
  if (slash == std::string::npos || slash + 2 != text->size()) return std::nullopt;
  double n;
  try {
    size_t used = 0;
    n = std::stod(text->substr(0, slash), &used);
    if (used != slash || !(n >= 0)) return std::nullopt;
  } catch (const std::exception&) {
    return std::nullopt;
  }
  switch ((*text)[slash + 1]) {
    case 's': return n;
    case 'm': return n / 60.0;
    case 'h': return n / 3600.0;
    default: return std::nullopt;
  }
}

// A rate as tasks per second: a number, or "N/s", "N/m", "N/h" (Celery's notation). 0 is no
// limit; others lie between one a day and 1e9/s (the router's token bucket divides by it).
std::optional<double> rate(const toml::node& v) {
  auto r = rate_value(v);
  if (!r || *r == 0) return r;
  if (!std::isfinite(*r) || *r < 1.0 / 86400 || *r > 1e9) return std::nullopt;
  return r;
}

Status parse_queue(const toml::table& t, const std::string& path, QueueConfig& q) {
  for (const auto& [k, v] : t) {
    const std::string key(k.str());
    const std::string where = "[[queue]] " + (q.name.empty() ? std::string() : "'" + q.name + "' ") + key;
    auto need = [&](bool ok, const char* what) { return ok ? Status::ok() : bad(path, where, std::string("must be ") + what); };
    if (!known("queue", key)) return unknown_key(path, where, "queue");
    Status s = Status::ok();
    if (key == "name") {
      s = need(v.value<std::string>() && !v.value<std::string>()->empty(), "a non-empty string");
      if (s) q.name = *v.value<std::string>();
    } else if (key == "priority") {
      auto n = count(v, 255);
      s = need(n.has_value(), "an integer 0..255");
      if (s) q.priority = static_cast<uint8_t>(*n);
    } else if (key == "handler" || key == "default_kind") {
      s = need(v.value<std::string>() && !v.value<std::string>()->empty(), "a task kind (string)");
      if (s) q.default_kind = *v.value<std::string>();
    } else if (key == "max_retries") {
      auto n = count(v, 1000000);
      s = need(n.has_value(), "an integer 0..1000000");
      if (s) q.max_retries = static_cast<uint32_t>(*n);
    } else if (key == "retry_backoff" || key == "retry_backoff_max" || key == "soft_time_limit" || key == "time_limit") {
      auto ms = seconds_ms(v);
      s = need(ms.has_value(), "seconds (a number >= 0)");
      if (s) {
        if (key == "retry_backoff") q.retry_backoff_ms = *ms;
        else if (key == "retry_backoff_max") q.retry_backoff_max_ms = *ms;
        else if (key == "soft_time_limit") q.soft_time_limit_ms = *ms;
        else q.time_limit_ms = *ms;
      }
    } else if (key == "retry_jitter" || key == "acks_late") {
      s = need(boolean(v).has_value(), "true or false");
      if (s) (key == "acks_late" ? q.acks_late : q.retry_jitter) = *boolean(v);
    } else if (key == "retry_on") {
      auto list = strings(v);
      s = need(list.has_value(), "an array of error class names (\"*\" = any failure)");
      if (s) q.retry_on = *list;
    } else if (key == "fair") {
      s = need(boolean(v).has_value(), "true or false");
      if (s) q.fair = *boolean(v);
    } else if (key == "pool") {
      s = need(v.value<std::string>().has_value(), "a [[pool]] name (\"\" = none)");
      if (s) q.pool = *v.value<std::string>();
    } else if (key == "rate_limit") {
      auto r = rate(v);
      s = need(r.has_value(), "tasks per second: 0 (no limit) or from 1/86400 (one a day) to 1e9, as a number or "
                              "\"N/s\", \"N/m\", \"N/h\"");
      if (s) q.rate_limit = *r;
    } else {
      s = unknown_key(path, where, "queue");
    }
    if (!s) return s;
  }
  if (q.name.empty()) return bad(path, "[[queue]]", "needs a name");
  // What the router checks too, so that a file it would refuse is refused here already.
  if (Status s = check_queue_config(q); !s) return Status(s.code(), "config " + path + ": " + s.message());
  return Status::ok();
}

Status parse_schedule(const toml::table& t, const std::string& path, proto::ScheduleSpec& spec) {
  spec.task.payload = "{}";
  // The name first, so that every message names the schedule (the keys come sorted).
  if (auto n = t.get("name"); n && n->value<std::string>()) spec.name = *n->value<std::string>();
  for (const auto& [k, v] : t) {
    const std::string key(k.str());
    const std::string where = "[[schedule]] " + (spec.name.empty() ? std::string() : "'" + spec.name + "' ") + key;
    auto need = [&](bool ok, const char* what) { return ok ? Status::ok() : bad(path, where, std::string("must be ") + what); };
    if (!known("schedule", key)) return unknown_key(path, where, "schedule");
    Status s = Status::ok();
    auto text = v.value<std::string>();
    if (key == "name" || key == "cron" || key == "timezone" || key == "catch_up" || key == "overlap" || key == "queue" ||
        key == "kind" || key == "ref" || key == "unique_key") {
      s = need(text.has_value(), "a string");
      if (s) {
        if (key == "name") spec.name = *text;
        else if (key == "cron") spec.cron = *text;
        else if (key == "timezone") spec.timezone = *text;
        else if (key == "catch_up") spec.catch_up = *text;
        else if (key == "overlap") spec.overlap = *text;
        else if (key == "queue") spec.task.queue = *text;
        else if (key == "kind") spec.task.kind = *text;
        else if (key == "unique_key") spec.task.unique_key = *text;
        else spec.task.ref = *text;
      }
    } else if (key == "every") {
      auto n = number(v);
      s = need(n && *n >= 1 && *n <= 366.0 * 86400, "seconds, 1 .. 31622400 (366 days)");
      if (s) spec.every_ms = static_cast<uint64_t>(*n * 1000.0 + 0.5);
    } else if (key == "payload") {
      // JSON text, or a TOML table (written as JSON).
      if (text) {
        s = need(!nlohmann::json::parse(*text, nullptr, false).is_discarded(), "JSON text or a table");
        if (s) spec.task.payload = *text;
      } else if (auto tbl = v.as_table()) {
        std::ostringstream out;
        out << toml::json_formatter{*tbl};
        spec.task.payload = nlohmann::json::parse(out.str(), nullptr, false).dump();
      } else {
        s = need(false, "JSON text or a table");
      }
    } else if (key == "priority") {
      auto n = count(v, 255);
      s = need(n.has_value(), "an integer 0..255");
      if (s) spec.task.priority = static_cast<int32_t>(*n);
    } else if (key == "max_retries") {
      auto n = count(v, 1000000);
      s = need(n.has_value(), "an integer 0..1000000");
      if (s) spec.task.max_retries = static_cast<int32_t>(*n);
    } else if (key == "soft_time_limit" || key == "time_limit") {
      auto ms = seconds_ms(v);
      s = need(ms.has_value(), "seconds (a number >= 0)");
      if (s) (key == "time_limit" ? spec.task.hard_limit_ms : spec.task.soft_limit_ms) = *ms;
    } else {
      s = unknown_key(path, where, "schedule");
    }
    if (!s) return s;
  }
  if (spec.name.empty()) return bad(path, "[[schedule]]", "needs a name");
  if (Status s = proto::check_schedule_spec(spec); !s) return Status(s.code(), "config " + path + ": [[schedule]] " + s.message());
  return Status::ok();
}

Status apply_schedules(const toml::table& root, const std::string& path, std::vector<proto::ScheduleSpec>* schedules) {
  auto node = root.get("schedule");
  if (!node) return Status::ok();
  auto arr = node->as_array();
  if (!arr) return bad(path, "[[schedule]]", "must be an array of tables");
  std::set<std::string> names;
  for (const auto& item : *arr) {
    auto t = item.as_table();
    if (!t) return bad(path, "[[schedule]]", "must be an array of tables");
    proto::ScheduleSpec spec;
    if (Status s = parse_schedule(*t, path, spec); !s) return s;
    if (!names.insert(spec.name).second) return bad(path, "[[schedule]] '" + spec.name + "'", "is declared twice");
    if (schedules) schedules->push_back(std::move(spec));
  }
  return Status::ok();
}

bool mcp_url_valid(std::string_view url);

Status parse_pool(const toml::table& t, const std::string& path, PoolConfig& p) {
  if (auto n = t.get("name"); n && n->value<std::string>()) p.name = *n->value<std::string>();
  for (const auto& [k, v] : t) {
    const std::string key(k.str());
    const std::string where = "[[pool]] " + (p.name.empty() ? std::string() : "'" + p.name + "' ") + key;
    auto need = [&](bool ok, const char* what) { return ok ? Status::ok() : bad(path, where, std::string("must be ") + what); };
    if (!known("pool", key)) return unknown_key(path, where, "pool");
    Status s = Status::ok();
    if (key == "name" || key == "model") {
      s = need(v.value<std::string>() && !v.value<std::string>()->empty() && v.value<std::string>()->size() <= 255,
               "a non-empty string of at most 255 bytes");
      if (s) (key == "name" ? p.name : p.model) = *v.value<std::string>();
    } else if (key == "hosts") {
      auto list = strings(v);
      s = need(list && !list->empty() && list->size() <= 64,
               "an array of 1 to 64 Ollama addresses (\"host\", \"host:port\" or \"http://host:port\")");
      if (s)
        for (const auto& h : *list) {
          const std::string address = h.empty() || h.size() > 255 ? std::string() : ollama_address(h);
          if (!mcp_url_valid(address)) {
            s = need(false, "an array of Ollama addresses (\"host\", \"host:port\" or \"http://host:port\"), "
                            "each at most 255 bytes of visible ASCII");
            break;
          }
          p.hosts.push_back(address);
        }
    } else if (key == "parallel") {
      auto n = count(v, 1024);
      s = need(n && *n >= 1, "an integer 1..1024 (the server's OLLAMA_NUM_PARALLEL)");
      if (s) p.parallel = static_cast<uint32_t>(*n);
    }
    if (!s) return s;
  }
  if (p.name.empty()) return bad(path, "[[pool]]", "needs a name");
  return Status::ok();
}

// [[pool]] tables, checked as the router checks them; with `queues`, every queue's pool too.
Status apply_pools(const toml::table& root, const std::string& path, const std::vector<QueueConfig>* queues,
                   std::vector<PoolConfig>* pools) {
  std::vector<PoolConfig> found;
  if (auto node = root.get("pool")) {
    auto arr = node->as_array();
    if (!arr) return bad(path, "[[pool]]", "must be an array of tables");
    for (const auto& item : *arr) {
      auto t = item.as_table();
      if (!t) return bad(path, "[[pool]]", "must be an array of tables");
      if (Status s = parse_pool(*t, path, found.emplace_back()); !s) return s;
    }
  }
  if (Status s = check_pools(found, queues ? *queues : std::vector<QueueConfig>{}); !s)
    return Status(s.code(), "config " + path + ": [[pool]] " + s.message());
  if (pools) *pools = std::move(found);
  return Status::ok();
}

Status apply_queues(const toml::table& root, const std::string& path, std::vector<QueueConfig>* queues) {
  auto node = root.get("queue");
  if (!node) return Status::ok();
  auto arr = node->as_array();
  if (!arr) return bad(path, "[[queue]]", "must be an array of tables");
  for (const auto& item : *arr) {
    auto t = item.as_table();
    if (!t) return bad(path, "[[queue]]", "must be an array of tables");
    // A queue named like a seed queue starts from its seed settings.
    std::string name;
    if (auto n = t->get("name"); n && n->value<std::string>()) name = *n->value<std::string>();
    QueueConfig q;
    if (queues) {
      auto same = std::find_if(queues->begin(), queues->end(), [&](const QueueConfig& e) { return e.name == name; });
      if (same != queues->end()) q = *same;
    }
    if (Status s = parse_queue(*t, path, q); !s) return s;
    if (!queues) continue;
    auto same = std::find_if(queues->begin(), queues->end(), [&](const QueueConfig& e) { return e.name == q.name; });
    if (same != queues->end()) *same = q;
    else queues->push_back(q);
  }
  return Status::ok();
}

Status parse_handler(const toml::table& t, const std::string& path, ProcessHandlerConfig& h) {
  for (const auto& [k, v] : t) {
    const std::string key(k.str());
    const std::string where = "[[handler]] " + (h.kind.empty() ? std::string() : "'" + h.kind + "' ") + key;
    auto need = [&](bool ok, const char* what) { return ok ? Status::ok() : bad(path, where, std::string("must be ") + what); };
    if (!known("handler", key)) return unknown_key(path, where, "handler");
    Status s = Status::ok();
    if (key == "kind") {
      s = need(v.value<std::string>() && !v.value<std::string>()->empty(), "a non-empty string");
      if (s) h.kind = *v.value<std::string>();
    } else if (key == "type") {
      auto type = v.value<std::string>();
      s = need(type && (*type == "exec" || *type == "pool"), "\"exec\" or \"pool\"");
      if (s) h.mode = *type == "exec" ? ProcessHandlerConfig::Mode::kExec : ProcessHandlerConfig::Mode::kPool;
    } else if (key == "argv") {
      auto list = strings(v);
      s = need(list && !list->empty(), "a non-empty array of strings (no shell is involved)");
      if (s) h.argv = *list;
    } else if (key == "env") {
      auto table = v.as_table();
      s = need(table != nullptr, "a table of KEY = \"value\"");
      if (s)
        for (const auto& [ek, ev] : *table) {
          if (!ev.value<std::string>()) return bad(path, where, "values must be strings");
          h.env.push_back(std::string(ek.str()) + "=" + *ev.value<std::string>());
        }
    } else if (key == "cwd") {
      s = need(v.value<std::string>().has_value(), "a path");
      if (s) h.cwd = *v.value<std::string>();
    } else if (key == "stdout_limit" || key == "stderr_limit") {
      auto n = count(v, 256u << 20);
      s = need(n && *n > 0, "bytes, 1..268435456");
      if (s) (key == "stdout_limit" ? h.stdout_limit : h.stderr_limit) = *n;
    } else if (key == "term_grace") {
      auto ms = seconds_ms(v);
      s = need(ms.has_value(), "seconds (a number >= 0)");
      if (s) h.term_grace_ms = *ms;
    } else if (key == "max_tasks_per_child") {
      auto n = count(v, 100000000);
      s = need(n && *n > 0, "an integer >= 1");
      if (s) h.max_tasks_per_child = static_cast<uint32_t>(*n);
    } else if (key == "max_memory_mb") {
      auto n = count(v, 1u << 30);
      s = need(n.has_value(), "an integer >= 0 (0 = no ceiling)");
      if (s) h.max_memory_bytes = *n << 20;
    } else if (auto limit = parse_limit(key, v, path, where, h.limits)) {
      s = *limit;
    } else {
      s = unknown_key(path, where, "handler");
    }
    if (!s) return s;
  }
  if (h.kind.empty()) return bad(path, "[[handler]]", "needs a kind");
  if (h.argv.empty()) return bad(path, "[[handler]] '" + h.kind + "'", "needs argv");
  if (Status s = Worker::validate(h); !s) return bad(path, "[[handler]]", s.message());
  return Status::ok();
}

Status apply_handlers(const toml::table& root, const std::string& path, std::vector<ProcessHandlerConfig>* handlers) {
  auto node = root.get("handler");
  if (!node) return Status::ok();
  auto arr = node->as_array();
  if (!arr) return bad(path, "[[handler]]", "must be an array of tables");
  for (const auto& item : *arr) {
    auto t = item.as_table();
    if (!t) return bad(path, "[[handler]]", "must be an array of tables");
    ProcessHandlerConfig h;
    if (Status s = parse_handler(*t, path, h); !s) return s;
    if (handlers) handlers->push_back(std::move(h));
  }
  return Status::ok();
}

// A URL a worker can POST to: http:// or https://, a host, and only printable ASCII (the path
// goes into the request line as it is).
bool mcp_url_valid(std::string_view url) {
  size_t after = 0;
  if (url.starts_with("http://")) after = 7;
  else if (url.starts_with("https://")) after = 8;
  else return false;
  const std::string_view rest = url.substr(after), authority = rest.substr(0, rest.find('/'));
  if (authority.empty() || authority.front() == ':') return false;
  return std::all_of(url.begin(), url.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

Status apply_kinds(const toml::table& root, const std::string& path, SeedKindsConfig* kinds) {
  SeedKindsConfig scratch;
  SeedKindsConfig& k = kinds ? *kinds : scratch;
  auto text = [&](const toml::node& v, const std::string& where, std::string& out) {
    if (!v.value<std::string>()) return bad(path, where, "must be a string");
    out = *v.value<std::string>();
    return Status::ok();
  };
  auto ms = [&](const toml::node& v, const std::string& where, uint32_t& out) {
    auto m = seconds_ms(v);
    if (!m || *m == 0) return bad(path, where, "must be seconds (a number > 0)");
    out = *m;
    return Status::ok();
  };
  auto argv = [&](const toml::node& v, const std::string& where, std::vector<std::string>& out) {
    auto list = strings(v);
    if (!list || list->empty()) return bad(path, where, "must be a non-empty array of strings (no shell is involved)");
    out = *list;
    return Status::ok();
  };
  auto env = [&](const toml::node& v, const std::string& where, std::vector<std::string>& out) {
    auto t = v.as_table();
    if (!t) return bad(path, where, "must be a table of KEY = \"value\"");
    for (const auto& [ek, ev] : *t) {
      if (!ev.value<std::string>()) return bad(path, where, "values must be strings");
      out.push_back(std::string(ek.str()) + "=" + *ev.value<std::string>());
    }
    return Status::ok();
  };
  if (auto node = root.get("ollama")) {
    auto t = node->as_table();
    if (!t) return bad(path, "[ollama]", "must be a table");
    for (const auto& [key_, v] : *t) {
      const std::string key(key_.str()), where = "[ollama] " + key;
      Status s = Status::ok();
      if (!known("ollama", key)) return unknown_key(path, where, "ollama");
      if (key == "host") s = text(v, where, k.ollama.host);
      else if (key == "hosts") {
        auto list = strings(v);
        if (!list) s = bad(path, where, "must be an array of server addresses ([] = host alone)");
        else k.ollama.hosts = *list;
      } else if (key == "model") s = text(v, where, k.ollama.model);
      else if (key == "system") s = text(v, where, k.ollama.system);
      else if (key == "connect_timeout") s = ms(v, where, k.ollama.connect_timeout_ms);
      else if (key == "read_timeout") s = ms(v, where, k.ollama.read_timeout_ms);
      else if (key == "max_seconds") s = ms(v, where, k.ollama.max_time_ms);
      else if (key == "seed_dir") s = text(v, where, k.ollama.seed_dir);
      else if (key == "max_steps" || key == "max_tokens") {
        auto n = count(v, key == "max_steps" ? 100000 : 1ull << 40);
        if (!n || *n == 0) s = bad(path, where, "must be a whole number > 0");
        else if (key == "max_steps") k.ollama.max_steps = static_cast<uint32_t>(*n);
        else k.ollama.max_tokens = *n;
      } else s = unknown_key(path, where, "ollama");
      if (!s) return s;
    }
  }
  if (auto node = root.get("validation")) {
    auto t = node->as_table();
    if (!t) return bad(path, "[validation]", "must be a table");
    for (const auto& [key_, v] : *t) {
      const std::string key(key_.str()), where = "[validation] " + key;
      Status s = Status::ok();
      if (!known("validation", key)) return unknown_key(path, where, "validation");
      if (key == "workspace") s = text(v, where, k.validation.workspace);
      else if (key == "timeout") s = ms(v, where, k.validation.timeout_ms);
      else if (auto limit = parse_limit(key, v, path, where, k.validation.limits)) s = *limit;
      else s = unknown_key(path, where, "validation");
      if (!s) return s;
    }
  }
  if (auto node = root.get("test_profile")) {
    auto arr = node->as_array();
    if (!arr) return bad(path, "[[test_profile]]", "must be an array of tables");
    for (const auto& item : *arr) {
      auto t = item.as_table();
      if (!t) return bad(path, "[[test_profile]]", "must be an array of tables");
      TestProfile p;
      for (const auto& [key_, v] : *t) {
        const std::string key(key_.str()), where = "[[test_profile]] " + key;
        Status s = Status::ok();
        if (!known("test_profile", key)) return unknown_key(path, where, "test_profile");
        if (key == "name") s = text(v, where, p.name);
        else if (key == "argv") s = argv(v, where, p.argv);
        else if (key == "env") s = env(v, where, p.env);
        else if (key == "cwd") s = text(v, where, p.cwd);
        else if (key == "junit") s = text(v, where, p.junit);
        else if (key == "timeout") s = ms(v, where, p.timeout_ms);
        else if (key == "log_tail") {
          auto n = count(v, 64u << 20);
          s = n && *n > 0 ? Status::ok() : bad(path, where, "must be bytes, 1..67108864");
          if (s) p.log_tail = *n;
        } else if (auto limit = parse_limit(key, v, path, where, p.limits)) {
          s = *limit;
        } else {
          s = unknown_key(path, where, "test_profile");
        }
        if (!s) return s;
      }
      if (p.name.empty() || p.argv.empty()) return bad(path, "[[test_profile]]", "needs a name and argv");
      k.test_profiles.push_back(std::move(p));
    }
  }
  if (auto node = root.get("mcp_server")) {
    auto arr = node->as_array();
    if (!arr) return bad(path, "[[mcp_server]]", "must be an array of tables");
    for (const auto& item : *arr) {
      auto t = item.as_table();
      if (!t) return bad(path, "[[mcp_server]]", "must be an array of tables");
      McpServerConfig m;
      for (const auto& [key_, v] : *t) {
        const std::string key(key_.str()), where = "[[mcp_server]] " + key;
        Status s = Status::ok();
        if (!known("mcp_server", key)) return unknown_key(path, where, "mcp_server");
        if (key == "name") s = text(v, where, m.name);
        else if (key == "argv") s = argv(v, where, m.argv);
        else if (key == "url") s = text(v, where, m.url);
        else if (key == "env") s = env(v, where, m.env);
        else if (key == "cwd") s = text(v, where, m.cwd);
        else if (key == "connect_timeout") s = ms(v, where, m.connect_timeout_ms);
        else if (key == "call_timeout") s = ms(v, where, m.call_timeout_ms);
        else if (auto limit = parse_limit(key, v, path, where, m.limits)) s = *limit;
        else s = unknown_key(path, where, "mcp_server");
        if (!s) return s;
        if (key == "url" && !mcp_url_valid(m.url))
          return bad(path, where, "must be an http:// or https:// URL with a host and no spaces or control characters, got '" +
                                      m.url + "'");
      }
      if (m.name.empty() || (m.argv.empty() && m.url.empty()))
        return bad(path, "[[mcp_server]]", "needs a name, and argv (a server over stdio) or url (over HTTP)");
      if (!m.argv.empty() && !m.url.empty())
        return bad(path, "[[mcp_server]] '" + m.name + "'", "has argv and url: give one (a server over stdio, or over HTTP)");
      k.mcp_servers.push_back(std::move(m));
    }
  }
  return Status::ok();
}

// [log] level as spdlog's name, or nullopt when the file does not set it.
Result<std::optional<std::string>> log_level_of(const toml::table& root, const std::string& path) {
  auto node = root.get("log");
  if (!node) return std::optional<std::string>();
  auto t = node->as_table();
  if (!t) return bad(path, "[log]", "must be a table");
  for (const auto& [k, v] : *t)
    if (!known("log", std::string(k.str()))) return unknown_key(path, "[log]", "log");
  auto level = t->get("level");
  if (!level) return std::optional<std::string>();
  auto text = level->value<std::string>();
  if (!text) return bad(path, "[log] level", "must be a string");
  auto name = log_level_name(*text);
  if (!name) return Status(Code::kBadRequest, "config " + path + ": [log] level: " + name.status().message());
  return std::optional<std::string>(*name);
}

}  // namespace

Result<std::string> log_level_name(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  static const std::map<std::string, std::string> kNames = {
      {"trace", "trace"}, {"debug", "debug"},       {"info", "info"},         {"warn", "warn"},
      {"warning", "warn"}, {"error", "error"},      {"critical", "critical"}, {"fatal", "critical"},
      {"off", "off"}};
  auto it = kNames.find(text);
  if (it == kNames.end())
    return Status(Code::kBadRequest, "--log-level must be trace, debug, info, warn, error or off (or Celery's DEBUG, "
                                     "INFO, WARNING, ERROR, CRITICAL, FATAL, any case), got '" + text + "'");
  return it->second;
}

Result<std::optional<std::string>> config_log_level(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status(Code::kBadRequest, "config " + path + ": cannot be read (" + std::strerror(errno) + ")");
  std::ostringstream text;
  text << in.rdbuf();
  toml::table root;
  try {
    root = toml::parse(text.str(), path);
  } catch (const toml::parse_error& e) {
    return Status(Code::kBadRequest, "config " + path + ": " + std::string(e.description()) + " at line " +
                                         std::to_string(e.source().begin.line));
  }
  return log_level_of(root, path);
}

Status apply_log_level(const CLI::App& cmd, const std::string& path) {
  const CLI::App* app = cmd.get_parent() ? cmd.get_parent() : &cmd;
  const CLI::Option* flag = nullptr;
  try {
    flag = app->get_option("--log-level");
  } catch (const CLI::OptionNotFound&) {
  }
  if (flag && flag->count() > 0) {
    spdlog::info("log level={} from=\"{}\"", spdlog::level::to_string_view(spdlog::get_level()),
                 flag->get_envname().empty() || !std::getenv(flag->get_envname().c_str()) ? "--log-level" : flag->get_envname());
    return Status::ok();
  }
  auto level = config_log_level(path);
  if (!level) return level.status();
  const std::string name = level->value_or("info");
  spdlog::set_level(spdlog::level::from_str(name));
  spdlog::info("log level={} from=\"{}\"", name, level->has_value() ? path + " [log] level" : "default");
  return Status::ok();
}

Status apply_config_file(const std::string& path, const std::string& section, CLI::App& cmd,
                         std::vector<QueueConfig>* queues, std::vector<ProcessHandlerConfig>* handlers,
                         SeedKindsConfig* kinds, std::vector<proto::ScheduleSpec>* schedules,
                         std::vector<PoolConfig>* pools) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status(Code::kBadRequest, "config " + path + ": cannot be read (" + std::strerror(errno) + ")");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return Status(Code::kBadRequest, "config " + path + ": cannot be read");
  return apply_config_text(text.str(), path, section, cmd, queues, handlers, kinds, schedules, pools);
}

Status apply_config_text(std::string_view text, const std::string& path, const std::string& section, CLI::App& cmd,
                         std::vector<QueueConfig>* queues, std::vector<ProcessHandlerConfig>* handlers,
                         SeedKindsConfig* kinds, std::vector<proto::ScheduleSpec>* schedules,
                         std::vector<PoolConfig>* pools) {
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    return Status(Code::kBadRequest, "config " + path + ": " + std::string(e.description()) + " at line " +
                                         std::to_string(e.source().begin.line));
  }
  std::string sections;
  for (const auto& name : config_sections()) sections += (sections.empty() ? "" : ", ") + name;
  for (const auto& [k, v] : root) {
    const auto& all = config_sections();
    if (std::find(all.begin(), all.end(), std::string(k.str())) == all.end())
      return Status(Code::kBadRequest, "config " + path + ": unknown section [" + std::string(k.str()) + "] (" +
                                           sections + ")");
  }
  if (Status s = apply_queues(root, path, queues); !s) return s;
  if (Status s = apply_handlers(root, path, handlers); !s) return s;
  if (Status s = apply_kinds(root, path, kinds); !s) return s;
  if (auto level = log_level_of(root, path); !level) return level.status();
  if (Status s = apply_schedules(root, path, schedules); !s) return s;
  if (Status s = apply_pools(root, path, queues, pools); !s) return s;
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
    if (key == "help") return Status(Code::kBadRequest, "config " + path + ": unknown key [" + section + "] " + std::string(k.str()));
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

const std::vector<std::string>& config_sections() {
  static const std::vector<std::string> kSections = {"router",     "worker",       "store",     "up",
                                                     "queue",      "handler",      "ollama",    "validation",
                                                     "test_profile", "mcp_server", "log",       "schedule",
                                                     "pool"};
  return kSections;
}

const std::map<std::string, std::vector<std::string>>& table_keys() {
  auto with_limits = [](std::vector<std::string> keys) {
    keys.insert(keys.end(), limit_keys().begin(), limit_keys().end());
    return keys;
  };
  static const std::map<std::string, std::vector<std::string>> kKeys = {
      {"queue", {"name", "priority", "handler", "default_kind", "max_retries", "retry_backoff", "retry_backoff_max",
                 "retry_jitter", "retry_on", "soft_time_limit", "time_limit", "rate_limit", "acks_late", "fair", "pool"}},
      {"pool", {"name", "model", "hosts", "parallel"}},
      {"handler", with_limits({"kind", "type", "argv", "env", "cwd", "stdout_limit", "stderr_limit", "term_grace",
                               "max_tasks_per_child", "max_memory_mb"})},
      {"ollama", {"host", "hosts", "model", "system", "connect_timeout", "read_timeout", "max_steps", "max_tokens", "max_seconds",
                  "seed_dir"}},
      {"validation", with_limits({"workspace", "timeout"})},
      {"test_profile", with_limits({"name", "argv", "env", "cwd", "junit", "timeout", "log_tail"})},
      {"mcp_server", with_limits({"name", "argv", "url", "env", "cwd", "connect_timeout", "call_timeout"})},
      {"log", {"level"}},
      {"schedule", {"name", "cron", "timezone", "every", "catch_up", "overlap", "queue", "kind", "payload", "priority",
                    "max_retries", "soft_time_limit", "time_limit", "ref", "unique_key"}},
  };
  return kKeys;
}

namespace {

bool is_file_key(const CLI::Option* opt) {
  return !opt->get_lnames().empty() && opt->get_lnames()[0] != "help" && opt->get_lnames()[0] != "config";
}

std::string underscored(std::string name) {
  for (char& c : name)
    if (c == '-') c = '_';
  return name;
}

// An option's text as JSON: numbers for number options, booleans for flags.
nlohmann::json typed(const CLI::Option* opt, const std::string& text) {
  if (opt->get_expected_min() == 0) {  // a flag
    return text == "true" || text == "1" || text == "yes" || text == "on";
  }
  const std::string type = opt->get_type_name().substr(0, opt->get_type_name().find(':'));
  try {
    size_t used = 0;
    if (type == "UINT" && !text.empty() && text[0] != '-') {
      const unsigned long long v = std::stoull(text, &used);
      if (used == text.size()) return v;
    } else if (type == "INT") {
      const long long v = std::stoll(text, &used);
      if (used == text.size()) return v;
    } else if (type == "FLOAT") {
      const double v = std::stod(text, &used);
      if (used == text.size()) return v;
    }
  } catch (const std::exception&) {
  }
  return text;
}

}  // namespace

std::vector<std::string> section_keys(const CLI::App& cmd) {
  std::vector<std::string> keys;
  for (const CLI::Option* opt : cmd.get_options())
    if (is_file_key(opt))
      for (const auto& name : opt->get_lnames()) keys.push_back(underscored(name));
  return keys;
}

nlohmann::json section_values(const CLI::App& cmd) {
  nlohmann::json out = nlohmann::json::object();
  for (const CLI::Option* opt : cmd.get_options()) {
    if (!is_file_key(opt)) continue;
    std::string text;
    if (opt->count() > 0) {
      for (const auto& r : opt->results()) text += (text.empty() ? "" : ",") + r;
    } else {
      text = opt->get_default_str();
    }
    out[underscored(opt->get_lnames()[0])] = typed(opt, text);
  }
  return out;
}

void report_worker_endpoint(const CLI::App& worker) {
  const CLI::Option* opt = worker.get_option("--router");
  const char* env = std::getenv("ZBATCH_WORKER_ROUTER");
  std::string endpoint = opt->get_default_str(), from = "default";
  if (opt->count() > 0) {
    endpoint = opt->as<std::string>();
    from = env && endpoint == env ? "environment ZBATCH_WORKER_ROUTER" : "flag --router";
  } else if (const CLI::Option* cfg = worker.get_option("--config"); cfg->count() > 0) {
    // The file is read (and checked) again when the worker starts; here only its [worker] router.
    const std::string path = cfg->as<std::string>();
    try {
      const toml::table root = toml::parse_file(path);
      if (auto value = root["worker"]["router"].value<std::string>()) {
        endpoint = *value;
        from = "config " + path + " [worker] router";
      }
    } catch (const toml::parse_error&) {
    }
  }
  spdlog::info("worker router endpoint={} from=\"{}\"", endpoint, from);
  const char* clients = std::getenv("ZBATCH_ROUTER");
  if (from == "default" && clients && *clients)
    spdlog::warn("worker ignores ZBATCH_ROUTER={}: that is the clients' endpoint (the router's frontend); a worker "
                 "connects to the router's backend, from --router, ZBATCH_WORKER_ROUTER or [worker] router; "
                 "connecting to the default {}",
                 clients, endpoint);
}

Result<bool> parse_durability(const std::string& text) {
  if (text == "fsync") return true;
  if (text == "nosync") return false;
  return Status(Code::kBadRequest, "--durability must be fsync or nosync, got '" + text + "'");
}

}  // namespace zb::cli
