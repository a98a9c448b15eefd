#include "date.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <span>
#include <unordered_map>

#include "../text.hpp"

namespace sluice::parse {
namespace {

// A piece of the text: a run of digits, a run of letters (any byte beyond ASCII counts as one, so
// "März" and "年" are words) or one punctuation character. Spaces only separate pieces.
struct Token {
  enum Kind : std::uint8_t { end, num, word, punct };
  Kind kind = end;
  char p = 0;             // punct: the character ('-' also for an en or em dash)
  bool attached = false;  // no space between this piece and the one before it
  std::size_t begin = 0, end_at = 0;
  std::size_t size() const { return end_at - begin; }
};

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// The length of a space at s[i], 0 for none: ASCII white space, a no-break, thin or narrow no-break
// space (U+00A0, U+2009, U+202F) or an ideographic space (U+3000).
std::size_t space_at(std::string_view s, std::size_t i) {
  const char c = s[i];
  if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') return 1;
  const std::string_view rest = s.substr(i);
  if (rest.starts_with("\xC2\xA0")) return 2;
  if (rest.starts_with("\xE2\x80\x89") || rest.starts_with("\xE2\x80\xAF") || rest.starts_with("\xE3\x80\x80")) {
    return 3;
  }
  return 0;
}

// The length of a dash at s[i]: an en dash, an em dash or a minus sign (U+2013, U+2014, U+2212).
std::size_t dash_at(std::string_view s, std::size_t i) {
  const std::string_view rest = s.substr(i);
  if (rest.starts_with("\xE2\x80\x93") || rest.starts_with("\xE2\x80\x94") || rest.starts_with("\xE2\x88\x92")) {
    return 3;
  }
  return 0;
}

bool is_letter_byte(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (static_cast<unsigned char>(c) & 0x80);
}

// The piece of `s` that starts at or after `pos`.
Token lex(std::string_view s, std::size_t pos) {
  Token t;
  bool space = false;
  while (pos < s.size()) {
    const std::size_t n = space_at(s, pos);
    if (n == 0) break;
    pos += n;
    space = true;
  }
  t.attached = !space;
  t.begin = t.end_at = pos;
  if (pos >= s.size()) return t;
  const char c = s[pos];
  if (is_digit(c)) {
    t.kind = Token::num;
    while (pos < s.size() && is_digit(s[pos])) ++pos;
  } else if (const std::size_t dash = dash_at(s, pos); dash > 0) {
    t.kind = Token::punct;
    t.p = '-';
    pos += dash;
  } else if (is_letter_byte(c)) {
    t.kind = Token::word;
    while (pos < s.size() && is_letter_byte(s[pos]) && space_at(s, pos) == 0 && dash_at(s, pos) == 0) ++pos;
  } else {
    t.kind = Token::punct;
    t.p = c;
    ++pos;
  }
  t.end_at = pos;
  return t;
}

Token after(std::string_view s, const Token& t) {
  return lex(s, t.end_at);
}

// A run of digits' value (at most 9 digits), -1 otherwise.
int value_of(std::string_view s, const Token& t) {
  if (t.kind != Token::num || t.size() > 9) return -1;
  int v = 0;
  for (std::size_t i = t.begin; i < t.end_at; ++i) v = v * 10 + (s[i] - '0');
  return v;
}

bool is_num(const Token& t, std::size_t min_digits, std::size_t max_digits) {
  return t.kind == Token::num && t.size() >= min_digits && t.size() <= max_digits;
}

bool is_punct(const Token& t, const char* any_of) {
  return t.kind == Token::punct && t.p != 0 && std::strchr(any_of, t.p) != nullptr;
}

// A word in lower case: ASCII letters, and the upper-case letters of Latin-1 (U+00C0-U+00DE, "MÄRZ").
// Held in place: every word this reader looks for is shorter than `kMax` bytes, and a longer word
// is left empty (it is none of them).
class LowerWord {
 public:
  LowerWord(std::string_view s, const Token& t) {
    if (t.size() >= kMax) return;
    size_ = t.size();
    for (std::size_t i = 0; i < size_; ++i) {
      const auto c = static_cast<unsigned char>(s[t.begin + i]);
      if (c >= 'A' && c <= 'Z') {
        buf_[i] = static_cast<char>(c + 32);
      } else if (c == 0xC3 && i + 1 < size_) {
        const auto n = static_cast<unsigned char>(s[t.begin + i + 1]);
        buf_[i] = static_cast<char>(c);
        buf_[++i] = static_cast<char>(n >= 0x80 && n <= 0x9E && n != 0x97 ? n + 0x20 : n);
      } else {
        buf_[i] = static_cast<char>(c);
      }
    }
  }
  std::string_view view() const { return {buf_.data(), size_}; }
  // Whether it is `word`: its first byte compared before the rest, as a word is looked up in long
  // tables for each piece of the text.
  bool is(std::string_view word) const {
    return size_ == word.size() && size_ > 0 && buf_[0] == word[0] && view() == word;
  }

 private:
  static constexpr std::size_t kMax = 24;
  std::array<char, kMax> buf_;
  std::size_t size_ = 0;
};

bool word_is(std::string_view s, const Token& t, std::initializer_list<std::string_view> any_of) {
  if (t.kind != Token::word) return false;
  const LowerWord w(s, t);
  for (std::string_view a : any_of)
    if (w.is(a)) return true;
  return false;
}

// A month's number from its name or abbreviation, 0 for none.
int month_of(std::string_view s, const Token& t) {
  static constexpr std::pair<std::string_view, int> kMonths[] = {
      // English
      {"january", 1},
      {"jan", 1},
      {"february", 2},
      {"feb", 2},
      {"march", 3},
      {"mar", 3},
      {"april", 4},
      {"apr", 4},
      {"may", 5},
      {"june", 6},
      {"jun", 6},
      {"july", 7},
      {"jul", 7},
      {"august", 8},
      {"aug", 8},
      {"september", 9},
      {"sep", 9},
      {"sept", 9},
      {"october", 10},
      {"oct", 10},
      {"november", 11},
      {"nov", 11},
      {"december", 12},
      {"dec", 12},
      // German (and Austrian)
      {"januar", 1},
      {"jänner", 1},
      {"jän", 1},
      {"februar", 2},
      {"märz", 3},
      {"mär", 3},
      {"maerz", 3},
      {"mai", 5},
      {"juni", 6},
      {"juli", 7},
      {"oktober", 10},
      {"okt", 10},
      {"dezember", 12},
      {"dez", 12},
      // French
      {"janvier", 1},
      {"janv", 1},
      {"février", 2},
      {"févr", 2},
      {"fevrier", 2},
      {"fév", 2},
      {"mars", 3},
      {"avril", 4},
      {"avr", 4},
      {"juin", 6},
      {"juillet", 7},
      {"juil", 7},
      {"août", 8},
      {"aout", 8},
      {"septembre", 9},
      {"octobre", 10},
      {"novembre", 11},
      {"décembre", 12},
      {"decembre", 12},
      {"déc", 12},
      // Spanish
      {"enero", 1},
      {"ene", 1},
      {"febrero", 2},
      {"marzo", 3},
      {"abril", 4},
      {"abr", 4},
      {"mayo", 5},
      {"junio", 6},
      {"julio", 7},
      {"agosto", 8},
      {"ago", 8},
      {"septiembre", 9},
      {"setiembre", 9},
      {"octubre", 10},
      {"noviembre", 11},
      {"diciembre", 12},
      {"dic", 12},
      // Italian
      {"gennaio", 1},
      {"gen", 1},
      {"febbraio", 2},
      {"aprile", 4},
      {"maggio", 5},
      {"mag", 5},
      {"giugno", 6},
      {"giu", 6},
      {"luglio", 7},
      {"lug", 7},
      {"settembre", 9},
      {"set", 9},
      {"ottobre", 10},
      {"ott", 10},
      {"dicembre", 12},
      // Portuguese
      {"janeiro", 1},
      {"fevereiro", 2},
      {"fev", 2},
      {"março", 3},
      {"marco", 3},
      {"maio", 5},
      {"junho", 6},
      {"julho", 7},
      {"setembro", 9},
      {"outubro", 10},
      {"novembro", 11},
      {"dezembro", 12},
      // Dutch
      {"januari", 1},
      {"februari", 2},
      {"maart", 3},
      {"mrt", 3},
      {"mei", 5},
      {"augustus", 8},
  };
  // Looked up for nearly every word of a text: hashed, not a walk through the table.
  static const std::unordered_map<std::string_view, int> kByName(std::begin(kMonths), std::end(kMonths));
  if (t.kind != Token::word || t.size() > 12) return 0;
  const auto it = kByName.find(LowerWord(s, t).view());
  return it == kByName.end() ? 0 : it->second;
}

struct Ymd {
  int y = 0, m = 0, d = 0;
};

struct Time {
  int h = 0, m = 0, sec = 0;
  std::string fraction;  // the digits after the second's point, at most 9
  bool zone = false;
  int offset = 0;  // minutes east of UTC
  // ET, CT, MT, PT: `offset` is standard time's, an hour more while US daylight time is in force
  bool us_daylight_rule = false;
  Token next;
};

struct DateMatch {
  Ymd date;
  Token next;          // the first piece after the date
  bool iso_t = false;  // year first and followed by 'T' ("2026-03-05T14:30")
  bool ambiguous = false;
  std::optional<Time> time = std::nullopt;  // a time written inside the date ("Thu Mar  5 14:30:00 2026")
};

// Whether digits joined by `sep` go on after `last` ("10.1.12.100", "2026.03.05.1"): a version
// or an address, not a date. (The loop in read_date looks before the first.)
bool continues(std::string_view s, const Token& last, char sep) {
  const Token t = after(s, last);
  if (t.kind != Token::punct || !t.attached || t.p != sep) return false;
  const Token n = after(s, t);
  return n.kind == Token::num && n.attached;
}

// Three runs of digits joined by one and the same '-', '/' or '.', with no spaces ("2026-03-05",
// "05/03/26"), that do not go on as a version or an address would.
struct Joined {
  Token a, b, c;
};

std::optional<Joined> joined_numbers(std::string_view s, const Token& first) {
  if (first.kind != Token::num) return std::nullopt;
  const Token sep = after(s, first);
  if (!is_punct(sep, "-/.") || !sep.attached) return std::nullopt;
  const Token b = after(s, sep);
  if (b.kind != Token::num || !b.attached) return std::nullopt;
  const Token sep2 = after(s, b);
  if (sep2.kind != Token::punct || sep2.p != sep.p || !sep2.attached) return std::nullopt;
  const Token c = after(s, sep2);
  if (c.kind != Token::num || !c.attached || continues(s, c, sep.p)) return std::nullopt;
  return Joined{first, b, c};
}

// 2026-03-05, 2026/3/5, 2026.03.05
std::optional<DateMatch> year_first(std::string_view s, const Token& first) {
  const auto j = joined_numbers(s, first);
  if (!j || !is_num(j->a, 4, 4) || !is_num(j->b, 1, 2) || !is_num(j->c, 1, 2)) return std::nullopt;
  DateMatch m{{value_of(s, j->a), value_of(s, j->b), value_of(s, j->c)}, after(s, j->c)};
  m.iso_t = m.next.attached && m.next.kind == Token::word && m.next.size() == 1 && (s[m.next.begin] | 0x20) == 't';
  return m;
}

// Whether `t` is a unit of a CJK date right after its number: 年 or 년 (year), 月 or 월 (month), 日 or
// 일 (day), as `zh` and `ko` give it.
bool cjk_unit(std::string_view s, const Token& t, std::string_view zh, std::string_view ko) {
  if (t.kind != Token::word || !t.attached) return false;
  const std::string_view w = s.substr(t.begin, t.size());
  return w.starts_with(zh) || w.starts_with(ko);
}
constexpr std::string_view kYearZh = "\xE5\xB9\xB4", kYearKo = "\xEB\x85\x84";    // 年, 년
constexpr std::string_view kMonthZh = "\xE6\x9C\x88", kMonthKo = "\xEC\x9B\x94";  // 月, 월
constexpr std::string_view kDayZh = "\xE6\x97\xA5", kDayKo = "\xEC\x9D\xBC";      // 日, 일

// 2026年3月5日, 2026년 3월 5일
std::optional<DateMatch> year_first_cjk(std::string_view s, const Token& first) {
  if (!is_num(first, 4, 4)) return std::nullopt;
  const Token y = after(s, first);
  if (!cjk_unit(s, y, kYearZh, kYearKo)) return std::nullopt;
  const Token month = after(s, y);
  if (!is_num(month, 1, 2)) return std::nullopt;
  const Token mo = after(s, month);
  if (!cjk_unit(s, mo, kMonthZh, kMonthKo)) return std::nullopt;
  const Token day = after(s, mo);
  if (!is_num(day, 1, 2)) return std::nullopt;
  const Token d = after(s, day);
  if (!cjk_unit(s, d, kDayZh, kDayKo)) return std::nullopt;
  // The unit may run into the next word ("5日に"): the date ends after its three bytes.
  Token next = lex(s, d.begin + 3);
  return DateMatch{{value_of(s, first), value_of(s, month), value_of(s, day)}, next};
}

int full_year(const Token& t, int year) {
  if (t.size() == 2) return year < 69 ? 2000 + year : 1900 + year;
  return year;
}

// 05/03/2026, 5.3.2026, 05-03-26
std::optional<DateMatch> numbers_only(std::string_view s, const Token& first, DateOrder order) {
  const auto j = joined_numbers(s, first);
  if (!j || !is_num(j->a, 1, 2) || !is_num(j->b, 1, 2) || !(is_num(j->c, 4, 4) || is_num(j->c, 2, 2))) {
    return std::nullopt;
  }
  const int a = value_of(s, j->a), b = value_of(s, j->b);
  DateMatch m{{full_year(j->c, value_of(s, j->c)), 0, 0}, after(s, j->c)};
  DateOrder take = order;
  if (take == DateOrder::unset) {
    if (a > 12 && b <= 12) {
      take = DateOrder::dmy;
    } else if (b > 12 && a <= 12) {
      take = DateOrder::mdy;
    } else {
      m.ambiguous = true;
      return m;
    }
  }
  m.date.d = take == DateOrder::dmy ? a : b;
  m.date.m = take == DateOrder::dmy ? b : a;
  return m;
}

// An ordinal's ending after a day: 5th, 1st, 1er, 5º, 5ª.
bool is_ordinal(std::string_view s, const Token& t) {
  return t.attached && word_is(s, t, {"st", "nd", "rd", "th", "er", "\xC2\xBA", "\xC2\xAA"});
}

// A year after a month's name: four digits, or two after a dash ("05-Mar-26", as RFC 850 writes).
std::optional<int> year_at(std::string_view s, const Token& t, bool dashed) {
  if (is_num(t, 4, 4)) return value_of(s, t);
  if (dashed && t.attached && is_num(t, 2, 2)) return full_year(t, value_of(s, t));
  return std::nullopt;
}

// March 5, 2026; Mar. 5th 2026; Mar-05-2026
std::optional<DateMatch> month_first(std::string_view s, const Token& first) {
  const int month = month_of(s, first);
  if (month == 0) return std::nullopt;
  Token t = after(s, first);
  if (is_punct(t, ".") && t.attached) t = after(s, t);
  if (is_punct(t, "-/")) t = after(s, t);
  if (!is_num(t, 1, 2)) return std::nullopt;
  const int day = value_of(s, t);
  t = after(s, t);
  if (is_ordinal(s, t)) t = after(s, t);
  const bool dashed = is_punct(t, "-");
  if (is_punct(t, ",-/")) t = after(s, t);
  const auto year = year_at(s, t, dashed);
  if (!year) return std::nullopt;
  return DateMatch{{*year, month, day}, after(s, t)};
}

// 5 March 2026; 5. März 2026; 05-Mar-2026; 5th of March, 2026; 5 de marzo de 2026
std::optional<DateMatch> day_first(std::string_view s, const Token& first) {
  if (!is_num(first, 1, 2)) return std::nullopt;
  Token t = after(s, first);
  if (is_ordinal(s, t) || (is_punct(t, ".") && t.attached)) t = after(s, t);
  if (word_is(s, t, {"of", "de"})) t = after(s, t);
  if (is_punct(t, "-/")) t = after(s, t);
  const int month = month_of(s, t);
  if (month == 0) return std::nullopt;
  t = after(s, t);
  if (is_punct(t, ".") && t.attached) t = after(s, t);
  const bool dashed = is_punct(t, "-");
  if (is_punct(t, ",-/")) t = after(s, t);
  if (word_is(s, t, {"de", "del"})) t = after(s, t);
  const auto year = year_at(s, t, dashed);
  if (!year) return std::nullopt;
  return DateMatch{{*year, month, value_of(s, first)}, after(s, t)};
}

// A month without its day: "March 2026", "Mar. 2026", "März 2026", "marzo de 2026", "2026年3月",
// as "2026-03"; nullopt when a day stands before the month ("31 April 2026", "the 31st of April,
// 2026" are no date, not April). `before` holds the pieces before `first`, the nearest first.
std::optional<std::string> month_year(std::string_view s, const Token& first, std::span<const Token> before) {
  int year = 0, month = 0;
  if (is_num(first, 4, 4)) {
    const Token y = after(s, first);
    if (!cjk_unit(s, y, kYearZh, kYearKo)) return std::nullopt;
    const Token m = after(s, y);
    if (!is_num(m, 1, 2) || !cjk_unit(s, after(s, m), kMonthZh, kMonthKo)) return std::nullopt;
    if (is_num(after(s, after(s, m)), 1, 2)) return std::nullopt;  // a day that is no date: 2026年2月30日
    year = value_of(s, first);
    month = value_of(s, m);
  } else {
    month = month_of(s, first);
    if (month == 0) return std::nullopt;
    std::size_t back = 0;  // 31 | 31. | 31- | 31st | 31 of | 31st of | 31 de
    if (back < before.size() && word_is(s, before[back], {"of", "de"})) ++back;
    if (back < before.size() && (is_ordinal(s, before[back]) || is_punct(before[back], ".-/"))) ++back;
    if (back < before.size() && is_num(before[back], 1, 2)) return std::nullopt;
    Token t = after(s, first);
    if (is_punct(t, ".") && t.attached) t = after(s, t);
    if (is_punct(t, ",")) t = after(s, t);
    if (word_is(s, t, {"de", "del"})) t = after(s, t);
    if (!is_num(t, 4, 4)) return std::nullopt;
    const Token next = after(s, t);
    if (next.attached && (next.kind == Token::num || is_punct(next, "-/.:"))) return std::nullopt;  // 2026-04, 2026.1
    year = value_of(s, t);
  }
  if (year < 1 || month < 1 || month > 12) return std::nullopt;
  return fmt::format("{:04}-{:02}", year, month);
}

// "pm", "PM", "p.m." after a time: 1 for pm, 0 for am, -1 for none; `t` moves past it.
int meridiem(std::string_view s, Token& t) {
  if (word_is(s, t, {"am", "pm"})) {
    const bool pm = (s[t.begin] | 0x20) == 'p';
    t = after(s, t);
    return pm ? 1 : 0;
  }
  if (word_is(s, t, {"a", "p"})) {
    const bool pm = (s[t.begin] | 0x20) == 'p';
    const Token dot = after(s, t);
    const Token m = after(s, dot);
    const Token dot2 = after(s, m);
    if (is_punct(dot, ".") && dot.attached && word_is(s, m, {"m"}) && m.attached) {
      t = is_punct(dot2, ".") && dot2.attached ? after(s, dot2) : after(s, m);
      return pm ? 1 : 0;
    }
  }
  return -1;
}

// A zone after a time; `t` moves past it. `minus_ok`: whether "-05:00" right after the time is an
// offset and not the dash of a range ("10:00-11:00"): after seconds, or in an ISO 8601 date's time.
// With a space before it, a '-' starts an offset only in RFC 2822's four digits ("-0500").
void zone_of(std::string_view s, Token& t, bool minus_ok, Time& time) {
  // Names that stand for one offset only (not IST or AST, which stand for several), and are no
  // English word a time might be followed by (not WEST, WET or EAT). Other than Z, UTC and GMT they
  // count only in capitals, as zones are written: French "à 14h30 est annulé" has no zone.
  static constexpr std::pair<std::string_view, int> kZones[] = {
      {"z", 0},      {"utc", 0},    {"gmt", 0},                                                    // UTC
      {"est", -300}, {"edt", -240}, {"cst", -360}, {"cdt", -300},  {"mst", -420},                  // North America
      {"mdt", -360}, {"pst", -480}, {"pdt", -420}, {"akst", -540}, {"akdt", -480}, {"hst", -600},  //
      {"bst", 60},   {"cet", 60},   {"cest", 120}, {"mez", 60},                                    // Europe
      {"mesz", 120}, {"eet", 120},  {"eest", 180}, {"msk", 180},                                   //
      {"jst", 540},  {"kst", 540},  {"hkt", 480},  {"sgt", 480},                                   // Asia
      {"awst", 480}, {"acst", 570}, {"acdt", 630}, {"aest", 600},  {"aedt", 660},                  // Australia
      {"nzst", 720}, {"nzdt", 780},                                                                // New Zealand
  };
  // US time zones named without saying standard or daylight time, as US news sites write them
  // ("3:15 p.m. ET"): the date tells which.
  static constexpr std::pair<std::string_view, int> kUsZones[] = {
      {"ET", -300}, {"CT", -360}, {"MT", -420}, {"PT", -480}};
  if (t.kind == Token::word && t.size() <= 4) {
    const LowerWord w(s, t);
    const std::string_view written = s.substr(t.begin, t.size());
    const bool capitals = std::all_of(written.begin(), written.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
    for (const auto& [name, offset] : kUsZones) {
      if (written != name) continue;
      time.zone = true;
      time.offset = offset;
      time.us_daylight_rule = true;
      t = after(s, t);
      return;
    }
    for (const auto& [name, offset] : kZones) {
      if (!w.is(name) || (name == "z" && !t.attached)) continue;
      if (!capitals && name != "z" && name != "utc" && name != "gmt") break;
      time.zone = true;
      time.offset = offset;
      t = after(s, t);
      if (offset != 0 || name == "z") return;
      minus_ok = t.attached;  // "GMT+1", "UTC-05:00"
      break;
    }
  }
  const bool utc_named = time.zone;
  if (!is_punct(t, "+-")) return;
  const bool minus = t.p == '-';
  const Token hours = after(s, t);
  if (!hours.attached || !(is_num(hours, 1, 2) || is_num(hours, 4, 4))) return;
  if (minus && !(minus_ok && t.attached) && !(hours.size() == 4 && !t.attached)) return;
  if (hours.size() == 1 && !utc_named) return;
  int h = value_of(s, hours), m = 0;
  Token next = after(s, hours);
  if (hours.size() == 4) {
    m = h % 100;
    h /= 100;
  } else if (is_punct(next, ":") && next.attached) {
    const Token mins = after(s, next);
    if (!is_num(mins, 2, 2) || !mins.attached) return;
    m = value_of(s, mins);
    next = after(s, mins);
  }
  if (h > 14 || m > 59) return;
  time.zone = true;
  time.offset = (minus ? -1 : 1) * (h * 60 + m);
  t = next;
}

// A time at `t`: 14:30, 14:30:15.250, 2:30 pm, 2 pm, 14h30, with a zone after it.
std::optional<Time> time_at(std::string_view s, Token t, bool iso_t) {
  if (!is_num(t, 1, 2)) return std::nullopt;
  Time time;
  time.h = value_of(s, t);
  t = after(s, t);
  bool minutes = false, seconds = false;
  if ((is_punct(t, ":") || word_is(s, t, {"h"})) && t.attached) {
    const Token mins = after(s, t);
    if (is_num(mins, 2, 2) && mins.attached) {
      minutes = true;
      time.m = value_of(s, mins);
      t = after(s, mins);
    }
  }
  if (minutes && is_punct(t, ":") && t.attached) {
    const Token secs = after(s, t);
    if (!is_num(secs, 2, 2) || !secs.attached) return std::nullopt;
    seconds = true;
    time.sec = value_of(s, secs);
    t = after(s, secs);
    if (is_punct(t, ".,") && t.attached) {
      const Token frac = after(s, t);
      if (frac.kind == Token::num && frac.attached) {
        time.fraction = std::string(s.substr(frac.begin, std::min<std::size_t>(frac.size(), 9)));
        t = after(s, frac);
      }
    }
  }
  const Token before_meridiem = t;
  int pm = meridiem(s, t);
  if (pm >= 0 && minutes && time.h > 12) {
    // "14:30 am 5. März": German's "am" (on the), not a.m.
    pm = -1;
    t = before_meridiem;
  }
  if (!minutes && pm < 0) return std::nullopt;  // a lone number is no time
  if (pm >= 0) {
    if (time.h < 1 || time.h > 12) return std::nullopt;
    time.h = time.h % 12 + (pm == 1 ? 12 : 0);
  }
  if (time.h > 23 || time.m > 59 || time.sec > 60) return std::nullopt;
  time.sec = std::min(time.sec, 59);  // a leap second
  zone_of(s, t, iso_t || seconds, time);
  time.next = t;
  return time;
}

// ISO 8601's basic format, as iCalendar writes it: 20260305T143000Z, 20260305T1430,
// 20260305T143000+0100. Eight digits alone may be any number: they are none.
std::optional<DateMatch> basic_iso(std::string_view s, const Token& first) {
  if (!is_num(first, 8, 8)) return std::nullopt;
  const Token t_mark = after(s, first);
  if (t_mark.kind != Token::word || !t_mark.attached || t_mark.size() != 1 || (s[t_mark.begin] | 0x20) != 't') {
    return std::nullopt;
  }
  const Token clock = after(s, t_mark);
  if (!clock.attached || !(is_num(clock, 4, 4) || is_num(clock, 6, 6))) return std::nullopt;
  Time time;
  const int hms = value_of(s, clock) * (clock.size() == 4 ? 100 : 1);
  time.h = hms / 10000;
  time.m = hms / 100 % 100;
  time.sec = hms % 100;
  if (time.h > 23 || time.m > 59 || time.sec > 60) return std::nullopt;
  time.sec = std::min(time.sec, 59);  // a leap second
  Token t = after(s, clock);
  zone_of(s, t, true, time);
  time.next = t;
  const int date = value_of(s, first);
  DateMatch m{{date / 10000, date / 100 % 100, date % 100}, t};
  m.time = std::move(time);
  return m;
}

// The year after the time: "Thu Mar  5 14:30:00 2026" (C's asctime, and ctime's logs), "Thu Mar 05
// 14:30:00 +0000 2026" (Twitter's created_at), "Thu Mar  5 14:30:00 UTC 2026" (date(1)).
std::optional<DateMatch> month_day_time_year(std::string_view s, const Token& first) {
  const int month = month_of(s, first);
  if (month == 0) return std::nullopt;
  const Token day = after(s, first);
  if (!is_num(day, 1, 2)) return std::nullopt;
  auto time = time_at(s, after(s, day), false);
  if (!time || !is_num(time->next, 4, 4)) return std::nullopt;
  DateMatch m{{value_of(s, time->next), month, value_of(s, day)}, after(s, time->next)};
  m.time = std::move(time);
  return m;
}

// Words and marks that may stand between a date and its time ("at", "um", "à", ",", "T", "|").
Token skip_joiners(std::string_view s, Token t) {
  for (int i = 0; i < 3; ++i) {
    if (is_punct(t, ",-|@;") ||
        word_is(s, t,
                {"t", "at", "um", "à", "a", "às", "las", "om", "alle", "ore", "kl", "klo", "on", "le", "am", "uhr"})) {
      t = after(s, t);
      continue;
    }
    if (s.substr(t.begin).starts_with("\xC2\xB7")) {  // U+00B7 MIDDLE DOT
      t = lex(s, t.begin + 2);
      continue;
    }
    break;
  }
  return t;
}

// Whether US daylight saving time is in force at a local time on `date`, by the rule the US has
// kept since 2007: from 2:00 on the second Sunday of March to 2:00 on the first Sunday of November
// (the hour from 1:00 that November day comes twice; it is read as the first, daylight time).
bool us_daylight(const std::chrono::year_month_day& date, int hour) {
  using namespace std::chrono;
  const sys_days begin{year_month_weekday{date.year(), March, Sunday[2]}};
  const sys_days end{year_month_weekday{date.year(), November, Sunday[1]}};
  const sys_days day{date};
  if (day < begin || day > end) return false;
  if (day == begin) return hour >= 2;
  if (day == end) return hour < 2;
  return true;
}

std::optional<std::string> iso_text(const Ymd& date, const Time* time) {
  using namespace std::chrono;
  year_month_day ymd{year{date.y}, month{static_cast<unsigned>(date.m)}, day{static_cast<unsigned>(date.d)}};
  if (date.y < 1 || date.y > 9999 || !ymd.ok()) return std::nullopt;
  if (!time) return fmt::format("{:04}-{:02}-{:02}", date.y, date.m, date.d);
  auto moment = sys_days(ymd) + hours(time->h) + minutes(time->m) + std::chrono::seconds(time->sec);
  if (time->zone) moment -= minutes(time->offset + (time->us_daylight_rule && us_daylight(ymd, time->h) ? 60 : 0));
  const auto days = floor<std::chrono::days>(moment);
  const year_month_day out{days};
  const hh_mm_ss clock{moment - days};
  const int y = static_cast<int>(out.year());
  if (y < 1 || y > 9999) return std::nullopt;
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}{}{}", y, static_cast<unsigned>(out.month()),
                     static_cast<unsigned>(out.day()), clock.hours().count(), clock.minutes().count(),
                     clock.seconds().count(), time->fraction.empty() ? "" : ".", time->fraction, time->zone ? "Z" : "");
}

enum class Unit { second, minute, hour, day, week, month, year };

// A unit of a relative date, in English, German, French or Spanish ("3 hours ago", "3h ago", "vor
// 3 Stunden", "il y a 3 heures", "hace 3 horas").
std::optional<Unit> unit_of(std::string_view s, const Token& t) {
  static constexpr std::pair<std::string_view, Unit> kUnits[] = {
      {"s", Unit::second},        {"sec", Unit::second},     {"secs", Unit::second},     {"second", Unit::second},
      {"seconds", Unit::second},  {"sekunde", Unit::second}, {"sekunden", Unit::second}, {"seconde", Unit::second},
      {"secondes", Unit::second}, {"segundo", Unit::second}, {"segundos", Unit::second}, {"m", Unit::minute},
      {"min", Unit::minute},      {"mins", Unit::minute},    {"minute", Unit::minute},   {"minutes", Unit::minute},
      {"minuten", Unit::minute},  {"minuto", Unit::minute},  {"minutos", Unit::minute},  {"h", Unit::hour},
      {"hr", Unit::hour},         {"hrs", Unit::hour},       {"hour", Unit::hour},       {"hours", Unit::hour},
      {"stunde", Unit::hour},     {"stunden", Unit::hour},   {"heure", Unit::hour},      {"heures", Unit::hour},
      {"hora", Unit::hour},       {"horas", Unit::hour},     {"d", Unit::day},           {"day", Unit::day},
      {"days", Unit::day},        {"tag", Unit::day},        {"tagen", Unit::day},       {"jour", Unit::day},
      {"jours", Unit::day},       {"día", Unit::day},        {"días", Unit::day},        {"dia", Unit::day},
      {"dias", Unit::day},        {"w", Unit::week},         {"wk", Unit::week},         {"wks", Unit::week},
      {"week", Unit::week},       {"weeks", Unit::week},     {"woche", Unit::week},      {"wochen", Unit::week},
      {"semaine", Unit::week},    {"semaines", Unit::week},  {"semana", Unit::week},     {"semanas", Unit::week},
      {"mo", Unit::month},        {"mos", Unit::month},      {"month", Unit::month},     {"months", Unit::month},
      {"monat", Unit::month},     {"monaten", Unit::month},  {"mois", Unit::month},      {"mes", Unit::month},
      {"meses", Unit::month},     {"y", Unit::year},         {"yr", Unit::year},         {"yrs", Unit::year},
      {"year", Unit::year},       {"years", Unit::year},     {"jahr", Unit::year},       {"jahren", Unit::year},
      {"an", Unit::year},         {"ans", Unit::year},       {"année", Unit::year},      {"années", Unit::year},
      {"año", Unit::year},        {"años", Unit::year},
  };
  if (t.kind != Token::word || t.size() > 10) return std::nullopt;
  const LowerWord w(s, t);
  for (const auto& [name, unit] : kUnits)
    if (w.is(name)) return unit;
  return std::nullopt;
}

// The count before a unit: digits, or "a", "an", "one", "einer", "une", "un", "una" (one).
std::optional<int> count_of(std::string_view s, const Token& t) {
  if (is_num(t, 1, 4)) return value_of(s, t);
  if (word_is(s, t, {"a", "an", "one", "ein", "einer", "einem", "une", "un", "una"})) return 1;
  return std::nullopt;
}

// A moment as ISO 8601 text in UTC: "2024-03-05T14:46:40Z", with ".250" for a fraction of a second.
std::string moment_text(std::chrono::sys_time<std::chrono::milliseconds> moment) {
  using namespace std::chrono;
  const auto whole = floor<seconds>(moment);
  const auto fraction = (moment - whole).count();
  return utc_text(whole, fraction == 0 ? std::string() : fmt::format(".{:03}", fraction));
}

// A date `count` units before `now`: the moment in UTC for seconds, minutes and hours, the day
// (in UTC) for longer units, whose precision is a day at best.
std::optional<std::string> before_now(std::chrono::sys_seconds now, Unit unit, int count) {
  using namespace std::chrono;
  switch (unit) {
    case Unit::second:
      return moment_text(now - seconds(count));
    case Unit::minute:
      return moment_text(now - minutes(count));
    case Unit::hour:
      return moment_text(now - hours(count));
    default:
      break;
  }
  const auto today = floor<days>(now);
  year_month_day ymd{today - days(unit == Unit::day ? count : unit == Unit::week ? 7 * count : 0)};
  if (unit == Unit::month) ymd = ymd - months(count);
  if (unit == Unit::year) ymd = ymd - years(count);
  if (!ymd.ok()) ymd = year_month_day_last(ymd.year(), month_day_last(ymd.month()));  // 31 March - 1 month
  return iso_text({static_cast<int>(ymd.year()), static_cast<int>(static_cast<unsigned>(ymd.month())),
                   static_cast<int>(static_cast<unsigned>(ymd.day()))},
                  nullptr);
}

// "yesterday", "today", "tomorrow" and their German, French and Spanish words: days from today.
std::optional<int> day_word(std::string_view s, const Token& t, Token& next) {
  next = after(s, t);
  if (word_is(s, t, {"yesterday", "gestern", "ayer"})) return -1;
  if (word_is(s, t, {"today", "heute", "hoy"})) return 0;
  if (word_is(s, t, {"tomorrow"})) return 1;
  if (word_is(s, t, {"aujourd"}) && is_punct(next, "'") && word_is(s, after(s, next), {"hui"})) {
    next = after(s, after(s, next));
    return 0;
  }
  if (word_is(s, t, {"aujourd\xE2\x80\x99hui"})) return 0;  // with a typographic apostrophe
  return std::nullopt;
}

// A day and month without a year: "March 5", "Mar. 5th", "5 March", "5. März", "the 5th of March",
// "5 de marzo", as a site writes the dates of the current year. Its year is the one that puts it
// nearest to `now` (`date.y` is left 0 here). Not when a year follows: that date was read whole,
// or does not exist ("29 February 2027"). Not for a month's abbreviation that is also a word a
// number goes with ("5 set", "2 ago").
std::optional<DateMatch> day_month(std::string_view s, const Token& first) {
  const auto is_word_too = [&](const Token& t) { return word_is(s, t, {"set", "ago", "gen", "mag"}); };
  int month = 0, day = 0;
  Token t;
  if ((month = month_of(s, first)) != 0) {
    if (is_word_too(first)) return std::nullopt;
    t = after(s, first);
    if (is_punct(t, ".") && t.attached) t = after(s, t);
    if (!is_num(t, 1, 2)) return std::nullopt;
    day = value_of(s, t);
    t = after(s, t);
    if (is_ordinal(s, t)) t = after(s, t);
  } else if (is_num(first, 1, 2)) {
    t = after(s, first);
    if (is_ordinal(s, t) || (is_punct(t, ".") && t.attached)) t = after(s, t);
    if (word_is(s, t, {"of", "de"})) t = after(s, t);
    month = month_of(s, t);
    if (month == 0 || is_word_too(t)) return std::nullopt;
    day = value_of(s, first);
    t = after(s, t);
    if (is_punct(t, ".") && t.attached) t = after(s, t);
  } else {
    return std::nullopt;
  }
  Token year = t;
  if (is_punct(year, ",-/'")) year = after(s, year);
  if (word_is(s, year, {"de", "del"})) year = after(s, year);
  if (is_num(year, 4, 4) || (is_num(year, 2, 2) && year.attached)) return std::nullopt;
  return DateMatch{{0, month, day}, t};
}

// The year that puts `month` and `day` nearest to `now`: the year before it, its own or the next
// ("Dec 30" read on 2 January is last year's). None for a day no such year has (31 April).
std::optional<int> nearest_year(int month, int day, std::chrono::sys_seconds now) {
  using namespace std::chrono;
  const auto today = floor<days>(now);
  const int this_year = static_cast<int>(year_month_day{today}.year());
  std::optional<int> best;
  days best_distance{};
  for (int y = this_year - 1; y <= this_year + 1; ++y) {
    const year_month_day ymd{year{y}, std::chrono::month{static_cast<unsigned>(month)},
                             std::chrono::day{static_cast<unsigned>(day)}};
    if (!ymd.ok()) continue;
    const days distance = abs(sys_days(ymd) - today);
    if (!best || distance < best_distance) {
      best = y;
      best_distance = distance;
    }
  }
  return best;
}

// A relative date in `s` against `now`: "3 hours ago", "an hour ago", "3h ago", "vor 3 Stunden",
// "il y a 3 jours", "hace 2 días", "just now", "yesterday at 14:30", "heute, 9:15".
std::optional<std::string> relative_date(std::string_view s, std::chrono::sys_seconds now) {
  Token prev, prev2;
  for (Token t = lex(s, 0); t.kind != Token::end; prev2 = prev, prev = t, t = after(s, t)) {
    if (word_is(s, t, {"just", "right"}) && word_is(s, after(s, t), {"now"})) return moment_text(now);
    Token next;
    if (const auto days = day_word(s, t, next)) {
      const auto day =
          std::chrono::year_month_day{std::chrono::floor<std::chrono::days>(now) + std::chrono::days(*days)};
      const Ymd date{static_cast<int>(day.year()), static_cast<int>(static_cast<unsigned>(day.month())),
                     static_cast<int>(static_cast<unsigned>(day.day()))};
      const std::optional<Time> time = time_at(s, skip_joiners(s, next), false);
      return iso_text(date, time ? &*time : nullptr);
    }
    const auto count = count_of(s, t);
    if (!count) continue;
    const Token unit_token = after(s, t);
    const auto unit = unit_of(s, unit_token);
    if (!unit) continue;
    const bool ago = word_is(s, after(s, unit_token), {"ago"});
    const bool before = word_is(s, prev, {"vor", "hace"}) || (word_is(s, prev, {"a"}) && word_is(s, prev2, {"y"}));
    if (ago || before) return before_now(now, *unit, *count);
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> read_date(std::string_view s, DateOrder order, std::optional<double> now) {
  // Texts that are a date as a whole, and only then (in other text, "2026-03" may be a part
  // number and "3/2026" a page).
  const std::string_view whole = nodes::trim(s, " \t\r\n");
  auto digits_only = [](std::string_view t) { return t.find_first_not_of("0123456789") == std::string_view::npos; };
  // A Unix time, as a data-timestamp attribute holds one: 9 to 13 digits.
  if (whole.size() >= 9 && whole.size() <= 13 && digits_only(whole)) {
    return date_of_epoch(std::stod(std::string(whole)));
  }
  // A year and a month in ISO 8601, as read_date gives a month without its day ("2026-03"): it
  // reads back as itself.
  if (whole.size() == 7 && whole[4] == '-' && digits_only(whole.substr(0, 4)) && digits_only(whole.substr(5))) {
    const int year = std::stoi(std::string(whole.substr(0, 4))), month = std::stoi(std::string(whole.substr(5)));
    if (year >= 1 && month >= 1 && month <= 12) return std::string(whole);
    return std::nullopt;
  }
  // A month and its year in numbers, as card expiry and "as of" dates are written ("03/2026",
  // "3/2026", "03.2026"): "2026-03".
  if (whole.size() == 6 || whole.size() == 7) {
    const std::size_t sep = whole.size() - 5;
    const std::string_view month_digits = whole.substr(0, sep), year = whole.substr(sep + 1);
    if ((whole[sep] == '/' || whole[sep] == '.') && digits_only(month_digits) && digits_only(year) && year[0] != '0') {
      const int month = std::stoi(std::string(month_digits));
      if (month >= 1 && month <= 12) return fmt::format("{}-{:02d}", year, month);
      return std::nullopt;
    }
  }
  // The last pieces before the current one: what a number-only date must not continue, and where a
  // time written before its date ("14:30, 5 March 2026") starts.
  std::array<Token, 8> recent{};
  std::size_t seen = 0;
  std::optional<std::string> month;  // the first month without its day, for a text with no date
  // The first day and month without a year, and its time, for a text with neither; read only with
  // `now`, which gives the year.
  const bool fetched = now && std::isfinite(*now) && *now >= 0 && *now <= 253402300799.0;
  const std::chrono::sys_seconds fetched_at{std::chrono::seconds(fetched ? static_cast<std::int64_t>(*now) : 0)};
  std::optional<DateMatch> no_year;
  std::optional<Time> no_year_time;
  for (Token t = lex(s, 0); t.kind != Token::end; t = after(s, t)) {
    const Token* prev = seen >= 1 ? &recent[(seen - 1) % recent.size()] : nullptr;
    const Token* prev2 = seen >= 2 ? &recent[(seen - 2) % recent.size()] : nullptr;
    // "1.2026.03.05" or "10.1.12.100": a number-only date that goes on before its first number.
    const bool continued =
        t.attached && prev && prev2 && is_punct(*prev, "-/.") && prev->attached && prev2->kind == Token::num;
    // The time after the date at `t`, or right before it: try each of the last pieces as its start.
    const auto time_of = [&](const DateMatch& date) -> std::optional<Time> {
      if (date.time) return date.time;
      if (auto time = time_at(s, skip_joiners(s, date.next), date.iso_t)) return time;
      for (std::size_t back = std::min(seen, recent.size()); back >= 1; --back) {
        const Token& start = recent[(seen - back) % recent.size()];
        auto before = time_at(s, start, false);
        if (before && skip_joiners(s, before->next).begin == t.begin) return before;
      }
      return std::nullopt;
    };
    std::optional<DateMatch> m;
    if (!continued) m = year_first(s, t);
    if (!m) m = year_first_cjk(s, t);
    if (!m && !continued) m = numbers_only(s, t, order);
    if (!m) m = month_first(s, t);
    if (!m) m = day_first(s, t);
    if (!m) m = month_day_time_year(s, t);
    if (!m) m = basic_iso(s, t);
    if (m && !m->ambiguous) {
      const std::optional<Time> time = time_of(*m);
      if (auto text = iso_text(m->date, time ? &*time : nullptr)) return text;
    }
    if (!m && !month) {
      std::array<Token, 3> before;
      const std::size_t n = std::min<std::size_t>(seen, before.size());
      for (std::size_t i = 0; i < n; ++i) before[i] = recent[(seen - 1 - i) % recent.size()];
      month = month_year(s, t, std::span<const Token>(before.data(), n));
    }
    if (!m && !month && !no_year && fetched) {
      if (auto dm = day_month(s, t)) {
        no_year = std::move(dm);
        no_year_time = time_of(*no_year);
      }
    }
    recent[seen % recent.size()] = t;
    ++seen;
  }
  if (month) return month;
  if (!fetched) return std::nullopt;
  if (no_year) {
    if (const auto year = nearest_year(no_year->date.m, no_year->date.d, fetched_at)) {
      no_year->date.y = *year;
      if (auto text = iso_text(no_year->date, no_year_time ? &*no_year_time : nullptr)) return text;
    }
  }
  return relative_date(s, fetched_at);
}

std::string utc_text(std::chrono::sys_seconds moment, std::string_view fraction) {
  using namespace std::chrono;
  const auto days = floor<std::chrono::days>(moment);
  const year_month_day ymd{days};
  const hh_mm_ss clock{moment - days};
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}Z", static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()), clock.hours().count(),
                     clock.minutes().count(), clock.seconds().count(), fraction);
}

std::optional<std::string> date_of_epoch(double seconds) {
  if (!std::isfinite(seconds)) return std::nullopt;
  if (std::fabs(seconds) >= 1e11) seconds /= 1000;
  if (seconds < -62135596800.0 || seconds >= 253402300800.0) return std::nullopt;  // the years 1-9999
  const auto ms = static_cast<std::int64_t>(std::llround(seconds * 1000));
  return moment_text(std::chrono::sys_time<std::chrono::milliseconds>(std::chrono::milliseconds(ms)));
}

}  // namespace sluice::parse
