#include "charset.hpp"

#include "../text.hpp"
#include "links.hpp"
#include "sluice/json.hpp"

#include <iconv.h>
#include <simdjson.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <memory>

namespace sluice::parse {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD in UTF-8

// How far into a page a <meta charset> is looked for. The HTML standard's prescan reads 1,024
// bytes; libxml2 honoured a <meta> anywhere, and pages with long inline scripts in <head> exist.
constexpr std::size_t kPrescan = 64 * 1024;

// The label after "charset" in `text` (charset=utf-8, charset = "x", charset='x'): empty if the word
// is not followed by '='.
std::string_view label_after_charset(std::string_view text) {
  for (std::size_t at = 0; at + 7 <= text.size(); ++at) {
    if (!nodes::iequals(text.substr(at, 7), "charset")) continue;
    std::size_t i = at + 7;
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i >= text.size() || text[i] != '=') continue;
    ++i;
    while (i < text.size() && (std::isspace(static_cast<unsigned char>(text[i])) || text[i] == '"' || text[i] == '\''))
      ++i;
    std::size_t e = i;
    while (e < text.size() && !std::isspace(static_cast<unsigned char>(text[e])) &&
           std::string_view("\"';>/").find(text[e]) == std::string_view::npos)
      ++e;
    if (e > i) return text.substr(i, e - i);
  }
  return {};
}

// The encoding an XML declaration at the start of `body` names (<?xml version="1.0"
// encoding="windows-1251"?>): a feed or a sitemap has no <meta>. Empty when there is none.
std::string_view xml_encoding(std::string_view body) {
  constexpr std::string_view kSpace = " \t\r\n";
  const std::size_t at = body.find_first_not_of(kSpace);
  if (at == std::string_view::npos || body.compare(at, 5, "<?xml") != 0) return {};
  const std::string_view decl = body.substr(at, std::min<std::size_t>(body.find("?>", at), at + 1024) - at);
  std::size_t e = decl.find("encoding");
  if (e == std::string_view::npos) return {};
  e = decl.find_first_not_of(kSpace, e + 8);
  if (e == std::string_view::npos || decl[e] != '=') return {};
  e = decl.find_first_not_of(kSpace, e + 1);
  if (e == std::string_view::npos || (decl[e] != '"' && decl[e] != '\'')) return {};
  const std::size_t close = decl.find(decl[e], e + 1);
  return close == std::string_view::npos ? std::string_view() : decl.substr(e + 1, close - e - 1);
}

// The charset a document declares: an XML declaration's encoding, else a <meta> tag before <body>
// (<meta charset=...> or <meta http-equiv="Content-Type" content="...; charset=...">); empty when
// none does.
std::string_view meta_charset(std::string_view body) {
  if (std::string_view xml = xml_encoding(body); !xml.empty()) return xml;
  const std::string_view head = body.substr(0, kPrescan);
  for (std::size_t at = head.find('<'); at != std::string_view::npos; at = head.find('<', at + 1)) {
    if (at + 6 > head.size()) break;
    if (nodes::iequals(head.substr(at + 1, 4), "body")) break;
    if (!nodes::iequals(head.substr(at + 1, 4), "meta")) continue;
    const char after = head[at + 5];
    if (!std::isspace(static_cast<unsigned char>(after)) && after != '/') continue;
    const std::size_t end = head.find('>', at);
    const std::string_view tag = head.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at);
    if (auto label = label_after_charset(tag); !label.empty()) return label;
  }
  return {};
}

// windows-1252's bytes 0x80-0x9F; the others are ISO-8859-1's, which are Unicode's first 256. The
// five undefined bytes map to the C1 controls of the same value, as in the HTML standard.
constexpr std::array<char16_t, 32> kWindows1252 = {0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
                                                   0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D, 0x017D, 0x008F,
                                                   0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
                                                   0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178};

std::string from_windows1252(std::string_view in) {
  std::string out;
  out.reserve(in.size() + in.size() / 8);
  for (char ch : in) {
    const auto b = static_cast<unsigned char>(ch);
    append_utf8(out, b >= 0x80 && b < 0xA0 ? kWindows1252[b - 0x80] : b);
  }
  return out;
}

// `in` decoded from `encoding` to UTF-8 with iconv; a byte that does not decode becomes U+FFFD and
// decoding goes on after it (libxml2 stops at the first one: the rest of the page was lost). False
// when iconv does not know the encoding.
bool iconv_to_utf8(const std::string& encoding, std::string_view in, std::string& out) {
  iconv_t cd = ::iconv_open("UTF-8", encoding.c_str());
  if (cd == reinterpret_cast<iconv_t>(-1)) return false;
  std::unique_ptr<void, int (*)(iconv_t)> close(cd, ::iconv_close);
  out.assign(in.size() * 2 + 64, '\0');
  std::size_t used = 0;
  char* src = const_cast<char*>(in.data());
  std::size_t left = in.size();
  bool flushed = false;
  while (!flushed) {
    char* dst = out.data() + used;
    std::size_t room = out.size() - used;
    // With no input left, the call writes what a stateful encoding (ISO-2022-JP) still holds.
    const bool flush = left == 0;
    const std::size_t r = flush ? ::iconv(cd, nullptr, nullptr, &dst, &room) : ::iconv(cd, &src, &left, &dst, &room);
    const int error = r == static_cast<std::size_t>(-1) ? errno : 0;
    used = static_cast<std::size_t>(dst - out.data());
    if (error == E2BIG || out.size() - used < kReplacement.size()) {
      out.resize(out.size() * 2);
    } else if ((error == EILSEQ || error == EINVAL) && left > 0) {  // an invalid or a cut-off sequence
      std::memcpy(out.data() + used, kReplacement.data(), kReplacement.size());
      used += kReplacement.size();
      ++src;
      --left;
      ::iconv(cd, nullptr, nullptr, nullptr, nullptr);
    } else {
      flushed = flush;
    }
  }
  out.resize(used);
  return true;
}

bool is_ascii(std::string_view s) {
  unsigned char any = 0;
  for (unsigned char c : s) any |= c;  // no early exit: the compiler vectorizes this loop
  return any < 0x80;
}

// Whether a body that is not valid UTF-8 still reads better as UTF-8 (a UTF-8 page with a few
// broken bytes) than as windows-1252: more well-formed multi-byte sequences than bytes in none.
bool mostly_utf8(std::string_view s) {
  std::size_t good = 0, bad = 0;
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t len = utf8_sequence(s, i);
    if (len > 1) ++good;
    if (len == 0) ++bad;
    i += len == 0 ? 1 : len;
  }
  return good > bad;
}

}  // namespace

std::string_view charset_param(std::string_view content_type) {
  for (std::size_t semi = content_type.find(';'); semi != std::string_view::npos;
       semi = content_type.find(';', semi + 1)) {
    std::string_view param = content_type.substr(semi + 1);
    param = param.substr(0, param.find(';'));
    const auto eq = param.find('=');
    if (eq == std::string_view::npos || !nodes::iequals(nodes::trim(param.substr(0, eq), " \t\r\n"), "charset"))
      continue;
    return nodes::trim(nodes::trim(param.substr(eq + 1), " \t\r\n"), "\"' \t");
  }
  return {};
}

std::string encoding_for_label(std::string_view label) {
  const std::string l = nodes::to_lower(nodes::trim(label, " \t\r\n\"'"));
  if (l.empty()) return l;
  struct Alias {
    std::string_view encoding;
    std::initializer_list<std::string_view> labels;
  };
  static const Alias kAliases[] = {
      {"UTF-8", {"utf-8", "utf8", "unicode-1-1-utf-8", "unicode11utf8", "unicode20utf8", "x-unicode20utf8"}},
      {"windows-1252",
       {"windows-1252", "cp1252", "x-cp1252", "iso-8859-1", "iso8859-1", "iso88591", "iso_8859-1", "iso_8859-1:1987",
        "latin1", "l1", "cp819", "ibm819", "csisolatin1", "iso-ir-100", "us-ascii", "ascii", "ansi_x3.4-1968"}},
      {"GB18030",
       {"gbk", "x-gbk", "gb2312", "gb_2312", "gb_2312-80", "csgb2312", "iso-ir-58", "chinese", "cp936", "ms936",
        "windows-936", "gb18030"}},
      {"CP932",
       {"shift_jis", "shift-jis", "sjis", "x-sjis", "ms_kanji", "csshiftjis", "windows-31j", "ms932", "cp932"}},
      {"CP949",
       {"euc-kr", "cseuckr", "ks_c_5601-1987", "ks_c_5601-1989", "ksc5601", "ksc_5601", "korean", "iso-ir-149",
        "windows-949", "cp949"}},
      {"BIG5-HKSCS", {"big5", "big5-hkscs", "cn-big5", "csbig5", "x-x-big5"}},
      {"UTF-16LE", {"utf-16", "utf-16le"}},
      {"windows-1254", {"iso-8859-9", "iso8859-9", "latin5", "l5", "iso-ir-148", "csisolatin5"}},
      {"windows-874", {"tis-620", "iso-8859-11", "iso8859-11", "dos-874", "windows-874"}},
  };
  for (const Alias& a : kAliases) {
    if (std::find(a.labels.begin(), a.labels.end(), l) != a.labels.end()) return std::string(a.encoding);
  }
  return l;
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

PageText decode_page(std::string_view body, std::string_view content_type) {
  PageText in;
  // Decodes `text` from `encoding` into `in`; false when the encoding is not known.
  auto decode = [&](const std::string& encoding, std::string_view text) {
    if (encoding == "UTF-8" && simdjson::validate_utf8(text.data(), text.size())) {
      in.body = text;
      return true;
    }
    if (encoding == "UTF-8") {
      in.storage = sanitize_utf8(text);
    } else if (encoding == "windows-1252") {
      in.storage = from_windows1252(text);
    } else if (!iconv_to_utf8(encoding, text, in.storage)) {
      return false;
    }
    in.converted = true;
    return true;
  };
  if (body.starts_with("\xEF\xBB\xBF")) {
    decode("UTF-8", body.substr(3));
    return in;
  }
  if (body.starts_with("\xFE\xFF") || body.starts_with("\xFF\xFE")) {
    decode(body[0] == '\xFE' ? "UTF-16BE" : "UTF-16LE", body.substr(2));
    return in;
  }
  const std::string header = encoding_for_label(charset_param(content_type));
  if (!header.empty() && header != "UTF-8" && decode(header, body)) return in;
  const std::string declared = encoding_for_label(meta_charset(body));
  // A page cannot declare itself UTF-16 from within (its <meta> was read as ASCII): the HTML
  // standard reads such a page as UTF-8.
  const std::string meta = declared == "UTF-16LE" || declared == "utf-16be" ? "UTF-8" : declared;
  const bool meta_agrees = meta.empty() || meta == "UTF-8";
  const bool utf8 = simdjson::validate_utf8(body.data(), body.size());
  // The header's UTF-8 wins, except for a body that is not UTF-8 when the page's <meta> names
  // another charset (a server that labels every page UTF-8, in front of legacy pages that say what
  // they are).
  if (utf8 && (header == "UTF-8" || meta_agrees)) {
    in.body = body;
    // Undirected, libxml2 reads a byte beyond ASCII as ISO-8859-1 unless a <meta http-equiv> came
    // before it ("café" became "cafÃ©" in a page that only the header or nothing declared UTF-8), and
    // follows a <meta> that names another charset: only plain ASCII with no such <meta> is left to it.
    in.as_is = (declared.empty() || declared == "UTF-8") && is_ascii(body);
    return in;
  }
  if (!utf8 && header == "UTF-8" && meta_agrees) {
    in.storage = sanitize_utf8(body);
    in.converted = true;
    return in;
  }
  if (!meta_agrees && decode(meta, body)) return in;
  if (utf8) {
    in.body = body;  // a <meta> that names a charset iconv does not know
  } else {
    decode(meta == "UTF-8" || mostly_utf8(body) ? "UTF-8" : "windows-1252", body);
  }
  return in;
}

PageText page_text(const Record& page, const std::string& body_field) {
  const Value* content_type = page.get("content_type");
  return decode_page(body_text(page, body_field),
                     content_type && content_type->as_string() ? *content_type->as_string() : std::string_view());
}

}  // namespace sluice::parse
