// Names of the files that save writes, and fetch's download: writes: a template's rendered path made
// safe, or a URL's hash and an extension.
#pragma once

#include <string>
#include <string_view>

#include "sluice/value.hpp"

namespace sluice::nodes {

// An extension for a file named without a `path` template: the URL's own (".jpg" of /a/b.jpg?x=1),
// else one for its Content-Type, else none.
std::string extension_for(std::string_view url, std::string_view content_type);

// `rendered` as a relative path of plain components: empty and "." components are dropped; an
// absolute path, "..", a NUL byte or nothing at all is refused (a scraped value must never write
// outside `dir`). Returns "" and sets `error` when refused.
std::string checked_relative(const std::string& rendered, std::string& error);

// The name of a file with no `path` template: 16 hex digits of the URL's hash and extension_for().
std::string hashed_name(std::string_view url, std::string_view content_type);

// Checks a `path` option: a template that compiles and is not empty. "" when it is fine.
std::string check_path_template(const Value& v);

}  // namespace sluice::nodes
