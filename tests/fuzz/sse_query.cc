// GET /api/v1/events without the I/O: parse_stream_query on the values a request may carry,
// then sse_frame on one event. Input: four parameters (Last-Event-ID, after, group, queue),
// each a presence byte (0 = absent) and a string, then an event (tests/fuzz/events.h).
#include <algorithm>
#include <charconv>

#include "store/sse.h"
#include "tests/fuzz/events.h"

namespace {

// The reference reading of a sequence number: std::from_chars over the whole text.
std::optional<uint64_t> reference_seq(const std::string& text) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace zb;
  fuzz::Reader in(data, size);
  std::optional<std::string> values[4];
  for (auto& v : values)
    if (in.u8()) v = in.str();
  auto query = store::parse_stream_query(values[0], values[1], values[2], values[3]);

  const std::optional<std::string>& resume = values[0] && !values[0]->empty() ? values[0] : values[1];
  const bool resumes = resume && !resume->empty();
  const auto expected_seq = resumes ? reference_seq(*resume) : std::nullopt;
  const bool group_ok = !values[2] || Id::parse(*values[2]).has_value();
  if (!query) {
    FUZZ_CHECK(query.status().code() == Code::kBadRequest);
    FUZZ_CHECK((resumes && !expected_seq) || !group_ok);
  } else {
    FUZZ_CHECK(group_ok && (!resumes || expected_seq));
    FUZZ_CHECK(query->after == expected_seq);
    FUZZ_CHECK(query->queue == values[3].value_or(""));
  }

  uint64_t seq = 0;
  const proto::Event e = fuzz::read_event(in, seq).event;
  if (query) {
    const bool same_group = !query->group || e.group == *query->group;
    const bool same_queue = query->queue.empty() || e.queue == query->queue;
    FUZZ_CHECK(query->matches(e) == (same_group && same_queue));
  }
  const std::string frame = store::sse_frame(e);
  const std::string head = "id: " + std::to_string(e.seq) + "\nevent: " + std::string(proto::event_type_name(e.type)) + "\ndata: ";
  FUZZ_CHECK(frame.starts_with(head));
  FUZZ_CHECK(frame.ends_with("\n\n"));
  FUZZ_CHECK(std::count(frame.begin(), frame.end(), '\n') == 4);  // nothing can break a line
  FUZZ_CHECK(fuzz::is_utf8(frame));
  auto json = nlohmann::json::parse(frame.substr(head.size(), frame.size() - head.size() - 2), nullptr, false);
  FUZZ_CHECK(json.is_object());
  FUZZ_CHECK(json["seq"] == e.seq);
  FUZZ_CHECK(!json.contains("detail") || json["detail"].is_object());
  // The detail comes from the typed fields, whatever the strings hold.
  if (e.type == proto::EventType::kQueuePurged) FUZZ_CHECK(json["detail"]["purged"] == e.count);
  if (e.type == proto::EventType::kGroupUpdated && e.group_record.size() == 1)
    FUZZ_CHECK(json["detail"]["total"] == e.group_record.front().total);
  return 0;
}
