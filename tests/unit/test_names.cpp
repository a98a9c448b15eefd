// The test suite itself: every test case must reach ctest whole.
#include <catch2/catch.hpp>

#include <string>

TEST_CASE("every test case name reaches ctest whole: no semicolon, which CMake splits into two names", "[meta]") {
  // catch_discover_tests turns the list of names into a CMake list. A name with ';' became two
  // ctest tests whose specs matched nothing, and both "passed" with "No tests ran": 11 test cases
  // never ran in CI until this check.
  const auto& all = Catch::getRegistryHub().getTestCaseRegistry().getAllTests();
  REQUIRE(all.size() > 100);
  for (const auto& test : all) {
    INFO(test.name);
    CHECK(test.name.find(';') == std::string::npos);
    CHECK(test.name.front() != '-');  // a spec starting with '-' is read as an option
  }
}

TEST_CASE("every long test case name has its first colon and space early in its first line", "[meta]") {
  // Catch's console report indents a long name's further lines to just after its first ": "; at
  // the 79-column width or beyond, no character fits on a line and the report of a failure never
  // ends (a test named "...of an object: a list" hung instead of failing). Kept to 70: 9 columns
  // a line at least.
  constexpr std::size_t kWidth = 79, kLatest = 70;
  for (const auto& test : Catch::getRegistryHub().getTestCaseRegistry().getAllTests()) {
    const std::size_t colon = test.name.find(": ");
    if (test.name.size() <= kWidth || colon == std::string::npos) continue;
    INFO(test.name);
    CHECK(colon + 2 <= kLatest);
  }
}
