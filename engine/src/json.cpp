#include "sluice/json.hpp"

#include <fmt/format.h>

#include <cmath>

namespace sluice {

std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  std::size_t len;
  std::uint32_t cp;
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) {
    len = 2;
    cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3;
    cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  static constexpr std::uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

// (iconv's UTF-8 reader is no help for this: glibc's passes 5-byte forms and code points beyond
// U+10FFFF.)
std::string sanitize_utf8(std::string_view in) {
  std::string out;
  out.reserve(in.size() + 16);
  for (std::size_t i = 0; i < in.size();) {
    const std::size_t len = utf8_sequence(in, i);
    if (len == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(in.substr(i, len));
      i += len;
    }
  }
  return out;
}

namespace {}  // namespace

void append_json_string(std::string& out, std::string_view text) {
  out.push_back('"');
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      std::size_t j = i + 1;
      while (j < text.size()) {
        const auto d = static_cast<unsigned char>(text[j]);
        if (d < 0x20 || d >= 0x80 || d == '"' || d == '\\') break;
        ++j;
      }
      out.append(text.data() + i, j - i);
      i = j;
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        ++i;
        continue;
      case '\\':
        out += "\\\\";
        ++i;
        continue;
      case '\n':
        out += "\\n";
        ++i;
        continue;
      case '\r':
        out += "\\r";
        ++i;
        continue;
      case '\t':
        out += "\\t";
        ++i;
        continue;
      default:
        break;
    }
    if (c < 0x20) {
      fmt::format_to(std::back_inserter(out), "\\u{:04x}", c);
      ++i;
      continue;
    }
    if (std::size_t len = utf8_sequence(text, i); len > 0) {
      out.append(text.data() + i, len);
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  out.push_back('"');
}

void append_json(std::string& out, const Value& value) {
  std::visit(
      [&out](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::monostate>) {
          out += "null";
        } else if constexpr (std::is_same_v<T, bool>) {
          out += x ? "true" : "false";
        } else if constexpr (std::is_same_v<T, std::int64_t>) {
          fmt::format_to(std::back_inserter(out), "{}", x);
        } else if constexpr (std::is_same_v<T, double>) {
          if (std::isfinite(x)) {
            fmt::format_to(std::back_inserter(out), "{}", x);
          } else {
            out += "null";
          }
        } else if constexpr (std::is_same_v<T, std::string>) {
          append_json_string(out, x);
        } else if constexpr (std::is_same_v<T, Bytes>) {
          append_json_string(out, x.view());
        } else if constexpr (std::is_same_v<T, Object>) {
          out.push_back('{');
          bool first = true;
          for (const auto& [name, item] : x) {
            if (!first) out.push_back(',');
            first = false;
            append_json_string(out, name);
            out.push_back(':');
            append_json(out, item);
          }
          out.push_back('}');
        } else {
          out.push_back('[');
          bool first = true;
          for (const Value& item : x) {
            if (!first) out.push_back(',');
            first = false;
            append_json(out, item);
          }
          out.push_back(']');
        }
      },
      value.v);
}

void append_json(std::string& out, const Record& record, const std::vector<std::string>* only) {
  out.push_back('{');
  bool first = true;
  auto field = [&](std::string_view name, const Value* value) {
    if (!first) out.push_back(',');
    first = false;
    append_json_string(out, name);
    out.push_back(':');
    if (value) {
      append_json(out, *value);
    } else {
      out += "null";
    }
  };
  auto error = [&] {
    if (!first) out.push_back(',');
    first = false;
    out += "\"_error\":{\"node\":";
    append_json_string(out, record.error->node);
    out += ",\"message\":";
    append_json_string(out, record.error->message);
    out.push_back('}');
  };
  if (only) {
    for (const auto& name : *only) {
      const Value* value = record.get(name);
      if (!value && record.error && name == "_error") {
        error();  // the attached error, selectable like a field
      } else {
        field(name, value);
      }
    }
  } else {
    for (const auto& [name, value] : record.fields()) field(name, &value);
    if (record.error) error();
  }
  out.push_back('}');
}

}  // namespace sluice
