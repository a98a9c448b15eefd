// Time zones of the IANA tz database (Debian's tzdata, /usr/share/zoneinfo), for `time_zone` on the
// parse nodes' date fields: a site's local time ("5. März 2026 um 14:30", read as
// "2026-03-05T14:30:00") becomes the moment in UTC ("2026-03-05T13:30:00Z"), so that dates of sites
// in different zones compare as moments. libstdc++ 12 has no std::chrono::tzdb and glibc converts
// only in the process's one TZ, so the zone files (RFC 8536, TZif) are read here.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::parse {

class TimeZone {
 public:
  // The zone named `name` ("Europe/Berlin", "America/New_York", "UTC"), from $TZDIR or
  // /usr/share/zoneinfo; null with `error` saying why (an unknown name, a file that is not a zone).
  // Loaded once per name and shared.
  static std::shared_ptr<const TimeZone> load(const std::string& name, std::string& error);
  // Parses a zone file's bytes (RFC 8536, versions 1 to 4); nullopt when they are not one.
  static std::optional<TimeZone> parse(std::string_view bytes);

  // The offset from UTC, in seconds (east positive), in effect at `utc` (seconds since the epoch).
  std::int64_t offset_at(std::int64_t utc) const;
  // The moment (seconds since the epoch) of a local time given as seconds since 1970-01-01T00:00
  // local. A local time that happens twice (the hour when clocks go back) is its first; one that
  // does not happen (the hour skipped when they go forward) is read with the offset before the
  // change ("02:30" on the night Berlin goes to summer time is 01:30 UTC), as Python's fold=0 does.
  std::int64_t to_utc(std::int64_t local) const;

  // A rule of a zone file's footer (POSIX TZ, "CET-1CEST,M3.5.0,M10.5.0/3"): the offsets of standard
  // and daylight time and when the second starts and ends each year, for times after the file's last
  // transition.
  struct Rule {
    // A day of the year as the rule writes it: Jn (1-365, 29 February never counted), n (0-365), or
    // Mm.w.d (day d, 0 Sunday, of week w, 5 the last, of month m); and the local time of the change,
    // in seconds (-167 h to 167 h, RFC 8536).
    struct When {
      char form = 'M';  // 'J', 'n' or 'M'
      int day = 0, week = 0, month = 0;
      std::int64_t time = 7200;
    };
    std::int64_t std_offset = 0, dst_offset = 0;  // east positive, as offset_at() gives them
    bool has_dst = false;
    When start, end;
  };

 private:
  std::vector<std::int64_t> transitions_;  // UTC, ascending
  std::vector<std::int64_t> offsets_;      // in effect from each transition on
  std::int64_t first_offset_ = 0;          // before the first transition
  std::optional<Rule> rule_;               // after the last one
};

// A POSIX TZ string as zone files end with it; nullopt when it is not one this reads (a name or
// offset out of form, a rule day out of range).
std::optional<TimeZone::Rule> parse_tz_rule(std::string_view text);

// The date text read_date gives for a local date and time ("2026-03-05T14:30:00", with a fraction
// or without) as the moment in UTC in `zone` ("2026-03-05T13:30:00Z"); any other text (a date
// alone, a moment already in UTC, a month) as it is.
std::string local_to_utc(const std::string& date, const TimeZone& zone);

}  // namespace sluice::parse
