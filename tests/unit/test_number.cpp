#include <catch2/catch.hpp>

#include "../../nodes/parse/field_type.hpp"

using namespace sluice;
using parse::NumberType;
using parse::read_number;

namespace {

// The number read, as JSON would write it ("1299", "19.99"), or "none".
std::string number(std::string_view text, char decimal = '.', NumberType type = NumberType::number) {
  const auto v = read_number(text, type, decimal);
  if (!v) return "none";
  return (v->as_int() ? "int " : "double ") + v->to_text();
}

}  // namespace

TEST_CASE("type: number reads the first number of scraped text, its currency and unit left out", "[number]") {
  CHECK(number("19.99") == "double 19.99");
  CHECK(number("$1,299.00") == "double 1299");
  CHECK(number("$1,299") == "int 1299");
  CHECK(number("Price: 1,234,567.5 USD") == "double 1234567.5");
  CHECK(number("  42 reviews") == "int 42");
  CHECK(number("12 500 Ft") == "int 12500");
  CHECK(number("12\u00a0500") == "int 12500");  // a no-break space
  CHECK(number("12\u202f500,5", ',') == "double 12500.5");
  CHECK(number("1'000'000") == "int 1000000");
  CHECK(number("1\u2019000") == "int 1000");
  CHECK(number("\u20b91,29,999") == "int 129999");  // India's lakh and crore: groups of two, then three
  CHECK(number("Rs. 12,34,56,789.50") == "double 123456789.5");
  CHECK(number("1,00,000") == "int 100000");
  CHECK(number("1.299,00 \u20ac", ',') == "double 1299");
  CHECK(number("12,5", ',') == "double 12.5");
  CHECK(number("$.99") == "double 0.99");
  CHECK(number("5.") == "int 5");
  CHECK(number("2 for 5") == "int 2");
  CHECK(number("5-10 days") == "int 5");
  CHECK(number("1.5e3") == "double 1500");
  CHECK(number("5each") == "int 5");
  CHECK(number("9223372036854775807") == "int 9223372036854775807");
  CHECK(number("99999999999999999999") == "double 1e+20");
}

TEST_CASE("a sign counts only right before the number, not as a hyphen inside a word", "[number]") {
  CHECK(number("-5 %") == "int -5");
  CHECK(number("(-2.5)") == "double -2.5");
  CHECK(number("\u22123") == "int -3");  // U+2212 MINUS SIGN
  CHECK(number("+7") == "int 7");
  CHECK(number("SKU-123") == "int 123");
  CHECK(number("2024-05-01") == "int 2024");
  CHECK(number("$-4") == "int -4");
}

TEST_CASE("a number whose separators do not fit the decimal separator is none, never a wrong number", "[number]") {
  CHECK(number("12,5") == "none");           // a decimal comma, read with '.'
  CHECK(number("1,299.00", ',') == "none");  // the other way round
  CHECK(number("1,2,3") == "none");          // groups of one
  CHECK(number("1,234,56") == "none");       // a group of two after groups of three
  CHECK(number("1234,567") == "none");       // a first group of four
  CHECK(number("1.2.3") == "none");          // a version
  CHECK(number("Call for price") == "none");
  CHECK(number("") == "none");
  CHECK(number("-") == "none");
  CHECK(number("1e999") == "none");  // not finite
  CHECK(number("-0.0") == "double 0");
}

TEST_CASE("type: integer takes whole numbers only", "[number]") {
  CHECK(number("4.00", '.', NumberType::integer) == "int 4");
  CHECK(number("1,299.00", '.', NumberType::integer) == "int 1299");
  CHECK(number("1.5e3", '.', NumberType::integer) == "int 1500");
  CHECK(number("-12 items", '.', NumberType::integer) == "int -12");
  CHECK(number("4.5", '.', NumberType::integer) == "none");
  CHECK(number("99999999999999999999", '.', NumberType::integer) == "none");
  CHECK(number("1e30", '.', NumberType::integer) == "none");
}

TEST_CASE("a field's numbers count the values that held none, for one warning with a hint", "[number]") {
  parse::TypedField price(parse::ValueType::number, '.', parse::DateOrder::unset);
  CHECK(price.convert_text("$5")->as_int());
  CHECK(price.notice("price").empty());
  CHECK_FALSE(price.convert_text("12,50 \u20ac"));
  CHECK_FALSE(price.convert_text("n/a"));
  CHECK(*price.convert(Value(2.5))->as_double() == 2.5);  // parse.json's numbers stay as they are
  CHECK_FALSE(price.convert(Value(true)));
  CHECK(price.notice("price") ==
        "field 'price' (type: number) had 3 values with no number in them (the first: '12,50 \u20ac') (written "
        "with a decimal ','? set decimal: ','); they were left out");
  parse::TypedField count(parse::ValueType::integer, '.', parse::DateOrder::unset);
  CHECK(*count.convert(Value(4.0))->as_int() == 4);
  CHECK_FALSE(count.convert(Value(4.5)));
  CHECK(count.notice("count") ==
        "field 'count' (type: integer) had 1 value with no whole number in it (the first: '4.5'); it was left out");
}
