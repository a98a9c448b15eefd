#include <catch2/catch.hpp>

#include <set>

#include "../../nodes/fetch/policy.hpp"

using namespace sluice::fetch;
using namespace std::chrono_literals;

TEST_CASE("ok_status accepts classes, ranges and single codes", "[fetch][policy]") {
  StatusSet s;
  CHECK(s.add("2xx"));
  CHECK(s.add("404"));
  CHECK(s.add("300-302"));
  CHECK_FALSE(s.add("9xx"));
  CHECK_FALSE(s.add("abc"));
  CHECK_FALSE(s.add("302-300"));
  CHECK(s.contains(200));
  CHECK(s.contains(299));
  CHECK(s.contains(404));
  CHECK(s.contains(301));
  CHECK_FALSE(s.contains(303));
  CHECK_FALSE(s.contains(500));
}

TEST_CASE("backoff is full jitter under an exponentially growing cap", "[fetch][policy]") {
  RetryPolicy p;
  p.base = 100ms;
  p.max = 1s;
  std::mt19937_64 rng(42);
  for (int attempt = 2; attempt <= 10; ++attempt) {
    auto cap = std::min<std::chrono::nanoseconds>(1s, 100ms * (1 << (attempt - 2)));
    for (int i = 0; i < 200; ++i) {
      auto d = p.backoff(attempt, rng);
      CHECK(d >= 0ns);
      CHECK(d <= cap);
    }
  }
  // Full jitter: the waits spread over the whole range instead of clustering at the cap.
  std::chrono::nanoseconds low = 1s, high = 0s;
  for (int i = 0; i < 500; ++i) {
    auto d = p.backoff(6, rng);
    low = std::min(low, d);
    high = std::max(high, d);
  }
  CHECK(low < 100ms);
  CHECK(high > 900ms);
}

TEST_CASE("a POST or PATCH may be made again only when the server cannot have acted on it", "[fetch][policy]") {
  RetryPolicy p;
  for (const char* method : {"GET", "HEAD", "PUT", "DELETE"}) {
    CAPTURE(method);
    CHECK(p.may_repeat(method, Reason::http_status, 500, true));
    CHECK(p.may_repeat(method, Reason::timeout, 0, true));
  }
  for (const char* method : {"POST", "PATCH"}) {
    CAPTURE(method);
    for (long status : {429, 408, 409, 503}) CHECK(p.may_repeat(method, Reason::http_status, status, true));
    for (long status : {500, 502, 504, 507}) CHECK_FALSE(p.may_repeat(method, Reason::http_status, status, true));
    CHECK(p.may_repeat(method, Reason::connect, 0, false));
    CHECK(p.may_repeat(method, Reason::connect, 0, true));  // only a proxy's CONNECT went
    CHECK(p.may_repeat(method, Reason::dns, 0, false));
    CHECK(p.may_repeat(method, Reason::timeout, 0, false));
    CHECK(p.may_repeat(method, Reason::reset, 0, false));
    CHECK_FALSE(p.may_repeat(method, Reason::timeout, 0, true));
    CHECK_FALSE(p.may_repeat(method, Reason::reset, 0, true));
  }
  p.non_idempotent = true;
  CHECK(p.may_repeat("POST", Reason::http_status, 500, true));
  CHECK(p.may_repeat("PATCH", Reason::timeout, 0, true));
  RetryPolicy keyed;  // the server acts once on a key however often it comes
  keyed.idempotency_key = "Idempotency-Key";
  CHECK(keyed.may_repeat("POST", Reason::http_status, 502, true));
  CHECK(keyed.may_repeat("PATCH", Reason::reset, 0, true));
}

TEST_CASE("random_uuid gives version 4 UUIDs, a new one each time", "[fetch][policy]") {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string u = random_uuid();
    REQUIRE(u.size() == 36);
    CHECK(u[8] == '-');
    CHECK(u[13] == '-');
    CHECK(u[14] == '4');
    CHECK(std::string_view("89ab").find(u[19]) != std::string_view::npos);
    CHECK(u.find_first_not_of("0123456789abcdef-") == std::string::npos);
    seen.insert(u);
  }
  CHECK(seen.size() == 1000);
}

TEST_CASE("name_uuid: the version 5 UUID of a name in a namespace, as Python's uuid.uuid5 gives it",
          "[fetch][policy]") {
  // uuid.uuid5(uuid.NAMESPACE_DNS, "python.org"), and of "" in the nil UUID
  CHECK(name_uuid("6ba7b810-9dad-11d1-80b4-00c04fd430c8", "python.org") == "886313e1-3b8a-5372-9b90-0c9aee199e5d");
  CHECK(name_uuid("6BA7B8109DAD11D180B400C04FD430C8", "python.org") == "886313e1-3b8a-5372-9b90-0c9aee199e5d");
  CHECK(name_uuid("00000000-0000-0000-0000-000000000000", "") == "e129f27c-5103-5c5c-844b-cdf0a15e160d");
  CHECK(name_uuid("6ba7b810-9dad-11d1-80b4-00c04fd430c8", "python.org.") !=
        name_uuid("6ba7b810-9dad-11d1-80b4-00c04fd430c8", "python.org"));
  CHECK_THROWS_AS(name_uuid("6ba7b810-9dad-11d1", "x"), std::invalid_argument);
}

TEST_CASE("Retry-After is read as seconds or as an HTTP-date", "[fetch][policy]") {
  const std::int64_t now = 784111777;  // Sun, 06 Nov 1994 08:49:37 GMT
  CHECK(parse_retry_after("120", now) == 120s);
  CHECK(parse_retry_after(" 5 ", now) == 5s);
  CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now) == 10s);
  CHECK(parse_retry_after("Sunday, 06-Nov-94 08:50:37 GMT", now) == 60s);
  CHECK(parse_retry_after("Sun Nov  6 08:49:57 1994", now) == 20s);
  CHECK(parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now) == 0s);  // in the past: retry now
  CHECK_FALSE(parse_retry_after("soon", now));
  CHECK_FALSE(parse_retry_after("", now));
  CHECK_FALSE(parse_retry_after("-3", now));
  // Waits nanoseconds cannot hold (292 years) are cut to 31 years, not wrapped to a negative wait
  // (found by tests/fuzz: 12000000000 seconds came back as about -6 billion).
  CHECK(parse_retry_after("12000000000", now) == 1'000'000'000s);
  CHECK(parse_retry_after("99999999999999999999999", now) == 1'000'000'000s);
  CHECK(parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now) == 1'000'000'000s);
}

TEST_CASE("rates are requests per second, minute or hour", "[fetch][policy]") {
  CHECK(parse_rate("10/s") == 10.0);
  CHECK(parse_rate("600/m") == 10.0);
  CHECK(parse_rate("3600/h") == 1.0);
  CHECK(parse_rate("2.5/s") == 2.5);
  CHECK_FALSE(parse_rate("10"));
  CHECK_FALSE(parse_rate("0/s"));
  CHECK_FALSE(parse_rate("10/d"));
}

TEST_CASE("a token bucket allows a burst, then one request per 1/rate", "[fetch][policy]") {
  auto t0 = Clock::now();
  TokenBucket b(10, 2, t0);
  CHECK(b.try_take(t0));
  CHECK(b.try_take(t0));
  CHECK_FALSE(b.try_take(t0));
  auto next = b.next_token(t0);
  CHECK(next - t0 > 99ms);
  CHECK(next - t0 <= 100ms);
  CHECK(b.try_take(t0 + 100ms));
  CHECK_FALSE(b.try_take(t0 + 150ms));
  CHECK(b.try_take(t0 + 1s));
  CHECK(b.try_take(t0 + 1s));  // refilled to the burst, not beyond
  CHECK_FALSE(b.try_take(t0 + 1s));
}

TEST_CASE("the circuit breaker opens, fails fast, half-opens for one probe, and closes", "[fetch][policy]") {
  using A = CircuitBreaker::Admission;
  using S = CircuitBreaker::State;
  auto t0 = Clock::now();
  CircuitBreaker b(3, 1s);
  for (int i = 0; i < 2; ++i) {
    REQUIRE(b.admit(t0) == A::allow);
    b.on_failure(t0);
  }
  CHECK(b.state() == S::closed);
  b.on_success();  // success resets the consecutive count
  for (int i = 0; i < 3; ++i) {
    REQUIRE(b.admit(t0) == A::allow);
    b.on_failure(t0);
  }
  CHECK(b.state() == S::open);
  CHECK(b.admit(t0 + 500ms) == A::reject);
  CHECK(b.admit(t0 + 1s) == A::probe);
  CHECK(b.state() == S::half_open);
  CHECK(b.admit(t0 + 1s) == A::reject);  // one probe at a time
  b.on_failure(t0 + 1200ms);             // the probe failed: open again, for a full recovery_timeout
  CHECK(b.state() == S::open);
  CHECK(b.admit(t0 + 2s) == A::reject);
  CHECK(b.admit(t0 + 2200ms) == A::probe);
  b.on_success();
  CHECK(b.state() == S::closed);
  CHECK(b.admit(t0 + 2200ms) == A::allow);
}

TEST_CASE("a failure threshold of 0 disables the breaker", "[fetch][policy]") {
  auto t0 = Clock::now();
  CircuitBreaker b(0, 1s);
  for (int i = 0; i < 100; ++i) b.on_failure(t0);
  CHECK(b.admit(t0) == CircuitBreaker::Admission::allow);
}

TEST_CASE("hosts limits: an exact name wins over *., a longer *. over a shorter, without case", "[fetch][policy]") {
  HostLimitRules rules(HostLimits{8, 0, 1});
  rules.add("*.example.com", HostLimits{2, 5, 1});
  rules.add("API.example.com", HostLimits{1, 0.5, 3});
  rules.add("*.cdn.example.com", HostLimits{32, 0, 1});
  rules.add("[::1]", HostLimits{4, 0, 1});
  CHECK(rules.match("api.example.com").per_host == 1);
  CHECK(rules.match("Api.Example.COM").rate == 0.5);
  CHECK(rules.match("www.example.com").per_host == 2);
  CHECK(rules.match("a.b.example.com").per_host == 2);
  CHECK(rules.match("img.cdn.example.com").per_host == 32);
  CHECK(rules.match("cdn.example.com").per_host == 2);  // *.cdn.example.com is the names below it
  CHECK(rules.match("example.com").per_host == 8);      // and *.example.com too
  CHECK(rules.match("badexample.com").per_host == 8);   // a suffix of the text, not of the labels
  CHECK(rules.match("[::1]").per_host == 4);
  CHECK(rules.match("other.org").per_host == 8);
  CHECK(rules.max_per_host() == 32);
  rules.add("*.EXAMPLE.com", HostLimits{99, 0, 1});  // given twice: the first stays
  CHECK(rules.match("www.example.com").per_host == 2);
  CHECK(rules.max_per_host() == 32);
}

TEST_CASE("hosts patterns are host names, *.domain or bracketed IPv6, and anything else says why", "[fetch][policy]") {
  for (const char* ok : {"example.com", "*.example.com", "localhost", "127.0.0.1", "[::1]", "[2001:db8::1]",
                         "xn--bcher-kva.example", "my_host.internal", "EXAMPLE.com"}) {
    INFO(ok);
    CHECK(host_pattern_error(ok).empty());
  }
  CHECK(host_pattern_error("").find("empty") != std::string::npos);
  CHECK(host_pattern_error("https://example.com").find("without scheme") != std::string::npos);
  CHECK(host_pattern_error("example.com/x").find("without scheme") != std::string::npos);
  CHECK(host_pattern_error("example.com:8080").find("port") != std::string::npos);
  CHECK(host_pattern_error("*example.com").find("'*'") != std::string::npos);
  CHECK(host_pattern_error("a.*.com").find("'*'") != std::string::npos);
  CHECK(host_pattern_error("*.").find("empty label") != std::string::npos);
  CHECK(host_pattern_error("a..com").find("empty label") != std::string::npos);
  CHECK(host_pattern_error("example.com.").find("empty label") != std::string::npos);
  CHECK(host_pattern_error("bücher.example").find("punycode") != std::string::npos);
  CHECK(host_pattern_error("a b.com").find("' ' is not part of a host name") != std::string::npos);
  CHECK(host_pattern_error("[::1").find("brackets") != std::string::npos);
  CHECK(host_pattern_error(std::string(64, 'a') + ".com").find("63") != std::string::npos);
}

TEST_CASE("the host name of a host key", "[fetch][policy]") {
  CHECK(host_of_key("https://example.com:443") == "example.com");
  CHECK(host_of_key("http://[::1]:8080") == "[::1]");
  CHECK(host_of_key("http://127.0.0.1:80") == "127.0.0.1");
}

TEST_CASE("content_types: exact media types or TYPE/*, without case and parameters", "[fetch][policy]") {
  MediaTypes types;
  CHECK(types.allows("application/pdf"));  // empty: any
  REQUIRE(types.add("text/html"));
  REQUIRE(types.add("Image/*"));
  REQUIRE(types.add("application/xhtml+xml"));
  CHECK(types.allows("text/html"));
  CHECK(types.allows("TEXT/HTML; charset=UTF-8"));
  CHECK(types.allows(" text/html ;charset=utf-8"));
  CHECK(types.allows("image/png"));
  CHECK(types.allows("application/xhtml+xml"));
  CHECK_FALSE(types.allows("text/plain"));
  CHECK_FALSE(types.allows("application/pdf"));
  CHECK_FALSE(types.allows("image/"));  // a type with no subtype is not image/*
  CHECK_FALSE(types.allows("imagex/png"));
  CHECK(types.allows(nullptr));  // no Content-Type: let through
  CHECK(types.allows(""));
  CHECK(types.text() == "text/html, image/*, application/xhtml+xml");
  for (const char* bad : {"html", "text/", "/html", "*/*", "text/html; charset=utf-8", "text /html", "*"}) {
    INFO(bad);
    CHECK_FALSE(types.add(bad));
  }
}

TEST_CASE("private addresses: loopback, private, link-local, shared, reserved, and mapped IPv6 forms",
          "[fetch][policy]") {
  for (const char* ip : {"127.0.0.1",
                         "127.8.9.10",
                         "10.1.2.3",
                         "172.16.0.1",
                         "172.31.255.255",
                         "192.168.1.1",
                         "169.254.169.254",
                         "100.64.0.1",
                         "100.127.255.254",
                         "0.0.0.0",
                         "224.0.0.1",
                         "255.255.255.255",
                         "198.18.0.1",
                         "192.0.0.8",
                         "::1",
                         "::",
                         "fc00::1",
                         "fd12:3456::1",
                         "fe80::1",
                         "ff02::1",
                         "::ffff:127.0.0.1",
                         "::ffff:10.0.0.1",
                         "not an address",
                         ""}) {
    INFO(ip);
    CHECK(is_private_address(ip));
  }
  for (const char* ip :
       {"8.8.8.8", "1.1.1.1", "172.15.255.255", "172.32.0.1", "192.169.0.1", "100.63.255.255", "100.128.0.1",
        "169.253.0.1", "93.184.216.34", "2606:4700::1111", "2001:db8::1", "::ffff:8.8.8.8"}) {
    INFO(ip);
    CHECK_FALSE(is_private_address(ip));
  }
}
