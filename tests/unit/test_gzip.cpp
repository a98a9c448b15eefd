#include <catch2/catch.hpp>

#include "../../nodes/parse/gzip.hpp"
#include "../support.hpp"

using namespace sluice::parse;
using sluice::test::gzip;

TEST_CASE("gunzip: what gzip wrote comes back whole, from stored, compressed and concatenated files", "[gzip]") {
  std::string text;
  for (int i = 0; i < 20000; ++i) text += "<url><loc>https://shop.example/p/" + std::to_string(i) + "</loc></url>\n";
  std::string error;
  for (int level : {0, 1, 9}) {
    auto out = gunzip(gzip(text, level), error);
    REQUIRE(out);
    CHECK(*out == text);
  }
  // `cat a.gz b.gz > ab.gz`: gunzip reads both members, and ignores zero padding after them.
  auto joined = gunzip(gzip("first ") + gzip("second") + std::string(8, '\0'), error);
  REQUIRE(joined);
  CHECK(*joined == "first second");
  auto empty = gunzip(gzip(""), error);
  REQUIRE(empty);
  CHECK(empty->empty());
  CHECK(is_gzip(gzip("x")));
  CHECK_FALSE(is_gzip("<?xml"));
  CHECK_FALSE(is_gzip("\x1f"));
}

TEST_CASE("gunzip: a bomb stops at the cap, a cut-off or corrupt file is an error, never a crash", "[gzip]") {
  std::string error;
  // 100 MB of zeros is 100 KB of gzip: refused at the cap, not unzipped into memory.
  const std::string bomb = gzip(std::string(100u << 20, '\0'), 9);
  CHECK(bomb.size() < 200000);
  CHECK_FALSE(gunzip(bomb, error));
  CHECK(error == "larger than 64 MiB unzipped");
  // Exactly at a cap is fine; one byte over is not.
  CHECK(gunzip(gzip(std::string(1000, 'a')), error, 1000));
  CHECK_FALSE(gunzip(gzip(std::string(1001, 'a')), error, 1000));
  CHECK(error == "larger than 1000 bytes unzipped");

  const std::string whole = gzip(std::string(100000, 'x') + "end");
  CHECK_FALSE(gunzip(whole.substr(0, whole.size() / 2), error));
  CHECK(error == "the gzip file is cut off");
  CHECK_FALSE(gunzip(whole.substr(0, whole.size() - 4), error));  // the trailer's length missing
  CHECK(error == "the gzip file is cut off");
  std::string corrupt = whole;
  corrupt[corrupt.size() - 6] ^= 0x55;  // the CRC
  CHECK_FALSE(gunzip(corrupt, error));
  CHECK(error.starts_with("not a valid gzip file ("));
  CHECK_FALSE(gunzip(whole + "trailing text", error));
  CHECK(error == "data after the end of the gzip file");
  CHECK_FALSE(gunzip(std::string("\x1f\x8b garbage"), error));
  CHECK(error.starts_with("not a valid gzip file ("));
  // Random bytes after the magic: an error or some output, never a crash or a hang.
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::string junk = "\x1f\x8b\x08";
    for (int n = 0; n < 64; ++n) junk += static_cast<char>(rng());
    (void)gunzip(junk, error, 4096);
  }
}
