#include "field_type.hpp"

#include <fmt/format.h>

#include <chrono>
#include <cmath>

#include "../text.hpp"
#include "sluice/node.hpp"

namespace sluice::parse {

const char* TypedField::type_name() const {
  static constexpr const char* kNames[] = {"number", "integer", "date"};  // in ValueType's order
  return kNames[static_cast<std::size_t>(type_)];
}

namespace {

// When the page was fetched (its `fetched_at`), or now.
double fetched_at(const Record* page) {
  if (const Value* at = page ? page->get("fetched_at") : nullptr) {
    if (const auto* d = at->as_double()) return *d;
    if (const auto* i = at->as_int()) return static_cast<double>(*i);
  }
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

std::optional<Value> TypedField::read(std::string_view text, char decimal, DateOrder order, const Record* page) const {
  if (type_ != ValueType::date) {
    return read_number(text, type_ == ValueType::number ? NumberType::number : NumberType::integer, decimal);
  }
  if (auto date = read_date(text, order, fetched_at(page))) {
    return Value(zone_ ? local_to_utc(*date, *zone_) : std::move(*date));
  }
  return std::nullopt;
}

std::optional<Value> TypedField::convert_text(std::string_view text, const Record* page) {
  std::optional<Value> out = read(text, decimal_, order_, page);
  if (!out) missed(text, true);
  return out;
}

std::optional<Value> TypedField::convert(const Value& value, const Record* page) {
  if (const auto* text = value.as_string()) return convert_text(*text, page);
  std::optional<Value> out;
  const auto* i = value.as_int();
  const auto* d = value.as_double();
  if (type_ == ValueType::date) {
    if (i || d) {
      if (auto date = date_of_epoch(i ? static_cast<double>(*i) : *d)) out = Value(std::move(*date));
    }
  } else if (i) {
    out = Value(*i);
  } else if (d) {
    if (type_ == ValueType::number) {
      out = Value(*d);
    } else if (*d == std::floor(*d) && std::fabs(*d) < 9.2e18) {
      out = Value(static_cast<std::int64_t>(*d));
    }
  }
  if (!out) missed(value.to_text(), false);  // a number out of range, a list or an object
  return out;
}

void TypedField::missed(std::string_view value, bool text) {
  if (missed_.fetch_add(1, std::memory_order_relaxed) != 0) return;
  std::lock_guard lock(mutex_);
  first_missed_ = nodes::sample_of(value);
  first_missed_text_ = text;
}

std::string TypedField::notice(const std::string& field) const {
  const std::uint64_t missed = missed_.load(std::memory_order_relaxed);
  if (missed == 0) return "";
  std::lock_guard lock(mutex_);
  // The likely cause, when the first value reads with another setting (no setting reads a list or
  // an object as one number or date).
  std::string hint;
  if (first_missed_text_ && type_ == ValueType::date) {
    if (order_ == DateOrder::unset && read(first_missed_, decimal_, DateOrder::dmy, nullptr)) {
      hint = fmt::format(" ({})", kDateOrderHint);
    }
  } else if (const char other = decimal_ == '.' ? ',' : '.';
             first_missed_text_ && read(first_missed_, other, order_, nullptr)) {
    hint = fmt::format(" (written with a decimal '{}'? set decimal: '{}')", other, other);
  }
  const char* what = type_ == ValueType::number ? "number" : type_ == ValueType::integer ? "whole number" : "date";
  const bool one = missed == 1;
  return fmt::format("field '{}' (type: {}) had {} value{} with no {} in {} (the first: '{}'){}; {} left out", field,
                     type_name(), missed, one ? "" : "s", what, one ? "it" : "them", first_missed_, hint,
                     one ? "it was" : "they were");
}

FieldSpec field_type_spec() {
  return FieldSpec::enumeration(
             "type", {"text", "number", "integer", "date"},
             "text, or number: the first number in the value (\"$1,299.00\" is 1299, \"-5 %\" is -5), an integer "
             "unless it has a fraction; integer: a whole one (\"4.00\" is 4, \"4.5\" none); date: the first date, as "
             "ISO 8601 text (\"March 5, 2026\" is \"2026-03-05\", a time with a zone is given in UTC; \"3 hours ago\" "
             "and a day without its year (\"Mar 5\") count from the page's fetched_at). A value with none is left out "
             "(a null field, an error when "
             "required), and counted in a warning at the end")
      .with_default("text");
}

FieldSpec field_decimal_spec() {
  return FieldSpec::enumeration("decimal", {".", ","},
                                "the decimal separator of type: number or integer (',' for \"1.299,50 €\"); the other "
                                "one, spaces and apostrophes group thousands")
      .with_default(".");
}

FieldSpec field_date_order_spec() {
  return FieldSpec::enumeration("date_order", {"dmy", "mdy"},
                                "how type: date reads a date in numbers only: dmy (\"05/03/2026\" is 5 March) or mdy "
                                "(May 3); unset, only one whose day is above 12 is read");
}

FieldSpec field_time_zone_spec(std::string_view dates) {
  return FieldSpec::string("time_zone",
                           fmt::format("the site's time zone (Europe/Berlin, America/New_York) for {}: a date with a "
                                       "time and no zone of its own is read in it and given as the moment in UTC "
                                       "(\"5. März 2026 um 14:30\" is \"2026-03-05T13:30:00Z\"); unset, such a time "
                                       "is given as written",
                                       dates));
}

ValueType value_type_of(const std::string& name) {
  if (name == "number") return ValueType::number;
  if (name == "integer") return ValueType::integer;
  return ValueType::date;
}

std::string required_field_error(const std::string& field, const std::string& where, const TypedField* typed,
                                 const std::string& no_value) {
  if (!typed || no_value.empty()) return fmt::format("required field '{}' not found ({})", field, where);
  return fmt::format("required field '{}' has no {} in '{}' ({}, type: {})", field, typed->type_name(), no_value, where,
                     typed->type_name());
}

void check_field_type(const Config& field, const Location&, Diagnostics& diags) {
  const std::string type = field.string("type");
  if (field.explicitly_set("decimal") && type != "number" && type != "integer") {
    diags.error(field.where("decimal"),
                fmt::format("decimal is for type: number or integer, and this field is {}", type));
  }
  if (field.has("date_order") && type != "date") {
    diags.error(field.where("date_order"), fmt::format("date_order is for type: date, and this field is {}", type));
  }
  if (field.has("time_zone") && type != "date") {
    diags.error(field.where("time_zone"), fmt::format("time_zone is for type: date, and this field is {}", type));
  }
  check_time_zone(field, diags);
}

void check_time_zone(const Config& config, Diagnostics& diags) {
  if (!config.has("time_zone")) return;
  std::string error;
  if (!TimeZone::load(config.string("time_zone"), error)) diags.error(config.where("time_zone"), error);
}

std::shared_ptr<const TimeZone> time_zone_of(const Config& config) {
  if (!config.has("time_zone")) return nullptr;
  std::string error;
  auto zone = TimeZone::load(config.string("time_zone"), error);
  if (!zone) throw NodeError(error);
  return zone;
}

DateOrder date_order_of(const Config& config) {
  if (!config.has("date_order")) return DateOrder::unset;
  return config.string("date_order") == "dmy" ? DateOrder::dmy : DateOrder::mdy;
}

std::shared_ptr<TypedField> typed_field_of(const Config& field) {
  const std::string type = field.string("type");
  if (type == "text") return nullptr;
  return std::make_shared<TypedField>(value_type_of(type), field.string("decimal").front(), date_order_of(field),
                                      time_zone_of(field));
}

}  // namespace sluice::parse
