#include "time_zone.hpp"

#include "date.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

namespace sluice::parse {
namespace {

constexpr std::int64_t kDay = 86400;

// Days since 1970-01-01 of a date in the proleptic Gregorian calendar (month 1-12).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  using namespace std::chrono;
  return sys_days{year{static_cast<int>(y)} / month{m} / day{d}}.time_since_epoch().count();
}

std::int64_t year_of(std::int64_t utc) {
  using namespace std::chrono;
  const auto days = sys_days{std::chrono::days{utc >= 0 ? utc / kDay : (utc - kDay + 1) / kDay}};
  return static_cast<int>(year_month_day{days}.year());
}

bool leap(std::int64_t y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

unsigned days_in_month(std::int64_t y, unsigned m) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && leap(y) ? 29 : kDays[m - 1];
}

// Seconds since 1970-01-01T00:00 local of the moment `when` names in year `y` (the local time of
// the change, in the offset in effect before it).
std::int64_t local_seconds(const TimeZone::Rule::When& when, std::int64_t y) {
  std::int64_t day = 0;  // days since 1970-01-01
  if (when.form == 'J') {
    // 1-365, 29 February not counted: day 60 is 1 March in every year.
    day = days_from_civil(y, 1, 1) + when.day - 1 + (leap(y) && when.day >= 60 ? 1 : 0);
  } else if (when.form == 'n') {
    day = days_from_civil(y, 1, 1) + when.day;
  } else {
    const std::int64_t first = days_from_civil(y, static_cast<unsigned>(when.month), 1);
    const std::int64_t weekday = ((first % 7) + 7 + 4) % 7;  // 1970-01-01 was a Thursday (4)
    std::int64_t dom = 1 + (when.day - weekday + 7) % 7 + 7 * (when.week - 1);
    while (dom > days_in_month(y, static_cast<unsigned>(when.month))) dom -= 7;
    day = first + dom - 1;
  }
  return day * kDay + when.time;
}

// Big-endian integers of a zone file.
std::int64_t be(std::string_view bytes, std::size_t at, std::size_t size) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < size; ++i) v = (v << 8) | static_cast<unsigned char>(bytes[at + i]);
  if (size == 4) return static_cast<std::int32_t>(static_cast<std::uint32_t>(v));
  return static_cast<std::int64_t>(v);
}

// A POSIX TZ reader: names, offsets and rule days with their times.
struct RuleReader {
  std::string_view s;
  std::size_t at = 0;

  bool more() const { return at < s.size(); }
  char peek() const { return more() ? s[at] : '\0'; }

  // A zone abbreviation: three or more letters, or <...> of letters, digits, + and -.
  bool name() {
    if (peek() == '<') {
      const std::size_t close = s.find('>', at);
      if (close == std::string_view::npos || close == at + 1) return false;
      at = close + 1;
      return true;
    }
    const std::size_t from = at;
    while (more() && std::isalpha(static_cast<unsigned char>(peek()))) ++at;
    return at - from >= 3;
  }
  std::optional<std::int64_t> number(int most) {
    const std::size_t from = at;
    std::int64_t v = 0;
    while (more() && std::isdigit(static_cast<unsigned char>(peek())) && at - from < 3) v = v * 10 + (s[at++] - '0');
    if (at == from || v > most) return std::nullopt;
    return v;
  }
  // [+-]hh[:mm[:ss]], hours up to `hours`, in seconds.
  std::optional<std::int64_t> duration(int hours) {
    std::int64_t sign = 1;
    if (peek() == '+' || peek() == '-') sign = s[at++] == '-' ? -1 : 1;
    auto h = number(hours);
    if (!h) return std::nullopt;
    std::int64_t v = *h * 3600;
    for (int unit : {60, 1}) {
      if (peek() != ':') break;
      ++at;
      auto part = number(59);
      if (!part) return std::nullopt;
      v += *part * unit;
    }
    return sign * v;
  }
  std::optional<TimeZone::Rule::When> when() {
    TimeZone::Rule::When w;
    if (peek() == 'J') {
      ++at;
      auto d = number(365);
      if (!d || *d < 1) return std::nullopt;
      w.form = 'J';
      w.day = static_cast<int>(*d);
    } else if (peek() == 'M') {
      ++at;
      auto m = number(12);
      if (!m || *m < 1 || peek() != '.') return std::nullopt;
      ++at;
      auto wk = number(5);
      if (!wk || *wk < 1 || peek() != '.') return std::nullopt;
      ++at;
      auto d = number(6);
      if (!d) return std::nullopt;
      w.form = 'M';
      w.month = static_cast<int>(*m);
      w.week = static_cast<int>(*wk);
      w.day = static_cast<int>(*d);
    } else {
      auto d = number(365);
      if (!d) return std::nullopt;
      w.form = 'n';
      w.day = static_cast<int>(*d);
    }
    if (peek() == '/') {
      ++at;
      auto t = duration(167);
      if (!t) return std::nullopt;
      w.time = *t;
    }
    return w;
  }
};

}  // namespace

std::optional<TimeZone::Rule> parse_tz_rule(std::string_view text) {
  RuleReader r{text};
  TimeZone::Rule rule;
  if (!r.name()) return std::nullopt;
  auto std_off = r.duration(24);
  if (!std_off) return std::nullopt;
  rule.std_offset = -*std_off;  // POSIX counts west of Greenwich as positive
  if (!r.more()) return rule;
  if (!r.name()) return std::nullopt;
  rule.has_dst = true;
  rule.dst_offset = rule.std_offset + 3600;
  if (r.peek() != ',' && r.more()) {
    auto dst_off = r.duration(24);
    if (!dst_off) return std::nullopt;
    rule.dst_offset = -*dst_off;
  }
  if (r.peek() != ',') return std::nullopt;  // a zone file's footer gives the rule (no POSIX default)
  ++r.at;
  auto start = r.when();
  if (!start || r.peek() != ',') return std::nullopt;
  ++r.at;
  auto end = r.when();
  if (!end || r.more()) return std::nullopt;
  rule.start = *start;
  rule.end = *end;
  return rule;
}

std::optional<TimeZone> TimeZone::parse(std::string_view bytes) {
  auto header = [&](std::size_t at, std::size_t counts[6]) {
    if (bytes.size() < at + 44 || bytes.substr(at, 4) != "TZif") return false;
    for (int i = 0; i < 6; ++i) {  // unsigned 32-bit: no count wraps the size checks below
      counts[i] = static_cast<std::uint32_t>(be(bytes, at + 20 + 4 * i, 4));
    }
    return true;
  };
  // isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
  std::size_t c[6];
  if (!header(0, c)) return std::nullopt;
  const char version = bytes[4];
  std::size_t at = 44;
  std::size_t time_size = 4;
  auto block_size = [&](const std::size_t* n, std::size_t ts) {
    return n[3] * ts + n[3] + n[4] * 6 + n[5] + n[2] * (ts + 4) + n[1] + n[0];
  };
  if (version >= '2') {  // the 64-bit data after the 32-bit block
    at += block_size(c, 4);
    if (!header(at, c)) return std::nullopt;
    at += 44;
    time_size = 8;
  }
  const std::size_t timecnt = c[3], typecnt = c[4];
  if (typecnt == 0 || bytes.size() < at + block_size(c, time_size)) return std::nullopt;
  const std::size_t types_at = at + timecnt * time_size;
  const std::size_t infos_at = types_at + timecnt;
  TimeZone zone;
  auto offset_of_type = [&](std::size_t type) { return be(bytes, infos_at + 6 * type, 4); };
  for (std::size_t i = 0; i < timecnt; ++i) {
    const auto type = static_cast<unsigned char>(bytes[types_at + i]);
    if (type >= typecnt) return std::nullopt;
    const std::int64_t t = be(bytes, at + i * time_size, time_size);
    if (!zone.transitions_.empty() && t <= zone.transitions_.back()) return std::nullopt;
    zone.transitions_.push_back(t);
    zone.offsets_.push_back(offset_of_type(type));
  }
  zone.first_offset_ = offset_of_type(0);  // RFC 8536: type 0 before the first transition
  if (version >= '2') {  // the footer, "\n<POSIX TZ>\n" (empty between its line breaks when there is no rule)
    const std::size_t footer = at + block_size(c, time_size);
    if (bytes.size() < footer + 2 || bytes[footer] != '\n') return std::nullopt;
    const std::size_t close = bytes.find('\n', footer + 1);
    if (close == std::string_view::npos) return std::nullopt;
    const std::string_view tz = bytes.substr(footer + 1, close - footer - 1);
    if (!tz.empty()) {
      zone.rule_ = parse_tz_rule(tz);
      if (!zone.rule_) return std::nullopt;
    }
  }
  return zone;
}

std::shared_ptr<const TimeZone> TimeZone::load(const std::string& name, std::string& error) {
  // A name of the database: letters, digits, '_', '-', '+', in parts joined by '/'; no file
  // elsewhere ("../", an absolute path) is read as a zone.
  const bool plain =
      !name.empty() && name.front() != '/' && name.find("..") == std::string::npos &&
      std::all_of(name.begin(), name.end(), [](char ch) {
        return std::isalnum(static_cast<unsigned char>(ch)) || ch == '/' || ch == '_' || ch == '-' || ch == '+';
      });
  if (!plain) {
    error = fmt::format("'{}' is not a time zone name such as Europe/Berlin, America/New_York or UTC", name);
    return nullptr;
  }
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<const TimeZone>> loaded;
  std::lock_guard lock(mutex);
  if (auto it = loaded.find(name); it != loaded.end()) return it->second;
  const char* dir = std::getenv("TZDIR");
  const std::string path = fmt::format("{}/{}", dir && *dir ? dir : "/usr/share/zoneinfo", name);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    error = fmt::format("unknown time zone '{}' (no {}: {}; Debian's tzdata package has the zones)", name, path,
                        std::strerror(errno));
    return nullptr;
  }
  // A zone file is a few KiB: a folder, a device or anything over 1 MiB is none.
  std::string bytes;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= (1 << 20)) {
    char buffer[1 << 14];
    for (ssize_t n; (n = ::read(fd, buffer, sizeof buffer)) > 0 || (n < 0 && errno == EINTR);) {
      if (n > 0) bytes.append(buffer, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  auto zone = parse(bytes);
  if (!zone) {
    error = fmt::format("'{}' is not a time zone file (RFC 8536)", path);
    return nullptr;
  }
  auto shared = std::make_shared<const TimeZone>(std::move(*zone));
  loaded.emplace(name, shared);
  return shared;
}

std::int64_t TimeZone::offset_at(std::int64_t utc) const {
  if (!transitions_.empty()) {
    if (utc < transitions_.front()) return first_offset_;
    if (utc < transitions_.back() || !rule_) {
      const auto after = std::upper_bound(transitions_.begin(), transitions_.end(), utc);
      return offsets_[static_cast<std::size_t>(after - transitions_.begin()) - 1];
    }
  }
  if (!rule_) return first_offset_;
  if (!rule_->has_dst) return rule_->std_offset;
  const std::int64_t y = year_of(utc);
  const std::int64_t start = local_seconds(rule_->start, y) - rule_->std_offset;
  const std::int64_t end = local_seconds(rule_->end, y) - rule_->dst_offset;
  // Southern zones have their summer across the new year: daylight time outside [end, start).
  const bool summer = start < end ? (utc >= start && utc < end) : !(utc >= end && utc < start);
  return summer ? rule_->dst_offset : rule_->std_offset;
}

std::int64_t TimeZone::to_utc(std::int64_t local) const {
  // Offsets change at most every few weeks and by less than a day: the offsets two days either side
  // are the only candidates.
  const std::int64_t before = offset_at(local - 2 * kDay);
  const std::int64_t after = offset_at(local + 2 * kDay);
  const std::int64_t a = local - before, b = local - after;
  const bool a_holds = offset_at(a) == before, b_holds = offset_at(b) == after;
  if (a_holds && b_holds) return std::min(a, b);  // twice: the first
  if (b_holds) return b;
  return a;  // once with the offset before the change, or never (a skipped hour): as fold=0 reads it
}

std::string local_to_utc(const std::string& date, const TimeZone& zone) {
  // "YYYY-MM-DDTHH:MM:SS", then a fraction or nothing: read_date's local date and time.
  if (date.size() < 19 || date[4] != '-' || date[7] != '-' || date[10] != 'T' || date[13] != ':' || date[16] != ':' ||
      date.back() == 'Z') {
    return date;
  }
  std::string_view fraction = std::string_view(date).substr(19);
  if (!fraction.empty() && (fraction[0] != '.' || fraction.size() < 2 ||
                            !std::all_of(fraction.begin() + 1, fraction.end(),
                                         [](char ch) { return std::isdigit(static_cast<unsigned char>(ch)); }))) {
    return date;
  }
  auto num = [&](std::size_t at, std::size_t n) { return std::atoi(date.substr(at, n).c_str()); };
  const std::int64_t local =
      days_from_civil(num(0, 4), static_cast<unsigned>(num(5, 2)), static_cast<unsigned>(num(8, 2))) * kDay +
      num(11, 2) * 3600 + num(14, 2) * 60 + num(17, 2);
  const std::int64_t utc = zone.to_utc(local);
  if (utc < -62135596800 || utc >= 253402300800) return date;  // beyond the years 1-9999: as written
  return utc_text(std::chrono::sys_seconds{std::chrono::seconds{utc}}, fraction);
}

}  // namespace sluice::parse
