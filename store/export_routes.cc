// GET /api/v1/groups/{id}/export?format=jsonl|csv: every task of a group, streamed.
//
// A group may hold a million tasks: the answer is written page by page (kPageTasks tasks, one
// short LMDB read transaction each, keyset-paged by submission seq) as chunked transfer
// encoding, so the store holds one page whatever the group's size. It runs on a stream thread
// (the route table marks it streaming), at most kMaxExports at once. Each task is written as
// it was when its page was read; a group still running may show later tasks in newer states
// than earlier ones. An export cut short (the store stopped, LMDB failed) ends without the
// final chunk, so a client can tell a whole export from a truncated one.
#include <atomic>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "common/log.h"
#include "common/text.h"
#include "store/http_api.h"
#include "store/http_json.h"
#include "store/read_your_writes.h"

namespace zb::store {
namespace {

using nlohmann::json;

constexpr size_t kPageTasks = 1000;
constexpr size_t kMaxExports = 8;

enum class ExportFormat { kJsonLines, kCsv };

constexpr const char* kCsvHeader =
    "task_id,id,state,queue,kind,attempt,worker,created_ms,started_ms,finished_ms,runtime_us,result,error\r\n";

// One CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break. Text from
// callers and handlers (caller id, worker, error) that a spreadsheet would read as a formula
// (=, +, -, @, tab, CR first) is prefixed with a single quote (OWASP's CSV injection advice).
void csv_field(std::string& out, std::string_view text, bool untrusted) {
  const std::string valid = valid_utf8(text);
  std::string_view v = valid;
  const bool formula = untrusted && !v.empty() && std::string_view("=+-@\t\r").find(v.front()) != std::string_view::npos;
  const bool quote = formula || v.find_first_of(",\"\r\n") != std::string_view::npos;
  if (quote) out += '"';
  if (formula) out += '\'';
  for (char c : v) {
    if (c == '"') out += '"';
    out += c;
  }
  if (quote) out += '"';
}

void csv_row(std::string& out, const TaskStatus& t) {
  csv_field(out, t.id.to_string(), false);
  out += ',';
  csv_field(out, t.ref, true);
  out += ',';
  out += state_name(t.state);
  out += ',';
  csv_field(out, t.queue, false);
  out += ',';
  csv_field(out, t.kind, false);
  out += ',' + std::to_string(t.attempt) + ',';
  csv_field(out, t.worker, true);
  for (uint64_t v : {t.created_ms, t.started_ms, t.finished_ms, t.runtime_us}) out += ',' + std::to_string(v);
  out += ',';
  csv_field(out, t.result, false);  // JSON text: a string value starts with a quote
  out += ',';
  csv_field(out, t.error, true);
  out += "\r\n";
}

struct Export {
  Id group;
  ExportFormat format = ExportFormat::kJsonLines;
  uint64_t after_seq = 0;
  bool header_sent = false;
  size_t tasks = 0;
};

void refuse(httplib::Response& res, int status, const char* code, const std::string& message) {
  res.status = status;
  res.set_content(json_text(json{{"error", {{"code", code}, {"message", message}}}}), "application/json");
}

}  // namespace

void install_export_routes(HttpServer& server, const Api& api) {
  auto open_exports = std::make_shared<std::atomic<size_t>>(0);
  server.Get("/api/v1/groups/([^/]+)/export", [api, open_exports](const httplib::Request& req, httplib::Response& res) {
    for (const auto& [name, value] : req.params)
      if (name != "format") return refuse(res, 400, "bad_request", "unknown query parameter '" + valid_utf8(name.substr(0, 64)) + "' (export takes format)");
    auto ex = std::make_shared<Export>();
    const std::string format = req.has_param("format") ? req.get_param_value("format") : "jsonl";
    if (format == "csv") ex->format = ExportFormat::kCsv;
    else if (format != "jsonl")
      return refuse(res, 400, "bad_request", "format must be jsonl or csv, got '" + valid_utf8(format.substr(0, 64)) + "'");
    auto id = Id::parse(req.matches[1].str());
    if (!id) return send_error(res, Status(Code::kNotFound, "no group " + valid_utf8(req.matches[1].str().substr(0, 64))));
    ex->group = *id;
    auto group = read_group(api, *id);
    if (!group) return send_error(res, group.status());
    if (open_exports->fetch_add(1) >= kMaxExports) {
      open_exports->fetch_sub(1);
      return refuse(res, 503, "unavailable", "too many exports running; retry later");
    }
    const std::string gid = id->to_string();
    const bool csv = ex->format == ExportFormat::kCsv;
    res.set_header("Content-Disposition", "attachment; filename=\"group-" + gid + (csv ? ".csv\"" : ".jsonl\""));
    res.set_header("Cache-Control", "no-store");
    res.set_header("X-Group-Total", std::to_string(group->total));
    res.set_chunked_content_provider(
        csv ? "text/csv; charset=utf-8" : "application/x-ndjson",
        [api, ex](size_t, httplib::DataSink& sink) {
          if (!sink.is_writable()) return false;  // the client went away
          std::string out;
          if (!ex->header_sent && ex->format == ExportFormat::kCsv) out = kCsvHeader;
          ex->header_sent = true;
          auto page = api.db.group_tasks_after(ex->group, &ex->after_seq, kPageTasks);
          if (!page) {
            spdlog::error("store group export failed group={} after_seq={} reason=\"{}\"", ex->group.to_string(),
                          ex->after_seq, page.status().message());
            return false;  // no final chunk: the client sees a cut-short answer
          }
          for (const auto& t : *page) {
            if (ex->format == ExportFormat::kCsv) csv_row(out, t);
            else out += json_text(task_status_json(t, false)) + "\n";
          }
          ex->tasks += page->size();
          if (!out.empty() && !sink.write(out.data(), out.size())) return false;
          if (page->empty()) sink.done();
          return true;
        },
        [open_exports, ex](bool success) {
          open_exports->fetch_sub(1);
          spdlog::info("store group export ended group={} tasks={} complete={}", ex->group.to_string(), ex->tasks,
                       success);
        });
  });
}

}  // namespace zb::store
