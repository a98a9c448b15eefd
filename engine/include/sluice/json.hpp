// JSON text for values and records (JSON Lines sinks, stats, messages).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "sluice/value.hpp"

namespace sluice {

// The length of the well-formed UTF-8 sequence at s[i] (1-4), or 0 where there is none (a stray
// byte, an overlong form, a surrogate, beyond U+10FFFF, cut off at the end).
std::size_t utf8_sequence(std::string_view s, std::size_t i);
// `in` with every byte that is not part of a well-formed UTF-8 sequence replaced by U+FFFD.
std::string sanitize_utf8(std::string_view in);
// Appends `text` as a JSON string literal. Invalid UTF-8 sequences become U+FFFD.
void append_json_string(std::string& out, std::string_view text);
// Appends a value: null, true/false, numbers (NaN and infinities as null), strings, bytes (as a
// string, invalid UTF-8 replaced), lists as arrays.
void append_json(std::string& out, const Value& value);
// Appends a record as one JSON object, fields in record order; with `only`, just those fields
// (missing ones as null), in that order.
void append_json(std::string& out, const Record& record, const std::vector<std::string>* only = nullptr);

}  // namespace sluice
