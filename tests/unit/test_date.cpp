#include <catch2/catch.hpp>

#include "../../nodes/parse/field_type.hpp"

using namespace sluice;
using parse::DateOrder;

namespace {

// The date read, as ISO 8601 text, or "none".
std::string date(std::string_view text, DateOrder order = DateOrder::unset) {
  return parse::read_date(text, order).value_or("none");
}

// The same, for a page fetched at 2026-03-05T14:30:00Z.
std::string fetched_date(std::string_view text) {
  return parse::read_date(text, DateOrder::unset, 1772721000).value_or("none");
}

}  // namespace

TEST_CASE("type: date reads ISO 8601 and year-first dates, with their time and zone", "[date]") {
  CHECK(date("2026-03-05") == "2026-03-05");
  CHECK(date("Published 2026/3/5 by admin") == "2026-03-05");
  CHECK(date("2026.03.05") == "2026-03-05");
  CHECK(date("2026-03-05T14:30:00") == "2026-03-05T14:30:00");
  CHECK(date("2026-03-05T14:30:00Z") == "2026-03-05T14:30:00Z");
  CHECK(date("2026-03-05T14:30:00.250+01:00") == "2026-03-05T13:30:00.250Z");
  CHECK(date("2026-03-05T22:30-05:00") == "2026-03-06T03:30:00Z");  // into the next day in UTC
  CHECK(date("2026-01-01T00:30:00+02:00") == "2025-12-31T22:30:00Z");
  CHECK(date("2026-03-05 14:30") == "2026-03-05T14:30:00");
  CHECK(date("2026\u5e743\u67085\u65e5") == "2026-03-05");          // 2026年3月5日
  CHECK(date("2026\ub144 3\uc6d4 5\uc77c") == "2026-03-05");        // 2026년 3월 5일
  CHECK(date("2026\u5e7412\u670831\u65e5\u306b") == "2026-12-31");  // ...日に: the unit runs into a word
  // The basic format, as iCalendar writes it; eight digits alone may be any number.
  CHECK(date("DTSTART:20260305T143000Z") == "2026-03-05T14:30:00Z");
  CHECK(date("20260305T1430") == "2026-03-05T14:30:00");
  CHECK(date("20260305T143000-0500") == "2026-03-05T19:30:00Z");
  CHECK(date("20260305") == "none");
  CHECK(date("20260230T1000Z") == "none");
  CHECK(date("20260305T2500Z") == "none");
}

TEST_CASE("type: date reads a month's name in seven languages, before or after the day", "[date]") {
  CHECK(date("March 5, 2026") == "2026-03-05");
  CHECK(date("Posted on Mar. 5th 2026") == "2026-03-05");
  CHECK(date("SEPT 30 2026") == "2026-09-30");
  CHECK(date("5 March 2026") == "2026-03-05");
  CHECK(date("the 5th of March, 2026") == "2026-03-05");
  CHECK(date("05-Mar-2026") == "2026-03-05");
  CHECK(date("Thursday, 05-Mar-26 14:30:00 GMT") == "2026-03-05T14:30:00Z");  // RFC 850
  CHECK(date("Thu, 05 Mar 2026 14:30:00 +0100") == "2026-03-05T13:30:00Z");   // RFC 2822
  CHECK(date("Thu, 05 Mar 2026 14:30:00 -0500") == "2026-03-05T19:30:00Z");
  CHECK(date("am 5. M\u00e4rz 2026 um 14:30 Uhr") == "2026-03-05T14:30:00");
  CHECK(date("5. M\u00c4RZ 2026") == "2026-03-05");
  CHECK(date("le 1er f\u00e9vrier 2026 \u00e0 9h05") == "2026-02-01T09:05:00");
  CHECK(date("5 de marzo de 2026") == "2026-03-05");
  CHECK(date("12 dicembre 2026") == "2026-12-12");
  CHECK(date("5 de mar\u00e7o de 2026") == "2026-03-05");
  CHECK(date("5 maart 2026") == "2026-03-05");
  CHECK(date("7 ao\u00fbt 2026") == "2026-08-07");
}

TEST_CASE("type: date reads a time after or before the date, in 12 or 24 hours, and a zone", "[date]") {
  CHECK(date("March 5, 2026 at 2:30 PM") == "2026-03-05T14:30:00");
  CHECK(date("March 5, 2026, 12:05 a.m.") == "2026-03-05T00:05:00");
  CHECK(date("March 5, 2026 12 pm") == "2026-03-05T12:00:00");
  CHECK(date("March 5, 2026 2:30 PM EST") == "2026-03-05T19:30:00Z");
  CHECK(date("5 March 2026 14:30 CET") == "2026-03-05T13:30:00Z");
  CHECK(date("5 March 2026 14:30 UTC") == "2026-03-05T14:30:00Z");
  CHECK(date("5 March 2026 14:30 GMT+2") == "2026-03-05T12:30:00Z");
  CHECK(date("5 March 2026 14:30 utc") == "2026-03-05T14:30:00Z");
  CHECK(date("5. M\u00e4rz 2026 14:30 MESZ") == "2026-03-05T12:30:00Z");
  CHECK(date("March 5, 2026 9:00 AEDT") == "2026-03-04T22:00:00Z");
  CHECK(date("March 5, 2026 9:00 JST") == "2026-03-05T00:00:00Z");
  CHECK(date("March 5, 2026 9:30 BST") == "2026-03-05T08:30:00Z");
  CHECK(date("March 5, 2026 9:00 ACST") == "2026-03-04T23:30:00Z");  // +09:30
  // A zone's name counts in capitals only: in running text it is a word ("est" is French's "is").
  CHECK(date("le 5 mars 2026 \u00e0 14h30 est annul\u00e9") == "2026-03-05T14:30:00");
  // The year after the time: C's asctime, Twitter's created_at, date(1).
  CHECK(date("Thu Mar  5 14:30:00 2026") == "2026-03-05T14:30:00");
  CHECK(date("Thu Mar 05 14:30:00 +0000 2026") == "2026-03-05T14:30:00Z");
  CHECK(date("Thu Mar  5 14:30:00 CET 2026") == "2026-03-05T13:30:00Z");
  CHECK(date("Thu Feb 30 14:30:00 2026") == "none");
  CHECK(date("March 5, 2026 9:00 IST") == "2026-03-05T09:00:00");  // India, Ireland or Israel
  // ET, CT, MT, PT: standard or daylight time by the date, as the US has it since 2007.
  CHECK(date("March 5, 2026 - 3:15 p.m. ET") == "2026-03-05T20:15:00Z");
  CHECK(date("July 4, 2026 9:00 PM ET") == "2026-07-05T01:00:00Z");
  CHECK(date("March 8, 2026 1:59 AM ET") == "2026-03-08T06:59:00Z");  // the day daylight time begins
  CHECK(date("March 8, 2026 3:00 AM ET") == "2026-03-08T07:00:00Z");
  CHECK(date("November 1, 2026 1:30 AM PT") == "2026-11-01T08:30:00Z");  // the hour that comes twice: the first
  CHECK(date("November 1, 2026 2:30 AM PT") == "2026-11-01T10:30:00Z");
  CHECK(date("le 5 mars 2026 \u00e0 14h30 et 15h") == "2026-03-05T14:30:00");  // French's "et": and
  CHECK(date("5 March 2026 14:30:59") == "2026-03-05T14:30:59");
  CHECK(date("14:30, 5 March 2026") == "2026-03-05T14:30:00");
  CHECK(date("Updated 9:15 am on March 5, 2026") == "2026-03-05T09:15:00");
  CHECK(date("um 14:30 Uhr am 5. M\u00e4rz 2026") == "2026-03-05T14:30:00");  // am: on the, not a.m.
  CHECK(date("5. M\u00e4rz 2026, 9:30 Uhr") == "2026-03-05T09:30:00");
  CHECK(date("5 March 2026 | 14:30") == "2026-03-05T14:30:00");
  // A range's dash is no zone, and a lone number after a date is no time.
  CHECK(date("5 March 2026 10:00-11:00") == "2026-03-05T10:00:00");
  CHECK(date("5 March 2026 14:30 - 15:30") == "2026-03-05T14:30:00");
  CHECK(date("March 5, 2026 12 items") == "2026-03-05");
  // A time that does not exist leaves the date alone.
  CHECK(date("5 March 2026 25:00") == "2026-03-05");
  CHECK(date("5 March 2026 0:30 pm") == "2026-03-05");
  CHECK(date("5 March 2026 13:00 pm") == "2026-03-05T13:00:00");  // a 24-hour time: the "pm" says nothing more
}

TEST_CASE("type: date reads a date in numbers only by date_order, or where its day is above 12", "[date]") {
  CHECK(date("05/03/2026", DateOrder::dmy) == "2026-03-05");
  CHECK(date("05/03/2026", DateOrder::mdy) == "2026-05-03");
  CHECK(date("05/03/2026") == "none");  // either way round
  CHECK(date("13/03/2026") == "2026-03-13");
  CHECK(date("03/13/2026") == "2026-03-13");
  CHECK(date("13/13/2026") == "none");
  CHECK(date("13/03/2026", DateOrder::mdy) == "none");  // a given order is kept
  CHECK(date("5.3.2026 14:30", DateOrder::dmy) == "2026-03-05T14:30:00");
  CHECK(date("05-03-26", DateOrder::dmy) == "2026-03-05");
  CHECK(date("05-03-69", DateOrder::dmy) == "1969-03-05");
  CHECK(date("05-03-68", DateOrder::dmy) == "2068-03-05");
  // Versions and addresses are not dates.
  CHECK(date("10.1.12.100", DateOrder::dmy) == "none");
  CHECK(date("v1.2.3.2026", DateOrder::dmy) == "none");
  CHECK(date("2026.03.05.1") == "none");
}

TEST_CASE("type: date gives none for text with no date, or a date that does not exist", "[date]") {
  CHECK(date("") == "none");
  CHECK(date("yesterday") == "none");
  CHECK(date("12345678") == "none");
  CHECK(date("1709650000 views") == "none");
  CHECK(date("5 March") == "none");
  CHECK(date("2026") == "none");
  CHECK(date("31 April 2026") == "none");
  CHECK(date("29 February 2027") == "none");
  CHECK(date("29 February 2028") == "2028-02-29");
  CHECK(date("2026-13-01") == "none");
  CHECK(date("0000-01-01") == "none");
  CHECK(date("3 days ago, 2 items") == "none");
  CHECK(date(std::string_view("5 March\0 2026", 13)) == "none");
  // The first date that exists is the one read.
  CHECK(date("31 April 2026, or 1 May 2026") == "2026-05-01");
  CHECK(date("from 5 March 2026 to 9 March 2026") == "2026-03-05");
}

TEST_CASE("type: date reads a month without its day as the year and month, when the text has no date", "[date]") {
  CHECK(date("March 2026") == "2026-03");
  CHECK(date("Published: Mar. 2026") == "2026-03");
  CHECK(date("December, 2025 issue") == "2025-12");
  CHECK(date("M\u00c4RZ 2026") == "2026-03");  // MÄRZ
  CHECK(date("marzo de 2026") == "2026-03");
  CHECK(date("2026\u5e743\u6708") == "2026-03");  // 2026年3月
  // A full date anywhere in the text comes first.
  CHECK(date("March 2026 edition, printed 5 April 2026") == "2026-04-05");
  // A day before the month: a date that does not exist is none, not its month.
  CHECK(date("31 April 2026") == "none");
  CHECK(date("the 31st of April, 2026") == "none");
  CHECK(date("31. April 2026") == "none");
  CHECK(date("2026\u5e742\u670830\u65e5") == "none");  // 2026年2月30日
  // A year that goes on is no year.
  CHECK(date("March 2026-27 season") == "none");
  CHECK(date("May 20261") == "none");
  CHECK(date("March") == "none");
  // As ISO 8601 writes it, only as the whole text (it reads back as itself); in other text it may be a
  // part number.
  CHECK(date(" 2026-03 ") == "2026-03");
  CHECK(date("2026-13") == "none");
  CHECK(date("part 2026-03") == "none");
  // In numbers, month first, as card expiry and "as of" dates are written: also only as the whole
  // text ("page 3/2026" is no date).
  CHECK(date("03/2026") == "2026-03");
  CHECK(date(" 3/2026\n") == "2026-03");
  CHECK(date("12.2025") == "2025-12");
  CHECK(date("13/2026") == "none");
  CHECK(date("0/2026") == "none");
  CHECK(date("03/0026") == "none");
  CHECK(date("03-2026") == "none");
  CHECK(date("page 3/2026") == "none");
  CHECK(date("3/20261") == "none");
}

TEST_CASE("a date given in seconds since the epoch is read in UTC, milliseconds from 1e11 on", "[date]") {
  // A text that is only a Unix time (a data-timestamp attribute) reads as one.
  CHECK(date(" 1709650000 ") == "2024-03-05T14:46:40Z");
  CHECK(date("1709650000250") == "2024-03-05T14:46:40.250Z");
  CHECK(parse::date_of_epoch(0) == "1970-01-01T00:00:00Z");
  CHECK(parse::date_of_epoch(1709650000) == "2024-03-05T14:46:40Z");
  CHECK(parse::date_of_epoch(1709650000250.0) == "2024-03-05T14:46:40.250Z");
  CHECK(parse::date_of_epoch(-86400) == "1969-12-31T00:00:00Z");
  CHECK(parse::date_of_epoch(1e20) == std::nullopt);
  CHECK(parse::date_of_epoch(std::nan("")) == std::nullopt);
}

TEST_CASE("a date field counts the values that held none, for one warning that hints at date_order", "[date]") {
  parse::TypedField published(parse::ValueType::date, '.', DateOrder::unset);
  CHECK(*published.convert_text("March 5, 2026")->as_string() == "2026-03-05");
  CHECK(*published.convert(Value(std::int64_t{1709650000}))->as_string() == "2024-03-05T14:46:40Z");
  CHECK(published.notice("published").empty());
  CHECK_FALSE(published.convert_text("05/03/2026"));
  CHECK_FALSE(published.convert_text("soon"));
  CHECK_FALSE(published.convert(Value(true)));
  CHECK(published.notice("published") ==
        "field 'published' (type: date) had 3 values with no date in them (the first: '05/03/2026') (day and "
        "month could be either way round: set date_order: dmy or mdy); they were left out");
  parse::TypedField dmy(parse::ValueType::date, '.', DateOrder::dmy);
  CHECK(*dmy.convert_text("05/03/2026")->as_string() == "2026-03-05");
  CHECK_FALSE(dmy.convert_text("later"));
  CHECK(dmy.notice("d") ==
        "field 'd' (type: date) had 1 value with no date in it (the first: 'later'); it was left out");
}

TEST_CASE("type: date reads relative dates against when the page was fetched", "[date]") {
  CHECK(fetched_date("3 hours ago") == "2026-03-05T11:30:00Z");
  CHECK(fetched_date("Posted 3h ago") == "2026-03-05T11:30:00Z");
  CHECK(fetched_date("an hour ago") == "2026-03-05T13:30:00Z");
  CHECK(fetched_date("45 minutes ago") == "2026-03-05T13:45:00Z");
  CHECK(fetched_date("5m ago") == "2026-03-05T14:25:00Z");
  CHECK(fetched_date("30 seconds ago") == "2026-03-05T14:29:30Z");
  CHECK(fetched_date("just now") == "2026-03-05T14:30:00Z");
  CHECK(fetched_date("15 hours ago") == "2026-03-04T23:30:00Z");  // the day before in UTC
  // Days and longer give the day: their precision is a day at best.
  CHECK(fetched_date("2 days ago") == "2026-03-03");
  CHECK(fetched_date("a week ago") == "2026-02-26");
  CHECK(fetched_date("1 month ago") == "2026-02-05");
  CHECK(fetched_date("2 years ago") == "2024-03-05");
  CHECK(fetched_date("yesterday") == "2026-03-04");
  CHECK(fetched_date("Today") == "2026-03-05");
  CHECK(fetched_date("tomorrow") == "2026-03-06");
  CHECK(fetched_date("Yesterday at 9:15 pm") == "2026-03-04T21:15:00");
  // German, French, Spanish.
  CHECK(fetched_date("vor 3 Stunden") == "2026-03-05T11:30:00Z");
  CHECK(fetched_date("vor einer Stunde") == "2026-03-05T13:30:00Z");
  CHECK(fetched_date("vor 2 Tagen") == "2026-03-03");
  CHECK(fetched_date("gestern, 18:05") == "2026-03-04T18:05:00");
  CHECK(fetched_date("il y a 3 jours") == "2026-03-02");
  CHECK(fetched_date("il y a une heure") == "2026-03-05T13:30:00Z");
  CHECK(fetched_date("aujourd'hui") == "2026-03-05");
  CHECK(fetched_date("Aujourd\u2019hui \u00e0 10h30") == "2026-03-05T10:30:00");
  CHECK(fetched_date("hace 2 d\u00edas") == "2026-03-03");
  CHECK(fetched_date("ayer") == "2026-03-04");
  // A date written out wins over a relative one; without `ago` (or vor, hace, il y a) a count is no date.
  CHECK(fetched_date("3 hours ago (March 5, 2026 at 11:00 UTC)") == "2026-03-05T11:00:00Z");
  CHECK(fetched_date("3 hours") == "none");
  CHECK(fetched_date("Buy now") == "none");
  CHECK(date("3 hours ago") == "none");  // nothing to count from
  // The end of a month: 31 March less a month is the last day of February.
  CHECK(parse::read_date("1 month ago", DateOrder::unset, 1774951200) == "2026-02-28");  // 2026-03-31T10:00Z
}

TEST_CASE("type: date gives a day and month without a year the year nearest to when the page was fetched", "[date]") {
  CHECK(fetched_date("March 3") == "2026-03-03");
  CHECK(fetched_date("Posted Mar 4 \u00b7 3 min read") == "2026-03-04");
  CHECK(fetched_date("Mar 5, 2:30 PM") == "2026-03-05T14:30:00");
  CHECK(fetched_date("14:30, 4 March") == "2026-03-04T14:30:00");
  CHECK(fetched_date("the 5th of March") == "2026-03-05");
  CHECK(fetched_date("5. M\u00e4rz") == "2026-03-05");
  CHECK(fetched_date("5 mars \u00e0 14h30") == "2026-03-05T14:30:00");
  CHECK(fetched_date("5 de marzo") == "2026-03-05");
  CHECK(fetched_date("Mar 10") == "2026-03-10");  // an event next week
  CHECK(fetched_date("Dec 30") == "2025-12-30");  // nearer last year than this year
  CHECK(fetched_date("Sep 10") == "2025-09-10");
  // 29 February in none of 2025-2027, and 31 April in no year; and a year that follows was read
  // with the date, or the date does not exist.
  CHECK(fetched_date("Feb 29") == "none");
  CHECK(fetched_date("31 April") == "none");
  CHECK(fetched_date("29 February 2027") == "none");
  CHECK(fetched_date("Mar 5 '26") == "none");
  // A full date, or a month and year, anywhere in the text comes first; a relative date after.
  CHECK(fetched_date("Mar 4, updated 5 March 2026") == "2026-03-05");
  CHECK(fetched_date("Mar 4, in the March 2026 issue") == "2026-03");
  CHECK(fetched_date("Mar 4, 3 hours ago") == "2026-03-04");
  // An abbreviation that is also a word a number goes with is no month here.
  CHECK(fetched_date("a 5 set match") == "none");
  // Without the page's time there is no year to give.
  CHECK(date("March 3") == "none");
}
