#include "number.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <string>
#include <vector>

namespace sluice::parse {
namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool is_alnum(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (static_cast<unsigned char>(c) & 0x80);
}

std::size_t digits_at(std::string_view s, std::size_t i) {
  std::size_t n = 0;
  while (i + n < s.size() && is_digit(s[i + n])) ++n;
  return n;
}

// The length of a thousands separator at s[i], 0 for none: the other of ',' and '.', a space, a
// no-break space (U+00A0, U+202F), a thin space (U+2009), an apostrophe (' or U+2019).
std::size_t group_separator_at(std::string_view s, std::size_t i, char decimal) {
  if (i >= s.size()) return 0;
  const char c = s[i];
  if (c == ',' || c == '.') return c == decimal ? 0 : 1;
  if (c == ' ' || c == '\'') return 1;
  const std::string_view rest = s.substr(i);
  if (rest.starts_with("\xC2\xA0")) return 2;
  if (rest.starts_with("\xE2\x80\xAF") || rest.starts_with("\xE2\x80\x89") || rest.starts_with("\xE2\x80\x99")) {
    return 3;
  }
  return 0;
}

// Whether the number starting at s[start] has a sign right before it, and which.
bool negative_before(std::string_view s, std::size_t start) {
  std::size_t sign = 0;  // the sign's length
  bool minus = false;
  if (start >= 1 && (s[start - 1] == '-' || s[start - 1] == '+')) {
    sign = 1;
    minus = s[start - 1] == '-';
  } else if (start >= 3 && s.substr(start - 3, 3) == "\xE2\x88\x92") {  // U+2212 MINUS SIGN
    sign = 3;
    minus = true;
  }
  if (sign == 0) return false;
  const std::size_t at = start - sign;
  return minus && (at == 0 || !is_alnum(s[at - 1]));
}

}  // namespace

std::optional<Value> read_number(std::string_view s, NumberType type, char decimal) {
  std::size_t start = 0;
  while (start < s.size() && !is_digit(s[start]) &&
         !(s[start] == decimal && start + 1 < s.size() && is_digit(s[start + 1]))) {
    ++start;
  }
  if (start == s.size()) return std::nullopt;
  const bool negative = negative_before(s, start);
  std::string whole;  // the integer part's digits, separators left out
  std::size_t i = start;
  const std::size_t lead = digits_at(s, i);
  whole.append(s.substr(i, lead));
  i += lead;
  if (lead >= 1 && lead <= 3) {
    // Groups of three ("1,299,000"), or India's lakh and crore: groups of two with commas before
    // the last three ("1,29,999", "12,34,56,789"). Other groups are not read, which leaves a
    // separator and a digit after the number: none, below.
    struct Group {
      std::size_t at, sep, digits;
    };
    std::vector<Group> groups;
    for (std::size_t j = i;;) {
      const std::size_t sep = group_separator_at(s, j, decimal);
      const std::size_t n = sep == 0 ? 0 : digits_at(s, j + sep);
      if (n != 3 && !(n == 2 && s[j] == ',')) break;
      groups.push_back({j, sep, n});
      j += sep + n;
    }
    const auto twos = static_cast<std::size_t>(
        std::find_if(groups.begin(), groups.end(), [](const Group& g) { return g.digits != 2; }) - groups.begin());
    const bool lakh = lead <= 2 && twos > 0 && twos + 1 == groups.size() && groups.back().digits == 3;
    std::size_t take = 0;  // the groups read
    if (lakh) {
      take = groups.size();
    } else {
      while (take < groups.size() && groups[take].digits == 3) ++take;
    }
    for (std::size_t g = 0; g < take; ++g) {
      whole.append(s.substr(groups[g].at + groups[g].sep, groups[g].digits));
      i = groups[g].at + groups[g].sep + groups[g].digits;
    }
  }
  std::string fraction;
  if (i + 1 < s.size() && s[i] == decimal && is_digit(s[i + 1])) {
    const std::size_t n = digits_at(s, i + 1);
    fraction.assign(s.substr(i + 1, n));
    i += 1 + n;
  }
  // A separator and a digit right after what was read: the number goes on in a way `decimal` does
  // not read ("12,5" or "1,00,000" with '.'; "1,299.00" with ','). Stopping there would give a wrong
  // number, so there is none. (A space after a number only ends it: "2 for 5".)
  if (i + 1 < s.size() && (s[i] == ',' || s[i] == '.' || s[i] == '\'') && is_digit(s[i + 1])) return std::nullopt;
  std::string exponent;
  if (i + 1 < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    std::size_t j = i + 1;
    if (s[j] == '+' || s[j] == '-') ++j;
    const std::size_t n = digits_at(s, j);
    if (n > 0 && !(j + n < s.size() && is_alnum(s[j + n]))) {  // "1e5", not "5each" or "3e4x"
      exponent.assign(s.substr(i, j + n - i));
      i = j + n;
    }
  }
  if (whole.empty()) whole.push_back('0');  // ".5"
  const bool whole_fraction = fraction.find_first_not_of('0') == std::string::npos;
  if (exponent.empty() && whole_fraction && (type == NumberType::integer || fraction.empty())) {
    const std::string digits = (negative ? "-" : "") + whole;
    std::int64_t n = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
    if (ec == std::errc() && end == digits.data() + digits.size()) return Value(n);
    if (type == NumberType::integer) return std::nullopt;  // beyond 64 bits
  }
  if (type == NumberType::integer && exponent.empty() && !whole_fraction) return std::nullopt;
  const std::string plain = (negative ? "-" : "") + whole + (fraction.empty() ? "" : "." + fraction) + exponent;
  double d = 0;
  auto [end, ec] = std::from_chars(plain.data(), plain.data() + plain.size(), d);
  if (ec != std::errc() || end != plain.data() + plain.size() || !std::isfinite(d)) return std::nullopt;
  if (d == 0) d = 0;  // "-0.0" is 0, not -0
  if (type == NumberType::integer) {
    // "1.5e3" is 1500; a whole number past 64 bits is none.
    if (d != std::floor(d) || std::fabs(d) >= 9.2e18) return std::nullopt;
    return Value(static_cast<std::int64_t>(d));
  }
  return Value(d);
}

}  // namespace sluice::parse
