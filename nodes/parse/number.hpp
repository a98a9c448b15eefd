// Numbers in scraped text, for the `type` option of the parse nodes' fields: a price shown as
// "$1,299.00" or "1.299,00 €" becomes the number 1299, so that a filter, a store's REAL column or a
// JSON consumer gets a number and not text.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "sluice/schema.hpp"
#include "sluice/value.hpp"

namespace sluice::parse {

enum class NumberType { number, integer };

// The first number in `text`, with `decimal` ('.' or ',') as its decimal separator: digits, groups
// of three after the other of ',' and '.', a space, a no-break or thin space or an apostrophe
// ("1,299", "12 500", "1'000") or India's groups of two before the last three ("1,29,999"), then a
// fraction and an exponent; a '-' or '+' (or U+2212) right before it is its sign unless a letter or
// digit comes before that ("SKU-12" is 12). Text around it (a currency, a unit, "from") is left out.
// No number (nullopt): none in the text, or one whose separators do not fit `decimal` ("12,5" or
// "1,234,56" with '.', "1,299.00" with ','), which would otherwise be read wrong. `number` gives an
// integer when it has no fraction or exponent and fits in 64 bits, else a finite double; `integer`
// only an integer ("4.00" is 4, "4.5" is none).
std::optional<Value> read_number(std::string_view text, NumberType type, char decimal);

// A parse node's field of `type: number` or `integer`: converts each value, and counts the values
// that held no number (any thread), for one notice at the end of the run.
class FieldNumbers {
 public:
  FieldNumbers(NumberType type, char decimal) : type_(type), decimal_(decimal) {}
  // `value` (text, or a number parse.json found) as the field's type; nullopt when it is none.
  std::optional<Value> convert(const Value& value);
  std::optional<Value> convert_text(std::string_view text);
  // The notice of a field that met values with no number, or empty. `field` is its name.
  std::string notice(const std::string& field) const;
  // Gives that notice, if any, to a node's `notice` (from its NodeContext), at the end of a run.
  void say(const std::string& field, const std::function<void(std::string)>& notice) const {
    if (std::string said = this->notice(field); !said.empty() && notice) notice(std::move(said));
  }
  // "number" or "integer".
  const char* type_name() const { return type_ == NumberType::number ? "number" : "integer"; }

 private:
  void missed(std::string_view value);

  NumberType type_;
  char decimal_;
  std::atomic<std::uint64_t> missed_{0};
  mutable std::mutex mutex_;
  std::string first_missed_;
};

// The `type` and `decimal` options of a parse node's field, and reading them from its config
// (nullptr for `type: text`).
FieldSpec field_type_spec();
FieldSpec field_decimal_spec();
std::shared_ptr<FieldNumbers> field_numbers_of(const Config& field);
// The error of a required field that got no value: "required field 'price' not found (selector
// 'b')", or, when its value held no number, "required field 'price' has no number in 'n/a'
// (selector 'b', type: number)". `where` names the field's selectors or paths ("selector 'b'").
std::string required_field_error(const std::string& field, const std::string& where, const FieldNumbers* numbers,
                                 const std::string& no_number);
// The check of a field with those options: `decimal` without a type it applies to is an error.
void check_field_type(const Config& field, const Location& owner, Diagnostics& diags);

}  // namespace sluice::parse
