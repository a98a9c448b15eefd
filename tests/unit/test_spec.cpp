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

// The message yaml-cpp's error becomes, for `text` (one diagnostic expected).
static std::string yaml_error(const std::string& text) {
  Diagnostics diags;
  SpecNode root = parse_spec(text, "f.yaml", test::fixed_env(), diags);
  CHECK(root.is_null());
  REQUIRE(diags.items().size() == 1);
  return diags.to_string();
}

TEST_CASE("a quoted string that is never closed is an error at its quote, not the rest of the file as its text",
          "[spec]") {
  // yaml-cpp 0.7 accepts it and the keys after it vanish into the string ("missing key 'nodes'").
  CHECK(yaml_error("pipeline: x\ndescription: \"abc\nnodes: []\n") ==
        "f.yaml:2:14: error: invalid YAML: the string quoted with \" here is never closed: it runs to the end of the "
        "file\n");
  CHECK(yaml_error("a: 'it''s\nb: 1\n") ==
        "f.yaml:1:4: error: invalid YAML: the string quoted with ' here is never closed: it runs to the end of the "
        "file\n");
  CHECK(yaml_error("\xEF\xBB\xBF"
                   "a: [\"x\\\"]\n") ==
        "f.yaml:1:5: error: invalid YAML: the string quoted with \" here is never closed: it runs to the end of the "
        "file\n");
  // After an anchor or a tag, the error is at the quote.
  CHECK(yaml_error("a: &d !!str \"abc\nb: 1\n") ==
        "f.yaml:1:13: error: invalid YAML: the string quoted with \" here is never closed: it runs to the end of the "
        "file\n");
  // Closed, on this line or a later one, escapes and doubled quotes included, or a block scalar
  // whose text starts with a quote: no error.
  Diagnostics diags;
  SpecNode root = parse_spec("a: \"x\\\"y\"\nb: 'it''s'\nc: \"two\n  lines\"\nd: |\n  \"text\ne: &e 'x'\n", "f.yaml",
                             test::fixed_env(), diags);
  CHECK(diags.empty());
  CHECK(root.find("a")->scalar == "x\"y");
  CHECK(root.find("b")->scalar == "it's");
  CHECK(root.find("c")->scalar == "two lines");
  CHECK(root.find("d")->scalar == "\"text\n");
  CHECK(root.find("e")->scalar == "x");
}

TEST_CASE("a YAML syntax error says what most likely caused it", "[spec]") {
  const std::pair<const char*, const char*> cases[] = {
      // A bracket never closed: yaml-cpp stops further on, the '[' is where to look.
      {"a: [1, 2\nb: 3\n",
       "f.yaml:2:2: error: invalid YAML: end of sequence flow not found; the '[' at line 1, column 4 is never closed"},
      {"a: {x: [1]\n",
       "f.yaml:2:1: error: invalid YAML: end of map flow not found; the '{' at line 1, column 4 is never closed"},
      // A quote closed lines later, by the next string's opening quote.
      {"a:\n  b: \"/dev/null\n  c: 1\nd:\n  - \"x -> o\n",
       "f.yaml:5:6: error: invalid YAML: end of map not found; the string quoted at line 2, column 6 runs on to line "
       "5: "
       "is its closing quote missing?"},
      // A tab in the indentation, a key with no space after its ':', a key indented too far.
      {"nodes:\n\t- id: a\n",
       "f.yaml:2:2: error: invalid YAML: illegal block entry; line 2 is indented with a tab: YAML indents with spaces "
       "only"},
      {"nodes:\n  - id: a\n    type:source.list\n    urls: [a]\n",
       "f.yaml:4:9: error: invalid YAML: illegal map value; line 3 reads 'type:source.list' as one word: write a space "
       "after the ':' ('type: source.list')"},
      {"nodes:\n  - id: a\n    type: source.list\n     urls: [a]\n",
       "f.yaml:4:10: error: invalid YAML: illegal map value; line 4 is indented further (5 spaces) than line 3 (4): "
       "the "
       "keys of one map line up"},
  };
  for (const auto& [text, message] : cases) {
    INFO(text);
    CHECK(yaml_error(text) == std::string(message) + "\n");
  }
  // A URL's "http://" or a host's port is no missing space; a quoted string on two lines far
  // above the error is no missing quote.
  CHECK(yaml_error("urls:\n  - http://x/a\n   b: 1\n").find("one word") == std::string::npos);
  CHECK(yaml_error("hosts:\n  - example.com:8080\n   b: 1\n").find("one word") == std::string::npos);
  CHECK(yaml_error("a: \"two\n  lines\"\nb: 1\nc: 2\nd: 3\ne: 4\nf: [1\n").find("quote") == std::string::npos);
}

TEST_CASE("invalid YAML is one diagnostic with its position", "[spec]") {
  Diagnostics diags;
  SpecNode root = parse_spec("a: [1, 2\nb: 3\n", "f.yaml", test::fixed_env(), diags);
  REQUIRE(diags.items().size() == 1);
  CHECK(diags.items()[0].message.starts_with("invalid YAML: "));
  CHECK(diags.items()[0].where.line >= 1);
  CHECK(root.is_null());
}
