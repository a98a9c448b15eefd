// Field templates: strings with {field} references filled from a record ("page {n} of {site}").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/value.hpp"

namespace sluice {

// The 64-bit FNV-1a hash of `text`: stable across builds and machines (a name, not a checksum).
std::uint64_t fnv1a64(std::string_view text);

// Appends `text` made safe as one file name: '/', '\', control characters and : * ? " < > | become
// '_', as does a leading '.' (no "..", no hidden file); empty text gives "_"; cut to 200 bytes at
// a character boundary.
void append_file_name(std::string& out, std::string_view text);

// Appends `text` percent-encoded for a URL's query or path segment, or a web form's name or value:
// every byte but A-Z a-z 0-9 - . _ ~ as %XX ("a&b c" is "a%26b%20c").
void append_url_encoded(std::string& out, std::string_view text);

class FieldTemplate {
 public:
  // Compiles `text`; `{{` and `}}` write literal braces. `{field:url}` writes the field's text
  // percent-encoded for a URL's query or path segment (all but A-Z a-z 0-9 - . _ ~: "a&b c" is
  // "a%26b%20c"), `{field:json}` its value as JSON (a string quoted and escaped, a missing field
  // null), `{field:file}` its text as one file name (append_file_name()), `{field:hash}` the
  // 16 hex digits of fnv1a64() of its text, `{field:lower}` and `{field:upper}` its text with
  // ASCII letters in lower or upper case (other bytes as they are), `{field:trim}` its text without
  // white space at either end. On an unterminated `{` or another format returns nullopt and sets
  // `error` to a message for a person.
  static std::optional<FieldTemplate> compile(std::string_view text, std::string* error = nullptr);

  // True when the text has no {field} reference.
  bool is_constant() const { return pieces_.size() == 1; }
  // The text with each {field} replaced by the field's text; a missing or null field renders as empty
  // (`{field:json}` writes null).
  std::string render(const Record& record) const;
  // The referenced field names.
  std::vector<std::string> fields() const;
  // Calls `literal(text)` and `field(name, format)` for its pieces in order: the literal text with
  // `{{` and `}}` already single braces, and each {field} with its format's name ("" for none).
  template <typename Literal, typename Field>
  void visit(Literal&& literal, Field&& field) const {
    for (std::size_t i = 0; i < pieces_.size(); ++i) {
      if (i % 2 == 0) {
        literal(std::string_view(pieces_[i]));
      } else {
        field(std::string_view(pieces_[i]), format_name(formats_[i / 2]));
      }
    }
  }

 private:
  enum class Format { text, url, json, file, hash, lower, upper, trim };
  static std::string_view format_name(Format format);
  std::vector<std::string> pieces_;  // literal, field, literal, ..., literal
  std::vector<Format> formats_;      // one per field
};

}  // namespace sluice
