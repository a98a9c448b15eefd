#include <catch2/catch.hpp>

#include <chrono>
#include <string>

#include "../../nodes/parse/field_type.hpp"
#include "../../nodes/parse/time_zone.hpp"

using namespace sluice;
using parse::TimeZone;

namespace {

std::shared_ptr<const TimeZone> zone(const std::string& name) {
  std::string error;
  auto z = TimeZone::load(name, error);
  INFO(error);
  REQUIRE(z);
  return z;
}

// Seconds since the epoch of a date and time (UTC, or local time as to_utc() takes it).
std::int64_t at(int y, unsigned m, unsigned d, int hh = 0, int mm = 0) {
  using namespace std::chrono;
  return sys_days{year{y} / month{m} / day{d}}.time_since_epoch().count() * 86400 + hh * 3600 + mm * 60;
}

// A file of the tz database's folder ($TZDIR or /usr/share/zoneinfo), whole.
std::string database_file(const std::string& name) {
  const char* dir = std::getenv("TZDIR");
  std::FILE* f = std::fopen((std::string(dir && *dir ? dir : "/usr/share/zoneinfo") + "/" + name).c_str(), "rb");
  REQUIRE(f);
  std::string bytes;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) bytes.append(buf, n);
  std::fclose(f);
  return bytes;
}

// A zone file (version 2) with no transitions, only a footer rule: offset_at() then comes from the
// rule alone, to be checked against a zone's transitions for the same years.
std::string footer_only(const std::string& rule, std::int32_t offset) {
  auto be32 = [](std::int32_t v) {
    std::string s(4, '\0');
    for (int i = 0; i < 4; ++i) s[i] = static_cast<char>((static_cast<std::uint32_t>(v) >> (24 - 8 * i)) & 0xff);
    return s;
  };
  auto block = [&] {
    // counts: isutcnt 0, isstdcnt 0, leapcnt 0, timecnt 0, typecnt 1, charcnt 4
    std::string h = "TZif2" + std::string(15, '\0') + be32(0) + be32(0) + be32(0) + be32(0) + be32(1) + be32(4);
    return h + be32(offset) + std::string(1, '\0') + std::string(1, '\0') + std::string("STD", 4);
  };
  return block() + block() + "\n" + rule + "\n";
}

}  // namespace

TEST_CASE("time zones: offsets of the tz database's zones, in summer and winter, past the file's transitions too",
          "[date][time_zone]") {
  const auto berlin = zone("Europe/Berlin");
  CHECK(berlin->offset_at(at(2026, 1, 15)) == 3600);
  CHECK(berlin->offset_at(at(2026, 7, 1)) == 7200);
  CHECK(berlin->offset_at(at(2026, 3, 29, 0, 59)) == 3600);  // the change is at 01:00 UTC
  CHECK(berlin->offset_at(at(2026, 3, 29, 1, 0)) == 7200);
  CHECK(berlin->offset_at(at(2045, 7, 1)) == 7200);  // after the last transition (2037): the footer rule
  CHECK(berlin->offset_at(at(2045, 12, 1)) == 3600);
  CHECK(berlin->offset_at(at(1890, 1, 1)) == 3208);  // local mean time before 1893, as the database has it

  const auto new_york = zone("America/New_York");
  CHECK(new_york->offset_at(at(2026, 1, 15)) == -18000);
  CHECK(new_york->offset_at(at(2026, 7, 4)) == -14400);
  CHECK(new_york->offset_at(at(2050, 7, 4)) == -14400);
  CHECK(new_york->offset_at(at(2050, 11, 15)) == -18000);

  const auto sydney = zone("Australia/Sydney");  // summer across the new year
  CHECK(sydney->offset_at(at(2026, 1, 15)) == 39600);
  CHECK(sydney->offset_at(at(2026, 7, 15)) == 36000);
  CHECK(sydney->offset_at(at(2045, 1, 15)) == 39600);
  CHECK(sydney->offset_at(at(2045, 7, 15)) == 36000);

  CHECK(zone("Asia/Tokyo")->offset_at(at(2026, 7, 1)) == 32400);
  CHECK(zone("UTC")->offset_at(at(2026, 7, 1)) == 0);
  CHECK(zone("Asia/Kolkata")->offset_at(at(2046, 7, 1)) == 19800);
}

TEST_CASE("time zones: a footer rule gives the offsets the zone's transitions give, hour by hour",
          "[date][time_zone]") {
  // For 2030-2036, when both are in the file: northern and southern summers, changes at local
  // times past midnight (Israel's 26:00) and before it (Greenland's -1:00).
  for (const char* name : {"Europe/Berlin", "America/New_York", "Australia/Sydney", "America/Santiago",
                           "Asia/Jerusalem", "America/Nuuk", "Pacific/Auckland", "Europe/London"}) {
    CAPTURE(name);
    const auto real = zone(name);
    // The footer of the zone's own file.
    const std::string bytes = database_file(name);
    const auto end = bytes.rfind('\n');
    const auto start = bytes.rfind('\n', end - 1);
    const std::string footer = bytes.substr(start + 1, end - start - 1);
    CAPTURE(footer);
    const auto rule_only = TimeZone::parse(footer_only(footer, 0));
    REQUIRE(rule_only);
    int differ = 0;
    for (std::int64_t t = at(2030, 1, 1); t < at(2037, 1, 1); t += 3600) {
      if (real->offset_at(t) != rule_only->offset_at(t)) ++differ;
    }
    CHECK(differ == 0);
  }
}

TEST_CASE("time zones: a local time to UTC, the skipped and the doubled hour as Python's fold=0 reads them",
          "[date][time_zone]") {
  const auto berlin = zone("Europe/Berlin");
  CHECK(berlin->to_utc(at(2026, 3, 5, 14, 30)) == at(2026, 3, 5, 13, 30));
  CHECK(berlin->to_utc(at(2026, 7, 1, 12, 0)) == at(2026, 7, 1, 10, 0));
  CHECK(berlin->to_utc(at(2026, 3, 29, 2, 30)) == at(2026, 3, 29, 1, 30));    // skipped: the offset before
  CHECK(berlin->to_utc(at(2026, 3, 29, 3, 0)) == at(2026, 3, 29, 1, 0));      // the first summer minute
  CHECK(berlin->to_utc(at(2026, 10, 25, 2, 30)) == at(2026, 10, 25, 0, 30));  // twice: the first
  CHECK(berlin->to_utc(at(2026, 10, 25, 3, 0)) == at(2026, 10, 25, 2, 0));
  CHECK(berlin->to_utc(at(2050, 10, 30, 2, 30)) == at(2050, 10, 30, 0, 30));  // by the footer rule
  const auto new_york = zone("America/New_York");
  CHECK(new_york->to_utc(at(2026, 3, 8, 2, 30)) == at(2026, 3, 8, 7, 30));
  CHECK(new_york->to_utc(at(2026, 11, 1, 1, 30)) == at(2026, 11, 1, 5, 30));
  const auto sydney = zone("Australia/Sydney");
  CHECK(sydney->to_utc(at(2026, 1, 1, 0, 0)) == at(2025, 12, 31, 13, 0));
}

TEST_CASE("time zones: read_date's local date and time given as the moment in UTC, other dates as they are",
          "[date][time_zone]") {
  const auto berlin = zone("Europe/Berlin");
  CHECK(parse::local_to_utc("2026-03-05T14:30:00", *berlin) == "2026-03-05T13:30:00Z");
  CHECK(parse::local_to_utc("2026-03-05T14:30:15.250", *berlin) == "2026-03-05T13:30:15.250Z");
  CHECK(parse::local_to_utc("2026-01-01T00:30:00", *berlin) == "2025-12-31T23:30:00Z");
  CHECK(parse::local_to_utc("2026-03-05", *berlin) == "2026-03-05");
  CHECK(parse::local_to_utc("2026-03-05T14:30:00Z", *berlin) == "2026-03-05T14:30:00Z");
  CHECK(parse::local_to_utc("2026-03", *berlin) == "2026-03");
  CHECK(parse::local_to_utc("0001-01-01T00:30:00", *berlin) == "0001-01-01T00:30:00");  // before the year 1 in UTC
}

TEST_CASE("time zones: unknown names, paths and files that are not zones are refused, saying so", "[date][time_zone]") {
  std::string error;
  CHECK_FALSE(TimeZone::load("Europe/Atlantis", error));
  CHECK(error.starts_with("unknown time zone 'Europe/Atlantis' (no /usr/share/zoneinfo/Europe/Atlantis: "));
  CHECK_FALSE(TimeZone::load("../../etc/passwd", error));
  CHECK(error == "'../../etc/passwd' is not a time zone name such as Europe/Berlin, America/New_York or UTC");
  CHECK_FALSE(TimeZone::load("/etc/passwd", error));
  CHECK_FALSE(TimeZone::load("", error));
  CHECK_FALSE(TimeZone::load("zone.tab", error));  // (a name has no '.')
  CHECK_FALSE(TimeZone::load("Europe", error));    // a folder of the database
  CHECK(error == "'/usr/share/zoneinfo/Europe' is not a time zone file (RFC 8536)");
  CHECK_FALSE(TimeZone::parse("TZif2"));
  CHECK_FALSE(TimeZone::parse(footer_only("CET-1CEST", 3600)));
}

TEST_CASE("time zones: POSIX TZ rules as zone files end with them", "[date][time_zone]") {
  auto rule = parse::parse_tz_rule("CET-1CEST,M3.5.0,M10.5.0/3");
  REQUIRE(rule);
  CHECK(rule->std_offset == 3600);
  CHECK(rule->dst_offset == 7200);
  CHECK(rule->start.form == 'M');
  CHECK(rule->start.month == 3);
  CHECK(rule->start.week == 5);
  CHECK(rule->start.time == 7200);
  CHECK(rule->end.time == 3 * 3600);
  rule = parse::parse_tz_rule("<+03>-3");
  REQUIRE(rule);
  CHECK(rule->std_offset == 10800);
  CHECK_FALSE(rule->has_dst);
  rule = parse::parse_tz_rule("<-03>3<-02>,M3.5.0/-2,M10.5.0/-1");
  REQUIRE(rule);
  CHECK(rule->std_offset == -10800);
  CHECK(rule->dst_offset == -7200);
  CHECK(rule->start.time == -7200);
  rule = parse::parse_tz_rule("IST-2IDT,M3.4.4/26,M10.5.0");
  REQUIRE(rule);
  CHECK(rule->start.time == 26 * 3600);
  rule = parse::parse_tz_rule("XXX3YYY,J60/1:30,300");
  REQUIRE(rule);
  CHECK(rule->start.form == 'J');
  CHECK(rule->start.day == 60);
  CHECK(rule->start.time == 5400);
  CHECK(rule->end.form == 'n');
  CHECK(rule->end.day == 300);
  for (const char* bad : {"", "X", "CET", "CET-1CEST", "CET-1CEST,M13.1.0,M10.5.0", "CET-1CEST,M3.5.0",
                          "CET-1CEST,M3.5.0,M10.5.0 ", "CET-1CEST,J0,J5", "<>1"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse::parse_tz_rule(bad));
  }
}

TEST_CASE("time zones: a date field with time_zone converts local times only, relative ones included",
          "[date][time_zone]") {
  parse::TypedField field(parse::ValueType::date, '.', parse::DateOrder::unset, zone("Europe/Berlin"));
  Record page;
  page.set("fetched_at", Value(1772721000.0));  // 2026-03-05T14:30:00Z
  auto read = [&](std::string_view text) { return field.convert_text(text, &page).value_or(Value("none")).to_text(); };
  CHECK(read("Yesterday at 9:15 pm") == "2026-03-04T20:15:00Z");
  CHECK(read("3 hours ago") == "2026-03-05T11:30:00Z");  // counted back from the fetch: a moment already
  CHECK(read("yesterday") == "2026-03-04");
  CHECK(read("5 March 2026, 14:30 CET") == "2026-03-05T13:30:00Z");
  CHECK(read("5 March 2026, 14:30") == "2026-03-05T13:30:00Z");
}

TEST_CASE("time zones: a zone file cut short or with bytes changed is refused or read, never read past its end",
          "[date][time_zone]") {
  // (Under ASan a read past the bytes would be an error.)
  const std::string bytes = database_file("Europe/Berlin");
  std::size_t read = 0;
  for (std::size_t size = 0; size < bytes.size(); ++size) {
    const std::string cut = bytes.substr(0, size);  // a copy of its own: ASan sees its end
    if (TimeZone::parse(cut)) ++read;
  }
  CHECK(read == 0);                                        // the footer ends the file: no shorter one is whole
  for (std::size_t at : {20u, 24u, 28u, 32u, 36u, 40u}) {  // each count of the first header, as 0xffffffff
    std::string changed = bytes;
    for (std::size_t i = 0; i < 4; ++i) changed[at + i] = '\xff';
    CHECK_FALSE(TimeZone::parse(changed));
  }
  CHECK(TimeZone::parse(bytes));
}

TEST_CASE("time zones: every zone of the database's zone1970.tab loads", "[date][time_zone]") {
  int zones = 0;
  const std::string table = database_file("zone1970.tab");
  for (std::size_t at = 0, next; at < table.size(); at = next + 1) {
    next = std::min(table.find('\n', at), table.size());
    const std::string_view l = std::string_view(table).substr(at, next - at);
    if (l.empty() || l[0] == '#') continue;
    const auto first = l.find('\t'), second = l.find('\t', first + 1);
    if (second == std::string_view::npos) continue;
    std::string name(l.substr(second + 1, l.find_first_of("\t\n", second + 1) - second - 1));
    std::string error;
    CAPTURE(name);
    CHECK(TimeZone::load(name, error));
    ++zones;
  }
  CHECK(zones > 300);
}
