// aws_sigv4's signature and its helpers (requests signed end to end are checked against the fixture's
// /aws/ in tests/integration/test_fetch.cpp).
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <stop_token>
#include <thread>

#include "../../nodes/fetch/aws_process.hpp"
#include "../../nodes/fetch/aws_sigv4.hpp"
#include "../../nodes/fetch/credentials.hpp"
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
  sluice::fetch::FetchOptions::Aws aws;
  aws.region = "us-east-1";
  aws.service = "service";
  aws.key_id = "AKIDEXAMPLE";
  aws.secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
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
// A profile with a credential_process gives "process: <command>". `config`: text is the AWS config
// file's.
std::string credentials(const std::string& text, const std::string& profile, bool config = false) {
  sluice::test::TempDir dir;
  const std::string path = dir.file("credentials");
  sluice::test::write_file(path, text);
  sluice::fetch::FetchOptions::Aws aws;
  std::string error;
  if (!sluice::fetch::read_aws_credentials(path, profile, aws, error, config)) {
    const std::size_t quote = error.find(path);
    return "error: " + (quote == std::string::npos ? error : error.replace(quote, path.size(), "F"));
  }
  if (!aws.process.empty()) return "process: " + aws.process;
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

TEST_CASE("aws_sigv4's credential_process: named by a profile of the credentials or the config file", "[fetch][aws]") {
  const std::string config =
      "[default]\nregion = eu-west-1\ncredential_process = granted credential-process --profile dev\n"
      "[profile vault]\ncredential_process = aws-vault exec --json vault\n"
      "[profile keys]\naws_access_key_id = AKID\naws_secret_access_key = s\ncredential_process = unused\n";
  CHECK(credentials(config, "default", true) == "process: granted credential-process --profile dev");
  CHECK(credentials(config, "vault", true) == "process: aws-vault exec --json vault");
  CHECK(credentials(config, "keys", true) == "AKID|s|");  // keys first, as the AWS CLI takes them
  CHECK(credentials(config, "prod", true) == "error: 'F' has no profile [prod] (its profiles: default, vault, keys)");
  CHECK(credentials("[p]\ncredential_process = /usr/bin/get-creds p\n", "p") == "process: /usr/bin/get-creds p");
}

TEST_CASE("aws_sigv4's profile role: role_arn and the settings that go with it, before the profile's keys",
          "[fetch][aws]") {
  const std::string config =
      "[profile crawler]\n"
      "role_arn = arn:aws:iam::123456789012:role/crawler\n"
      "source_profile = base\n"
      "External_Id = ext 1\n"
      "role_session_name = nightly\n"
      "duration_seconds = 3600\n"
      "mfa_serial = arn:aws:iam::1:mfa/me\n"
      "[profile both]\n"
      "aws_access_key_id = AKID\n"
      "aws_secret_access_key = s\n"
      "role_arn = arn:aws:iam::1:role/r\n"
      "credential_source = Environment\n"
      "[profile web]\n"
      "role_arn = arn:aws:iam::1:role/w\n"
      "web_identity_token_file = /var/run/token\n"
      "[profile keys]\n"
      "aws_access_key_id = AKID\n"
      "aws_secret_access_key = s\n";
  sluice::test::TempDir dir;
  const std::string path = dir.file("config");
  sluice::test::write_file(path, config);
  const auto role_of = [&](const std::string& profile) {
    sluice::fetch::FetchOptions::Aws aws;
    sluice::fetch::AwsProfileRole role;
    std::string error;
    REQUIRE(sluice::fetch::read_aws_credentials(path, profile, aws, error, true, &role));
    CHECK(aws.key_id.empty());  // the role's, not the profile's keys
    return fmt::format("{}|{}|{}|{}|{}|{}|{}|{}", role.arn, role.source_profile, role.credential_source,
                       role.external_id, role.session_name, role.duration, role.mfa_serial,
                       role.web_identity_token_file);
  };
  CHECK(role_of("crawler") == "arn:aws:iam::123456789012:role/crawler|base||ext 1|nightly|3600|arn:aws:iam::1:mfa/me|");
  CHECK(role_of("both") == "arn:aws:iam::1:role/r||Environment|||||");
  CHECK(role_of("web") == "arn:aws:iam::1:role/w|||||||/var/run/token");
  sluice::fetch::AwsProfileRole sso;
  const std::string sso_config =
      "[profile s]\nsso_session = corp\nsso_account_id = 1\nsso_role_name = R\n"
      "[sso-session corp]\nsso_start_url = https://corp.example.com/start\n"
      "sso_region = eu-west-1\n";
  sluice::test::write_file(dir.file("sso"), sso_config);
  {
    sluice::fetch::FetchOptions::Aws unused;
    std::string error;
    REQUIRE(sluice::fetch::read_aws_credentials(dir.file("sso"), "s", unused, error, true, &sso));
    CHECK(sso.sso());
    CHECK(sso.sso_session + "|" + sso.sso_account_id + "|" + sso.sso_role_name == "corp|1|R");
    sso = {};
    REQUIRE(sluice::fetch::read_aws_credentials(dir.file("sso"), "sso-session corp", unused, error, true, &sso));
    CHECK(sso.sso_start_url + "|" + sso.sso_region == "https://corp.example.com/start|eu-west-1");
  }
  // Without a role asked for (the file read again for its keys): the keys, or what is missing.
  CHECK(credentials(config, "both", true) == "AKID|s|");
  CHECK(credentials(config, "web", true) == "error: profile [web] in 'F' has no aws_access_key_id");
  sluice::fetch::FetchOptions::Aws aws;
  sluice::fetch::AwsProfileRole role;
  std::string error;
  CHECK(sluice::fetch::read_aws_credentials(path, "keys", aws, error, true, &role));
  CHECK(role.arn.empty());
  CHECK(aws.key_id == "AKID");
}

namespace {

// `keys` as "id|secret|token" (and "|expiry" in Unix seconds), or "error: " and `error`.
std::string keys_text(const std::optional<sluice::fetch::ProcessCredentials>& keys, const std::string& error) {
  if (!keys) return "error: " + error;
  std::string text = keys->key_id + "|" + keys->secret + "|" + keys->session_token;
  if (keys->expires) {
    text += "|" +
            std::to_string(std::chrono::duration_cast<std::chrono::seconds>(keys->expires->time_since_epoch()).count());
  }
  return text;
}

std::string parsed(const std::string& json, bool container = false) {
  std::string error;
  auto keys = container ? sluice::fetch::parse_container_credentials(json, error)
                        : sluice::fetch::parse_process_credentials(json, error);
  return keys_text(keys, error);
}

}  // namespace

TEST_CASE("aws_sigv4's credential_process output: version 1 JSON, Expiration in RFC 3339", "[fetch][aws]") {
  CHECK(parsed(R"({"Version": 1, "AccessKeyId": "A", "SecretAccessKey": "S"})") == "A|S|");
  CHECK(parsed(R"({"Version": 1, "AccessKeyId": "A", "SecretAccessKey": "S", "SessionToken": "T",
                   "Expiration": "2026-12-06T12:00:00Z"})") == "A|S|T|1796558400");
  CHECK(
      parsed(R"({"Version":1,"AccessKeyId":"A","SecretAccessKey":"S","Expiration":"2026-12-06T13:00:00.123+01:00"})") ==
      "A|S||1796558400");
  CHECK(parsed(R"({"Version":1,"AccessKeyId":"A","SecretAccessKey":"S","Expiration":"2026-12-06T11:30:00-00:30"})") ==
        "A|S||1796558400");
  CHECK(parsed(R"({"Version": 2, "AccessKeyId": "A", "SecretAccessKey": "S"})") ==
        "error: it printed no \"Version\": 1 (the only version of the credential_process output there is)");
  CHECK(parsed(R"({"Version": 1, "AccessKeyId": "A"})") == "error: it printed no AccessKeyId and SecretAccessKey");
  CHECK(parsed(R"({"Version": 1, "AccessKeyId": "", "SecretAccessKey": "S"})") ==
        "error: it printed no AccessKeyId and SecretAccessKey");
  CHECK(parsed("export AWS_ACCESS_KEY_ID=A") == "error: it did not print a JSON object");
  CHECK(parsed(R"({"Version":1,"AccessKeyId":"A","SecretAccessKey":"S","Expiration":"tomorrow"})") ==
        "error: its Expiration 'tomorrow' is not an RFC 3339 time (2026-12-06T12:00:00Z)");
  CHECK(parsed(R"({"Version":1,"AccessKeyId":"A","SecretAccessKey":"S","Expiration":"2026-02-30T12:00:00Z"})") ==
        "error: its Expiration '2026-02-30T12:00:00Z' is not an RFC 3339 time (2026-12-06T12:00:00Z)");
}

TEST_CASE("aws_sigv4's container credentials endpoint: its JSON, the session token as Token", "[fetch][aws]") {
  CHECK(parsed(R"({"AccessKeyId": "A", "SecretAccessKey": "S", "Token": "T", "Expiration": "2026-12-06T12:00:00Z",
                   "RoleArn": "arn:aws:iam::123456789012:role/r"})",
               true) == "A|S|T|1796558400");
  CHECK(parsed(R"({"AccessKeyId": "A", "SecretAccessKey": "S"})", true) == "A|S|");
  CHECK(parsed(R"({"AccessKeyId": "A", "Token": "T"})", true) ==
        "error: the answer has no AccessKeyId and SecretAccessKey");
  CHECK(parsed(R"({"code": "ClientException", "message": "no role"})", true) ==
        "error: the answer has no AccessKeyId and SecretAccessKey");
  CHECK(parsed("<html>Forbidden</html>", true) == "error: the answer is not a JSON object");
  CHECK(parsed(R"({"AccessKeyId":"A","SecretAccessKey":"S","Expiration":"soon"})", true) ==
        "error: its Expiration 'soon' is not an RFC 3339 time (2026-12-06T12:00:00Z)");
}

TEST_CASE("aws_sigv4's instance metadata service: a role's keys, refused unless their Code is Success",
          "[fetch][aws]") {
  auto instance = [](const std::string& json) {
    std::string error;
    auto keys = sluice::fetch::parse_instance_credentials(json, error);
    return keys ? keys->key_id + "|" + keys->secret + "|" + keys->session_token : "error: " + error;
  };
  CHECK(instance(R"({"Code": "Success", "LastUpdated": "2026-12-06T11:00:00Z", "Type": "AWS-HMAC",
                     "AccessKeyId": "A", "SecretAccessKey": "S", "Token": "T", "Expiration": "2026-12-06T17:00:00Z"})") ==
        "A|S|T");
  CHECK(instance(R"({"AccessKeyId": "A", "SecretAccessKey": "S"})") == "A|S|");
  CHECK(instance(R"({"Code": "AssumeRoleUnauthorizedAccess", "Message": "denied"})") ==
        "error: the answer's Code is 'AssumeRoleUnauthorizedAccess', not 'Success'");
  CHECK(instance("{}") == "error: the answer has no AccessKeyId and SecretAccessKey");
  CHECK(instance("sluice-role") == "error: the answer is not a JSON object");
}

TEST_CASE("aws_sigv4's web identity: STS's XML answer, its keys or what its error says", "[fetch][aws]") {
  auto sts = [](const std::string& xml) {
    std::string error;
    auto keys = sluice::fetch::parse_sts_credentials(xml, error);
    if (!keys) return "error: " + error;
    return keys->key_id + "|" + keys->secret + "|" + keys->session_token + "|" +
           std::to_string(std::chrono::duration_cast<std::chrono::seconds>(keys->expires->time_since_epoch()).count());
  };
  CHECK(sts(R"(<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <AssumedRoleUser><AssumedRoleId>AROA:s</AssumedRoleId><Arn>arn:aws:sts::1:assumed-role/r/s</Arn></AssumedRoleUser>
    <Credentials>
      <AccessKeyId>ASIA1</AccessKeyId>
      <SecretAccessKey>S/+x</SecretAccessKey>
      <SessionToken>T&amp;T</SessionToken>
      <Expiration>2026-12-06T12:00:00Z</Expiration>
    </Credentials>
  </AssumeRoleWithWebIdentityResult>
</AssumeRoleWithWebIdentityResponse>)") == "ASIA1|S/+x|T&T|1796558400");
  CHECK(sts("<Response><Credentials><AccessKeyId>A</AccessKeyId></Credentials></Response>") ==
        "error: the answer has no Credentials with an AccessKeyId and a SecretAccessKey");
  CHECK(sts("{\"Credentials\": {}}") == "error: the answer is not XML");
  CHECK(sts("<R><Credentials><AccessKeyId>A</AccessKeyId><SecretAccessKey>S</SecretAccessKey>"
            "<Expiration>soon</Expiration></Credentials></R>") ==
        "error: its Expiration 'soon' is not an RFC 3339 time (2026-12-06T12:00:00Z)");
  CHECK(sluice::fetch::sts_error(R"(<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>
    <Type>Sender</Type><Code>ExpiredTokenException</Code><Message>Token expired: current date/time 1 must be before
    the expiration date/time 0</Message></Error><RequestId>x</RequestId></ErrorResponse>)")
            .starts_with("ExpiredTokenException: Token expired: current date/time 1"));
  CHECK(sluice::fetch::sts_error("Service Unavailable").empty());
}

TEST_CASE("aws_sigv4 asks an instance's metadata service only on EC2, as its firmware says", "[fetch][aws]") {
  sluice::test::TempDir dir;
  const std::string sys = dir.path().string();
  CHECK_FALSE(sluice::fetch::on_ec2(sys));  // nothing to read: not EC2 (as a container without /sys)
  std::filesystem::create_directories(sys + "/devices/virtual/dmi/id");
  sluice::test::write_file(sys + "/devices/virtual/dmi/id/sys_vendor", "QEMU\n");
  CHECK_FALSE(sluice::fetch::on_ec2(sys));
  sluice::test::write_file(sys + "/devices/virtual/dmi/id/sys_vendor", "Amazon EC2\n");  // a Nitro instance
  CHECK(sluice::fetch::on_ec2(sys));
  std::filesystem::remove(sys + "/devices/virtual/dmi/id/sys_vendor");
  std::filesystem::create_directories(sys + "/hypervisor");
  sluice::test::write_file(sys + "/hypervisor/uuid", "ec2e1916-9099-7caf-fd21-012345abcdef\n");  // a Xen one
  CHECK(sluice::fetch::on_ec2(sys));
  sluice::test::write_file(sys + "/hypervisor/uuid", "4a2d1916-9099-7caf-fd21-012345abcdef\n");
  CHECK_FALSE(sluice::fetch::on_ec2(sys));
}

TEST_CASE("aws_sigv4's credential_process is asked again 10 minutes before its keys expire, or half way",
          "[fetch][aws]") {
  using namespace std::chrono;
  using sluice::fetch::refresh_time;
  const system_clock::time_point now{hours(1000)};
  CHECK(refresh_time(now + hours(1), now) == now + minutes(50));
  CHECK(refresh_time(now + minutes(15), now) == now + seconds(450));
  CHECK(refresh_time(now + seconds(4), now) == now + seconds(2));
  CHECK(refresh_time(now + seconds(1), now) == now + seconds(1));  // not sooner than a second
  CHECK(refresh_time(now - minutes(5), now) == now + seconds(1));  // expired: at once, and no busy loop
}

TEST_CASE("aws_sigv4's credential_process runs as a command: its failure said, a stop kills it", "[fetch][aws]") {
  using sluice::fetch::run_credential_process;
  std::stop_source never;
  std::string error;
  auto keys = run_credential_process(
      R"(printf '{"Version": 1, "AccessKeyId": "A", "SecretAccessKey": "S", "SessionToken": "T"}')", never.get_token(),
      error);
  REQUIRE(keys);
  CHECK(keys->session_token == "T");
  CHECK_FALSE(run_credential_process("echo 'line 1' >&2; echo 'no SSO session' >&2; exit 2", never.get_token(), error));
  CHECK(error == "it failed with exit status 2: no SSO session");
  CHECK_FALSE(run_credential_process("kill -9 $$", never.get_token(), error));
  CHECK(error == "it was killed by signal 9");
  CHECK_FALSE(run_credential_process("kill -TERM $$", never.get_token(), error));
  CHECK(error == "it was killed by signal 15");
  {
    // Ctrl-C at a terminal (here SIGTERM, which a shell script's background job does not ignore): the
    // command dies of it a moment before the run's stop is requested.
    std::stop_source ctrl_c;
    std::thread watcher([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      ctrl_c.request_stop();
    });
    CHECK_FALSE(run_credential_process("kill -TERM $$", ctrl_c.get_token(), error));
    watcher.join();
    CHECK(error == "stopped");
  }
  CHECK_FALSE(run_credential_process("head -c 70000 /dev/zero | tr '\\0' x", never.get_token(), error));
  CHECK(error == "it printed more than 64 KiB");
  CHECK_FALSE(run_credential_process("/nonexistent/tool", never.get_token(), error));
  CHECK_THAT(error, Catch::StartsWith("it failed with exit status 127: ") && Catch::Contains("/nonexistent/tool"));
  // An agent the command leaves running with its standard output: what it printed is taken once it
  // has exited, not when the agent ends.
  auto started = std::chrono::steady_clock::now();
  keys = run_credential_process(R"((sleep 30 &); printf '{"Version": 1, "AccessKeyId": "A", "SecretAccessKey": "S"}')",
                                never.get_token(), error);
  CHECK(keys);
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(10));
  // A parent that left SIGCHLD ignored: the system reaps the command, and waitpid() finds no child.
  const auto old_action = ::signal(SIGCHLD, SIG_IGN);
  keys = run_credential_process(R"(sleep 0.2; printf '{"Version": 1, "AccessKeyId": "A", "SecretAccessKey": "S"}')",
                                never.get_token(), error);
  ::signal(SIGCHLD, old_action);
  CHECK(keys);
  // `command` run while a stop comes 200 ms in: its error, "" if it gave keys, and the seconds taken.
  const auto stopped_after_200ms = [](const std::string& command) {
    std::stop_source stop;
    std::thread stopper([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      stop.request_stop();
    });
    const auto from = std::chrono::steady_clock::now();
    std::string why;
    const bool gave = run_credential_process(command, stop.get_token(), why).has_value();
    stopper.join();
    return std::pair(gave ? std::string() : why,
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - from).count());
  };
  // A command waiting for ever (an MFA prompt no one answers): a stop ends it.
  auto [said, seconds] = stopped_after_200ms("sleep 30");
  CHECK(said == "stopped");
  CHECK(seconds < 10);
  // One that closed its output and runs on, deaf to SIGTERM: a stop still ends it.
  std::tie(said, seconds) = stopped_after_200ms("exec >&- 2>&-; trap '' TERM; exec sleep 30");
  CHECK(said == "stopped");
  CHECK(seconds < 10);
}

TEST_CASE("aws_sigv4's SSO login: the cache file's name and token, and the portal's answer", "[fetch][aws]") {
  // As botocore names them: the SHA-1 of the sso-session's name, or of a legacy profile's start URL.
  CHECK(sluice::fetch::sso_cache_file("/home/u", "corp") ==
        "/home/u/.aws/sso/cache/ee0bfd2552fbd840c02cc48b6e823320543c450f.json");
  CHECK(sluice::fetch::sso_cache_file("/root", "https://legacy.example.com/start") ==
        "/root/.aws/sso/cache/9edfd687b3a5656946a7be60e6c66e2abdef65ab.json");
  auto token = [](const std::string& json) {
    std::string error;
    auto t = sluice::fetch::parse_sso_token(json, error);
    if (!t) return "error: " + error;
    return t->token + "|" +
           std::to_string(std::chrono::duration_cast<std::chrono::seconds>(t->expires.time_since_epoch()).count());
  };
  CHECK(token(R"({"startUrl": "https://corp.example.com/start", "region": "eu-west-1", "accessToken": "aoa1",
                  "expiresAt": "2026-12-06T12:00:00Z", "clientId": "c", "refreshToken": "r"})") == "aoa1|1796558400");
  CHECK(token(R"({"accessToken": "aoa1", "expiresAt": "2026-12-06T12:00:00UTC"})") == "aoa1|1796558400");
  CHECK(token(R"({"expiresAt": "2026-12-06T12:00:00Z"})") == "error: it has no accessToken");
  CHECK(token(R"({"accessToken": "aoa1"})") == "error: it has no expiresAt");
  CHECK(token(R"({"accessToken": "aoa1", "expiresAt": "tomorrow"})") ==
        "error: its expiresAt 'tomorrow' is not an RFC 3339 time (2026-12-06T12:00:00Z)");
  CHECK(token("[]") == "error: it is not a JSON object");
  auto keys = [](const std::string& json) {
    std::string error;
    auto k = sluice::fetch::parse_sso_credentials(json, error);
    return keys_text(k, error);
  };
  CHECK(keys(R"({"roleCredentials": {"accessKeyId": "ASIA1", "secretAccessKey": "S", "sessionToken": "T",
                 "expiration": 1796558400000}})") == "ASIA1|S|T|1796558400");
  CHECK(keys(R"({"roleCredentials": {"accessKeyId": "ASIA1", "secretAccessKey": "S"}})") == "ASIA1|S|");
  CHECK(keys(R"({"roleCredentials": {"accessKeyId": "ASIA1"}})") ==
        "error: the answer has no accessKeyId and secretAccessKey");
  CHECK(keys(R"({"message": "Session token not found or invalid"})") ==
        "error: the answer has no roleCredentials object");
  CHECK(sluice::fetch::sso_error(R"({"message": "Session token not found or invalid"})") ==
        "Session token not found or invalid");
  CHECK(sluice::fetch::sso_error("<html>") == "");
}

TEST_CASE("aws_sigv4's SSO login renewed: the request, SSO OIDC's answer, the cache file written back",
          "[fetch][aws]") {
  using std::chrono::system_clock;
  const system_clock::time_point noon{std::chrono::seconds(1796558400)};  // 2026-12-06T12:00:00Z
  std::string error;
  auto login = sluice::fetch::parse_sso_token(
      R"({"startUrl": "https://corp.example.com/start", "region": "eu-west-1", "accessToken": "aoa1",
          "expiresAt": "2026-12-06T12:00:00Z", "clientId": "c\"1", "clientSecret": "s1",
          "registrationExpiresAt": "2027-03-06T12:00:00Z", "refreshToken": "r1"})",
      error);
  REQUIRE(login);
  CHECK(login->client_id == "c\"1");
  CHECK(login->renewable(noon));
  CHECK(!login->renewable(noon + std::chrono::days(90)));  // the client registration expired
  auto older = sluice::fetch::parse_sso_token(R"({"accessToken": "a", "expiresAt": "2026-12-06T12:00:00UTC",
      "clientId": "c", "clientSecret": "s", "registrationExpiresAt": "2027-03-06T12:00:00UTC", "refreshToken": "r"})",
                                              error);
  REQUIRE(older);
  CHECK(older->registration_expires == login->registration_expires);
  for (const char* missing : {"refreshToken", "clientId", "clientSecret", "registrationExpiresAt"}) {
    std::string json = R"({"accessToken": "a", "expiresAt": "2026-12-06T12:00:00Z", "clientId": "c",
                           "clientSecret": "s", "registrationExpiresAt": "2027-03-06T12:00:00Z", "refreshToken": "r"})";
    json.replace(json.find(missing), std::strlen(missing), "other");
    auto partial = sluice::fetch::parse_sso_token(json, error);
    REQUIRE(partial);
    CHECK(!partial->renewable(noon));
  }
  CHECK(sluice::fetch::sso_renewal_request(*login) ==
        R"({"grantType":"refresh_token","clientId":"c\"1","clientSecret":"s1","refreshToken":"r1"})");

  // SSO OIDC's answer, at noon: a token for expiresIn seconds, and a new refresh token or none.
  auto renewed = sluice::fetch::parse_sso_renewal(
      R"({"accessToken": "aoa2", "tokenType": "Bearer", "expiresIn": 3600, "refreshToken": "r2"})", *login, noon,
      error);
  REQUIRE(renewed);
  CHECK(renewed->token == "aoa2");
  CHECK(renewed->expires == noon + std::chrono::hours(1));
  CHECK(renewed->refresh_token == "r2");
  CHECK(renewed->client_secret == "s1");
  auto same_refresh =
      sluice::fetch::parse_sso_renewal(R"({"accessToken": "aoa2", "expiresIn": 60})", *login, noon, error);
  REQUIRE(same_refresh);
  CHECK(same_refresh->refresh_token == "r1");
  const auto refused = [&](const std::string& json) {
    std::string why;
    return sluice::fetch::parse_sso_renewal(json, *login, noon, why) ? std::string("renewed") : why;
  };
  CHECK(refused(R"({"expiresIn": 3600})") == "the answer has no accessToken");
  CHECK(refused(R"({"accessToken": "aoa2"})") == "the answer has no expiresIn (a number of seconds)");
  CHECK(refused(R"({"accessToken": "aoa2", "expiresIn": -5})") == "the answer has no expiresIn (a number of seconds)");
  CHECK(refused("<html>") == "the answer is not a JSON object");

  // The cache file's JSON, as the AWS CLI writes a renewed login: read back as it was written.
  const std::string json = sluice::fetch::sso_cache_json(*renewed, "https://corp.example.com/start", "eu-west-1");
  CHECK(json == R"({"startUrl": "https://corp.example.com/start", "region": "eu-west-1", "accessToken": "aoa2", )"
                R"("expiresAt": "2026-12-06T13:00:00Z", "clientId": "c\"1", "clientSecret": "s1", )"
                R"("registrationExpiresAt": "2027-03-06T12:00:00Z", "refreshToken": "r2"})"
                "\n");
  auto again = sluice::fetch::parse_sso_token(json, error);
  REQUIRE(again);
  CHECK(again->token == "aoa2");
  CHECK(again->expires == renewed->expires);
  CHECK(again->registration_expires == login->registration_expires);
  CHECK(again->client_id == "c\"1");
  CHECK(again->refresh_token == "r2");
}
