#include "common/cron.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <climits>
#include <cstdlib>
#include <fstream>
#include <iterator>

namespace zb::cron {
namespace {

constexpr size_t kMaxExpressionBytes = 1024;
constexpr size_t kMaxTzifBytes = 1 << 20;
constexpr uint32_t kMaxTransitions = 1 << 16;

Status bad(const std::string& what) { return Status(Code::kBadRequest, "cron: " + what); }

std::string clip(std::string_view s) {
  std::string out(s.substr(0, 32));
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  return s.size() > 32 ? out + "..." : out;
}

struct Field {
  const char* name;
  int lo, hi;
  const char* const* names;  // lower-case, index = value - names_base
  int names_count, names_base;
};

constexpr const char* kMonthNames[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                       "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr const char* kDayNames[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

constexpr Field kFields[5] = {
    {"minute", 0, 59, nullptr, 0, 0},
    {"hour", 0, 23, nullptr, 0, 0},
    {"day of month", 1, 31, nullptr, 0, 0},
    {"month", 1, 12, kMonthNames, 12, 1},
    {"day of week", 0, 7, kDayNames, 7, 0},  // 7 is Sunday too
};

// A number or (for month and weekday) a name.
Result<int> value(const Field& f, std::string_view s) {
  if (s.empty()) return bad(std::string(f.name) + ": a value is missing");
  if (std::isdigit(static_cast<unsigned char>(s[0]))) {
    if (s.size() > 4) return bad(std::string(f.name) + ": '" + clip(s) + "' is out of range");
    int v = 0;
    for (char c : s) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return bad(std::string(f.name) + ": '" + clip(s) + "' is not a number");
      v = v * 10 + (c - '0');
    }
    if (v < f.lo || v > f.hi)
      return bad(std::string(f.name) + ": " + std::to_string(v) + " is out of range " + std::to_string(f.lo) + ".." +
                 std::to_string(f.hi));
    return v;
  }
  if (f.names && s.size() == 3) {
    std::string lower(s);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (int i = 0; i < f.names_count; ++i)
      if (lower == f.names[i]) return i + f.names_base;
  }
  return bad(std::string(f.name) + ": '" + clip(s) + "' is not a value");
}

// One field into `bits` (size hi+1); whether it was `*` alone.
Result<bool> field(const Field& f, std::string_view text, std::vector<bool>& bits) {
  bits.assign(static_cast<size_t>(f.hi) + 1, false);
  if (text.empty()) return bad(std::string(f.name) + ": empty");
  const bool star = text == "*";
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view item = text.substr(start, comma - start);
    if (item.empty()) return bad(std::string(f.name) + ": an empty list item in '" + clip(text) + "'");
    int step = 1;
    if (size_t slash = item.find('/'); slash != std::string_view::npos) {
      std::string_view st = item.substr(slash + 1);
      item = item.substr(0, slash);
      if (st.empty() || st.size() > 4 || !std::all_of(st.begin(), st.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
        return bad(std::string(f.name) + ": step '" + clip(st) + "' is not a number");
      step = std::atoi(std::string(st).c_str());
      if (step < 1 || step > f.hi) return bad(std::string(f.name) + ": step " + std::to_string(step) + " must be 1.." + std::to_string(f.hi));
    }
    int lo = f.lo, hi = f.hi;
    if (item != "*") {
      size_t dash = item.find('-');
      auto a = value(f, item.substr(0, dash));
      if (!a) return a.status();
      lo = hi = *a;
      if (dash != std::string_view::npos) {
        auto b = value(f, item.substr(dash + 1));
        if (!b) return b.status();
        hi = *b;
        if (hi < lo) return bad(std::string(f.name) + ": range " + clip(item) + " runs backwards");
      } else if (step > 1) {
        hi = f.hi;  // "5/15": from 5 on, as cronie reads it
      }
    }
    for (int v = lo; v <= hi; v += step) bits[static_cast<size_t>(v)] = true;
    start = comma + 1;
  }
  return star;
}

// The civil date of a day since 1970-01-01 (H. Hinnant's algorithm).
void civil_from_days(int64_t z, int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
}

int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

uint32_t be32(const unsigned char* p) { return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3]; }
int64_t be64(const unsigned char* p) { return static_cast<int64_t>(uint64_t{be32(p)} << 32 | be32(p + 4)); }

bool zone_name_ok(const std::string& name) {
  if (name.empty() || name.size() > 128 || name[0] == '/' || name.find("..") != std::string::npos) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '_' || c == '-' || c == '+';
  });
}

}  // namespace

Result<Expression> parse(std::string_view text) {
  if (text.size() > kMaxExpressionBytes)
    return bad("an expression is at most " + std::to_string(kMaxExpressionBytes) + " bytes");
  Expression e;
  e.text = std::string(text);
  std::string_view t = text;
  while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
  while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
  static const std::array<std::pair<std::string_view, std::string_view>, 7> kAliases = {{
      {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"}, {"@weekly", "0 0 * * 0"},
      {"@daily", "0 0 * * *"}, {"@midnight", "0 0 * * *"}, {"@hourly", "0 * * * *"}}};
  if (!t.empty() && t[0] == '@') {
    auto it = std::find_if(kAliases.begin(), kAliases.end(), [&](const auto& a) { return a.first == t; });
    if (it == kAliases.end()) return bad("unknown alias '" + clip(t) + "' (@yearly, @monthly, @weekly, @daily, @hourly)");
    t = it->second;
  }
  std::vector<std::string_view> parts;
  size_t i = 0;
  while (i < t.size()) {
    while (i < t.size() && (t[i] == ' ' || t[i] == '\t')) ++i;
    size_t j = i;
    while (j < t.size() && t[j] != ' ' && t[j] != '\t') ++j;
    if (j > i) parts.push_back(t.substr(i, j - i));
    if (parts.size() > 5) break;
    i = j;
  }
  if (parts.size() != 5)
    return bad("'" + clip(text) + "' needs 5 fields (minute hour day-of-month month day-of-week), got " +
               (parts.size() > 5 ? std::string("more") : std::to_string(parts.size())));
  std::vector<bool> bits;
  for (int f = 0; f < 5; ++f) {
    auto star = field(kFields[f], parts[static_cast<size_t>(f)], bits);
    if (!star) return star.status();
    for (size_t v = 0; v < bits.size(); ++v) {
      if (!bits[v]) continue;
      switch (f) {
        case 0: e.minutes.set(v); break;
        case 1: e.hours.set(v); break;
        case 2: e.days.set(v); break;
        case 3: e.months.set(v); break;
        case 4: e.weekdays.set(v % 7); break;
      }
    }
    if (f == 2) e.any_day = *star;
    if (f == 4) e.any_weekday = *star;
  }
  return e;
}

Zone Zone::utc() { return Zone(); }

Result<Zone> Zone::load(const std::string& name) {
  if (name == "UTC" || name == "Etc/UTC" || name == "Z" || name == "GMT" || name == "Etc/GMT") {
    Zone z;
    z.name_ = name;
    return z;
  }
  if (!zone_name_ok(name)) return Status(Code::kBadRequest, "time zone '" + clip(name) + "' is not a zone name");
  const char* dir = std::getenv("ZONEINFO");
  const std::string path = std::string(dir && *dir ? dir : "/usr/share/zoneinfo") + "/" + name;
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status(Code::kNotFound, "time zone '" + name + "' is not known to this system (no " + path + ")");
  std::string bytes;
  bytes.resize(kMaxTzifBytes + 1);
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  bytes.resize(static_cast<size_t>(in.gcount()));
  if (bytes.size() > kMaxTzifBytes) return Status(Code::kBadRequest, "time zone file " + path + " is too large");
  return from_tzif(name, bytes);
}

Result<Zone> Zone::from_tzif(const std::string& name, std::string_view bytes) {
  auto corrupt = [&](const char* what) {
    return Status(Code::kBadRequest, "time zone '" + clip(name) + "': not a TZif file (" + what + ")");
  };
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t n = bytes.size();
  // Reads a header at `at`; the counts; the size of the data block for 4- or 8-byte times.
  struct Header {
    uint32_t isut, isstd, leap, time, type, chars;
  };
  auto header = [&](size_t at, Header& h) {
    if (at + 44 > n || std::string_view(bytes.data() + at, 4) != "TZif") return false;
    const unsigned char* c = p + at + 20;
    h = {be32(c), be32(c + 4), be32(c + 8), be32(c + 12), be32(c + 16), be32(c + 20)};
    return h.time <= kMaxTransitions && h.type >= 1 && h.type <= 256 && h.chars <= 65536 && h.leap <= 65536 &&
           h.isut <= 256 && h.isstd <= 256;
  };
  auto block = [](const Header& h, size_t tsize) {
    return h.time * tsize + h.time + h.type * 6 + h.chars + h.leap * (tsize + 4) + h.isstd + h.isut;
  };
  Header h;
  if (!header(0, h)) return corrupt("bad header");
  size_t tsize = 4, at = 44;
  if (bytes[4] >= '2') {
    const size_t second = 44 + block(h, 4);
    if (!header(second, h)) return corrupt("bad second header");
    tsize = 8;
    at = second + 44;
  }
  if (at + block(h, tsize) > n) return corrupt("truncated");
  Zone z;
  z.name_ = name;
  const unsigned char* times = p + at;
  const unsigned char* idx = times + h.time * tsize;
  const unsigned char* types = idx + h.time;
  std::vector<int32_t> type_offset(h.type);
  for (uint32_t i = 0; i < h.type; ++i) {
    const int32_t off = static_cast<int32_t>(be32(types + i * 6));
    if (off < -25 * 3600 || off > 26 * 3600) return corrupt("offset out of range");
    type_offset[i] = off;
  }
  z.initial_offset_ = type_offset[0];
  z.at_.reserve(h.time);
  z.offset_.reserve(h.time);
  for (uint32_t i = 0; i < h.time; ++i) {
    const int64_t t = tsize == 8 ? be64(times + i * 8) : static_cast<int32_t>(be32(times + i * 4));
    if (idx[i] >= h.type) return corrupt("type index out of range");
    if (!z.at_.empty() && t <= z.at_.back()) return corrupt("transitions out of order");
    z.at_.push_back(t);
    z.offset_.push_back(type_offset[idx[i]]);
  }
  return z;
}

int32_t Zone::offset_at(int64_t t) const {
  auto it = std::upper_bound(at_.begin(), at_.end(), t);
  if (it == at_.begin()) return initial_offset_;
  return offset_[static_cast<size_t>(std::distance(at_.begin(), it) - 1)];
}

namespace {

// The instant a local wall time (seconds, as if UTC) fires: its first occurrence; inside a
// gap, the end of the gap.
int64_t instant_of(const Zone& zone, int64_t local) {
  const int32_t around[3] = {zone.offset_at(local - 86400), zone.offset_at(local), zone.offset_at(local + 86400)};
  int64_t best = INT64_MAX;
  int32_t max_off = INT32_MIN;
  for (int32_t o : around) {
    max_off = std::max(max_off, o);
    const int64_t t = local - o;
    if (zone.offset_at(t) == o) best = std::min(best, t);
  }
  if (best != INT64_MAX) return best;
  // A gap: the clock jumped over this wall time; the first instant after the jump is the
  // first second whose offset differs from the one before the gap.
  int64_t lo = local - max_off, hi = local - std::min({around[0], around[1], around[2]});
  const int32_t before = zone.offset_at(lo);
  while (lo + 1 < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (zone.offset_at(mid) == before) lo = mid;
    else hi = mid;
  }
  return hi;
}

}  // namespace

int64_t next_slot(const Expression& expr, const Zone& zone, int64_t after_s) {
  // Start a few hours before the local time of `after_s`: over a fall-back, wall times that
  // read earlier may still come later.
  const int64_t start_local = floor_div(after_s + zone.offset_at(after_s) - 4 * 3600, 60) * 60;
  int64_t day = floor_div(start_local, 86400);
  const int64_t start_minute = (start_local - day * 86400) / 60;
  for (int d = 0; d < 5 * 366 + 2; ++d, ++day) {
    int64_t y;
    unsigned m, dd;
    civil_from_days(day, y, m, dd);
    if (!expr.months[m]) continue;
    const unsigned wd = static_cast<unsigned>(((day % 7) + 11) % 7);  // 1970-01-01 was a Thursday (4)
    const bool dom = expr.days[dd], dow = expr.weekdays[wd];
    const bool match = expr.any_day && expr.any_weekday ? true
                       : expr.any_day                   ? dow
                       : expr.any_weekday               ? dom
                                                        : (dom || dow);
    if (!match) continue;
    for (int h = 0; h < 24; ++h) {
      if (!expr.hours[static_cast<size_t>(h)]) continue;
      for (int mi = 0; mi < 60; ++mi) {
        if (!expr.minutes[static_cast<size_t>(mi)]) continue;
        if (d == 0 && h * 60 + mi < start_minute) continue;
        const int64_t t = instant_of(zone, day * 86400 + h * 3600 + mi * 60);
        if (t > after_s) return t;
      }
    }
  }
  return -1;
}

}  // namespace zb::cron
