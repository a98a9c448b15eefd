#include "sluice/value.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "sluice/json.hpp"

namespace sluice {

std::string_view Value::type_name() const {
  static constexpr std::string_view kNames[] = {"null", "bool", "int", "double", "string", "bytes", "list"};
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
        } else if constexpr (std::is_same_v<T, List>) {
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

std::string Record::describe() const {
  if (const Value* url = get("url"); url && url->as_string()) return *url->as_string();
  if (!meta.origin_url.empty()) return meta.origin_url;
  return fmt::format("#{}", meta.seq);
}

}  // namespace sluice
