#include "sluice/template.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>
#include <utility>

#include "sluice/json.hpp"

namespace sluice {

std::uint64_t fnv1a64(std::string_view text) {
  std::uint64_t hash = 14695981039346656037ull;
  for (unsigned char c : text) hash = (hash ^ c) * 1099511628211ull;
  return hash;
}

void append_file_name(std::string& out, std::string_view text) {
  constexpr std::size_t kMaxBytes = 200;  // file systems allow 255; room for an extension
  if (text.size() > kMaxBytes) {
    std::size_t cut = kMaxBytes;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // a whole UTF-8 character
    text = text.substr(0, cut);
  }
  if (text.empty()) {
    out += '_';
    return;
  }
  for (std::size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = text[i];
    const bool unsafe = c < 0x20 || c == 0x7F || c == '/' || c == '\\' || c == ':' || c == '*' || c == '?' ||
                        c == '"' || c == '<' || c == '>' || c == '|' || (i == 0 && c == '.');
    out += unsafe ? '_' : static_cast<char>(c);
  }
}

void append_url_encoded(std::string& out, std::string_view text) {
  for (unsigned char c : text) {
    const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                            c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
}

namespace {
// The formats a {field:format} may name.
template <typename Format>
constexpr std::pair<std::string_view, Format> kFormats[] = {
    {"url", Format::url},     {"json", Format::json},   {"file", Format::file}, {"hash", Format::hash},
    {"lower", Format::lower}, {"upper", Format::upper}, {"trim", Format::trim},
};
}  // namespace

std::string_view FieldTemplate::format_name(Format format) {
  for (const auto& [name, f] : kFormats<Format>) {
    if (f == format) return name;
  }
  return "";  // Format::text
}

std::optional<FieldTemplate> FieldTemplate::compile(std::string_view text, std::string* error) {
  FieldTemplate t;
  std::string literal;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if ((c == '{' || c == '}') && i + 1 < text.size() && text[i + 1] == c) {
      literal.push_back(c);
      ++i;
    } else if (c == '{') {
      std::size_t end = text.find('}', i);
      if (end == std::string_view::npos) {
        if (error) *error = fmt::format("unterminated '{{' in '{}'", text);
        return std::nullopt;
      }
      std::string_view name = text.substr(i + 1, end - i - 1);
      // JSON or code written as a template ('{"a": 1}', a GraphQL query's '{ items }'): its braces are
      // no field's, and would vanish from the text.
      if (name.empty() || name.find_first_of("\"'{\n\r\t") != std::string_view::npos || name.front() == ' ' ||
          name.back() == ' ') {
        if (error) {
          *error = fmt::format("'{{{}}}' in '{}' names no field: write a literal brace as {{{{ or }}}}", name, text);
        }
        return std::nullopt;
      }
      Format format = Format::text;
      if (const auto colon = name.rfind(':'); colon != std::string_view::npos) {
        const std::string_view spec = name.substr(colon + 1);
        const auto& formats = kFormats<Format>;
        const auto* known =
            std::find_if(std::begin(formats), std::end(formats), [&](const auto& f) { return f.first == spec; });
        if (known == std::end(formats)) {
          if (error) {
            *error = fmt::format("unknown format '{}' in '{{{}}}' (url, json, file, hash, lower, upper or trim)", spec,
                                 name);
          }
          return std::nullopt;
        }
        format = known->second;
        name = name.substr(0, colon);
      }
      t.pieces_.push_back(std::move(literal));
      literal.clear();
      t.pieces_.emplace_back(name);
      t.formats_.push_back(format);
      i = end;
    } else {
      literal.push_back(c);
    }
  }
  t.pieces_.push_back(std::move(literal));
  return t;
}

std::string FieldTemplate::render(const Record& record) const {
  std::string out;
  for (std::size_t i = 0; i < pieces_.size(); ++i) {
    if (i % 2 == 0) {
      out += pieces_[i];
      continue;
    }
    const Value* v = record.get(pieces_[i]);
    if (v && v->is_null() && formats_[i / 2] != Format::json) v = nullptr;  // no value: empty, as a missing field
    switch (formats_[i / 2]) {
      case Format::text:
        if (v) out += v->to_text();
        break;
      case Format::url:
        if (v) append_url_encoded(out, v->to_text());
        break;
      case Format::json:
        if (v) {
          append_json(out, *v);
        } else {
          out += "null";
        }
        break;
      case Format::file:
        append_file_name(out, v ? v->to_text() : std::string());
        break;
      case Format::hash:
        out += fmt::format("{:016x}", fnv1a64(v ? v->to_text() : std::string()));
        break;
      case Format::lower:
      case Format::upper:
        if (v) {
          const bool lower = formats_[i / 2] == Format::lower;
          for (char c : v->to_text()) {
            if (lower && c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
            if (!lower && c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
            out += c;
          }
        }
        break;
      case Format::trim:
        if (v) {
          const std::string text = v->to_text();
          const auto first = text.find_first_not_of(" \t\r\n\f\v");
          if (first != std::string::npos) {
            out.append(text, first, text.find_last_not_of(" \t\r\n\f\v") - first + 1);
          }
        }
        break;
    }
  }
  return out;
}

std::vector<std::string> FieldTemplate::fields() const {
  std::vector<std::string> out;
  for (std::size_t i = 1; i < pieces_.size(); i += 2) out.push_back(pieces_[i]);
  return out;
}

}  // namespace sluice
