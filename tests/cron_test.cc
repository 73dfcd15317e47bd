// Cron expressions, time zones from the system's tzdata, and next-slot computation
// (common/cron.h), with hostile expressions and TZif bytes.
#include <gtest/gtest.h>

#include <ctime>
#include <random>
#include <string>

#include "common/cron.h"

namespace zb::cron {
namespace {

// Unix seconds of a UTC civil time.
int64_t utc(int y, int mo, int d, int h, int mi) {
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  return static_cast<int64_t>(timegm(&tm));
}

Expression expr(const char* text) {
  auto e = parse(text);
  EXPECT_TRUE(e) << text << ": " << e.status().message();
  return e ? *e : Expression{};
}

Zone zone(const char* name) {
  auto z = Zone::load(name);
  EXPECT_TRUE(z) << name << ": " << z.status().message();
  return z ? *z : Zone::utc();
}

std::string refused(const char* text) {
  auto e = parse(text);
  EXPECT_FALSE(e) << text << " was accepted";
  return e ? std::string() : e.status().message();
}

TEST(CronParse, FieldsRangesStepsListsAndNames) {
  Expression e = expr("*/15 9-17 * jan,JUL mon-fri");
  EXPECT_EQ(e.minutes.count(), 4u);
  EXPECT_TRUE(e.minutes[0] && e.minutes[15] && e.minutes[30] && e.minutes[45]);
  EXPECT_EQ(e.hours.count(), 9u);
  EXPECT_TRUE(e.months[1] && e.months[7]);
  EXPECT_EQ(e.months.count(), 2u);
  EXPECT_EQ(e.weekdays.count(), 5u);
  EXPECT_FALSE(e.weekdays[0]);
  EXPECT_TRUE(e.any_day);
  EXPECT_FALSE(e.any_weekday);
  Expression sunday = expr("0 0 * * 7");
  EXPECT_TRUE(sunday.weekdays[0]);
  Expression stepped = expr("5/20 1-10/3 1,15 * *");
  EXPECT_TRUE(stepped.minutes[5] && stepped.minutes[25] && stepped.minutes[45]);
  EXPECT_EQ(stepped.minutes.count(), 3u);
  EXPECT_TRUE(stepped.hours[1] && stepped.hours[4] && stepped.hours[7] && stepped.hours[10]);
  EXPECT_EQ(stepped.hours.count(), 4u);
  EXPECT_FALSE(stepped.any_day);
  EXPECT_EQ(expr("@hourly").minutes.count(), 1u);
  EXPECT_EQ(expr("  @daily ").hours.count(), 1u);
  EXPECT_EQ(expr("@weekly").weekdays.count(), 1u);
}

TEST(CronParse, HostileExpressionsGetClearErrors) {
  EXPECT_NE(refused("*/0 * * * *").find("minute: step 0 must be 1..59"), std::string::npos);
  EXPECT_NE(refused("99 * * * *").find("minute: 99 is out of range 0..59"), std::string::npos);
  EXPECT_NE(refused("* 24 * * *").find("hour: 24 is out of range 0..23"), std::string::npos);
  EXPECT_NE(refused("* * 0 * *").find("day of month: 0 is out of range 1..31"), std::string::npos);
  EXPECT_NE(refused("* * * 13 *").find("month"), std::string::npos);
  EXPECT_NE(refused("* * * * 8").find("day of week"), std::string::npos);
  EXPECT_NE(refused("").find("needs 5 fields"), std::string::npos);
  EXPECT_NE(refused("* * * *").find("got 4"), std::string::npos);
  EXPECT_NE(refused("* * * * * *").find("got more"), std::string::npos);
  EXPECT_NE(refused("1,,2 * * * *").find("empty list item"), std::string::npos);
  EXPECT_NE(refused("5-1 * * * *").find("runs backwards"), std::string::npos);
  EXPECT_NE(refused("*/x * * * *").find("not a number"), std::string::npos);
  EXPECT_NE(refused("99999999999999999999 * * * *").find("out of range"), std::string::npos);
  EXPECT_NE(refused("a * * * *").find("not a value"), std::string::npos);
  EXPECT_NE(refused("* * * foo *").find("not a value"), std::string::npos);
  EXPECT_NE(refused("@every5m").find("unknown alias"), std::string::npos);
  EXPECT_NE(refused("- * * * *").find("a value is missing"), std::string::npos);
  EXPECT_NE(refused("*/ * * * *").find("not a number"), std::string::npos);
  // A huge list is refused by its length, not walked.
  std::string huge;
  for (int i = 0; i < 100000; ++i) huge += "1,";
  huge += "1 * * * *";
  EXPECT_NE(refused(huge.c_str()).find("at most 1024 bytes"), std::string::npos);
  // Control bytes in an error are not echoed raw.
  std::string ctl = "\x01\x02 * * * *";
  EXPECT_EQ(refused(ctl.c_str()).find('\x01'), std::string::npos);
  // Random bytes never crash the parser.
  std::mt19937 rng(7);
  const std::string alphabet = "0123456789*/,- abcdefjmnos@\t";
  for (int i = 0; i < 20000; ++i) {
    std::string s;
    const int n = static_cast<int>(rng() % 40);
    for (int j = 0; j < n; ++j) s.push_back(alphabet[rng() % alphabet.size()]);
    auto e = parse(s);
    if (e) {
      EXPECT_GE(next_slot(*e, Zone::utc(), 0), -1);
    }
  }
}

TEST(CronNext, UtcSlots) {
  const Zone z = Zone::utc();
  EXPECT_EQ(next_slot(expr("*/15 * * * *"), z, utc(2026, 3, 1, 10, 7)), utc(2026, 3, 1, 10, 15));
  // Strictly after: a slot exactly at `after` is not the next.
  EXPECT_EQ(next_slot(expr("*/15 * * * *"), z, utc(2026, 3, 1, 10, 15)), utc(2026, 3, 1, 10, 30));
  EXPECT_EQ(next_slot(expr("0 3 * * *"), z, utc(2026, 3, 1, 10, 0)), utc(2026, 3, 2, 3, 0));
  EXPECT_EQ(next_slot(expr("@monthly"), z, utc(2026, 12, 15, 0, 0)), utc(2027, 1, 1, 0, 0));
  // 2026-03-02 is a Monday.
  EXPECT_EQ(next_slot(expr("30 8 * * mon"), z, utc(2026, 3, 2, 9, 0)), utc(2026, 3, 9, 8, 30));
  // Both day fields restricted: either matches (the 13th, or a Friday).
  EXPECT_EQ(next_slot(expr("0 0 13 * fri"), z, utc(2026, 3, 1, 0, 0)), utc(2026, 3, 6, 0, 0));
  EXPECT_EQ(next_slot(expr("0 0 13 * fri"), z, utc(2026, 3, 10, 0, 0)), utc(2026, 3, 13, 0, 0));
  // Feb 29th: the next leap year.
  EXPECT_EQ(next_slot(expr("0 12 29 2 *"), z, utc(2026, 1, 1, 0, 0)), utc(2028, 2, 29, 12, 0));
  // Never: within 5 years, none.
  EXPECT_EQ(next_slot(expr("0 0 31 2 *"), z, utc(2026, 1, 1, 0, 0)), -1);
  EXPECT_EQ(next_slot(expr("0 0 30 2 *"), z, utc(2026, 1, 1, 0, 0)), -1);
}

TEST(CronNext, InATimeZone) {
  const Zone berlin = zone("Europe/Berlin");
  EXPECT_EQ(berlin.offset_at(utc(2026, 1, 15, 12, 0)), 3600);
  EXPECT_EQ(berlin.offset_at(utc(2026, 7, 15, 12, 0)), 7200);
  // 03:00 in Berlin is 02:00 UTC in winter, 01:00 UTC in summer.
  EXPECT_EQ(next_slot(expr("0 3 * * *"), berlin, utc(2026, 1, 15, 12, 0)), utc(2026, 1, 16, 2, 0));
  EXPECT_EQ(next_slot(expr("0 3 * * *"), berlin, utc(2026, 7, 15, 12, 0)), utc(2026, 7, 16, 1, 0));
  const Zone ny = zone("America/New_York");
  EXPECT_EQ(next_slot(expr("0 9 * * *"), ny, utc(2026, 1, 15, 20, 0)), utc(2026, 1, 16, 14, 0));
  const Zone kolkata = zone("Asia/Kolkata");  // +05:30
  EXPECT_EQ(next_slot(expr("0 0 * * *"), kolkata, utc(2026, 1, 15, 0, 0)), utc(2026, 1, 15, 18, 30));
}

// Europe/Berlin springs forward on 2026-03-29 at 02:00 local (01:00 UTC) to 03:00, and falls
// back on 2026-10-25 at 03:00 local (01:00 UTC) to 02:00.
TEST(CronNext, ASlotInTheSpringForwardGapFiresOnceAtTheEndOfTheGap) {
  const Zone berlin = zone("Europe/Berlin");
  const Expression e = expr("30 2 * * *");
  const int64_t first = next_slot(e, berlin, utc(2026, 3, 28, 12, 0));
  EXPECT_EQ(first, utc(2026, 3, 29, 1, 0));  // 03:00 local, the first instant after the gap
  EXPECT_EQ(next_slot(e, berlin, first), utc(2026, 3, 30, 0, 30));  // 02:30 CEST the next day
  // Every minute of the missing hour: all of them are the same instant, fired once.
  const Expression hourly = expr("* 2 * * *");
  const int64_t gap = next_slot(hourly, berlin, utc(2026, 3, 29, 0, 0));
  EXPECT_EQ(gap, utc(2026, 3, 29, 1, 0));
  EXPECT_EQ(next_slot(hourly, berlin, gap), utc(2026, 3, 30, 0, 0));
}

TEST(CronNext, ASlotInTheFallBackOverlapFiresOnce) {
  const Zone berlin = zone("Europe/Berlin");
  const Expression e = expr("30 2 * * *");
  const int64_t first = next_slot(e, berlin, utc(2026, 10, 24, 12, 0));
  EXPECT_EQ(first, utc(2026, 10, 25, 0, 30));  // 02:30 CEST, the first of the two 02:30s
  EXPECT_EQ(next_slot(e, berlin, first), utc(2026, 10, 26, 1, 30));  // not 02:30 CET the same day
  // Every 30 minutes through the night: 02:00 and 02:30 once each, then 03:00.
  const Expression half = expr("*/30 * * * *");
  std::vector<int64_t> slots;
  for (int64_t t = utc(2026, 10, 24, 23, 45); slots.size() < 6;) slots.push_back(t = next_slot(half, berlin, t));
  const std::vector<int64_t> want = {utc(2026, 10, 25, 0, 0),  utc(2026, 10, 25, 0, 30),  // 02:00, 02:30 CEST
                                     utc(2026, 10, 25, 2, 0),  utc(2026, 10, 25, 2, 30),  // 03:00, 03:30 CET
                                     utc(2026, 10, 25, 3, 0),  utc(2026, 10, 25, 3, 30)};
  EXPECT_EQ(slots, want);
}

TEST(CronZone, NamesAndFiles) {
  EXPECT_TRUE(Zone::load("UTC"));
  EXPECT_EQ(Zone::load("Etc/UTC")->offset_at(0), 0);
  for (const char* bad : {"../etc/passwd", "/etc/localtime", "Europe/../../etc/passwd", "", "a b"}) {
    auto z = Zone::load(bad);
    ASSERT_FALSE(z) << bad;
    EXPECT_EQ(z.status().code(), Code::kBadRequest) << bad;
  }
  auto missing = Zone::load("Mars/Olympus_Mons");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  EXPECT_NE(missing.status().message().find("not known to this system"), std::string::npos);
}

TEST(CronZone, HostileTzifBytesAreRefused) {
  EXPECT_FALSE(Zone::from_tzif("x", ""));
  EXPECT_FALSE(Zone::from_tzif("x", "TZif"));
  std::string header(44, '\0');
  header.replace(0, 4, "TZif");
  header[4] = '2';
  EXPECT_FALSE(Zone::from_tzif("x", header));  // no types
  // Counts that claim far more data than there is.
  std::string big = header;
  big[20 + 12] = '\x7f';  // timecnt
  EXPECT_FALSE(Zone::from_tzif("x", big));
  // A valid v1 file with one type and no transitions: a fixed offset.
  std::string fixed = header;
  fixed[4] = '\0';
  fixed[20 + 19] = 1;  // typecnt = 1
  fixed[20 + 23] = 4;  // charcnt = 4
  fixed += std::string("\x00\x00\x1c\x20\x00\x00", 6) + std::string("ABC\0", 4);  // +7200
  auto z = Zone::from_tzif("fixed", fixed);
  ASSERT_TRUE(z) << z.status().message();
  EXPECT_EQ(z->offset_at(0), 7200);
  // Random mutations of a real file never crash.
  auto real = Zone::load("Europe/Berlin");
  ASSERT_TRUE(real);
  FILE* f = std::fopen("/usr/share/zoneinfo/Europe/Berlin", "rb");
  ASSERT_NE(f, nullptr);
  std::string bytes(4096, '\0');
  bytes.resize(std::fread(bytes.data(), 1, bytes.size(), f));
  std::fclose(f);
  std::mt19937 rng(11);
  for (int i = 0; i < 2000; ++i) {
    std::string m = bytes;
    for (int j = 0; j < 4; ++j) m[rng() % m.size()] = static_cast<char>(rng());
    if (rng() % 4 == 0) m.resize(rng() % m.size());
    auto mz = Zone::from_tzif("m", m);
    if (mz) (void)next_slot(expr("0 3 * * *"), *mz, utc(2026, 1, 1, 0, 0));
  }
}

}  // namespace
}  // namespace zb::cron
