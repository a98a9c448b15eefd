#include "sluice/schema.hpp"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <stdexcept>

namespace sluice {

ConfigValue::ConfigValue() = default;
ConfigValue::ConfigValue(const ConfigValue&) = default;
ConfigValue::ConfigValue(ConfigValue&&) noexcept = default;
ConfigValue& ConfigValue::operator=(const ConfigValue&) = default;
ConfigValue& ConfigValue::operator=(ConfigValue&&) noexcept = default;
ConfigValue::~ConfigValue() = default;

std::string_view field_type_name(FieldType type) {
  switch (type) {
    case FieldType::string:
      return "string";
    case FieldType::integer:
      return "int";
    case FieldType::boolean:
      return "bool";
    case FieldType::duration:
      return "duration";
    case FieldType::size:
      return "size";
    case FieldType::enumeration:
      return "enum";
    case FieldType::list:
      return "list";
    case FieldType::map:
      return "map";
    case FieldType::scalar:
      return "scalar";
    case FieldType::object:
      return "object";
    case FieldType::any:
      return "any";
  }
  return "?";
}

namespace {
FieldSpec make(std::string name, FieldType type, std::string doc) {
  FieldSpec f;
  f.name = std::move(name);
  f.type = type;
  f.doc = std::move(doc);
  return f;
}
}  // namespace

FieldSpec FieldSpec::string(std::string name, std::string doc) {
  return make(std::move(name), FieldType::string, std::move(doc));
}
FieldSpec FieldSpec::integer(std::string name, std::string doc) {
  return make(std::move(name), FieldType::integer, std::move(doc));
}
FieldSpec FieldSpec::boolean(std::string name, std::string doc) {
  return make(std::move(name), FieldType::boolean, std::move(doc));
}
FieldSpec FieldSpec::duration(std::string name, std::string doc) {
  return make(std::move(name), FieldType::duration, std::move(doc));
}
FieldSpec FieldSpec::size(std::string name, std::string doc) {
  return make(std::move(name), FieldType::size, std::move(doc));
}
FieldSpec FieldSpec::scalar(std::string name, std::string doc) {
  return make(std::move(name), FieldType::scalar, std::move(doc));
}

FieldSpec FieldSpec::enumeration(std::string name, std::vector<std::string> choices, std::string doc) {
  FieldSpec f = make(std::move(name), FieldType::enumeration, std::move(doc));
  f.choices = std::move(choices);
  return f;
}

FieldSpec FieldSpec::list(std::string name, FieldSpec element, std::string doc) {
  FieldSpec f = make(std::move(name), FieldType::list, std::move(doc));
  f.element = std::make_shared<const FieldSpec>(std::move(element));
  return f;
}

FieldSpec FieldSpec::map(std::string name, FieldSpec element, std::string doc) {
  FieldSpec f = make(std::move(name), FieldType::map, std::move(doc));
  f.element = std::make_shared<const FieldSpec>(std::move(element));
  return f;
}

FieldSpec FieldSpec::object_of(std::string name, Schema schema, std::string doc) {
  FieldSpec f = make(std::move(name), FieldType::object, std::move(doc));
  f.object = std::make_shared<const Schema>(std::move(schema));
  return f;
}

FieldSpec FieldSpec::any(std::string name, std::string doc) {
  return make(std::move(name), FieldType::any, std::move(doc));
}

FieldSpec FieldSpec::with_default(std::string yaml_text) && {
  default_text = std::move(yaml_text);
  return std::move(*this);
}

FieldSpec FieldSpec::make_required() && {
  required = true;
  return std::move(*this);
}

FieldSpec FieldSpec::validated_by(std::function<std::string(const Value&)> check) && {
  validator = std::move(check);
  return std::move(*this);
}

FieldSpec FieldSpec::keys_validated_by(std::function<std::string(const Value&)> check) && {
  key_validator = std::move(check);
  return std::move(*this);
}

FieldSpec FieldSpec::at_least(std::int64_t lower_bound) && {
  min = lower_bound;
  return std::move(*this);
}

std::string FieldSpec::type_text() const {
  switch (type) {
    case FieldType::enumeration: {
      std::string out = "one of ";
      for (std::size_t i = 0; i < choices.size(); ++i) out += (i ? "|" : "") + choices[i];
      return out;
    }
    case FieldType::list:
      return "list of " + element->type_text();
    case FieldType::map:
      return "map of " + element->type_text();
    case FieldType::any:
      return "any value (map, list, scalar)";
    default:
      return std::string(field_type_name(type));
  }
}

// ---- Config -------------------------------------------------------------------------------

void Config::put(std::string name, ConfigValue value, bool is_explicit) {
  if (is_explicit) explicit_[name] = true;
  values_[std::move(name)] = std::move(value);
}

namespace {

std::string config_text(const ConfigValue& value) {
  struct Visitor {
    std::string operator()(const Value& v) const { return v.to_text(); }
    std::string operator()(const ConfigValue::Duration& d) const { return fmt::format("{}ns", d.count()); }
    std::string operator()(const ConfigValue::Size& s) const { return fmt::format("{}B", s.bytes); }
    std::string operator()(const ConfigValue::List& list) const {
      std::string out = "[";
      for (std::size_t i = 0; i < list.size(); ++i) out += (i ? ", " : "") + config_text(list[i]);
      return out + "]";
    }
    std::string operator()(const ConfigValue::Map& map) const {
      std::string out = "{";
      for (std::size_t i = 0; i < map.size(); ++i)
        out += (i ? ", " : "") + map[i].first + ": " + config_text(map[i].second);
      return out + "}";
    }
    std::string operator()(const ConfigValue::Object& object) const {
      std::string out = "{";
      bool first = true;
      object->each([&](const std::string& name, const std::string& text) {
        out += (first ? "" : ", ") + name + ": " + text;
        first = false;
      });
      return out + "}";
    }
  };
  return std::visit(Visitor{}, value.v);
}

}  // namespace

void Config::each(const std::function<void(const std::string& name, const std::string& text)>& visit) const {
  for (const auto& [name, value] : values_) visit(name, config_text(value));
}

const ConfigValue& Config::at(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) throw std::logic_error(fmt::format("config field '{}' has no value", name));
  return it->second;
}

namespace {
template <typename T>
const T& get_as(const Config& c, const std::string& name) {
  const T* p = std::get_if<T>(&c.at(name).v);
  if (!p) throw std::logic_error(fmt::format("config field '{}' read with the wrong type", name));
  return *p;
}
}  // namespace

std::string Config::string(const std::string& name) const {
  const Value& v = get_as<Value>(*this, name);
  if (const std::string* s = v.as_string()) return *s;
  return v.to_text();
}

std::int64_t Config::integer(const std::string& name) const {
  const Value& v = get_as<Value>(*this, name);
  if (const auto* i = v.as_int()) return *i;
  throw std::logic_error(fmt::format("config field '{}' is not an int", name));
}

bool Config::boolean(const std::string& name) const {
  const Value& v = get_as<Value>(*this, name);
  if (const auto* b = v.as_bool()) return *b;
  throw std::logic_error(fmt::format("config field '{}' is not a bool", name));
}

std::chrono::nanoseconds Config::duration(const std::string& name) const {
  return get_as<ConfigValue::Duration>(*this, name);
}

std::uint64_t Config::size(const std::string& name) const {
  return get_as<ConfigValue::Size>(*this, name).bytes;
}

Value Config::scalar(const std::string& name) const {
  return get_as<Value>(*this, name);
}

const ConfigValue::List& Config::list(const std::string& name) const {
  return get_as<ConfigValue::List>(*this, name);
}

const ConfigValue::Map& Config::map(const std::string& name) const {
  return get_as<ConfigValue::Map>(*this, name);
}

const Config& Config::object(const std::string& name) const {
  return *get_as<ConfigValue::Object>(*this, name);
}

Location Config::where(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? Location{} : it->second.where;
}

// ---- parsing scalars -------------------------------------------------------------------------

std::string duration_text(std::chrono::nanoseconds d) {
  double seconds = std::chrono::duration<double>(d).count();
  return seconds >= 1 ? fmt::format("{:g}s", seconds) : fmt::format("{:g}ms", seconds * 1000);
}

std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  if (i == 0 || i == text.size()) return std::nullopt;
  double number = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + i, number);
  if (ec != std::errc() || ptr != text.data() + i) return std::nullopt;
  std::string_view unit = text.substr(i);
  double scale;
  if (unit == "ns")
    scale = 1;
  else if (unit == "us")
    scale = 1e3;
  else if (unit == "ms")
    scale = 1e6;
  else if (unit == "s")
    scale = 1e9;
  else if (unit == "m")
    scale = 60e9;
  else if (unit == "h")
    scale = 3600e9;
  else
    return std::nullopt;
  double ns = number * scale;
  if (!std::isfinite(ns) || ns > 9.2e18) return std::nullopt;
  return std::chrono::nanoseconds(static_cast<std::int64_t>(ns));
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  if (i == 0) return std::nullopt;
  double number = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + i, number);
  if (ec != std::errc() || ptr != text.data() + i) return std::nullopt;
  std::string_view unit = text.substr(i);
  double scale;
  if (unit.empty() || unit == "B")
    scale = 1;
  else if (unit == "KB")
    scale = 1e3;
  else if (unit == "MB")
    scale = 1e6;
  else if (unit == "GB")
    scale = 1e9;
  else if (unit == "KiB")
    scale = 1024.0;
  else if (unit == "MiB")
    scale = 1024.0 * 1024;
  else if (unit == "GiB")
    scale = 1024.0 * 1024 * 1024;
  else
    return std::nullopt;
  double bytes = number * scale;
  if (!std::isfinite(bytes) || bytes > 1.8e19 || bytes != std::floor(bytes)) return std::nullopt;
  return static_cast<std::uint64_t>(bytes);
}

namespace {

std::optional<std::int64_t> parse_int(std::string_view s) {
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  std::int64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<double> parse_float(std::string_view s) {
  if (s == ".inf" || s == "+.inf") return HUGE_VAL;
  if (s == "-.inf") return -HUGE_VAL;
  if (s == ".nan") return NAN;
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  bool digit = false;
  for (char c : s) {
    if (std::isdigit(static_cast<unsigned char>(c)))
      digit = true;
    else if (c != '.' && c != 'e' && c != 'E' && c != '-' && c != '+')
      return std::nullopt;
  }
  if (!digit) return std::nullopt;
  double v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

Value typed_scalar(const SpecNode& node) {
  if (node.is_null()) return Value{};
  if (node.quoted) return Value(node.scalar);
  const std::string& s = node.scalar;
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return Value{};
  if (s == "true" || s == "True" || s == "TRUE") return Value(true);
  if (s == "false" || s == "False" || s == "FALSE") return Value(false);
  if (auto i = parse_int(s)) return Value(*i);
  if (auto d = parse_float(s)) return Value(*d);
  return Value(s);
}

// ---- validation -----------------------------------------------------------------------------

namespace {

std::optional<ConfigValue> convert(const FieldSpec& field, const SpecNode& node, const std::string& label,
                                   Diagnostics& diags);

std::optional<ConfigValue> convert_scalar(const FieldSpec& field, const SpecNode& node, const std::string& label,
                                          Diagnostics& diags) {
  if (!node.is_scalar()) {
    diags.error(node.where, fmt::format("{}: expected {}, got {}", label, field.type_text(), node.describe()));
    return std::nullopt;
  }
  Value typed = typed_scalar(node);
  ConfigValue out;
  out.where = node.where;
  switch (field.type) {
    case FieldType::string:
      out.v = Value(node.scalar);
      return out;
    case FieldType::scalar:
      out.v = std::move(typed);
      return out;
    case FieldType::integer: {
      const auto* i = typed.as_int();
      if (!i) {
        diags.error(node.where, fmt::format("{}: expected an int, got '{}'", label, node.scalar));
        return std::nullopt;
      }
      if (field.min && *i < *field.min) {
        diags.error(node.where, fmt::format("{}: must be at least {}, got {}", label, *field.min, *i));
        return std::nullopt;
      }
      out.v = std::move(typed);
      return out;
    }
    case FieldType::boolean:
      if (!typed.as_bool()) {
        diags.error(node.where, fmt::format("{}: expected true or false, got '{}'", label, node.scalar));
        return std::nullopt;
      }
      out.v = std::move(typed);
      return out;
    case FieldType::duration:
      if (auto d = parse_duration(node.scalar)) {
        out.v = *d;
        return out;
      }
      diags.error(node.where, fmt::format("{}: invalid duration '{}' (write a number and a unit: 250ms, 30s, "
                                          "5m, 1h)",
                                          label, node.scalar));
      return std::nullopt;
    case FieldType::size:
      if (auto s = parse_size(node.scalar)) {
        out.v = ConfigValue::Size{*s};
        return out;
      }
      diags.error(node.where, fmt::format("{}: invalid size '{}' (write bytes or a number and a unit: 64KiB, "
                                          "10MiB, 1GB)",
                                          label, node.scalar));
      return std::nullopt;
    case FieldType::enumeration: {
      for (const auto& c : field.choices) {
        if (c == node.scalar) {
          out.v = Value(node.scalar);
          return out;
        }
      }
      std::string hint = closest_match(node.scalar, field.choices);
      diags.error(node.where, fmt::format("{}: '{}' is not one of {}{}", label, node.scalar, quoted_list(field.choices),
                                          hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint)));
      return std::nullopt;
    }
    default:
      return std::nullopt;
  }
}

// Whether a list of `element`s may be written as one of them alone: a list of scalars (names,
// URLs, selectors, numbers), not a list of lists or maps.
bool takes_one_for_a_list(const FieldSpec& element) {
  switch (element.type) {
    case FieldType::list:
    case FieldType::map:
    case FieldType::object:
      return false;
    default:
      return true;
  }
}

// An `any` field's value as it is written: scalars typed as YAML's core schema types them, lists and
// maps of them to any depth, each with its own position.
ConfigValue convert_any(const SpecNode& node) {
  ConfigValue out;
  out.where = node.where;
  if (node.is_sequence()) {
    ConfigValue::List items;
    for (const auto& item : node.items) items.push_back(convert_any(item));
    out.v = std::move(items);
  } else if (node.is_map()) {
    ConfigValue::Map entries;
    for (const auto& [key, value] : node.entries) entries.emplace_back(key.scalar, convert_any(value));
    out.v = std::move(entries);
  } else {
    out.v = typed_scalar(node);
  }
  return out;
}

std::optional<ConfigValue> convert(const FieldSpec& field, const SpecNode& node, const std::string& label,
                                   Diagnostics& diags) {
  if (field.type == FieldType::any) return convert_any(node);
  if (field.validator) {
    auto converted = convert_scalar(field, node, label, diags);
    if (!converted) return std::nullopt;
    if (std::string problem = field.validator(std::get<Value>(converted->v)); !problem.empty()) {
      diags.error(node.where, fmt::format("{}: {}", label, problem));
      return std::nullopt;
    }
    return converted;
  }
  switch (field.type) {
    case FieldType::list: {
      if (node.is_scalar() && !node.scalar.empty() && takes_one_for_a_list(*field.element)) {
        // `fallback: span.price` is `fallback: [span.price]`: a list of one, written as its item.
        auto item = convert(*field.element, node, label, diags);
        if (!item) return std::nullopt;
        ConfigValue out;
        out.where = node.where;
        out.v = ConfigValue::List{std::move(*item)};
        return out;
      }
      if (!node.is_sequence()) {
        diags.error(node.where, fmt::format("{}: expected a list, got {}", label, node.describe()));
        return std::nullopt;
      }
      ConfigValue out;
      out.where = node.where;
      ConfigValue::List items;
      bool ok = true;
      for (std::size_t i = 0; i < node.items.size(); ++i) {
        auto item = convert(*field.element, node.items[i], fmt::format("{}[{}]", label, i), diags);
        if (item)
          items.push_back(std::move(*item));
        else
          ok = false;
      }
      if (!ok) return std::nullopt;
      out.v = std::move(items);
      return out;
    }
    case FieldType::map: {
      if (!node.is_map()) {
        diags.error(node.where, fmt::format("{}: expected a map, got {}", label, node.describe()));
        return std::nullopt;
      }
      ConfigValue out;
      out.where = node.where;
      ConfigValue::Map entries;
      bool ok = true;
      for (const auto& [key, value] : node.entries) {
        if (field.key_validator) {
          if (std::string problem = field.key_validator(Value(key.scalar)); !problem.empty()) {
            diags.error(key.where, fmt::format("{}: {}", label, problem));
            ok = false;
            continue;
          }
        }
        auto item = convert(*field.element, value, fmt::format("{}.{}", label, key.scalar), diags);
        if (item) {
          item->where = key.where;
          entries.emplace_back(key.scalar, std::move(*item));
        } else {
          ok = false;
        }
      }
      if (!ok) return std::nullopt;
      out.v = std::move(entries);
      return out;
    }
    case FieldType::object: {
      if (node.is_scalar() && !field.shorthand.empty()) {
        SpecNode expanded;
        expanded.kind = SpecNode::Kind::map;
        expanded.where = node.where;
        SpecNode key = node;
        key.scalar = field.shorthand;
        key.quoted = false;
        expanded.entries.emplace_back(std::move(key), node);
        return convert(field, expanded, label, diags);
      }
      if (!node.is_map()) {
        diags.error(node.where, fmt::format("{}: expected a map, got {}", label, node.describe()));
        return std::nullopt;
      }
      std::size_t before = diags.items().size();
      Config nested = field.object->validate(node, node.where, label, {}, diags, label + ".");
      if (diags.items().size() != before) return std::nullopt;
      ConfigValue out;
      out.where = node.where;
      out.v = std::make_shared<const Config>(std::move(nested));
      return out;
    }
    default:
      return convert_scalar(field, node, label, diags);
  }
}

}  // namespace

const FieldSpec* Schema::find(std::string_view name) const {
  for (const auto& f : fields_) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

std::vector<std::string> Schema::names() const {
  std::vector<std::string> out;
  for (const auto& f : fields_) out.push_back(f.name);
  return out;
}

Config Schema::validate(const SpecNode& map, const Location& owner, const std::string& owner_name,
                        const std::vector<std::string>& reserved, Diagnostics& diags, const std::string& prefix) const {
  Config config;
  std::vector<std::string> allowed = reserved;
  for (const auto& f : fields_) allowed.push_back(f.name);
  bool invalid_fields = false;
  for (const auto& [key, value] : map.entries) {
    const std::string& name = key.scalar;
    bool is_reserved = false;
    for (const auto& r : reserved) is_reserved = is_reserved || r == name;
    if (is_reserved) continue;
    const FieldSpec* field = find(name);
    if (!field) {
      std::string hint = closest_match(name, allowed);
      if (!hint.empty()) {
        diags.error(key.where, fmt::format("unknown key '{}' in {} (did you mean '{}'?)", name, owner_name, hint));
      } else {
        diags.error(key.where,
                    fmt::format("unknown key '{}' in {} (allowed keys: {})", name, owner_name, quoted_list(allowed)));
      }
      continue;
    }
    if (auto v = convert(*field, value, prefix + name, diags)) {
      config.put(name, std::move(*v), true);
    } else {
      invalid_fields = true;
    }
  }
  for (const auto& f : fields_) {
    if (config.has(f.name) || map.find(f.name)) continue;
    if (f.required) {
      diags.error(owner, fmt::format("missing required field '{}' in {} ({})", f.name, owner_name, f.doc));
      continue;
    }
    if (f.default_text) {
      SpecNode node;
      node.kind = SpecNode::Kind::scalar;
      node.scalar = *f.default_text;
      Diagnostics internal;
      const bool structured = f.type == FieldType::list || f.type == FieldType::map || f.type == FieldType::object;
      if (structured && f.default_text->empty()) {
        node.kind = f.type == FieldType::list ? SpecNode::Kind::sequence : SpecNode::Kind::map;
      } else if (structured) {
        node = parse_spec(
            *f.default_text, "default", [](const std::string&) { return std::nullopt; }, internal);
      }
      node.where = owner;
      if (auto v = convert(f, node, f.name, internal)) {
        config.put(f.name, std::move(*v), false);
      } else {
        throw std::logic_error(fmt::format("bad default for field '{}': {}", f.name, internal.to_string()));
      }
    }
  }
  // Cross-field rules would only echo a field's own error, so they wait until every field is valid.
  if (check_ && !invalid_fields) check_(config, owner, diags);
  return config;
}

}  // namespace sluice
