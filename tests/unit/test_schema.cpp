#include <catch2/catch.hpp>

#include "../support.hpp"
#include "sluice/schema.hpp"

using namespace sluice;
using namespace std::chrono_literals;

TEST_CASE("durations need a unit and accept ns, us, ms, s, m and h", "[schema]") {
  CHECK(parse_duration("250ms") == 250ms);
  CHECK(parse_duration("30s") == 30s);
  CHECK(parse_duration("1.5s") == 1500ms);
  CHECK(parse_duration("2m") == 120s);
  CHECK(parse_duration("1h") == 3600s);
  CHECK(parse_duration("10us") == 10us);
  CHECK_FALSE(parse_duration("10"));
  CHECK_FALSE(parse_duration("10 sec"));
  CHECK_FALSE(parse_duration("ms"));
  CHECK_FALSE(parse_duration("-1s"));
  CHECK_FALSE(parse_duration(""));
}

TEST_CASE("sizes are bytes or a decimal or binary unit", "[schema]") {
  CHECK(parse_size("512") == 512u);
  CHECK(parse_size("64KiB") == 65536u);
  CHECK(parse_size("10MiB") == 10485760u);
  CHECK(parse_size("1GB") == 1000000000u);
  CHECK(parse_size("1.5KiB") == 1536u);
  CHECK_FALSE(parse_size("12 parsecs"));
  CHECK_FALSE(parse_size("1.5B"));
  CHECK_FALSE(parse_size("MiB"));
}

TEST_CASE("plain scalars are typed like YAML 1.2 core — quoted ones stay strings", "[schema]") {
  auto scalar = [](std::string text, bool quoted = false) {
    SpecNode n;
    n.kind = SpecNode::Kind::scalar;
    n.scalar = std::move(text);
    n.quoted = quoted;
    return typed_scalar(n);
  };
  CHECK(scalar("10") == Value(std::int64_t{10}));
  CHECK(scalar("-3") == Value(std::int64_t{-3}));
  CHECK(scalar("1.5") == Value(1.5));
  CHECK(scalar("true") == Value(true));
  CHECK(scalar("~").is_null());
  CHECK(scalar("null").is_null());
  CHECK(scalar("10", true) == Value("10"));
  CHECK(scalar("abc") == Value("abc"));
}

TEST_CASE("did-you-mean suggests only plausible typos", "[schema]") {
  std::vector<std::string> names = {"fetch", "filter", "source.list", "sink.jsonl"};
  CHECK(closest_match("fetc", names) == "fetch");
  CHECK(closest_match("filtr", names) == "filter");
  CHECK(closest_match("sink.json", names) == "sink.jsonl");
  CHECK(closest_match("quantum", names).empty());
}

TEST_CASE("a schema fills defaults, keeps explicit values and collects every error", "[schema]") {
  Schema schema({
      FieldSpec::string("path", "where").with_default("-"),
      FieldSpec::integer("count", "how many").make_required().at_least(1),
      FieldSpec::duration("timeout", "how long").with_default("30s"),
      FieldSpec::list("tags", FieldSpec::string("tag", "a tag"), "tags").with_default(""),
  });
  Diagnostics diags;
  SpecNode root = parse_spec("count: 3\ntags: [a, b]\n", "t.yaml", test::fixed_env(), diags);
  Config c = schema.validate(root, Location{"t.yaml", 1, 1}, "test", {}, diags);
  REQUIRE(diags.empty());
  CHECK(c.string("path") == "-");
  CHECK_FALSE(c.explicitly_set("path"));
  CHECK(c.integer("count") == 3);
  CHECK(c.explicitly_set("count"));
  CHECK(c.duration("timeout") == 30s);
  CHECK(c.list("tags").size() == 2);
  CHECK(c.where("count").line == 1);
  CHECK(c.where("count").column == 8);

  Diagnostics bad;
  SpecNode wrong = parse_spec("count: 0\ntimeout: soon\nextra: 1\n", "t.yaml", test::fixed_env(), bad);
  schema.validate(wrong, Location{"t.yaml", 1, 1}, "test", {}, bad);
  bad.sort();
  CHECK(bad.to_string() ==
        "t.yaml:1:8: error: count: must be at least 1, got 0\n"
        "t.yaml:2:10: error: timeout: invalid duration 'soon' (write a number and a unit: 250ms, 30s, 5m, 1h)\n"
        "t.yaml:3:1: error: unknown key 'extra' in test (allowed keys: 'path', 'count', 'timeout', 'tags')\n");
}

TEST_CASE("a list of scalars may be written as its one item, a list of maps may not", "[schema]") {
  Schema schema({
      FieldSpec::list("tags", FieldSpec::string("tag", "a tag"), "tags").with_default(""),
      FieldSpec::list("codes", FieldSpec::integer("code", "a code").at_least(100), "codes").with_default(""),
      FieldSpec::list("rules", FieldSpec::map("rule", FieldSpec::string("v", "a value"), "a rule"), "rules")
          .with_default(""),
  });
  Diagnostics diags;
  SpecNode root = parse_spec("tags: sale\ncodes: 429\n", "t.yaml", test::fixed_env(), diags);
  Config c = schema.validate(root, Location{"t.yaml", 1, 1}, "test", {}, diags);
  REQUIRE(diags.empty());
  REQUIRE(c.list("tags").size() == 1);
  CHECK(std::get<Value>(c.list("tags")[0].v).to_text() == "sale");
  REQUIRE(c.list("codes").size() == 1);
  CHECK(*std::get<Value>(c.list("codes")[0].v).as_int() == 429);

  // The item is checked as an item would be; a map or a lone scalar for a list of maps is an error.
  Diagnostics bad;
  SpecNode wrong = parse_spec("codes: 42\nrules: x\ntags: {a: b}\n", "t.yaml", test::fixed_env(), bad);
  Diagnostics empty;
  SpecNode nothing = parse_spec("tags: ''\n", "t.yaml", test::fixed_env(), empty);
  schema.validate(nothing, Location{"t.yaml", 1, 1}, "test", {}, empty);
  CHECK(empty.to_string() == "t.yaml:1:7: error: tags: expected a list, got ''\n");
  schema.validate(wrong, Location{"t.yaml", 1, 1}, "test", {}, bad);
  bad.sort();
  CHECK(bad.to_string() ==
        "t.yaml:1:8: error: codes: must be at least 100, got 42\n"
        "t.yaml:2:8: error: rules: expected a list, got 'x'\n"
        "t.yaml:3:7: error: tags: expected a list, got a map\n");
}

TEST_CASE("an any field keeps a value as written: typed scalars, lists and maps to any depth, in order", "[schema]") {
  Schema schema({FieldSpec::any("json", "a value")});
  CHECK(schema.find("json")->type_text() == "any value (map, list, scalar)");
  Diagnostics diags;
  SpecNode root = parse_spec("json:\n  b: [1, '2', {c: null}]\n  a: 1.5\n", "t.yaml", test::fixed_env(), diags);
  Config c = schema.validate(root, Location{"t.yaml", 1, 1}, "test", {}, diags);
  REQUIRE(diags.empty());
  const auto& map = std::get<ConfigValue::Map>(c.at("json").v);
  REQUIRE(map.size() == 2);
  CHECK(map[0].first == "b");  // in the order written
  CHECK(map[1].first == "a");
  CHECK(*std::get<Value>(map[1].second.v).as_double() == 1.5);
  CHECK(map[1].second.where.line == 3);
  const auto& list = std::get<ConfigValue::List>(map[0].second.v);
  REQUIRE(list.size() == 3);
  CHECK(*std::get<Value>(list[0].v).as_int() == 1);
  CHECK(*std::get<Value>(list[1].v).as_string() == "2");  // quoted: a string
  CHECK(std::get<Value>(std::get<ConfigValue::Map>(list[2].v).at(0).second.v).is_null());
  // A scalar alone is a value too.
  Diagnostics scalar_diags;
  SpecNode scalar = parse_spec("json: true\n", "t.yaml", test::fixed_env(), scalar_diags);
  Config s = schema.validate(scalar, Location{"t.yaml", 1, 1}, "test", {}, scalar_diags);
  REQUIRE(scalar_diags.empty());
  CHECK(*std::get<Value>(s.at("json").v).as_bool());
}
