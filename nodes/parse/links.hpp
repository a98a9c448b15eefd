// Links found on a page: resolution against the page URL and the record sent on a `links` port.
#pragma once

#include <string>

#include "sluice/value.hpp"

namespace sluice::parse {

// Resolves `href` against `base` with libcurl's URL API and normalizes it (fragment dropped, scheme
// and host lower-cased, default port removed). Empty for invalid and non-http(s) links.
std::string resolve_link(const std::string& base, const std::string& href);

// The record for a link found on `page`: fields url, depth, from_url; depth one more than the page.
Record link_record(const Record& page, const std::string& page_url, std::string url);

}  // namespace sluice::parse
