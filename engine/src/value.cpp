#include "sluice/value.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "sluice/json.hpp"

namespace sluice {

std::string_view Value::type_name() const {
  static constexpr std::string_view kNames[] = {"null", "bool", "int", "double", "string", "bytes", "list", "object"};
  return kNames[v.index()];
}

std::string Value::to_text() const {
  return std::visit(
      [this](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::monostate>) {
          return "null";
        } else if constexpr (std::is_same_v<T, bool>) {
          return x ? "true" : "false";
        } else if constexpr (std::is_same_v<T, std::string>) {
          return x;
        } else if constexpr (std::is_same_v<T, Bytes>) {
          return std::string(x.view());
        } else if constexpr (std::is_same_v<T, List> || std::is_same_v<T, Object>) {
          std::string out;
          append_json(out, *this);
          return out;
        } else {
          return fmt::format("{}", x);
        }
      },
      v);
}

const Value* Record::get(std::string_view name) const {
  for (const auto& f : fields_) {
    if (f.first == name) return &f.second;
  }
  return nullptr;
}

Value* Record::get(std::string_view name) {
  for (auto& f : fields_) {
    if (f.first == name) return &f.second;
  }
  return nullptr;
}

void Record::set(std::string_view name, Value value) {
  if (Value* existing = get(name)) {
    *existing = std::move(value);
    return;
  }
  fields_.emplace_back(std::string(name), std::move(value));
}

bool Record::rename(std::string_view from, std::string_view to) {
  auto it = std::find_if(fields_.begin(), fields_.end(), [&](const Field& f) { return f.first == from; });
  if (it == fields_.end()) return false;
  if (from == to) return true;
  Value moved = std::move(it->second);
  fields_.erase(it);
  set(to, std::move(moved));
  return true;
}

bool Record::erase(std::string_view name) {
  auto it = std::find_if(fields_.begin(), fields_.end(), [&](const Field& f) { return f.first == name; });
  if (it == fields_.end()) return false;
  fields_.erase(it);
  return true;
}

namespace {

bool scheme_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.';
}

// Where the authority of a URL that starts at `from` (just past "://") ends: at its path, query or
// fragment, or at what ends a URL in running text (space, quotes, brackets).
std::size_t authority_end(std::string_view text, std::size_t from) {
  constexpr std::string_view kEnds = "/?#\\ \t\r\n'\"<>()[]{}|^`";
  const std::size_t end = text.find_first_of(kEnds, from);
  return end == std::string_view::npos ? text.size() : end;
}

}  // namespace

std::string hide_credentials(std::string text) {
  constexpr std::string_view kMask = "***";
  for (std::size_t at = text.find("://"); at != std::string::npos; at = text.find("://", at + 3)) {
    if (at == 0 || !scheme_char(text[at - 1])) continue;
    const std::size_t start = at + 3;
    const std::size_t end = authority_end(text, start);
    const std::size_t sign = std::string_view(text).substr(start, end - start).rfind('@');
    if (sign == std::string_view::npos) continue;
    const std::size_t user_end = std::string_view(text).substr(start, sign).find(':');
    // Keep the name where there is a password, hide a name alone; masked once (already "***").
    const std::size_t from = user_end == std::string_view::npos ? start : start + user_end + 1;
    const std::size_t to = start + sign;
    if (std::string_view(text).substr(from, to - from) == kMask) continue;
    text.replace(from, to - from, kMask);
    at = from;
  }
  return text;
}

std::string Record::describe() const {
  if (const Value* url = get("url"); url && url->as_string()) return *url->as_string();
  if (!meta.origin_url.empty()) return meta.origin_url;
  return fmt::format("#{}", meta.seq);
}

}  // namespace sluice
