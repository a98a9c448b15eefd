// aws_sigv4's signature and its helpers (requests signed end to end are checked against the fixture's
// /aws/ in tests/integration/test_fetch.cpp).
#include <catch2/catch.hpp>

#include "../../nodes/fetch/http_loop.hpp"
#include "../support.hpp"

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

TEST_CASE("aws_sigv4's path as sent: each segment decoded and encoded again, dot segments resolved", "[fetch][aws]") {
  using sluice::fetch::aws_canonical_url;
  // As the AWS SDKs send it: a Bedrock model id's ':', a Lambda ARN, an S3 key's '(' and '+'.
  CHECK(aws_canonical_url("https://h/model/anthropic.claude-v2:1/invoke") ==
        "https://h/model/anthropic.claude-v2%3A1/invoke");
  CHECK(aws_canonical_url("https://h/model/anthropic.claude-v2%3a1/invoke") ==
        "https://h/model/anthropic.claude-v2%3A1/invoke");
  CHECK(aws_canonical_url("https://b.s3.amazonaws.com/a%20(1)+b.txt") ==
        "https://b.s3.amazonaws.com/a%20%281%29%2Bb.txt");
  CHECK(aws_canonical_url("https://h/%7Euser/%41%2fb") == "https://h/~user/A%2Fb");  // '/' inside a segment stays one
  CHECK(aws_canonical_url("https://h/a//b/") == "https://h/a//b/");                  // S3 keys may hold "//"
  CHECK(aws_canonical_url("https://h/a/./b/../c") == "https://h/a/c");
  CHECK(aws_canonical_url("https://h/a/b/..") == "https://h/a/");
  CHECK(aws_canonical_url("https://h/a/%2E%2E/c/.") == "https://h/c/");
  CHECK(aws_canonical_url("https://h/..") == "https://h/");
  CHECK(aws_canonical_url("https://h") == "https://h/");
  CHECK(aws_canonical_url("https://h?x=1") == "https://h/?x=1");
  CHECK(aws_canonical_url("https://h:8443/caf%C3%A9") == "https://h:8443/caf%C3%A9");
}

TEST_CASE("aws_sigv4's Host: the URL's host, and its port unless the scheme's own", "[fetch][aws]") {
  using sluice::fetch::aws_host;
  CHECK(aws_host("https://b.s3.amazonaws.com/k") == "b.s3.amazonaws.com");
  CHECK(aws_host("https://b.s3.amazonaws.com:443/k") == "b.s3.amazonaws.com");
  CHECK(aws_host("http://127.0.0.1:80?x") == "127.0.0.1");
  CHECK(aws_host("http://127.0.0.1:9000/k") == "127.0.0.1:9000");
  CHECK(aws_host("https://minio:443") == "minio");
  CHECK(aws_host("http://[::1]:9000/k") == "[::1]:9000");
  CHECK(aws_host("http://[::1]/k") == "[::1]");
  CHECK(aws_host("https://user:pw@h:8443#f") == "h:8443");
}

// Expected signatures: the first two are AWS's own examples (the Signature Version 4 test suite's
// get-vanilla, and the IAM ListUsers request of AWS's documentation); the others were computed
// with Python's hmac and hashlib from the canonical requests written out by hand.
TEST_CASE("aws_sigv4's signature: canonical request, string to sign and signing key as AWS computes them",
          "[fetch][aws]") {
  using sluice::fetch::aws_authorization;
  sluice::fetch::FetchOptions::Aws aws{
      "us-east-1", "service", "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "", "", ""};
  const std::string empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  const std::string date = "20150830T123600Z";
  const auto signature = [](const std::string& authorization) {
    return authorization.substr(authorization.rfind('=') + 1);
  };
  SECTION("AWS's get-vanilla") {
    CHECK(aws_authorization(aws, "GET", "https://example.amazonaws.com/",
                            {"Host: example.amazonaws.com", "X-Amz-Date: 20150830T123600Z"}, empty, date) ==
          "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
          "SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  }
  SECTION("AWS's IAM ListUsers: a query and a Content-Type, headers given in any order") {
    aws.service = "iam";
    CHECK(aws_authorization(aws, "GET", "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08",
                            {"X-Amz-Date: 20150830T123600Z", "Host: iam.amazonaws.com",
                             "Content-Type:   application/x-www-form-urlencoded;  charset=utf-8  "},
                            empty, date) ==
          "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
          "SignedHeaders=content-type;host;x-amz-date, "
          "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7");
  }
  SECTION("a service other than S3 signs the path encoded twice, S3 as sent") {
    const std::vector<std::string> headers{"Host: example.amazonaws.com", "X-Amz-Date: 20150830T123600Z"};
    // "/documents%2520and%2520settings/", as AWS's documentation shows
    CHECK(signature(aws_authorization(aws, "GET", "https://example.amazonaws.com/documents%20and%20settings/", headers,
                                      empty, date)) ==
          "23c9727f014f850a592311a0323b422f9c1e3ad2d406c610f00d64ab3272c75a");
    // empty segments are left out too
    CHECK(signature(aws_authorization(aws, "GET", "https://example.amazonaws.com//documents%20and%20settings//",
                                      headers, empty, date)) ==
          "23c9727f014f850a592311a0323b422f9c1e3ad2d406c610f00d64ab3272c75a");
    aws.service = "s3";
    CHECK(signature(aws_authorization(aws, "GET", "https://example.amazonaws.com/documents%20and%20settings/", headers,
                                      empty, date)) ==
          "5bb40c29dc5f4b108f4f8d49940276e54dcd85c409bb9dcf6b2b86f446072d06");
  }
  SECTION("a header given twice is one, its values joined; headers without a value are not signed") {
    aws.service = "bedrock";
    CHECK(aws_authorization(aws, "POST",
                            "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-v2%3A1/invoke",
                            {"Host: bedrock-runtime.us-east-1.amazonaws.com", "x-amz-meta-a: one   two",
                             "Content-Type: application/json", "X-Amz-Meta-A: three", "Accept:", "x-amz-date: " + date},
                            empty, date) ==
          "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request, "
          "SignedHeaders=content-type;host;x-amz-date;x-amz-meta-a, "
          "Signature=9da7e933abd77d3b3f45edfa7deacfb15f37c05928b1c2a0439aa8739839fb09");
  }
}

TEST_CASE("sha256_hex is the lower-case hex SHA-256", "[fetch][aws]") {
  CHECK(sluice::fetch::sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sluice::fetch::sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

namespace {

// Profile `profile` of credentials file text `text` as "key|secret|token", or "error: ..." with the
// file's path left out.
std::string credentials(const std::string& text, const std::string& profile) {
  sluice::test::TempDir dir;
  const std::string path = dir.file("credentials");
  sluice::test::write_file(path, text);
  sluice::fetch::FetchOptions::Aws aws;
  std::string error;
  if (!sluice::fetch::read_aws_credentials(path, profile, aws, error)) {
    const std::size_t quote = error.find(path);
    return "error: " + (quote == std::string::npos ? error : error.replace(quote, path.size(), "F"));
  }
  return aws.key_id + "|" + aws.secret + "|" + aws.session_token;
}

}  // namespace

TEST_CASE("aws_sigv4's credentials file: profiles, comments, nested settings, as the AWS CLI writes it",
          "[fetch][aws]") {
  const std::string text =
      "# the CLI's file\n"
      "[default]\n"
      "aws_access_key_id = AKID1\n"
      "aws_secret_access_key = se/cr+et=\n"
      "\n"
      "; another\n"
      "[ ci ]\n"
      "AWS_ACCESS_KEY_ID=AKID2\r\n"
      "aws_secret_access_key=s2\n"
      "aws_session_token =  tok en \n"
      "s3 =\n"
      "    max_concurrent_requests = 20\n"
      "[sso]\n"
      "sso_session = corp\n"
      "role_arn = arn:aws:iam::1:role/r\n";
  CHECK(credentials(text, "default") == "AKID1|se/cr+et=|");
  CHECK(credentials(text, "ci") == "AKID2|s2|tok en");
  CHECK(credentials(text, "prod") == "error: 'F' has no profile [prod] (its profiles: default, ci, sso)");
  CHECK(credentials("", "default") == "error: 'F' has no profile [default] (it has none)");
  CHECK(credentials(text, "sso") ==
        "error: profile [sso] in 'F' has no aws_access_key_id (its sso_session is for the AWS CLI and SDKs to get "
        "credentials with, which fetch does not do: `aws configure export-credentials --profile sso --format env` "
        "gives them for the environment)");
  CHECK(credentials("[p]\naws_access_key_id = A\n", "p") == "error: profile [p] in 'F' has no aws_secret_access_key");
  CHECK(credentials("[p\naws_access_key_id = A\n", "p") == "error: 'F' line 1: a section's name ends with ']'");
  CHECK(credentials("[p]\naws_access_key_id A\n", "p") == "error: 'F' line 2: not a 'name = value' line");
}
