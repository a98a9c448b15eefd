// Dates in scraped text, for `type: date` on the parse nodes' fields: "March 5, 2026 at 2:30 PM",
// "05.03.2026", "Thu, 05 Mar 2026 14:30:00 GMT" or "5 de marzo de 2026" become ISO 8601 text
// ("2026-03-05", "2026-03-05T14:30:00", "2026-03-05T14:30:00Z"), which sorts and compares as dates
// do, in a filter, a store's column or a consumer's JSON.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::parse {

// How a date written only in numbers is read: "05/03/2026" is 5 March with `dmy`, May 3 with
// `mdy`; with `unset`, only when one of the first two numbers is above 12 ("13/03/2026").
enum class DateOrder { unset, dmy, mdy };

// What a message says of a date in numbers only that `unset` did not read ("05/03/2026").
inline constexpr std::string_view kDateOrderHint =
    "day and month could be either way round: set date_order: dmy or mdy";

// The first date in `text`, as ISO 8601 text, or nullopt when there is none. Read:
// - year first: 2026-03-05, 2026/3/5, 2026.03.05, and 2026年3月5日 (or 2026년 3월 5일); ISO 8601's
//   basic format with a time, as iCalendar writes it (20260305T143000Z);
// - numbers only, day and month by `order`: 05/03/2026, 5.3.2026, 05-03-26 (a two-digit year is
//   1969-2068, as POSIX reads one);
// - a month's name or its abbreviation, in English, German, French, Spanish, Italian, Portuguese or
//   Dutch, before or after the day: "March 5th, 2026", "5. März 2026", "05-Mar-2026", "le 5 mars
//   2026", "5 de marzo de 2026";
// - a time after the date, or right before it: 14:30, 14:30:15.250, 2:30 pm, 14h30, with "at",
//   "um", "à", "T", a comma and the like between; and a zone after the time: Z, UTC, GMT, +01:00,
//   -0500, or a name that stands for one offset, in capitals: EST, EDT, CST, CDT, MST, MDT, PST, PDT,
//   AKST, AKDT, HST, BST, CET, CEST, MEZ, MESZ, EET, EEST, MSK, JST, KST, HKT, SGT, AWST, ACST,
//   ACDT, AEST, AEDT, NZST, NZDT, or ET, CT, MT, PT (standard or daylight time by the date, as the
//   US has it since 2007); and the year after the time, as C's asctime and Twitter write it
//   ("Thu Mar  5 14:30:00 2026", "Thu Mar 05 14:30:00 +0000 2026").
// A text with none of these may have a month without its day: "March 2026", "Mar. 2026", "marzo de
// 2026", "2026年3月" are "2026-03" (and so is a text that is only "2026-03", as it reads back, or
// only "03/2026", "3/2026", "03.2026").
// The result is "2026-03-05" for a date alone, "2026-03-05T14:30:00" for a date and time without a
// zone (the site's local time, as written), and the moment in UTC, "2026-03-05T13:30:00Z", when a
// zone is given. Text around the date is left out; a date that does not exist (31 April, 29
// February 2027) is none. A text that is only 9 to 13 digits is a Unix time, as date_of_epoch
// reads it ("1709650000", a data-timestamp attribute); another number is none.
// With `now` (seconds since the epoch: when the page was fetched), a text with no such date may
// give one relative to it, in English, German, French or Spanish: "3 hours ago", "an hour ago",
// "3h ago", "vor 3 Stunden", "il y a 3 heures", "hace 3 horas" and "just now" are the moment in
// UTC ("2026-03-05T11:30:00Z"); days, weeks, months and years ago, "yesterday", "today",
// "tomorrow" ("gestern", "aujourd'hui", "ayer", ...) the day in UTC ("2026-03-04"), and with a time
// after them ("yesterday at 14:30") that day at that time. A day and month without a year ("Mar 5",
// "5. März", with a time or without) take the year that puts them nearest to `now` (the year
// before, its own or the next: "Dec 30" read in early January is last year's).
std::optional<std::string> read_date(std::string_view text, DateOrder order, std::optional<double> now = std::nullopt);

// A moment given as seconds since 1970-01-01 UTC, as JSON APIs give it (milliseconds when its
// magnitude is 1e11 or more: a date past the year 5000 in seconds), as ISO 8601 text in UTC
// ("2024-03-05T15:33:20Z", with ".250" for a fraction of a second); nullopt beyond the years 1-9999.
std::optional<std::string> date_of_epoch(double seconds);

// A moment as ISO 8601 text in UTC, "2026-03-05T13:30:00Z", with `fraction` (".250", as written, or
// "") before the Z.
std::string utc_text(std::chrono::sys_seconds moment, std::string_view fraction = "");

}  // namespace sluice::parse
