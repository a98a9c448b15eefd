#include <catch2/catch.hpp>

#include "../../nodes/fetch/cache.hpp"
#include "../support.hpp"

using namespace sluice;
using namespace sluice::fetch;

TEST_CASE("a request's cache key tells method, URL, headers and body apart", "[fetch][cache]") {
  const std::vector<std::string> none, tagged{"X-Q: 1"};
  const std::optional<std::string> no_body, empty_body = std::string(), body = std::string("q=1");
  const std::string key = cache_key("GET", "https://a.example/", no_body, none);
  CHECK(key.size() == 32);
  CHECK(cache_key("GET", "https://a.example/", no_body, none) == key);
  CHECK(cache_key("HEAD", "https://a.example/", no_body, none) != key);
  CHECK(cache_key("GET", "https://a.example/x", no_body, none) != key);
  CHECK(cache_key("GET", "https://a.example/", no_body, tagged) != key);
  CHECK(cache_key("POST", "https://a.example/", empty_body, none) !=
        cache_key("POST", "https://a.example/", no_body, none));
  CHECK(cache_key("POST", "https://a.example/", body, none) !=
        cache_key("POST", "https://a.example/", empty_body, none));
  // A body is hashed after its length: one that looks like the parts before it does not collide.
  CHECK(cache_key("POST", "u", std::string("a"), {"h"}) != cache_key("POST", "u", std::string("h"), {"a"}));
}

TEST_CASE("a kept header is found by its whole name, and repeated ones are joined", "[fetch][cache]") {
  const std::string headers = "etag: \"v1\"\netag-extra: no\nset-cookie: a=1\nx-empty: \nset-cookie: b=2\n";
  CHECK(cached_header(headers, "etag") == std::optional<std::string>("\"v1\""));
  CHECK(cached_header(headers, "set-cookie") == std::optional<std::string>("a=1, b=2"));
  CHECK(cached_header(headers, "x-empty") == std::optional<std::string>(""));
  CHECK_FALSE(cached_header(headers, "last-modified"));
  CHECK_FALSE(cached_header(headers, "etag-"));
  CHECK_FALSE(cached_header("", "etag"));
}

TEST_CASE("the cache keeps responses, tells stale ones, and refreshes them", "[fetch][cache]") {
  test::TempDir dir;
  const std::string path = dir.file("c.db");
  CachedResponse r;
  r.key = std::string(32, 'k');
  r.url = "https://a.example/";
  r.final_url = "https://a.example/home";
  r.status = 200;
  r.content_type = "text/html";
  r.headers = "etag: \"v1\"\n";
  r.body = Bytes(std::string(5000, 'x'));  // compressed
  r.fetched_at = 1000;
  CachedResponse empty = r;
  empty.key = std::string(32, 'e');
  empty.content_type.reset();
  empty.headers.clear();
  empty.body = Bytes();
  {
    ResponseCache cache(path, std::nullopt);
    CHECK_FALSE(cache.find(r.key));
    cache.store({r, empty});
    auto found = cache.find(r.key);
    REQUIRE(found);
    CHECK(found->final_url == r.final_url);
    CHECK(found->status == 200);
    CHECK(found->content_type == r.content_type);
    CHECK(found->headers == r.headers);
    CHECK(found->body.view() == r.body.view());
    CHECK(found->fetched_at == 1000);
    CHECK_FALSE(found->stale);
    auto nothing = cache.find(empty.key);
    REQUIRE(nothing);
    CHECK_FALSE(nothing->content_type);
    CHECK(nothing->body.size() == 0);
  }
  CHECK(test::query(path, "SELECT compressed, size, length(body) < 100 FROM responses ORDER BY key") ==
        std::vector<std::string>{"0|0|1", "1|5000|1"});
  {
    ResponseCache cache(path, std::chrono::hours(1));  // both are old: the one without a version goes
    CHECK_FALSE(cache.find(empty.key));
    auto found = cache.find(r.key);
    REQUIRE(found);
    CHECK(found->stale);
    CachedResponse touch;
    touch.key = r.key;
    touch.fetched_at = 4e9;  // the future: fresh
    touch.refresh = true;
    cache.store({touch});
    found = cache.find(r.key);
    REQUIRE(found);
    CHECK_FALSE(found->stale);
    CHECK(found->body.view() == r.body.view());
  }
}
