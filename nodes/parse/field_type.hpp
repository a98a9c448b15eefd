// The `type` of a parse node's field: scraped text read as a number, a whole number or a date, so
// that a filter, a store's column or a JSON consumer gets "1299" or "2026-03-05" and not
// "$1,299.00" or "March 5, 2026".
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "date.hpp"
#include "number.hpp"
#include "sluice/schema.hpp"
#include "sluice/value.hpp"
#include "time_zone.hpp"

namespace sluice::parse {

enum class ValueType { number, integer, date };

// A field of `type: number`, `integer` or `date`: converts each of its values (read_number,
// read_date), and counts the values that held none (any thread), for one notice at the end of the
// run.
class TypedField {
 public:
  // `zone`: a date with a time and no zone of its own is the site's local time there, given as the
  // moment in UTC (time_zone); null: as written.
  TypedField(ValueType type, char decimal, DateOrder order, std::shared_ptr<const TimeZone> zone = nullptr)
      : type_(type), decimal_(decimal), order_(order), zone_(std::move(zone)) {}
  // `value` (text, or a number parse.json found: for a date, seconds since the epoch) as the
  // field's type; nullopt when it is none. `page`: the record the value was found in, whose
  // `fetched_at` a relative date ("3 hours ago") counts from (from now when it has none).
  std::optional<Value> convert(const Value& value, const Record* page = nullptr);
  std::optional<Value> convert_text(std::string_view text, const Record* page = nullptr);
  // The notice of a field that met values with none, or empty. `field` is its name.
  std::string notice(const std::string& field) const;
  // Gives that notice, if any, to a node's `notice` (from its NodeContext), at the end of a run.
  void say(const std::string& field, const std::function<void(std::string)>& notice) const {
    if (std::string said = this->notice(field); !said.empty() && notice) notice(std::move(said));
  }
  // "number", "integer" or "date".
  const char* type_name() const;

 private:
  std::optional<Value> read(std::string_view text, char decimal, DateOrder order, const Record* page) const;
  // `text`: the value was text, which another decimal or date_order might read (a hint says so).
  void missed(std::string_view value, bool text);

  ValueType type_;
  char decimal_;
  DateOrder order_;
  std::shared_ptr<const TimeZone> zone_;
  std::atomic<std::uint64_t> missed_{0};
  mutable std::mutex mutex_;
  std::string first_missed_;
  bool first_missed_text_ = false;
};

// The `type`, `decimal` and `date_order` options of a parse node's field, and reading them from its
// config (nullptr for `type: text`).
FieldSpec field_type_spec();
FieldSpec field_decimal_spec();
FieldSpec field_date_order_spec();
// `dates`: what the option applies to ("type: date", "the groups types reads as dates").
FieldSpec field_time_zone_spec(std::string_view dates = "type: date");
std::shared_ptr<TypedField> typed_field_of(const Config& field);
// A `type` option's value ("number", "integer" or "date") as a ValueType.
ValueType value_type_of(const std::string& name);
// The `date_order` option of `config` (a field, or parse.regex's node), unset when not given.
DateOrder date_order_of(const Config& config);
// The `time_zone` option of `config` (a field, or parse.regex's node), loaded; null when not given.
// Throws NodeError for a zone that cannot be loaded (check_time_zone() reports it first).
std::shared_ptr<const TimeZone> time_zone_of(const Config& config);
// The check of a `time_zone` option: a zone the system's tz database has, at the option's place.
void check_time_zone(const Config& config, Diagnostics& diags);
// The error of a required field that got no value: "required field 'price' not found (selector
// 'b')", or, when its value held no number, "required field 'price' has no number in 'n/a'
// (selector 'b', type: number)". `where` names the field's selectors or paths ("selector 'b'").
std::string required_field_error(const std::string& field, const std::string& where, const TypedField* typed,
                                 const std::string& no_value);
// The check of a field with those options: `decimal` without a number type, or `date_order` or
// `time_zone` without type: date, is an error, and so is a time zone the system does not have.
void check_field_type(const Config& field, const Location& owner, Diagnostics& diags);

}  // namespace sluice::parse
