// Numbers in scraped text, for the `type` option of the parse nodes' fields: a price shown as
// "$1,299.00" or "1.299,00 €" becomes the number 1299, so that a filter, a store's REAL column or a
// JSON consumer gets a number and not text.
#pragma once

#include <optional>
#include <string_view>

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

}  // namespace sluice::parse
