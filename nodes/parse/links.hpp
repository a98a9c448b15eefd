// What the parse nodes share about a page: its body, the records of its items, and its links.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/diagnostics.hpp"
#include "sluice/schema.hpp"
#include "sluice/value.hpp"

namespace sluice::parse {

// The page's body as text: a Bytes or string field, empty when missing.
std::string_view body_text(const Record& page, const std::string& field);

// The URL of the page a record is: its `url_field` (fetch's final_url), else `url`, else
// `page_url` (an item of an upstream parser: JSON-LD text that parse.html found, read by
// parse.json). Empty when it has none.
std::string page_url_of(const Record& page, const std::string& url_field);

// A record for an item found on `page`: no fields yet but its origin (page_url, depth, fetched_at),
// the page's fields named in `keep` (those it has), and the page's metadata and permits.
Record item_record(const Record& page, const std::string& page_url, const std::vector<std::string>& keep = {});

// The parse nodes' `keep` option: fields of the page's record copied into each item.
FieldSpec keep_spec();
std::vector<std::string> keep_of(const Config& config);
// Copies the fields named in `keep` that `page` has into `item`.
void keep_fields(const Record& page, const std::vector<std::string>& keep, Record& item);
// Validation: a kept field must not also be one the node extracts (`produced`).
void check_keep(const Config& config, const std::vector<std::string>& produced, Diagnostics& diags);
// The same for parse.html and parse.json, which extract the fields of their `fields` map.
void check_keep_against_fields(const Config& config, const Location& owner, Diagnostics& diags);

// A field's selectors or paths as written (`select` or `path`, then its `fallback`s): as messages
// quote them ("'a'", "'a', then 'b'") and as the selectors table shows them ("a or b").
struct FieldSources {
  std::string quoted, listed;
};
FieldSources sources_of(const std::vector<std::string>& written);

// Resolves `href` against `base` with libcurl's URL API and normalizes it (fragment dropped, scheme
// and host lower-cased, default port removed; spaces and bytes beyond ASCII percent-encoded, as
// browsers do, whether the href is relative or absolute). Empty for invalid and non-http(s) links.
std::string resolve_link(const std::string& base, const std::string& href);

// The lower-cased host of an http(s) URL ("[::1]" for IPv6), as libcurl's URL parser gives it;
// empty when it cannot be parsed. plain_host() reads it from the text alone when the authority is
// a plain name or address (a normalized link's is), nullopt otherwise; url_host() falls back to
// libcurl then.
std::optional<std::string> plain_host(std::string_view url);
std::string url_host(const std::string& url);

// `url` without the query parameters named in `names` (exact names; a trailing '*' matches any
// ending: utm_*), the others kept in their order; without the '?' when none is left. A parameter's
// name is what comes before its '=', compared as written. The fragment, if any, is kept.
std::string strip_query(std::string_view url, const std::vector<std::string>& names);

// `url` with its query parameters in order of name (byte order; parameters of one name keep their
// order), so that ?b=2&a=1 and ?a=1&b=2 are one URL. The fragment, if any, is kept.
std::string sort_query(std::string_view url);

// The value of the first query parameter of `url` named `name` (compared as written: its text
// before '='), "" for one without '='; nullopt when there is none.
std::optional<std::string> query_param(std::string_view url, std::string_view name);

// `url` with the query parameter `name` set to `value`: its first occurrence replaced, or added at
// the end of the query when there is none; the other parameters and the fragment kept.
std::string with_query_param(std::string_view url, std::string_view name, std::string_view value);

// The target of the first link with the relation type `rel` (lower case: "next") in an HTTP Link
// header (RFC 8288: `<https://api.example/items?page=2>; rel="next", <...>; rel="last"`; several
// headers joined with ", " as fetch's keep_headers joins them), as written between its angle
// brackets; relation types are compared without regard to case, several in one rel ("next last").
// Empty when there is none, or the header is not one.
std::string link_header_target(std::string_view header, std::string_view rel);

// The record for a link found on `page`: fields url, depth, from_url, and the page's other fields
// named in `keep` (a frontier carries them to the link's page); depth one more than the page.
Record link_record(const Record& page, const std::string& page_url, std::string url,
                   const std::vector<std::string>& keep = {});

// Sets each member of a JSON object on `r`, typed as parse.json reads values (a frontier's carried
// fields, a line of source.jsonl); a name given twice keeps its last value. Returns what is wrong
// when `json` is not a JSON object ("" when it is).
std::string set_json_fields(Record& r, std::string_view json);

}  // namespace sluice::parse
