// The flat hash set behind the frontier's seen URLs and distinct's keys: a wrong "seen" would drop
// a page or a record without a word, so it is checked against std::unordered_set.
#include <catch2/catch.hpp>

#include <random>
#include <unordered_set>

#include "../../nodes/flat_set.hpp"

namespace {

std::uint64_t identity(const std::uint64_t& k) {
  return k;
}
std::uint64_t one() {
  return 1;
}
using Set = sluice::nodes::FlatHashSet<std::uint64_t, identity, one>;

}  // namespace

TEST_CASE("FlatHashSet answers as std::unordered_set over 300,000 inserts with repeats and growth", "[flat_set]") {
  Set set;
  std::unordered_set<std::uint64_t> reference;
  std::mt19937_64 rng(7);
  for (int i = 0; i < 300000; ++i) {
    // Half random 64-bit values, half from a small range (many repeats, keys that share low bits).
    std::uint64_t key = i % 2 ? rng() : (rng() % 50000) << 20;
    if (key == 0 || key == 1) key = 2;  // 0 is the empty slot, stored as 1 (below)
    INFO(key);
    REQUIRE(set.insert(key) == reference.insert(key).second);
  }
  CHECK(set.size() == reference.size());
  // Everything inserted is still there after every growth.
  for (const auto key : reference) REQUIRE_FALSE(set.insert(key));
}

TEST_CASE("FlatHashSet stores the empty key as its substitute", "[flat_set]") {
  Set set;
  CHECK(set.insert(0));
  CHECK_FALSE(set.insert(0));
  CHECK_FALSE(set.insert(1));  // 1 stands for 0: a collision of two hashes out of 2^64
  CHECK(set.insert(2));
  CHECK(set.size() == 2);
}
