// Periodic schedules: 5-field cron expressions, time zones read from the system's tzdata
// (TZif files), and the next slot of a schedule after an instant.
//
// Cron: "minute hour day-of-month month day-of-week", each field `*`, a number, a range
// `a-b`, a step `*/n` or `a-b/n`, or a comma list of these; months and weekdays also by
// their English three-letter names (jan..dec, sun..sat; 7 is Sunday too). Aliases: @yearly
// (@annually), @monthly, @weekly, @daily (@midnight), @hourly. As in Vixie cron, when both
// day fields are restricted (neither is `*`), a day matches when either matches.
//
// A cron slot is a local wall time in the schedule's zone. Over daylight saving changes:
//   - a local time that does not exist (spring forward: 02:30 when clocks jump 02:00 → 03:00)
//     fires once, at the first instant after the gap (03:00 local);
//   - a local time that exists twice (fall back: 01:30 twice) fires once, at its first
//     occurrence.
#pragma once

#include <bitset>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace zb::cron {

struct Expression {
  std::bitset<60> minutes;
  std::bitset<24> hours;
  std::bitset<32> days;      // 1..31
  std::bitset<13> months;    // 1..12
  std::bitset<7> weekdays;   // 0 = Sunday
  bool any_day = true;       // the day-of-month field is `*`
  bool any_weekday = true;   // the day-of-week field is `*`
  std::string text;          // as written
};

// Parses an expression; kBadRequest naming the field and what is wrong otherwise.
Result<Expression> parse(std::string_view text);

// A time zone: UTC offsets over time, from a TZif file (RFC 8536), or UTC.
class Zone {
 public:
  // "UTC" (also "Etc/UTC", "Z", "GMT"), or an IANA name looked up under /usr/share/zoneinfo
  // (ZONEINFO overrides the folder). kBadRequest for a name that is not one (no "..", no
  // leading "/"), kNotFound for one the system has no file for.
  static Result<Zone> load(const std::string& name);
  // From a TZif file's bytes (tests and load()).
  static Result<Zone> from_tzif(const std::string& name, std::string_view bytes);
  static Zone utc();

  const std::string& name() const { return name_; }
  // The zone's offset from UTC (seconds east) at unix time t.
  int32_t offset_at(int64_t t) const;

 private:
  std::string name_ = "UTC";
  // Transition instants (unix seconds, ascending) and the offset in force from each one;
  // before the first: initial_offset_. Past the last transition, the last offset holds (the
  // system's "fat" TZif files list transitions up to 2037).
  std::vector<int64_t> at_;
  std::vector<int32_t> offset_;
  int32_t initial_offset_ = 0;
};

// The first slot of `expr` in `zone` strictly after unix time `after_s` (seconds), or -1 when
// none comes within 5 years (e.g. "0 0 31 2 *").
int64_t next_slot(const Expression& expr, const Zone& zone, int64_t after_s);

}  // namespace zb::cron
