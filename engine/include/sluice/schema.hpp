// Config schemas: the typed fields a node type (or the pipeline settings) accepts, and the validated
// Config values that factories read. The loader validates every node against its schema; no node
// parses YAML by hand.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "sluice/diagnostics.hpp"
#include "sluice/spec.hpp"
#include "sluice/value.hpp"

namespace sluice {

enum class FieldType {
  string,
  integer,
  boolean,
  duration,  // "250ms", "30s", "2m", "1h"; a bare number is rejected (unit required)
  size,      // "512", "64KiB", "10MiB", "1GB"
  enumeration,
  list,    // of `element`
  map,     // string keys to `element`
  scalar,  // any YAML scalar, typed as null / bool / int / double / string
  object,  // a nested schema
  any,     // any YAML value: a scalar (typed as `scalar`), a list or a map of them, nested (a JSON body)
};

std::string_view field_type_name(FieldType type);

class Schema;

// One typed config field. Built fluently:
//   FieldSpec::string("path", "file to write, '-' for stdout").with_default("-")
struct FieldSpec {
  std::string name;
  FieldType type = FieldType::string;
  std::string doc;
  bool required = false;
  std::optional<std::string> default_text;   // YAML text of the default; parsed like user input
  std::vector<std::string> choices;          // enumeration
  std::shared_ptr<const FieldSpec> element;  // list and map elements
  std::shared_ptr<const Schema> object;      // object
  std::optional<std::int64_t> min;           // integer lower bound
  // Extra check of a scalar value (after type conversion): returns an error message, or "" when fine.
  std::function<std::string(const Value&)> validator;
  // For objects: a plain scalar stands for {shorthand: scalar} ("price: span.price").
  std::string shorthand;
  // For maps: a check of each key, like `validator`.
  std::function<std::string(const Value&)> key_validator;

  static FieldSpec string(std::string name, std::string doc);
  static FieldSpec integer(std::string name, std::string doc);
  static FieldSpec boolean(std::string name, std::string doc);
  static FieldSpec duration(std::string name, std::string doc);
  static FieldSpec size(std::string name, std::string doc);
  static FieldSpec scalar(std::string name, std::string doc);
  static FieldSpec enumeration(std::string name, std::vector<std::string> choices, std::string doc);
  static FieldSpec list(std::string name, FieldSpec element, std::string doc);
  static FieldSpec map(std::string name, FieldSpec element, std::string doc);
  static FieldSpec object_of(std::string name, Schema schema, std::string doc);
  static FieldSpec any(std::string name, std::string doc);

  FieldSpec with_default(std::string yaml_text) &&;
  FieldSpec make_required() &&;
  FieldSpec at_least(std::int64_t lower_bound) &&;
  FieldSpec validated_by(std::function<std::string(const Value&)> check) &&;
  FieldSpec keys_validated_by(std::function<std::string(const Value&)> check) &&;

  // "int", "duration", "list of string", "one of fail|skip|route", ...
  std::string type_text() const;
};

class Config;

// A validated config value with the position it came from.
struct ConfigValue {
  using Duration = std::chrono::nanoseconds;
  struct Size {
    std::uint64_t bytes = 0;
  };
  using List = std::vector<ConfigValue>;
  using Map = std::vector<std::pair<std::string, ConfigValue>>;
  using Object = std::shared_ptr<const Config>;

  // Defined in schema.cpp, as SpecNode's are (clang 14 and a recursive type; tools/fuzz.sh).
  ConfigValue();
  ConfigValue(const ConfigValue&);
  ConfigValue(ConfigValue&&) noexcept;
  ConfigValue& operator=(const ConfigValue&);
  ConfigValue& operator=(ConfigValue&&) noexcept;
  ~ConfigValue();

  std::variant<Value, Duration, Size, List, Map, Object> v;  // an `any` field: Value, List or Map
  Location where;
};

// Validated config of one node (or of the pipeline settings). Accessors name a field declared in the
// schema; a field that is absent and has no default reads as std::nullopt / throws std::logic_error
// from the required-value accessors (a programming error: declare a default or check has()).
class Config {
 public:
  bool has(const std::string& name) const { return values_.count(name) != 0; }
  // True when the user wrote the field (as opposed to a default).
  bool explicitly_set(const std::string& name) const { return explicit_.count(name) != 0; }

  const ConfigValue& at(const std::string& name) const;
  std::string string(const std::string& name) const;
  std::int64_t integer(const std::string& name) const;
  bool boolean(const std::string& name) const;
  std::chrono::nanoseconds duration(const std::string& name) const;
  std::uint64_t size(const std::string& name) const;
  Value scalar(const std::string& name) const;
  const ConfigValue::List& list(const std::string& name) const;
  const ConfigValue::Map& map(const std::string& name) const;
  const Config& object(const std::string& name) const;
  Location where(const std::string& name) const;

  void put(std::string name, ConfigValue value, bool is_explicit);
  // Calls `visit` with every field and its value as text ("a", "[1, 2]", "{k: v}", durations in
  // ns, sizes in bytes), in name order: the config as data, for fingerprints.
  void each(const std::function<void(const std::string& name, const std::string& text)>& visit) const;

 private:
  std::map<std::string, ConfigValue> values_;
  std::map<std::string, bool> explicit_;
};

// A set of fields, plus an optional cross-field check (for rules such as "exactly one of"). The
// check runs once every field given is valid, and also when a required field is missing (so that
// its other problems are reported too): it must test has() before reading a required field.
class Schema {
 public:
  using Check = std::function<void(const Config&, const Location& owner, Diagnostics&)>;

  Schema() = default;
  Schema(std::vector<FieldSpec> fields, Check check = {}) : fields_(std::move(fields)), check_(std::move(check)) {}

  const std::vector<FieldSpec>& fields() const { return fields_; }
  const FieldSpec* find(std::string_view name) const;
  std::vector<std::string> names() const;

  // Validates map entries (except those named in `reserved`, which the caller handles) into a
  // Config. Every problem goes to diags: unknown key (with a "did you mean" or the allowed keys),
  // wrong type, bad duration/size/enum, missing required field. `owner` locates the whole map for
  // "missing field" errors.
  // `owner_name` names the map in messages ("node 'out' (sink.jsonl)", "settings").
  // Field names in messages are prefixed with `prefix` (nested objects: "retries.").
  Config validate(const SpecNode& map, const Location& owner, const std::string& owner_name,
                  const std::vector<std::string>& reserved, Diagnostics& diags, const std::string& prefix = "") const;

 private:
  std::vector<FieldSpec> fields_;
  Check check_;
};

// Parse helpers shared with the command line (--set): return nullopt on bad input.
std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text);
std::optional<std::uint64_t> parse_size(std::string_view text);
// A duration as a person reads it, in the pipeline's own units: "10s", "1.5s", "250ms".
std::string duration_text(std::chrono::nanoseconds d);
// A YAML plain scalar typed the YAML 1.2 core way: null, true/false, int, float, else string.
Value typed_scalar(const SpecNode& node);

}  // namespace sluice
