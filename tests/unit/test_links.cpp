// URL helpers of the crawl: query parameters a frontier strips.
#include <catch2/catch.hpp>

#include <random>

#include "../../nodes/parse/links.hpp"

using sluice::parse::resolve_link;
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

TEST_CASE("plain_host reads a host as libcurl's parser gives it, or leaves the URL to libcurl", "[crawl]") {
  using sluice::parse::plain_host;
  using sluice::parse::url_host;
  // Each: the fast reading, when there is one, equals libcurl's, and url_host() always does.
  for (const char* url : {"https://Example.COM/a", "http://shop.example:8080/x?y#z", "http://127.0.0.1:9/",
                          "http://[::1]:8080/p", "http://[2001:db8::1]/", "https://a_b.example", "http://x.example?q",
                          "http://x.example#f", "http://user:pw@host.example/", "http://2130706433/", "http://127.1/",
                          "http://0x7f.0.0.1/", "http://[0:0::1]/", "http://caf%C3%A9.example/",
                          "http://b\xc3\xbc"
                          "cher.example/",
                          "http://10.0.0.01/", "http://123shop.example/", "http://[::ffff:127.0.0.1]/"}) {
    INFO(url);
    // libcurl's reading, forced: user info makes plain_host() leave the URL to libcurl.
    std::string via_curl(url);
    if (via_curl.find('@') == std::string::npos) via_curl.insert(via_curl.find("://") + 3, "u@");
    REQUIRE_FALSE(plain_host(via_curl));
    if (const auto fast = plain_host(url)) CHECK(*fast == url_host(via_curl));
    CHECK(url_host(url) == url_host(via_curl));
  }
  CHECK(plain_host("https://Example.COM/a") == std::optional<std::string>("example.com"));
  CHECK(plain_host("http://[::1]:8080/p") == std::optional<std::string>("[::1]"));
  CHECK(plain_host("http://127.0.0.1:9/") == std::optional<std::string>("127.0.0.1"));
  CHECK_FALSE(plain_host("http://2130706433/"));  // libcurl's 127.0.0.1
  CHECK_FALSE(plain_host("http://127.1/"));
  CHECK_FALSE(plain_host("http://user:pw@host.example/"));
  CHECK_FALSE(plain_host("http://caf%C3%A9.example/"));
  CHECK(url_host("http://2130706433/") == "127.0.0.1");
  CHECK(url_host("http://user:pw@Host.example/") == "host.example");
}

TEST_CASE("plain_host agrees with libcurl on 20,000 generated authorities", "[crawl]") {
  using sluice::parse::plain_host;
  using sluice::parse::url_host;
  // Hosts drawn from the characters that matter: letters of both cases, digits, dots, '-', '_',
  // escapes, brackets, colons, bytes beyond ASCII; with and without a port and a path.
  const std::vector<std::string> pieces = {"a",  "Z",    "x1", "0",        "1",       "127", "255", "256",
                                           "00", "0x7f", ".",  "-",        "_",       "%41", "[",   "]",
                                           ":",  "::",   "f",  "\xc3\xa9", "example", "com"};
  std::mt19937 rng(20261202);
  int fast = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string host;
    const int n = 1 + static_cast<int>(rng() % 6);
    for (int j = 0; j < n; ++j) host += pieces[rng() % pieces.size()];
    std::string url = "http://" + host;
    if (rng() % 3 == 0) url += ":" + std::to_string(rng() % 70000);
    if (rng() % 2 == 0) url += "/p?q=1";
    const auto quick = plain_host(url);
    if (!quick) continue;
    ++fast;
    std::string via_curl = url;
    via_curl.insert(7, "u@");  // user info: left to libcurl
    INFO(url);
    CHECK(*quick == url_host(via_curl));
  }
  CHECK(fast > 1000);  // the fast reading was taken often enough to mean something
}

TEST_CASE("strip_query and sort_query on 20,000 generated queries: what they keep, drop and order", "[crawl]") {
  const std::vector<std::string> names = {"utm_source", "utm_", "id", "gclid", "gclid2", "a", "b", "", "x=y"};
  const std::vector<std::string> strip = {"utm_*", "gclid"};
  std::mt19937 rng(42);
  auto params_of = [](const std::string& url) {
    std::vector<std::string> out;
    const auto q = url.find('?');
    if (q == std::string::npos) return out;
    const std::string query =
        url.substr(q + 1, url.find('#') == std::string::npos ? std::string::npos : url.find('#') - q - 1);
    for (std::size_t start = 0; start <= query.size();) {
      const auto amp = std::min(query.find('&', start), query.size());
      out.push_back(query.substr(start, amp - start));
      start = amp + 1;
    }
    return out;
  };
  for (int i = 0; i < 20000; ++i) {
    std::string url = "https://a.example/p";
    const int n = static_cast<int>(rng() % 6);
    for (int j = 0; j < n; ++j) {
      url += j == 0 ? "?" : "&";
      url += names[rng() % names.size()];
      if (rng() % 2) url += "=" + std::to_string(rng() % 3);
    }
    if (rng() % 4 == 0) url += "#frag";
    INFO(url);
    const std::string stripped = strip_query(url, strip);
    CHECK(strip_query(stripped, strip) == stripped);  // idempotent
    std::vector<std::string> expected;
    bool removed = false;
    for (const auto& p : params_of(url)) {
      const std::string name = p.substr(0, p.find('='));
      if (!p.empty() && (name.starts_with("utm_") || name == "gclid"))
        removed = true;
      else if (!p.empty())
        expected.push_back(p);
    }
    if (!removed) {
      CHECK(stripped == url);  // nothing to strip: byte for byte
    } else {
      CHECK(params_of(stripped) == (expected.empty() ? std::vector<std::string>{} : expected));
      CHECK(stripped.ends_with("#frag") == url.ends_with("#frag"));
    }
    const std::string sorted = sort_query(stripped);
    CHECK(sort_query(sorted) == sorted);
    auto before = params_of(stripped), after = params_of(sorted);
    CHECK(std::is_permutation(before.begin(), before.end(), after.begin(), after.end()));
    CHECK(std::is_sorted(after.begin(), after.end(), [](const std::string& x, const std::string& y) {
      return x.substr(0, x.find('=')) < y.substr(0, y.find('='));
    }));
  }
}

TEST_CASE("resolve_link: a link is its own normal form, whatever its base holds (found by tests/fuzz)", "[crawl]") {
  // Bytes beyond ASCII in the base (a page's <base href>) are percent-encoded as the href's are, so
  // that a frontier sees one URL for both spellings.
  CHECK(resolve_link("http://h.example/caf\xC3\xA9/", "a.html") == "http://h.example/caf%C3%A9/a.html");
  CHECK(resolve_link("http://h.example/caf\xC3\xA9/", "") == "http://h.example/caf%C3%A9/");
  CHECK(resolve_link("http://h.example/caf%C3%A9/", "a.html") == "http://h.example/caf%C3%A9/a.html");
  // Hosts no resolver knows are no links: libcurl let them through, and a second pass escaped them.
  CHECK(resolve_link("http://a.example/", "http://b.%zzexample/x").empty());
  CHECK(resolve_link("http://a.example/", "http://a!b.example/x").empty());
  CHECK(resolve_link("http:/\xEF\xBB\xBF/shop.example", "").empty());  // punycode leaves no host
  CHECK(resolve_link("http://a.example/", "http://user@b.example:8080/x") == "http://user@b.example:8080/x");
  CHECK(resolve_link("http://a.example/", "http://a%20b:c@b.example/x") == "http://a%20b:c@b.example/x");
  CHECK(resolve_link("http://us\"er x@b.example/", "y").empty());  // libcurl would not read it again
  CHECK(resolve_link("http://a.example/", "http://[::1]:8080/x") == "http://[::1]:8080/x");
  CHECK(resolve_link("http://a.example/", "http://caf\xC3\xA9.example/") == "http://xn--caf-dma.example/");
  CHECK(resolve_link("http://a.example/",
                     "http://11121\xEF\xBB\xBF"
                     "13/") == "http://0.16.248.49/");
  CHECK(resolve_link("http://a.example/", "http://%D2%A0.example/") == "http://xn--h4a.example/");
}

TEST_CASE("link_header_target finds the link of a relation in an HTTP Link header", "[parse]") {
  using sluice::parse::link_header_target;
  // GitHub's form.
  const std::string github = R"(<https://api.github.com/repositories/1/issues?page=2>; rel="next", )"
                             R"(<https://api.github.com/repositories/1/issues?page=5>; rel="last")";
  CHECK(link_header_target(github, "next") == "https://api.github.com/repositories/1/issues?page=2");
  CHECK(link_header_target(github, "last") == "https://api.github.com/repositories/1/issues?page=5");
  CHECK(link_header_target(github, "prev").empty());
  // Unquoted and in other cases, several types in one rel, other parameters before it, a quoted
  // parameter with a comma and a semicolon in it, relative targets, spaces around everything.
  CHECK(link_header_target("</items?page=3>;rel=NEXT", "next") == "/items?page=3");
  CHECK(link_header_target(R"(</a>; title="a, b; c"; rel="prev" , </b> ; type="x" ; rel="next last")", "next") == "/b");
  CHECK(link_header_target(R"(</a>; rel="next-page", </b>; rel="prefetch next")", "next") == "/b");
  CHECK(link_header_target(R"(</a>; rel="pre\"next", </b>; rel=next)", "next") == "/b");
  // Not a Link header, or a link without a rel, or cut short.
  CHECK(link_header_target("", "next").empty());
  CHECK(link_header_target("https://a.example/?page=2", "next").empty());
  CHECK(link_header_target("</a>; title=next", "next").empty());
  CHECK(link_header_target("</a; rel=next", "next").empty());
  CHECK(link_header_target(R"(</a>; rel="next)", "next") == "/a");
  CHECK(link_header_target("</a>; junk, </b>; rel=next", "next") == "/b");
}

TEST_CASE("query_param reads and with_query_param sets one query parameter of a URL", "[parse]") {
  using sluice::parse::query_param;
  using sluice::parse::with_query_param;
  CHECK(query_param("https://a.example/items?per_page=100&page=3#top", "page") == "3");
  CHECK(query_param("https://a.example/items?per_page=100", "page") == std::nullopt);
  CHECK(query_param("https://a.example/items?page&x=1", "page") == "");
  CHECK(query_param("https://a.example/items", "page") == std::nullopt);
  CHECK(query_param("https://a.example/items?x=1#?page=2", "page") == std::nullopt);  // in the fragment
  // Replaced where it is (not per_page), added at the end, or as the whole query.
  CHECK(with_query_param("https://a.example/items?per_page=100&page=3#top", "page", "4") ==
        "https://a.example/items?per_page=100&page=4#top");
  CHECK(with_query_param("https://a.example/items?per_page=100", "page", "2") ==
        "https://a.example/items?per_page=100&page=2");
  CHECK(with_query_param("https://a.example/items#top", "offset", "50") == "https://a.example/items?offset=50#top");
  CHECK(with_query_param("https://a.example/items?", "offset", "50") == "https://a.example/items?offset=50");
  CHECK(with_query_param("https://a.example/items?page=1&page=9", "page", "2") ==
        "https://a.example/items?page=2&page=9");
}
