#include "sluice/template.hpp"

#include <fmt/format.h>

namespace sluice {

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
      t.pieces_.push_back(std::move(literal));
      literal.clear();
      t.pieces_.emplace_back(text.substr(i + 1, end - i - 1));
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
    } else if (const Value* v = record.get(pieces_[i])) {
      out += v->to_text();
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
