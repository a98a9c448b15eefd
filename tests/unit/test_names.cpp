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
