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

TEST_CASE("invalid YAML is one diagnostic with its position", "[spec]") {
  Diagnostics diags;
  SpecNode root = parse_spec("a: [1, 2\nb: 3\n", "f.yaml", test::fixed_env(), diags);
  REQUIRE(diags.items().size() == 1);
  CHECK(diags.items()[0].message.starts_with("invalid YAML: "));
  CHECK(diags.items()[0].where.line >= 1);
  CHECK(root.is_null());
}
