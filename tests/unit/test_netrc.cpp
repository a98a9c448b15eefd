// fetch's netrc reader (the credentials' use is checked against the fixture in
// tests/integration/test_fetch.cpp, "auth: ...").
#include <fmt/format.h>
#include <sys/stat.h>
#include <catch2/catch.hpp>

#include "../../nodes/fetch/credentials.hpp"
#include "../support.hpp"

namespace {

using sluice::fetch::read_netrc;

// The entries of netrc text `text` as "name login password" lines, or "error: ..." with the path
// left out.
std::string read(const std::string& text) {
  sluice::test::TempDir dir;
  const std::string path = dir.file("netrc");
  sluice::test::write_file(path, text);
  std::string error;
  const auto entries = read_netrc(path, error);
  if (!entries) return "error: " + error.substr(error.find(" line ") + 1);
  std::string out;
  for (const auto& [name, auth] : *entries) out += fmt::format("{}|{}|{}\n", name, auth.user, auth.password);
  return out;
}

}  // namespace

TEST_CASE("netrc: machines, default, quoted tokens, comments, account and macdef read over", "[fetch][auth]") {
  CHECK(read("machine api.example.com login ann password s3cret\n") == "api.example.com|ann|s3cret\n");
  CHECK(read("# credentials\n"
             "machine API.Example.com\n  login ann   # the service user\n  password \"pass word \\\"x\\\\\"\n"
             "  account ignored\n"
             "macdef init\ncd /pub\nmachine not.read login x password y\n\n"
             "default login anonymous password me@example.com\n") ==
        "api.example.com|ann|pass word \"x\\\n|anonymous|me@example.com\n");  // (default: no name)
  CHECK(read("machine a login a1 password p1 machine b login b1 password p2") == "a|a1|p1\nb|b1|p2\n");
  // A '#' in a value is the value's, not a comment's.
  CHECK(read("machine a login #a password #p # comment\n") == "a|#a|#p\n");
  CHECK(read("").empty());
}

TEST_CASE("netrc: an entry without its login or password, or a token out of place, is an error with its line",
          "[fetch][auth]") {
  CHECK(read("machine a\n  login ann\n") == "error: line 1: machine a has no password");
  CHECK(read("\nmachine a password p\nmachine b login b password q\n") == "error: line 2: machine a has no login");
  CHECK(read("login ann password p\n") == "error: line 1: 'login' before any machine or default");
  CHECK(read("machine a login ann\npassword") == "error: line 2: 'password' without a value");
  CHECK(read("machine a login ann password p\n\nport 21\n") ==
        "error: line 3: 'port' is out of place (machine, default, login, password, account or macdef)");
  CHECK(read("machine") == "error: line 1: 'machine' without a name");
}

TEST_CASE("fetch's small files (netrc, keys, tokens, credentials): no pipe, device or huge file is read",
          "[fetch][auth]") {
  sluice::test::TempDir dir;
  std::string error;
  // A device never ends: refused, not read until memory runs out.
  CHECK_FALSE(read_netrc("/dev/zero", error));
  CHECK(error == "'/dev/zero' is not a regular file (a pipe or a device), not a netrc file");
  // A FIFO's open() would wait for a writer for ever.
  const std::string fifo = dir.file("fifo");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK_FALSE(sluice::fetch::read_client_assertion(fifo, error));
  CHECK(error == "'" + fifo + "' is not a regular file (a pipe or a device), not a file with a client assertion");
  sluice::fetch::FetchOptions::Aws aws;
  CHECK_FALSE(sluice::fetch::read_aws_credentials(fifo, "default", aws, error));
  CHECK(error == "'" + fifo + "' is not a regular file (a pipe or a device), not an AWS credentials file");
  // 5 MiB of one line: past the 4 MiB that any of these files holds.
  const std::string big = dir.file("big");
  sluice::test::write_file(big, "[default]\naws_access_key_id = " + std::string(5 << 20, 'A') + "\n");
  CHECK_FALSE(sluice::fetch::read_aws_credentials(big, "default", aws, error));
  CHECK(error == "'" + big + "' is larger than 4 MiB: not an AWS credentials file");
  CHECK_FALSE(sluice::fetch::read_refresh_token(big, error));
  CHECK(error == "'" + big + "' is larger than 4 MiB: not a file with a refresh token");
}
