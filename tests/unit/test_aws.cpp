// aws_sigv4's helpers (the signature itself is libcurl's, checked against the fixture's /aws/ in
// tests/integration/test_fetch.cpp).
#include <catch2/catch.hpp>

#include "../../nodes/fetch/http_loop.hpp"

TEST_CASE("aws_sigv4's canonical query: decoded, encoded again, sorted, fragment left out", "[fetch][aws]") {
  using sluice::fetch::aws_canonical_url;
  CHECK(aws_canonical_url("https://b.s3.amazonaws.com/k%20one.txt") == "https://b.s3.amazonaws.com/k%20one.txt");
  CHECK(aws_canonical_url("https://h/p?b=2&a=1&a=0") == "https://h/p?a=0&a=1&b=2");
  CHECK(aws_canonical_url("https://h/p?acl&versionId=3") == "https://h/p?acl=&versionId=3");
  CHECK(aws_canonical_url("https://h/p?prefix=a/b&x=%2f%7E~") == "https://h/p?prefix=a%2Fb&x=%2F~~");
  CHECK(aws_canonical_url("https://h/p?q=a+b%20c&&") == "https://h/p?q=a%2Bb%20c");  // '+' is a plus
  CHECK(aws_canonical_url("https://h/p?bad=%zz%4") == "https://h/p?bad=%25zz%254");  // not escapes: '%' itself
  CHECK(aws_canonical_url("https://h/p?") == "https://h/p");
  CHECK(aws_canonical_url("https://h/p?b=1#a=2") == "https://h/p?b=1");
}

TEST_CASE("sha256_hex is the lower-case hex SHA-256", "[fetch][aws]") {
  CHECK(sluice::fetch::sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sluice::fetch::sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
