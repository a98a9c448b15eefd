// Small text helpers that fetch, the frontier, save and the parse nodes share.
#pragma once

#include <locale.h>

#include <cctype>
#include <string>
#include <string_view>

namespace sluice::nodes {

// A value quoted in a message: at most `max` bytes of it, cut before a UTF-8 character rather than
// inside one (the message stays valid text), with "..." when cut.
inline std::string sample_of(std::string_view s, std::size_t max = 60) {
  if (s.size() <= max) return std::string(s);
  std::size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return std::string(s.substr(0, n)) + "...";
}

// `s` in ASCII lower case.
inline std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// `s` without the characters of `chars` at either end.
inline std::string_view trim(std::string_view s, std::string_view chars = " \t\r\n\f\v") {
  const auto b = s.find_first_not_of(chars);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(chars) - b + 1);
}

// The value of a hexadecimal digit (either case), or -1 for any other character.
inline int hex_digit(char c) {
  return c >= '0' && c <= '9'   ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                : -1;
}

// `text` with each %XX escape decoded; a '%' that starts no escape stays, and so does '+'.
inline std::string percent_decoded(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && hex_digit(text[i + 1]) >= 0 && hex_digit(text[i + 2]) >= 0) {
      out += static_cast<char>(hex_digit(text[i + 1]) * 16 + hex_digit(text[i + 2]));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

// Whether `a` equals `lower_b` (lower case) in ASCII, ignoring case.
inline bool iequals(std::string_view a, std::string_view lower_b) {
  if (a.size() != lower_b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != lower_b[i]) return false;
  }
  return true;
}

// The extension of a URL's last path segment, lower-cased ("pdf" for /docs/a.PDF?x=1); empty when
// it has none.
inline std::string url_extension(std::string_view url) {
  const auto scheme = url.find("://");
  std::string_view rest = url.substr(scheme == std::string_view::npos ? 0 : scheme + 3);
  rest = rest.substr(0, rest.find_first_of("?#"));
  const auto slash = rest.find('/');
  if (slash == std::string_view::npos) return {};
  const std::string_view segment = rest.substr(rest.rfind('/') + 1);
  const auto dot = segment.rfind('.');
  if (dot == std::string_view::npos) return {};
  return to_lower(segment.substr(dot + 1));
}

// Whether `s` has a byte beyond ASCII.
inline bool beyond_ascii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return true;
  return false;
}

// A URL without the C0 control characters and spaces around it, which are no part of it (the WHATWG
// URL standard strips them, as browsers and Python's w3lib do): a CSV cell's " https://a/ ", a
// line's "\r", a pasted tab.
inline std::string_view url_stripped(std::string_view url) {
  while (!url.empty() && static_cast<unsigned char>(url.front()) <= 0x20) url.remove_prefix(1);
  while (!url.empty() && static_cast<unsigned char>(url.back()) <= 0x20) url.remove_suffix(1);
  return url;
}

// Whether a URL has bytes that must be percent-encoded before it is sent: spaces and bytes beyond
// ASCII (control characters make it invalid instead).
inline bool needs_escapes(std::string_view url) {
  for (char c : url)
    if (c == ' ' || static_cast<unsigned char>(c) >= 0x80) return true;
  return false;
}

// A URL with its spaces percent-encoded as %20, everywhere in it, as browsers send them (WHATWG
// URL). Left to libcurl (CURLU_URLENCODE), a space in the query becomes '+', a form's encoding,
// which a server decoding the query by RFC 3986 reads as a plus; %20 is a space to every decoder.
inline std::string spaces_escaped(std::string_view url) {
  std::string out;
  out.reserve(url.size() + 8);
  for (char c : url) {
    if (c == ' ')
      out += "%20";
    else
      out += c;
  }
  return out;
}

// While alive, this thread reads characters as UTF-8 (LC_CTYPE C.UTF-8, for this thread only), so
// that libcurl can convert a host name beyond ASCII to punycode (CURLU_PUNYCODE, and its own
// conversion before a transfer): libidn2 reads names in the locale's charset, and in the C locale of
// a program that never called setlocale() every such name failed ("URL using bad/illegal format").
// uselocale() swaps a thread-local pointer; nothing else sluice does depends on LC_CTYPE beyond
// ASCII.
class Utf8Ctype {
 public:
  Utf8Ctype() : old_(utf8() ? uselocale(utf8()) : static_cast<locale_t>(0)) {}
  ~Utf8Ctype() {
    if (old_) uselocale(old_);
  }
  Utf8Ctype(const Utf8Ctype&) = delete;
  Utf8Ctype& operator=(const Utf8Ctype&) = delete;

 private:
  static locale_t utf8() {
    static const locale_t locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(0));
    return locale;
  }
  locale_t old_;
};

// Upper-cases the hex digits of percent-escapes ("%c3%a9" -> "%C3%A9"), as RFC 3986 (6.2.2.1)
// normalizes them and browsers write them: libcurl encodes in lower case, sites link in upper case,
// and the two spellings of one URL would be two URLs to a crawl's seen set and a store's key.
inline void uppercase_escapes(std::string& url) {
  for (std::size_t i = 0; i + 2 < url.size(); ++i) {
    if (url[i] != '%' || !std::isxdigit(static_cast<unsigned char>(url[i + 1])) ||
        !std::isxdigit(static_cast<unsigned char>(url[i + 2])))
      continue;
    url[i + 1] = static_cast<char>(std::toupper(static_cast<unsigned char>(url[i + 1])));
    url[i + 2] = static_cast<char>(std::toupper(static_cast<unsigned char>(url[i + 2])));
    i += 2;
  }
}

}  // namespace sluice::nodes
