#include <catch2/catch.hpp>

#include "../../nodes/fetch/robots.hpp"

using sluice::fetch::RobotsRules;

TEST_CASE("robots.txt: the group for our user agent applies, else the * group", "[robots]") {
  const char* text =
      "User-agent: *\nDisallow: /private/\nAllow: /private/open\n\n"
      "User-agent: sluice\nUser-agent: other\nDisallow: /slow/\nCrawl-delay: 2\n\n"
      "User-agent: badbot\nDisallow: /\n";
  auto ours = RobotsRules::parse(text, "sluice/0.1");
  CHECK(ours.allowed("/private/x"));  // our own group has no rule for it
  CHECK_FALSE(ours.allowed("/slow/page"));
  CHECK(ours.crawl_delay() == 2.0);
  auto anyone = RobotsRules::parse(text, "curious/1.0");
  CHECK_FALSE(anyone.allowed("/private/x"));
  CHECK(anyone.allowed("/private/open.html"));  // the longer Allow wins
  CHECK(anyone.allowed("/"));
  CHECK_FALSE(anyone.crawl_delay());
  CHECK_FALSE(RobotsRules::parse(text, "badbot").allowed("/anything"));
}

TEST_CASE("robots.txt patterns support * and $", "[robots]") {
  auto r = RobotsRules::parse("User-agent: *\nDisallow: /*.pdf$\nDisallow: /tmp*/cache\n", "sluice");
  CHECK_FALSE(r.allowed("/docs/a.pdf"));
  CHECK(r.allowed("/docs/a.pdf?x=1"));
  CHECK_FALSE(r.allowed("/tmp123/cache/x"));
  CHECK(r.allowed("/tmp/other"));
  CHECK(RobotsRules::parse("", "sluice").allowed("/x"));
  CHECK_FALSE(RobotsRules::disallow_all().allowed("/x"));
}

TEST_CASE("robots.txt rules and paths compare percent-encoded, whatever form either side is in", "[robots]") {
  CHECK(RobotsRules::canonical("/caf\xc3\xa9?q=%7e%2f%41 b") == "/caf%C3%A9?q=~%2FA%20b");
  // A '%' that starts no escape is written as one, so that canonical() of its own result changes
  // nothing: "%%36e" read once as "%6e" was "n" the second time (found by tests/fuzz).
  CHECK(RobotsRules::canonical("/100%") == "/100%25");
  CHECK(RobotsRules::canonical("/%zz/%4") == "/%25zz/%254");
  CHECK(RobotsRules::canonical("/%%36e") == "/%256e");
  CHECK(RobotsRules::canonical(RobotsRules::canonical("/%%36e")) == "/%256e");
  CHECK(RobotsRules::canonical("/100%25") == "/100%25");
  auto raw = RobotsRules::parse("User-agent: *\nDisallow: /caf\xc3\xa9\n", "sluice");
  CHECK_FALSE(raw.allowed("/caf%c3%a9/menu"));  // as libcurl encodes it
  CHECK_FALSE(raw.allowed("/caf%C3%A9"));
  CHECK_FALSE(raw.allowed("/caf\xc3\xa9"));
  auto encoded = RobotsRules::parse("User-agent: *\nDisallow: /caf%c3%a9\nDisallow: /%7Euser\n", "sluice");
  CHECK_FALSE(encoded.allowed("/caf\xc3\xa9"));
  CHECK_FALSE(encoded.allowed("/~user/x"));
  CHECK(encoded.allowed("/cafe"));
}
