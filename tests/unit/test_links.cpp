// URL helpers of the crawl: query parameters a frontier strips.
#include <catch2/catch.hpp>

#include "../../nodes/parse/links.hpp"

using sluice::parse::sort_query;
using sluice::parse::strip_query;

TEST_CASE("strip_query removes the named parameters and keeps the others in their order", "[crawl]") {
  const std::vector<std::string> tags = {"utm_*", "gclid", "fbclid"};
  CHECK(strip_query("https://a.example/p?utm_source=mail&utm_medium=x", tags) == "https://a.example/p");
  CHECK(strip_query("https://a.example/p?id=5&utm_source=mail&page=2", tags) == "https://a.example/p?id=5&page=2");
  CHECK(strip_query("https://a.example/p?utm_source=mail&id=5", tags) == "https://a.example/p?id=5");
  CHECK(strip_query("https://a.example/p?gclid=abc", tags) == "https://a.example/p");
  CHECK(strip_query("https://a.example/p?gclid", tags) == "https://a.example/p");  // no value
  CHECK(strip_query("https://a.example/p?fbclid=1#top", tags) == "https://a.example/p#top");
  // Names are whole: gclid_x is not gclid, and utm without its underscore is not utm_*.
  CHECK(strip_query("https://a.example/p?gclid_x=1&utm=2", tags) == "https://a.example/p?gclid_x=1&utm=2");
  // Compared as written: UTM_SOURCE is another parameter.
  CHECK(strip_query("https://a.example/p?UTM_SOURCE=1", tags) == "https://a.example/p?UTM_SOURCE=1");
  // A URL with nothing to strip is left byte for byte, odd as it may be.
  CHECK(strip_query("https://a.example/p?a=1&&b=2&", tags) == "https://a.example/p?a=1&&b=2&");
  CHECK(strip_query("https://a.example/p?", tags) == "https://a.example/p?");
  CHECK(strip_query("https://a.example/p", tags) == "https://a.example/p");
  // Nothing named: nothing stripped.
  CHECK(strip_query("https://a.example/p?utm_source=mail", {}) == "https://a.example/p?utm_source=mail");
  // A '?' in the fragment is not a query.
  CHECK(strip_query("https://a.example/p#x?utm_source=1", tags) == "https://a.example/p#x?utm_source=1");
}

TEST_CASE("sort_query puts parameters in order of name, those of one name in their order", "[crawl]") {
  CHECK(sort_query("https://a.example/p?b=2&a=1") == "https://a.example/p?a=1&b=2");
  CHECK(sort_query("https://a.example/p?tag=z&page=2&tag=a") == "https://a.example/p?page=2&tag=z&tag=a");
  CHECK(sort_query("https://a.example/p?b&a=1#x?z=1&y=2") == "https://a.example/p?a=1&b#x?z=1&y=2");
  CHECK(sort_query("https://a.example/p?a=1") == "https://a.example/p?a=1");
  CHECK(sort_query("https://a.example/p") == "https://a.example/p");
  CHECK(sort_query("https://a.example/p?") == "https://a.example/p?");
}
