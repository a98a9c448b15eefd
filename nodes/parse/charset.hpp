// Which character encoding a fetched HTML page is in, decided as browsers do (the HTML standard's
// "determine the character encoding"): a byte order mark, then the charset of the HTTP Content-Type,
// then the page's own <meta charset>, then UTF-8, or windows-1252 for a page that is not UTF-8.
#pragma once

#include <string>
#include <string_view>

#include "sluice/value.hpp"

namespace sluice::parse {

// The charset parameter of a Content-Type value (`text/html; charset="Shift_JIS"` -> "Shift_JIS"),
// empty when there is none.
std::string_view charset_param(std::string_view content_type);

// The name libxml2 (and iconv) should decode a page labelled `label` with, following the HTML
// standard's table where it differs from iconv's reading of the label: iso-8859-1 and us-ascii are
// read as windows-1252, gb2312 and gbk as GB18030, shift_jis as windows-31j (CP932), euc-kr as
// CP949, big5 as BIG5-HKSCS. Other labels are passed on lower-cased. Empty for an empty label.
std::string encoding_for_label(std::string_view label);

// Appends code point `c` (at most U+10FFFF, not a surrogate) in UTF-8.
void append_utf8(std::string& out, char32_t c);

// A page's text, always UTF-8: for libxml2 (whose own decoding stopped at the first byte that did
// not decode, and read undeclared pages as ISO-8859-1) and for RE2.
struct PageText {
  std::string_view text() const { return converted ? std::string_view(storage) : body; }

  std::string_view body;  // the text when it is (a part of) the body itself
  std::string storage;    // the text when it was converted here
  bool converted = false;
  // text() is the body itself, plain ASCII, and no <meta> names another charset: libxml2 reads it
  // right without being told (telling it costs a copy of the page through its UTF-8 "decoder").
  // Undirected it would read any other byte as ISO-8859-1.
  bool as_is = false;
};

// Decodes `body` into UTF-8. `content_type` is the response's Content-Type (fetch's content_type
// field; may be empty). Two departures from the standard, both for bodies that are not valid UTF-8:
// a Content-Type that says UTF-8 gives way to a <meta> that names another encoding (servers that
// label every page UTF-8), and an undeclared body is read as UTF-8 when it has more well-formed
// UTF-8 sequences than stray bytes, else as windows-1252. Bytes that do not decode become U+FFFD.
PageText decode_page(std::string_view body, std::string_view content_type);

// A fetched page's body field, decoded by decode_page() with its content_type field.
PageText page_text(const Record& page, const std::string& body_field);

}  // namespace sluice::parse
