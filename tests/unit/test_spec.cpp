#include <fmt/format.h>
#include <catch2/catch.hpp>

#include "../support.hpp"
#include "sluice/spec.hpp"

using namespace sluice;

TEST_CASE("the spec keeps 1-based line and column of every key and value", "[spec]") {
  Diagnostics diags;
  SpecNode root = parse_spec("a: 1\nnested:\n  key:   value\nlist:\n  - x\n", "f.yaml", test::fixed_env(), diags);
  REQUIRE(diags.empty());
  REQUIRE(root.is_map());
  CHECK(root.entries[0].first.where.line == 1);
  CHECK(root.entries[0].first.where.column == 1);
  CHECK(root.entries[0].second.where.column == 4);
  const SpecNode* nested = root.find("nested");
  REQUIRE(nested);
  CHECK(nested->entries[0].first.where.line == 3);
  CHECK(nested->entries[0].first.where.column == 3);
  CHECK(nested->entries[0].second.where.column == 10);
  CHECK(root.find("list")->items[0].where.line == 5);
  CHECK(root.find("list")->items[0].where.column == 5);
}

TEST_CASE("duplicate keys are errors at every depth, not silently dropped", "[spec]") {
  Diagnostics diags;
  parse_spec("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n", "f.yaml", test::fixed_env(), diags);
  diags.sort();
  CHECK(diags.to_string() ==
        "f.yaml:4:3: error: duplicate key 'c' (first defined at line 3)\n"
        "f.yaml:5:1: error: duplicate key 'a' (first defined at line 1)\n");
}

TEST_CASE("a map of many keys is read in linear work, its duplicates found", "[spec]") {
  // Each key used to be compared with every key before it: 60,000 keys took 20 s, and the 340,000
  // a 4 MiB file holds more than 10 minutes. (No time is asserted: the test's timeout catches that.)
  std::string text = "big:\n";
  constexpr int kKeys = 50'000;
  for (int i = 0; i < kKeys; ++i) text += fmt::format("  k{}: {}\n", i, i);
  text += "  k17: again\n";
  Diagnostics diags;
  SpecNode root = parse_spec(text, "f.yaml", test::fixed_env(), diags);
  CHECK(diags.to_string() ==
        fmt::format("f.yaml:{}:3: error: duplicate key 'k17' (first defined at line 19)\n", kKeys + 2));
  REQUIRE(root.find("big"));
  CHECK(root.find("big")->entries.size() == kKeys);
  CHECK(root.find("big")->entries.back().second.scalar == "49999");
}

TEST_CASE("${VAR} is substituted from the environment, with defaults and $${ escapes", "[spec]") {
  Diagnostics diags;
  auto env = test::fixed_env({{"HOST", "example.org"}, {"EMPTY", ""}});
  SpecNode root =
      parse_spec("a: https://${HOST}/x\nb: ${MISSING:-fallback}\nc: $${HOST}\nd: '${EMPTY}'\n", "f.yaml", env, diags);
  REQUIRE(diags.empty());
  CHECK(root.find("a")->scalar == "https://example.org/x");
  CHECK(root.find("b")->scalar == "fallback");
  CHECK(root.find("c")->scalar == "${HOST}");
  CHECK(root.find("d")->scalar.empty());
  CHECK(root.find("d")->quoted);
}

TEST_CASE("anchors and aliases copy the anchored node", "[spec]") {
  Diagnostics diags;
  SpecNode root = parse_spec("base: &b {x: 1}\nother: *b\n", "f.yaml", test::fixed_env(), diags);
  REQUIRE(diags.empty());
  REQUIRE(root.find("other")->is_map());
  CHECK(root.find("other")->find("x")->scalar == "1");
}

TEST_CASE("a merge key '<<' adds the keys of a map (or maps) that the map does not set itself", "[spec]") {
  Diagnostics diags;
  SpecNode root = parse_spec(
      "a: &a {timeout: 10s, per_host: 2, retries: {attempts: 5, base: 1s}}\n"
      "b: &b {per_host: 9, rate: 5/s}\n"
      "before: {timeout: 1s, <<: *a}\n"
      "after: {<<: *a, timeout: 1s, retries: {attempts: 2}}\n"
      "both: {<<: [*a, *b], id: x}\n"
      "inline:\n  <<: {k: v}\n  '<<': literal\n"
      "nested: {<<: *a, inner: {<<: *b, rate: 1/s}}\n",
      "f.yaml", test::fixed_env(), diags);
  REQUIRE(diags.empty());
  const SpecNode* before = root.find("before");
  REQUIRE(before);
  CHECK(before->find("timeout")->scalar == "1s");  // the map's own key wins, before '<<' or after it
  CHECK(before->find("per_host")->scalar == "2");
  CHECK_FALSE(before->find("<<"));
  const SpecNode* after = root.find("after");
  CHECK(after->find("timeout")->scalar == "1s");
  // Shallow: a map the node sets replaces the merged one, whose other keys do not come along.
  CHECK(after->find("retries")->find("attempts")->scalar == "2");
  CHECK_FALSE(after->find("retries")->find("base"));
  const SpecNode* both = root.find("both");
  CHECK(both->find("per_host")->scalar == "2");  // of two merged maps, the first one's key wins
  CHECK(both->find("rate")->scalar == "5/s");
  CHECK(both->find("id")->scalar == "x");
  CHECK(both->entries.size() == 5);
  // A merged value keeps its own position, in the anchored map, for the errors it may have.
  CHECK(both->find("rate")->where.line == 2);
  CHECK(root.find("inline")->find("k")->scalar == "v");
  CHECK(root.find("inline")->find("<<")->scalar == "literal");  // quoted: a plain key
  CHECK(root.find("nested")->find("inner")->find("per_host")->scalar == "9");
  CHECK(root.find("nested")->find("inner")->find("rate")->scalar == "1/s");
}

TEST_CASE("a merge key that is no map, or is given twice, is an error at its position", "[spec]") {
  Diagnostics diags;
  parse_spec("a: &a {x: 1}\nb: {<<: 3}\nc: {<<: [*a, [1]]}\nd:\n  <<: *a\n  <<: *a\n", "f.yaml", test::fixed_env(),
             diags);
  diags.sort();
  CHECK(diags.to_string() ==
        "f.yaml:2:9: error: '<<' merges a map, or a list of maps, into this one (as in '<<: *defaults'), got '3'\n"
        "f.yaml:3:14: error: '<<' merges a map, or a list of maps, into this one (as in '<<: *defaults'), got a "
        "list\n"
        "f.yaml:6:3: error: duplicate key '<<' (first defined at line 5); to merge several maps, list them: '<<: "
        "[*a, *b]'\n");
}

TEST_CASE("invalid YAML is one diagnostic with its position", "[spec]") {
  Diagnostics diags;
  SpecNode root = parse_spec("a: [1, 2\nb: 3\n", "f.yaml", test::fixed_env(), diags);
  REQUIRE(diags.items().size() == 1);
  CHECK(diags.items()[0].message.starts_with("invalid YAML: "));
  CHECK(diags.items()[0].where.line >= 1);
  CHECK(root.is_null());
}
