// parse.html against pages served by the fixture server.
#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <set>

#include "../support.hpp"
#include "fixture_server.hpp"

using namespace sluice;
using test::TempDir;

namespace {

std::string parse_pipeline(const TempDir& dir, const std::vector<std::string>& urls, const std::string& parse_config) {
  std::string list;
  for (const auto& u : urls) list += "\n      - " + u;
  return fmt::format(R"(pipeline: parse_test
nodes:
  - id: src
    type: source.list
    urls:{list}
  - id: get
    type: fetch
  - id: parse
    type: parse.html
    on_error: route
{config}
  - id: items
    type: sink.jsonl
    path: {items}
  - id: links
    type: sink.jsonl
    path: {links}
    fields: [url, depth, from_url]
  - id: bad
    type: sink.jsonl
    path: {bad}
edges:
  - src -> get -> parse -> items
  - parse.links -> links
  - parse.error -> bad
)",
                     fmt::arg("list", list), fmt::arg("config", parse_config),
                     fmt::arg("items", dir.file("items.jsonl")), fmt::arg("links", dir.file("links.jsonl")),
                     fmt::arg("bad", dir.file("bad.jsonl")));
}

// parse_pipeline() with parse.json in place of parse.html.
std::string json_pipeline(const TempDir& dir, const std::vector<std::string>& urls, const std::string& json_config) {
  std::string pipeline = parse_pipeline(dir, urls, json_config);
  pipeline.replace(pipeline.find("type: parse.html"), 16, "type: parse.json");
  return pipeline;
}

// parse_pipeline() with parse.regex in place of parse.html, which has no links port.
std::string regex_pipeline(const TempDir& dir, const std::string& url, const std::string& regex_config) {
  std::string pipeline = parse_pipeline(dir, {url}, regex_config);
  pipeline.replace(pipeline.find("type: parse.html"), 16, "type: parse.regex");
  pipeline.replace(pipeline.find("  - parse.links -> links\n"), 24, "  - src -> links\n");
  return pipeline;
}

// A crawl from `seeds`: frontier -> limit (`max_in_flight`) -> fetch -> parse.html (links: a[href])
// -> the page_url of each page to `pages`; the *_config strings add lines to their node, `settings`
// members to the settings.
std::string crawl_pipeline(const std::vector<std::string>& seeds, const std::string& frontier_config,
                           const std::string& fetch_config, const std::string& parse_config, const std::string& pages,
                           int max_in_flight = 4, const std::string& settings = "") {
  std::string list;
  for (const auto& u : seeds) list += (list.empty() ? "\"" : ", \"") + u + "\"";
  return fmt::format(R"(pipeline: crawl
settings: {{{}}}
nodes:
  - id: seeds
    type: source.list
    urls: [{}]
  - id: frontier
    type: frontier
{}
  - id: lim
    type: limit
    max_in_flight: {}
  - id: get
    type: fetch
{}
  - id: parse
    type: parse.html
    links: a[href]
{}
  - id: pages
    type: sink.jsonl
    path: {}
    fields: [page_url]
edges:
  - seeds -> frontier -> lim -> get -> parse -> pages
  - parse.links -> frontier
)",
                     settings, list, frontier_config, max_in_flight, fetch_config, parse_config, pages);
}

const std::string kSite = std::string(SLUICE_SOURCE_DIR) + "/tests/fixtures/site";

// Items carry their page's origin: page_url, depth and fetched_at (a timestamp: checked, then cut out).
std::vector<std::string> item_lines(const TempDir& dir, const std::string& name = "items.jsonl") {
  auto lines = test::lines_of(test::read_file(dir.file(name)));
  for (auto& l : lines) {
    const std::string origin = ",\"depth\":0,\"fetched_at\":";
    auto at = l.find(origin);
    if (at == std::string::npos) continue;
    auto value = at + origin.size();
    auto end = l.find_first_of(",}", value);
    if (std::stod(l.substr(value, end - value)) > 1.7e9) l.erase(at, end - at);  // a plausible Unix time
  }
  return lines;
}

// A node's "selectors" table, one line per row: selector, select, tried, found, missing, values.
std::vector<std::string> selector_rows(const RunReport& report, const std::string& node) {
  std::vector<std::string> lines;
  for (const auto& t : report.tables) {
    if (t.node != node || t.name != "selectors") continue;
    for (const auto& r : t.rows) {
      std::string line;
      for (const auto& [name, value] : r.fields()) line += (line.empty() ? "" : " ") + value.to_text();
      lines.push_back(line);
    }
  }
  return lines;
}

// A pipeline whose one record is a page of `html` at https://shop.example/p, the body a `set` gives
// it (no server needed for what the parse nodes read), then `rest`: more nodes (whose edges start
// at `body`) and the edges.
std::string page_pipeline(const std::string& html, const std::string& rest) {
  std::string body;  // a folded block scalar
  for (const auto& line : test::lines_of(html)) body += "        " + line + "\n";
  return "pipeline: page\nnodes:\n  - id: page\n    type: source.list\n    urls: [https://shop.example/p]\n"
         "  - id: body\n    type: set\n    fields:\n      body: >-\n" +
         body + rest;
}

// The run's notices as "node: message", in the order they came.
std::vector<std::string> notice_messages(const RunReport& report) {
  std::vector<std::string> messages;
  for (const auto& n : report.notices) messages.push_back(n.node + ": " + n.message);
  return messages;
}

}  // namespace

TEST_CASE("parse.html splits a page into items with CSS fields, lists and regex captures", "[parse]") {
  fixture::FixtureServer server(kSite);
  TempDir dir;
  RunReport report =
      run_pipeline(test::plan_of(parse_pipeline(dir, {server.url("/catalogue/page1.html")}, R"(    items: div.product
    fields:
      name: h2.name
      own: h2.name::text
      price: {select: span.price, regex: '([0-9]+\.[0-9]+)'}
      tags: {select: ul.tags li, all: true}
      more: a.more::attr(href)
      id: xpath:string(./@id))")));
  REQUIRE(report.errors.empty());
  std::string page = server.url("/catalogue/page1.html");
  auto items = item_lines(dir);
  REQUIRE(items.size() == 3);
  CHECK(items[0] == fmt::format(R"({{"page_url":"{}","name":"Blue Kettle","own":"Blue Kettle","price":"19.90",)"
                                R"("tags":["kitchen","blue"],"more":"../item/1.html","id":"p1"}})",
                                page));
  CHECK(items[1].find(R"("name":"Red Toaster","own":"Red","price":"34.50","tags":["kitchen"])") != std::string::npos);
  CHECK(items[2].find(R"("name":"Mystery box","own":"Mystery box","price":null,"tags":[])") != std::string::npos);
}

TEST_CASE("type: number and integer turn scraped prices and counts into numbers, and say which held none",
          "[parse][number]") {
  // The page is the body a `set` gives the record: no server needed for what parse.html reads.
  TempDir dir;
  Plan plan =
      test::plan_of(page_pipeline(R"(<div class="p"><b>$1,299.00</b><i>12 reviews</i><s>1</s><s>2,5</s></div>
<div class="p"><b>19.99 USD</b><i>4.5</i></div>
<div class="p"><b>12,50 EUR</b><i>-3</i></div>
<div class="p"><b>Call for price</b><i>1 204</i></div>)",
                                  fmt::format(R"(  - id: parse
    type: parse.html
    items: div.p
    fields:
      price: {{select: b, type: number}}
      reviews: {{select: i, type: integer}}
      sizes: {{select: s, type: number, all: true}}
  - id: strict
    type: parse.html
    items: div.p
    on_error: route
    fields:
      price: {{select: b, type: number, decimal: ',', required: true}}
  - id: out
    type: sink.jsonl
    path: {}
    fields: [price, reviews, sizes]
  - id: kept
    type: sink.jsonl
    path: {}
    fields: [price]
  - id: bad
    type: sink.jsonl
    path: {}
edges:
  - page -> body -> parse -> out
  - body -> strict -> kept
  - strict.error -> bad
)",
                                              dir.file("out.jsonl"), dir.file("kept.jsonl"), dir.file("bad.jsonl"))));
  RunReport report = run_pipeline(plan);
  REQUIRE(report.errors.empty());
  CHECK(test::lines_of(test::read_file(dir.file("out.jsonl"))) ==
        std::vector<std::string>{
            R"({"price":1299,"reviews":12,"sizes":[1]})",
            R"({"price":19.99,"reviews":null,"sizes":[]})",
            R"({"price":null,"reviews":-3,"sizes":[]})",  // "12,50" is no number with decimal '.'
            R"({"price":null,"reviews":1204,"sizes":[]})",
        });
  // With decimal ',' the same prices read the other way: "12,50" is 12.5, "$1,299.00" and "19.99" none.
  CHECK(test::lines_of(test::read_file(dir.file("kept.jsonl"))) == std::vector<std::string>{R"({"price":12.5})"});
  const std::string bad = test::read_file(dir.file("bad.jsonl"));
  CHECK(test::contains(bad, "required field 'price' has no number in '$1,299.00' (selector 'b', type: number)"));
  CHECK(test::contains(bad, "required field 'price' has no number in 'Call for price' (selector 'b', type: number)"));
  CHECK(notice_messages(report) ==
        std::vector<std::string>{
            "parse: field 'price' (type: number) had 2 values with no number in them (the first: '12,50 "
            "EUR') (written with a decimal ','? set decimal: ','); they were left out",
            "parse: field 'reviews' (type: integer) had 1 value with no whole number in it (the first: "
            "'4.5'); it was left out",
            "parse: field 'sizes' (type: number) had 1 value with no number in it (the first: '2,5') "
            "(written with a decimal ','? set decimal: ','); it was left out",
            "strict: field 'price' (type: number) had 3 values with no number in them (the first: "
            "'$1,299.00') (written with a decimal '.'? set decimal: '.'); they were left out",
        });
}

TEST_CASE("type: date turns scraped dates into ISO 8601 in parse.html, parse.json and parse.regex", "[parse][date]") {
  TempDir dir;
  Plan plan = test::plan_of(page_pipeline(
      R"(<div class="post"><time>March 5, 2026 at 2:30 PM EST</time><span>05/03/2026</span></div>
<div class="post"><time>5. M&auml;rz 2026</time><span>13/03/2026</span></div>
<div class="post"><time>soon</time><span>1.2.2026</span></div>)",
      fmt::format(R"(  - id: parse
    type: parse.html
    items: div.post
    fields:
      published: {{select: time, type: date}}
      updated: {{select: span, type: date, date_order: dmy}}
      as_given: {{select: span, type: date}}
  - id: strict
    type: parse.html
    items: div.post
    on_error: route
    fields:
      published: {{select: time, type: date, required: true}}
  - id: api
    type: parse.json
    body_field: api
    fields:
      at: {{path: at, type: date}}
      ms: {{path: ms, type: date}}
      text: {{path: text, type: date}}
  - id: api_body
    type: set
    fields:
      api: '{{{{"at": 1709650000, "ms": 1709650000250, "text": "2026-03-05T14:30:00+01:00"}}}}'
  - id: log
    type: parse.regex
    pattern: '(?P<when>[0-9]+/[0-9]+/[0-9]+) (?P<what>[a-z]+)'
    body_field: line
    types: {{when: date}}
    date_order: mdy
  - id: line
    type: set
    fields:
      line: 03/05/2026 deployed
  - id: out
    type: sink.jsonl
    path: {}
    fields: [published, updated, as_given]
  - id: bad
    type: sink.jsonl
    path: {}
  - id: api_out
    type: sink.jsonl
    path: {}
    fields: [at, ms, text]
  - id: log_out
    type: sink.jsonl
    path: {}
    fields: [when, what]
  - id: dropped
    type: sink.jsonl
    path: /dev/null
  - id: recent
    type: filter
    field: updated
    op: ge
    value: '2026-03-01'
  - id: recent_out
    type: sink.jsonl
    path: {}
    fields: [updated]
edges:
  - page -> body -> parse -> out
  - parse -> recent -> recent_out
  - body -> strict -> dropped
  - strict.error -> bad
  - page -> api_body -> api -> api_out
  - page -> line -> log -> log_out
)",
                  dir.file("out.jsonl"), dir.file("bad.jsonl"), dir.file("api.jsonl"), dir.file("log.jsonl"),
                  dir.file("recent.jsonl"))));
  RunReport report = run_pipeline(plan);
  REQUIRE(report.errors.empty());
  CHECK(test::lines_of(test::read_file(dir.file("out.jsonl"))) ==
        std::vector<std::string>{
            R"({"published":"2026-03-05T19:30:00Z","updated":"2026-03-05","as_given":null})",
            R"({"published":"2026-03-05","updated":"2026-03-13","as_given":"2026-03-13"})",
            R"({"published":null,"updated":"2026-02-01","as_given":null})",
        });
  CHECK(test::contains(test::read_file(dir.file("bad.jsonl")),
                       "required field 'published' has no date in 'soon' (selector 'time', type: date)"));
  // ISO 8601 text compares as dates do: a filter keeps what is newer.
  auto recent = test::lines_of(test::read_file(dir.file("recent.jsonl")));
  std::sort(recent.begin(), recent.end());
  CHECK(recent == std::vector<std::string>{R"({"updated":"2026-03-05"})", R"({"updated":"2026-03-13"})"});
  CHECK(test::lines_of(test::read_file(dir.file("api.jsonl"))) ==
        std::vector<std::string>{
            R"({"at":"2024-03-05T14:46:40Z","ms":"2024-03-05T14:46:40.250Z","text":"2026-03-05T13:30:00Z"})"});
  CHECK(test::lines_of(test::read_file(dir.file("log.jsonl"))) ==
        std::vector<std::string>{R"({"when":"2026-03-05","what":"deployed"})"});
  CHECK(notice_messages(report) ==
        std::vector<std::string>{
            "parse: field 'published' (type: date) had 1 value with no date in it (the first: 'soon'); it was "
            "left out",
            "parse: field 'as_given' (type: date) had 2 values with no date in them (the first: '05/03/2026') (day "
            "and month could be either way round: set date_order: dmy or mdy); they were left out",
            "strict: field 'published' (type: date) had 1 value with no date in it (the first: 'soon'); it was "
            "left out",
        });
}

TEST_CASE(
    "time_zone: a local date and time is given as the moment in UTC, in parse.html, parse.json, parse.regex "
    "and source.csv",
    "[parse][date]") {
  TempDir dir;
  test::write_file(dir.file("rows.csv"), "when,day\n2026-07-01 14:30,2026-07-01\n");
  Plan plan = test::plan_of(page_pipeline(
      R"(<div class="post"><time>5. M&auml;rz 2026 um 14:30</time><span>2026-07-01 09:15</span><i>March 5, 2026</i><b>2026-03-05T14:30:00Z</b><u>2026-10-25 02:30</u></div>)",
      fmt::format(R"(  - id: parse
    type: parse.html
    items: div.post
    fields:
      local: {{select: time, type: date, time_zone: Europe/Berlin}}
      summer: {{select: span, type: date, time_zone: Europe/Berlin}}
      day: {{select: i, type: date, time_zone: Europe/Berlin}}
      zoned: {{select: b, type: date, time_zone: Europe/Berlin}}
      twice: {{select: u, type: date, time_zone: Europe/Berlin}}
      as_written: {{select: time, type: date}}
  - id: api_body
    type: set
    fields:
      api: '{{{{"at": "2026-03-05 14:30"}}}}'
  - id: api
    type: parse.json
    body_field: api
    fields:
      at: {{path: at, type: date, time_zone: America/New_York}}
  - id: line
    type: set
    fields:
      line: 2026-03-05 14:30 deployed
  - id: log
    type: parse.regex
    pattern: '(?P<when>[0-9-]+ [0-9:]+) (?P<what>[a-z]+)'
    body_field: line
    types: {{when: date}}
    time_zone: Asia/Tokyo
  - id: rows
    type: source.csv
    path: {csv}
    types: {{when: date, day: date}}
    time_zone: Europe/London
  - id: out
    type: sink.jsonl
    path: {out}
    fields: [local, summer, day, zoned, twice, as_written]
  - id: api_out
    type: sink.jsonl
    path: {api_out}
    fields: [at]
  - id: log_out
    type: sink.jsonl
    path: {log_out}
    fields: [when]
  - id: rows_out
    type: sink.jsonl
    path: {rows_out}
edges:
  - page -> body -> parse -> out
  - page -> api_body -> api -> api_out
  - page -> line -> log -> log_out
  - rows -> rows_out
)",
                  fmt::arg("csv", dir.file("rows.csv")), fmt::arg("out", dir.file("out.jsonl")),
                  fmt::arg("api_out", dir.file("api.jsonl")), fmt::arg("log_out", dir.file("log.jsonl")),
                  fmt::arg("rows_out", dir.file("rows.jsonl")))));
  RunReport report = run_pipeline(plan);
  REQUIRE(report.errors.empty());
  CHECK(test::lines_of(test::read_file(dir.file("out.jsonl"))) ==
        std::vector<std::string>{
            R"({"local":"2026-03-05T13:30:00Z","summer":"2026-07-01T07:15:00Z","day":"2026-03-05",)"
            R"("zoned":"2026-03-05T14:30:00Z","twice":"2026-10-25T00:30:00Z","as_written":"2026-03-05T14:30:00"})"});
  CHECK(test::lines_of(test::read_file(dir.file("api.jsonl"))) ==
        std::vector<std::string>{R"({"at":"2026-03-05T19:30:00Z"})"});
  CHECK(test::lines_of(test::read_file(dir.file("log.jsonl"))) ==
        std::vector<std::string>{R"({"when":"2026-03-05T05:30:00Z"})"});
  CHECK(test::lines_of(test::read_file(dir.file("rows.jsonl"))) ==
        std::vector<std::string>{R"({"when":"2026-07-01T13:30:00Z","day":"2026-07-01"})"});
  CHECK(report.notices.empty());
}

TEST_CASE("a relative date, and a day and month without a year, count from when its page was fetched",
          "[parse][date]") {
  TempDir dir;
  RunReport report = run_pipeline(test::plan_of(page_pipeline(
      R"(<p><time>3 hours ago</time></p><p><time>yesterday at 9:15 pm</time></p><p><time>vor 2 Tagen</time></p>)"
      R"(<p><time>Dec 30</time></p>)",
      fmt::format(R"(  - id: fetched
    type: set
    fields:
      fetched_at: 1772721000
  - id: parse
    type: parse.html
    items: p
    fields:
      posted: {{select: time, type: date}}
  - id: out
    type: sink.jsonl
    path: {}
    fields: [posted]
edges:
  - page -> body -> fetched -> parse -> out
)",
                  dir.file("out.jsonl")))));
  REQUIRE(report.errors.empty());
  // fetched_at 1772721000 is 2026-03-05T14:30:00Z.
  CHECK(test::lines_of(test::read_file(dir.file("out.jsonl"))) ==
        std::vector<std::string>{R"({"posted":"2026-03-05T11:30:00Z"})", R"({"posted":"2026-03-04T21:15:00"})",
                                 R"({"posted":"2026-03-03"})", R"({"posted":"2025-12-30"})"});
}

TEST_CASE("a tag or attribute name in mixed case matches an HTML page's lower-case names", "[parse][selector]") {
  TempDir dir;
  const std::string page =
      R"(<DIV class="p"><A data-ID="7"><SPAN>Lamp</SPAN></A></DIV><DIV class="p"><a>none</a></DIV>)";
  RunReport report = run_pipeline(test::plan_of(page_pipeline(page, fmt::format(R"(  - id: parse
    type: parse.html
    items: DIV.p
    fields:
      id: 'A[data-ID]::attr(data-ID)'
      name: Span
  - id: out
    type: sink.jsonl
    path: {}
    fields: [id, name]
edges:
  - page -> body -> parse -> out
)",
                                                                                dir.file("out.jsonl")))));
  REQUIRE(report.errors.empty());
  CHECK(test::lines_of(test::read_file(dir.file("out.jsonl"))) ==
        std::vector<std::string>{R"({"id":"7","name":"Lamp"})", R"({"id":null,"name":null})"});
}

TEST_CASE("a field's fallback selectors are tried in turn until one gives a value", "[parse]") {
  TempDir dir;
  Plan plan =
      test::plan_of(page_pipeline(R"(<div class="p"><del>$20</del><ins>$15</ins><span class="price">$20</span></div>
<div class="p"><span class="price">$30</span></div>
<div class="p"><ins>sold out</ins><span class="price">$40</span><u>u</u></div>)",
                                  fmt::format(R"(  - id: parse
    type: parse.html
    items: div.p
    on_error: route
    fields:
      price: {{select: ins, fallback: [span.price], regex: '[$]([0-9]+)', type: integer}}
      note: {{select: b, fallback: [u, xpath:string(./span/@class)], required: true}}
  - id: out
    type: sink.jsonl
    path: {}
    fields: [price, note]
  - id: bad
    type: sink.jsonl
    path: {}
    fields: [price]
edges:
  - page -> body -> parse -> out
  - parse.error -> bad
)",
                                              dir.file("out.jsonl"), dir.file("bad.jsonl"))));
  RunReport report = run_pipeline(plan);
  REQUIRE(report.errors.empty());
  // The sale price where there is one; "sold out" gives no value (its regex does not match), so the
  // regular price does. Each field's first selector that gives a value wins.
  CHECK(test::lines_of(test::read_file(dir.file("out.jsonl"))) ==
        std::vector<std::string>{R"({"price":15,"note":"price"})", R"({"price":30,"note":"price"})",
                                 R"({"price":40,"note":"u"})"});
  CHECK(test::read_file(dir.file("bad.jsonl")).empty());
  // The selectors table counts a field as found when any of its selectors was.
  bool listed = false;
  for (const auto& row : selector_rows(report, "parse")) {
    if (!row.starts_with("fields.price ")) continue;
    listed = true;
    CHECK(row == "fields.price ins or span.price 3 3 0 3");
  }
  CHECK(listed);
}

TEST_CASE("a required field none of whose selectors gives a value names them all", "[parse]") {
  TempDir dir;
  Plan plan = test::plan_of(page_pipeline("<p>nothing here</p>", fmt::format(R"(  - id: parse
    type: parse.html
    on_error: route
    fields:
      price: {{select: ins, fallback: [span.price], required: true}}
  - id: out
    type: drop
  - id: bad
    type: sink.jsonl
    path: {}
edges:
  - page -> body -> parse -> out
  - parse.error -> bad
)",
                                                                             dir.file("bad.jsonl"))));
  RunReport report = run_pipeline(plan);
  REQUIRE(report.errors.empty());
  CHECK(test::contains(test::read_file(dir.file("bad.jsonl")),
                       "required field 'price' not found (selector 'ins', then 'span.price')"));
}

// Parses the catalogue's first page into div.product items with a `name` field and `field` (a
// line of YAML); the run must not fail. Returns the lines of the routed (bad) items.
TEST_CASE("a page whose items nest thousands deep fails in bounded work, naming it, and other pages parse", "[parse]") {
  // Unclosed tags nest each item inside the one before, so every item's fields walk the rest of the
  // page: the work grows with the cube of the page (found by tests/fuzz: a 28 KB page held a worker
  // for five minutes, a 100 KB one would for days). A page's selectors may visit 20 million nodes
  // plus 500 per byte of it; past that the page fails and its remaining items are not made.
  TempDir site, dir;
  std::string deep = "<html><body>";
  for (int i = 0; i < 3000; ++i) deep += "<div class=\"product\"><span class=\"tag\">t";
  test::write_file(site.file("deep.html"), deep);
  test::write_file(site.file("flat.html"),
                   "<div class=\"product\"><span class=\"tag\">a</span><span "
                   "class=\"tag\">b</span></div><div class=\"product\"></div>");
  fixture::FixtureServer server(site.path().string());
  RunReport report = run_pipeline(
      test::plan_of(parse_pipeline(dir, {server.url("/deep.html"), server.url("/flat.html")},
                                   "    items: div.product\n    fields:\n      tags: {select: span.tag, all: true}")));
  REQUIRE(report.errors.empty());
  const auto bad = test::lines_of(test::read_file(dir.file("bad.jsonl")));
  REQUIRE(bad.size() == 1);
  CHECK_THAT(bad[0],
             Catch::Contains(server.url("/deep.html") + "' takes too much work to parse: its selectors visited"));
  CHECK_THAT(bad[0], Catch::Contains("(elements nested very deep?)"));
  CHECK_THAT(bad[0], Catch::Contains("of its 3000 items were made"));
  const auto items = test::lines_of(test::read_file(dir.file("items.jsonl")));
  CHECK(std::count_if(items.begin(), items.end(), [&](const std::string& line) {
          return line.find(R"("tags":["a","b"])") != std::string::npos;
        }) == 1);
  // The items made before the budget ran out are whole: the first one has every tag of the page.
  CHECK(std::all_of(items.begin(), items.end(), [](const std::string& line) {
    return line.find(R"("tags":[])") != std::string::npos || line.find(R"("tags":["a","b"])") != std::string::npos ||
           line.find(R"("tags":["t)") != std::string::npos;
  }));
}

std::vector<std::string> routed_items(const TempDir& dir, const std::string& field) {
  fixture::FixtureServer server(kSite);
  RunReport report =
      run_pipeline(test::plan_of(parse_pipeline(dir, {server.url("/catalogue/page1.html")},
                                                "    items: div.product\n    fields:\n      name: h2.name\n" + field)));
  REQUIRE(report.errors.empty());
  return test::lines_of(test::read_file(dir.file("bad.jsonl")));
}

TEST_CASE("a missing required field routes the item with its error", "[parse]") {
  TempDir dir;
  auto bad = routed_items(dir, "      price: {select: span.price, required: true}");
  CHECK(test::lines_of(test::read_file(dir.file("items.jsonl"))).size() == 2);
  REQUIRE(bad.size() == 1);
  CHECK(bad[0].find(R"("name":"Mystery box")") != std::string::npos);
  CHECK(bad[0].find(
            R"x("_error":{"node":"parse","message":"required field 'price' not found (selector 'span.price')"})x") !=
        std::string::npos);
}

TEST_CASE("an XPath that fails only on a real page routes each item with libxml2's error", "[parse]") {
  // Validation compiles and evaluates every selector once on an empty document; a predicate runs
  // only where its step matches, so an unknown function inside one is found on the page.
  TempDir dir;
  auto bad = routed_items(dir, "      odd: './/h2[no-such-function()]'");
  CHECK(test::read_file(dir.file("items.jsonl")).empty());
  REQUIRE(bad.size() == 3);
  for (const auto& line : bad) {
    CHECK_THAT(line, Catch::Contains(R"("message":"field 'odd': XPath error: unknown function)"));
    CHECK_THAT(line, Catch::Contains("(selector './/h2[no-such-function()]')"));
  }
}

TEST_CASE("sibling combinators, :not(), :nth-of-type, odd and even, ~= and |= select what browsers do", "[parse]") {
  TempDir site;
  test::write_file(site.file("page.html"), R"HTML(<html><body>
<div class="post"><h2>A</h2><p>first</p><p>second</p><span>x</span><p>third</p></div>
<ul><li class="ad">ad</li><li>one</li><li>two</li><li>three</li></ul>
<a rel="nofollow next" href="/n">next</a> <a rel="nextish" href="/x">x</a>
<p lang="en-GB">hello</p><p lang="english">no</p>
</body></html>)HTML");
  fixture::FixtureServer server(site.path().string());
  TempDir dir;
  RunReport report = run_pipeline(test::plan_of(parse_pipeline(dir, {server.url("/page.html")}, R"Y(    fields:
      after_h2: "h2 + p"
      siblings: {select: "h2 ~ p", all: true}
      not_ad: {select: "li:not(.ad)", all: true}
      second: "div.post p:nth-of-type(2)"
      odd: {select: "li:nth-child(odd)", all: true}
      next: "a[rel~=next]::attr(href)"
      lang: "[lang|=en]")Y")));
  REQUIRE(report.errors.empty());
  auto items = item_lines(dir);
  REQUIRE(items.size() == 1);
  CHECK(items[0].substr(items[0].find("\"after_h2\"")) ==
        R"("after_h2":"first","siblings":["first","second","third"],"not_ad":["one","two","three"],)"
        R"("second":"second","odd":["ad","two"],"next":"/n","lang":"hello"})");
}

TEST_CASE("a field with url: true is an absolute URL, resolved as links are", "[parse]") {
  // Before, a field held the href as written ("item/1.html"): useless in a table of products.
  TempDir site;
  test::write_file(site.file("list.html"), R"HTML(<html><head><base href="/shop/"></head><body>
<div class="p"><a href="item/1.html#reviews">one</a><img src="//cdn.example/1.jpg"></div>
<div class="p"><a href="javascript:void(0)" onclick="go('/item/2.html')">two</a></div>
<div class="p"><a href="HTTP://Other.example:80/x y">three</a><a href="/b">b</a></div>
</body></html>)HTML");
  fixture::FixtureServer server(site.path().string());
  TempDir dir;
  RunReport report = run_pipeline(test::plan_of(parse_pipeline(dir, {server.url("/list.html")}, R"Y(    items: div.p
    fields:
      link: {select: "a::attr(href)", url: true}
      raw: "a::attr(href)"
      image: {select: "img::attr(src)", url: true}
      js: {select: "a::attr(onclick)", regex: "go[(]'([^']+)'", url: true}
      all: {select: "a::attr(href)", url: true, all: true})Y")));
  REQUIRE(report.errors.empty());
  std::vector<std::string> got;
  for (const auto& l : item_lines(dir)) got.push_back(l.substr(l.find("\"link\":")));
  REQUIRE(got.size() == 3);
  CHECK(got[0] ==
        fmt::format(R"("link":"{0}","raw":"item/1.html#reviews","image":"http://cdn.example/1.jpg","js":null,)"
                    R"("all":["{0}"]}})",
                    server.url("/shop/item/1.html")));
  // javascript: is no http(s) URL: dropped; a regex capture is resolved too.
  CHECK(got[1] == fmt::format(R"J("link":null,"raw":"javascript:void(0)","image":null,"js":"{}","all":[]}})J",
                              server.url("/item/2.html")));
  CHECK(got[2] == fmt::format(R"("link":"http://other.example/x%20y","raw":"HTTP://Other.example:80/x y","image":null,)"
                              R"("js":null,"all":["http://other.example/x%20y","{}"]}})",
                              server.url("/b")));
}

TEST_CASE("links resolve against <base href>, are normalized, and only http(s) links are kept", "[parse][crawl]") {
  fixture::FixtureServer server(kSite);
  TempDir dir;
  RunReport report =
      run_pipeline(test::plan_of(parse_pipeline(dir, {server.url("/catalogue/page1.html")}, "    links: a[href]")));
  REQUIRE(report.errors.empty());
  std::string page = server.url("/catalogue/page1.html");
  auto links = test::lines_of(test::read_file(dir.file("links.jsonl")));
  std::vector<std::string> urls;
  for (const auto& l : links) urls.push_back(l.substr(8, l.find("\",\"depth") - 8));
  CHECK(urls == std::vector<std::string>{server.url("/item/1.html"), server.url("/item/2.html"),
                                         "http://localhost/item/3.html", server.url("/catalogue/page2.html"),
                                         server.url("/catalogue/")});
  CHECK(links[0] == fmt::format(R"({{"url":"{}","depth":1,"from_url":"{}"}})", server.url("/item/1.html"), page));
}

TEST_CASE("links with spaces and non-ASCII are percent-encoded, relative or absolute, and hosts are punycode",
          "[parse][crawl]") {
  TempDir site;
  test::write_file(site.file("page.html"), R"(<html><body>
<a href=" /trimmed.html ">1</a>
<a href="a b.html">2</a>
<a href="caf&#xe9;.html?q=a b">3</a>
<a href="http://Other.example/x y/../z w.html#part two">4</a>
<a href="//other.example/%41 b">5</a>
<a href="/lower%2fcase%e2%82%ac">6</a>
<a href="https://Caf&#xe9;.example/&#xe9;">7</a>
</body></html>)");
  fixture::FixtureServer server(site.path().string());
  TempDir dir;
  RunReport report = run_pipeline(test::plan_of(parse_pipeline(dir, {server.url("/page.html")}, "    links: a[href]")));
  REQUIRE(report.errors.empty());
  std::vector<std::string> urls;
  for (const auto& l : test::lines_of(test::read_file(dir.file("links.jsonl"))))
    urls.push_back(l.substr(8, l.find("\",\"depth") - 8));
  CHECK(urls == std::vector<std::string>{server.url("/trimmed.html"), server.url("/a%20b.html"),
                                         server.url("/caf%C3%A9.html?q=a%20b"), "http://other.example/z%20w.html",
                                         "http://other.example/%41%20b", server.url("/lower%2Fcase%E2%82%AC"),
                                         "https://xn--caf-dma.example/%C3%A9"});
}

TEST_CASE("pages are decoded by the charset of their Content-Type, their <meta>, or as windows-1252", "[parse]") {
  TempDir site;
  const std::string page = "<html><head>{}</head><body><h1>{}</h1><p>end</p></body></html>";
  // Shift_JIS declared only in the HTTP header (libxml2 alone read it as ISO-8859-1), with a byte
  // sequence that does not decode in front (libxml2 alone dropped the rest of the page).
  test::write_file(site.file("sjis.html"), fmt::format(fmt::runtime(page), "", "\x85\x40\x93\xfa\x96\x7b"));
  test::write_file(site.file("sjis.html.content-type"), "text/html; charset=Shift_JIS\n");
  // KOI8-R in the header, a contradicting <meta>: the header wins.
  test::write_file(site.file("koi8.html"),
                   fmt::format(fmt::runtime(page), "<meta charset=\"iso-8859-5\">", "\xf0\xd2\xc9\xd7\xc5\xd4"));
  test::write_file(site.file("koi8.html.content-type"), "text/html; charset=koi8-r\n");
  // Declared nowhere, not UTF-8: windows-1252 (curly quotes and the euro sign).
  test::write_file(site.file("cp1252.html"), fmt::format(fmt::runtime(page), "",
                                                         "\x93quoted\x94 \x80"
                                                         "5"));
  test::write_file(site.file("cp1252.html.content-type"), "text/html\n");
  // UTF-8 said only by the header, by nothing, and by a <meta> after the first non-ASCII text
  // (libxml2 undirected read these three as ISO-8859-1: "cafÃ©").
  test::write_file(site.file("utf8.html"), fmt::format(fmt::runtime(page), "", "1 caf\xc3\xa9"));
  test::write_file(site.file("utf8.html.content-type"), "text/html; charset=utf-8\n");
  test::write_file(site.file("undeclared.html"), fmt::format(fmt::runtime(page), "", "2 caf\xc3\xa9"));
  test::write_file(site.file("undeclared.html.content-type"), "text/html\n");
  test::write_file(site.file("late.html"),
                   fmt::format(fmt::runtime(page), "<title>\xc3\xa9</title><meta charset=\"utf-8\">", "3 caf\xc3\xa9"));
  test::write_file(site.file("late.html.content-type"), "text/html\n");
  fixture::FixtureServer server(site.path().string());
  TempDir dir;
  RunReport report = run_pipeline(
      test::plan_of(parse_pipeline(dir,
                                   {server.url("/sjis.html"), server.url("/koi8.html"), server.url("/cp1252.html"),
                                    server.url("/utf8.html"), server.url("/undeclared.html"), server.url("/late.html")},
                                   "    fields: {h: h1, p: p}")));
  REQUIRE(report.errors.empty());
  std::vector<std::string> got;
  for (const auto& l : item_lines(dir)) got.push_back(l.substr(l.find("\"h\":")));
  std::sort(got.begin(), got.end());
  CHECK(got == std::vector<std::string>{"\"h\":\"1 caf\xc3\xa9\",\"p\":\"end\"}",
                                        "\"h\":\"2 caf\xc3\xa9\",\"p\":\"end\"}",
                                        "\"h\":\"3 caf\xc3\xa9\",\"p\":\"end\"}",
                                        "\"h\":\"\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82\",\"p\":\"end\"}",
                                        "\"h\":\"\xe2\x80\x9cquoted\xe2\x80\x9d \xe2\x82\xac"
                                        "5\",\"p\":\"end\"}",
                                        "\"h\":\"\xef\xbf\xbd@\xe6\x97\xa5\xe6\x9c\xac\",\"p\":\"end\"}"});
}

TEST_CASE("parse.html refuses a body whose content type is not HTML, XML or text, naming the page", "[parse]") {
  TempDir site;
  test::write_file(site.file("report"), "%PDF-1.7 <a href=\"/x\">not a link</a>");
  test::write_file(site.file("report.content-type"), "application/pdf\n");
  test::write_file(site.file("feed"), "<rss><item><a href=\"/y\">y</a></item></rss>");
  test::write_file(site.file("feed.content-type"), "application/rss+xml; charset=utf-8\n");
  test::write_file(site.file("plain"), "<p>a page served as text</p>");
  test::write_file(site.file("plain.content-type"), "text/plain\n");
  // An HTML file in object storage with no type: application/octet-stream, sniffed as HTML.
  test::write_file(site.file("untyped"), "\n  <!DOCTYPE html><p>untyped page</p>");
  test::write_file(site.file("untyped.content-type"), "application/octet-stream\n");
  test::write_file(site.file("blob"), "PK\x03\x04 <html> inside a zip");
  test::write_file(site.file("blob.content-type"), "application/octet-stream\n");
  fixture::FixtureServer server(site.path().string());
  TempDir dir;
  RunReport report = run_pipeline(test::plan_of(parse_pipeline(
      dir,
      {server.url("/report"), server.url("/feed"), server.url("/plain"), server.url("/untyped"), server.url("/blob")},
      "    fields: {p: p}\n    links: a[href]")));
  REQUIRE(report.errors.empty());
  auto bad = test::lines_of(test::read_file(dir.file("bad.jsonl")));
  std::sort(bad.begin(), bad.end());
  REQUIRE(bad.size() == 2);
  CHECK(bad[0].find(fmt::format("'{}' is not HTML: its content type is 'application/octet-stream'",
                                server.url("/blob"))) != std::string::npos);
  CHECK(bad[1].find(fmt::format("'{}' is not HTML: its content type is 'application/pdf'", server.url("/report"))) !=
        std::string::npos);
  CHECK(test::lines_of(test::read_file(dir.file("items.jsonl"))).size() == 3);
  CHECK(test::lines_of(test::read_file(dir.file("links.jsonl"))).size() == 1);  // /y, from the feed
}

TEST_CASE("feeds are parsed as XML: RSS <link> texts, CDATA, prefixed names, and the '&' feeds get wrong",
          "[parse][crawl]") {
  // Before, the HTML parser read feeds: <link> is an empty element in HTML (every item's URL was
  // lost) and a CDATA section became text with "<![CDATA[" in it.
  TempDir site;
  test::write_file(site.file("feed"), R"(<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">
  <channel><title>News</title>
    <item>
      <title>AT&T &amp; R&D&nbsp;caf&eacute; &#233; &unknown;</title>
      <link>https://news.example/a?x=1&y=2</link>
      <description><![CDATA[<p>Hello <b>world</b> & more</p>]]></description>
      <dc:creator>Ann</dc:creator>
    </item>
    <item><title>Second</title><link>https://news.example/b</link></item>
  </channel>
</rss>)");
  test::write_file(site.file("feed.content-type"), "application/rss+xml\n");
  // No entity is expanded and no DTD or external entity is read: a "billion laughs" and an XXE.
  test::write_file(site.file("hostile"), R"(<?xml version="1.0"?>
<!DOCTYPE rss [
 <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
 <!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
 <!ENTITY xxe SYSTEM "file:///etc/passwd">
]>
<rss><item><title>&e;</title><link>&xxe;</link></item></rss>)");
  test::write_file(site.file("hostile.content-type"), "text/xml\n");
  // A feed a misconfigured server labels text/html.
  test::write_file(site.file("mislabeled"), R"(<?xml version="1.0"?>
<rss><channel><item><title>Third</title><link>https://news.example/c</link></item></channel></rss>)");
  test::write_file(site.file("mislabeled.content-type"), "text/html; charset=utf-8\n");
  fixture::FixtureServer server(site.path().string());
  TempDir dir;
  RunReport report = run_pipeline(test::plan_of(
      parse_pipeline(dir, {server.url("/feed"), server.url("/hostile"), server.url("/mislabeled")},
                     "    items: item\n    links: link::text\n    fields: {title: title, link: link, description: "
                     "description, creator: creator}")));
  REQUIRE(report.errors.empty());
  CHECK(test::read_file(dir.file("bad.jsonl")).empty());
  std::vector<std::string> items;
  for (const auto& l : test::lines_of(test::read_file(dir.file("items.jsonl"))))
    items.push_back(l.substr(l.find("\"title\":")));
  std::sort(items.begin(), items.end());
  REQUIRE(items.size() == 4);
  CHECK(items[0] ==
        "\"title\":\"AT&T & R&D\xc2\xa0\x63\x61\x66\xc3\xa9 \xc3\xa9 "
        "&unknown;\",\"link\":\"https://news.example/a?x=1&y=2\","
        "\"description\":\"<p>Hello <b>world</b> & more</p>\",\"creator\":\"Ann\"}");
  CHECK(items[1] == R"("title":"Second","link":"https://news.example/b","description":null,"creator":null})");
  CHECK(items[2] == R"("title":"Third","link":"https://news.example/c","description":null,"creator":null})");
  CHECK(items[3].find("aaaa") == std::string::npos);
  CHECK(items[3].find("root:") == std::string::npos);
  auto links = test::lines_of(test::read_file(dir.file("links.jsonl")));
  std::sort(links.begin(), links.end());
  REQUIRE(links.size() == 3);
  CHECK(links[0].starts_with(R"({"url":"https://news.example/a?x=1&y=2")"));
  CHECK(links[1].starts_with(R"({"url":"https://news.example/b")"));
  CHECK(links[2].starts_with(R"({"url":"https://news.example/c")"));
}

TEST_CASE("JSON-LD found by parse.html is read by parse.json, and its items keep the page's URL", "[parse]") {
  // Before, parse.json looked for final_url or url only: the items of an item had an empty page_url.
  TempDir site;
  test::write_file(site.file("lamp.html"), R"(<html><head><script type="application/ld+json">
{"@type": "Product", "name": "Brass Lamp", "offers": {"price": "54.00", "priceCurrency": "EUR"}}
</script></head><body><h1>Lamp</h1></body></html>)");
  fixture::FixtureServer server(site.path().string());
  TempDir dir;
  RunReport report = run_pipeline(test::plan_of(fmt::format(R"(pipeline: jsonld
nodes:
  - {{id: src, type: source.list, urls: ["{}"]}}
  - {{id: get, type: fetch}}
  - {{id: page, type: parse.html, fields: {{ld: 'script[type="application/ld+json"]::text'}}}}
  - {{id: product, type: parse.json, body_field: ld, fields: {{name: name, price: offers.price}}}}
  - {{id: out, type: sink.jsonl, path: {}, fields: [page_url, depth, name, price]}}
edges:
  - src -> get -> page -> product -> out
)",
                                                            server.url("/lamp.html"), dir.file("out.jsonl"))));
  REQUIRE(report.errors.empty());
  CHECK(test::read_file(dir.file("out.jsonl")) ==
        fmt::format(R"({{"page_url":"{}","depth":0,"name":"Brass Lamp","price":"54.00"}})"
                    "\n",
                    server.url("/lamp.html")));
}

TEST_CASE("a sitemap's <loc> texts are links — an empty href or an element without one is none", "[parse][crawl]") {
  TempDir site;
  test::write_file(site.file("sitemap.xml"), R"(<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <url><loc>https://shop.example/a.html</loc><lastmod>2026-01-01</lastmod></url>
  <url><loc>
    https://shop.example/b.html
  </loc></url>
</urlset>)");
  test::write_file(site.file("page.html"), R"(<a href="">self</a> <a href=" ">blank</a> <a href="/x">x</a>)");
  fixture::FixtureServer server(site.path().string());
  auto links_of = [&](const std::string& url, const std::string& selector) {
    TempDir dir;
    REQUIRE(run_pipeline(test::plan_of(parse_pipeline(dir, {url}, "    links: \"" + selector + "\""))).errors.empty());
    std::vector<std::string> urls;
    for (const auto& l : test::lines_of(test::read_file(dir.file("links.jsonl"))))
      urls.push_back(l.substr(8, l.find("\",\"depth") - 8));
    return urls;
  };
  CHECK(links_of(server.url("/sitemap.xml"), "loc::text") ==
        std::vector<std::string>{"https://shop.example/a.html", "https://shop.example/b.html"});
  CHECK(links_of(server.url("/sitemap.xml"), "loc").empty());  // <loc> has no href
  CHECK(links_of(server.url("/page.html"), "a[href]") == std::vector<std::string>{server.url("/x")});
}

TEST_CASE("a gzipped sitemap (sitemap.xml.gz) and a gzipped JSON file are parsed as what they hold", "[parse][crawl]") {
  TempDir site;
  const std::string sitemap = R"(<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <url><loc>https://shop.example/a.html</loc></url>
  <url><loc>https://shop.example/b.html</loc></url>
</urlset>)";
  test::write_file(site.file("sitemap.xml.gz"), test::gzip(sitemap));  // application/x-gzip
  test::write_file(site.file("untyped.gz"), test::gzip(sitemap));
  test::write_file(site.file("untyped.gz.content-type"), "application/octet-stream");
  test::write_file(site.file("typed.gz"), test::gzip(sitemap));  // a server that says what is inside
  test::write_file(site.file("typed.gz.content-type"), "text/xml; charset=utf-8");
  test::write_file(site.file("page.html.gz"), test::gzip(R"(<html><a href="/x">x</a></html>)"));
  test::write_file(site.file("bomb.xml.gz"), test::gzip(std::string(80u << 20, ' '), 9));
  test::write_file(site.file("cut.xml.gz"), test::gzip(sitemap).substr(0, 40));
  test::write_file(site.file("items.json.gz"), test::gzip(R"({"items": [{"sku": "a1"}, {"sku": "b2"}]})"));
  fixture::FixtureServer server(site.path().string());

  auto run = [&](const std::string& path, const std::string& links) {
    TempDir dir;
    REQUIRE(run_pipeline(test::plan_of(parse_pipeline(dir, {server.url(path)}, "    links: \"" + links + "\"")))
                .errors.empty());
    std::vector<std::string> out;
    for (const auto& l : test::lines_of(test::read_file(dir.file("links.jsonl"))))
      out.push_back(l.substr(8, l.find("\",\"depth") - 8));
    for (const auto& l : test::lines_of(test::read_file(dir.file("bad.jsonl")))) {
      auto at = l.find("\"message\":\"");
      out.push_back("error: " + l.substr(at + 11, l.find('"', at + 11) - at - 11));
    }
    return out;
  };
  const std::vector<std::string> locs = {"https://shop.example/a.html", "https://shop.example/b.html"};
  CHECK(run("/sitemap.xml.gz", "loc::text") == locs);
  CHECK(run("/untyped.gz", "loc::text") == locs);
  CHECK(run("/typed.gz", "loc::text") == locs);
  CHECK(run("/page.html.gz", "a[href]::attr(href)") == std::vector<std::string>{server.url("/x")});
  // A gzip bomb (80 MB of spaces in 80 KB) and a cut-off file fail their record, naming it.
  CHECK(run("/bomb.xml.gz", "loc::text") ==
        std::vector<std::string>{fmt::format("error: cannot unzip the gzip body of '{}': larger than 64 MiB unzipped",
                                             server.url("/bomb.xml.gz"))});
  CHECK(run("/cut.xml.gz", "loc::text") ==
        std::vector<std::string>{fmt::format("error: cannot unzip the gzip body of '{}': the gzip file is cut off",
                                             server.url("/cut.xml.gz"))});

  TempDir dir;
  std::string pipeline =
      json_pipeline(dir, {server.url("/items.json.gz")}, "    items: /items\n    fields: {sku: sku}");
  REQUIRE(run_pipeline(test::plan_of(pipeline)).errors.empty());
  auto items = test::lines_of(test::read_file(dir.file("items.jsonl")));
  REQUIRE(items.size() == 2);
  CHECK(test::contains(items[0], R"("sku":"a1")"));
  CHECK(test::contains(items[1], R"("sku":"b2")"));
}

TEST_CASE("a <meta http-equiv=refresh> target is a link, in each form browsers read", "[parse][crawl]") {
  TempDir site;
  const std::vector<std::pair<std::string, std::string>> pages = {
      {"a.html", R"(<meta http-equiv="Refresh" content="0; URL='/moved a.html'">)"},
      {"b.html", R"(<META HTTP-EQUIV="refresh" CONTENT="5;url=next.html">)"},
      {"c.html", R"(<meta http-equiv="refresh" content="3, https://other.example/x">)"},
      {"d.html", R"(<meta http-equiv="refresh" content="10">)"},        // a reload: no link
      {"e.html", R"(<meta http-equiv="refresh" content="url=/bad">)"},  // no delay: ignored
      {"f.html", R"(<meta name="refresh" content="0; url=/not-http-equiv">)"}};
  std::vector<std::string> urls;
  for (const auto& [name, head] : pages) test::write_file(site.file(name), "<html><head>" + head + "</head></html>");
  fixture::FixtureServer server(site.path().string());
  for (const auto& p : pages) urls.push_back(server.url("/" + p.first));
  TempDir dir;
  RunReport report = run_pipeline(test::plan_of(parse_pipeline(dir, urls, "    links: a[href]")));
  REQUIRE(report.errors.empty());
  std::set<std::string> links;
  for (const auto& l : test::lines_of(test::read_file(dir.file("links.jsonl"))))
    links.insert(l.substr(8, l.find("\",\"depth") - 8));
  CHECK(links ==
        std::set<std::string>{server.url("/moved%20a.html"), server.url("/next.html"), "https://other.example/x"});
}

TEST_CASE("pages full of made-up element names parse right, also after the parser's name table is renewed", "[parse]") {
  // Each thread reuses one libxml2 parser context, and renews it once its dictionary holds 50,000
  // names: these pages bring 90,000 names that no other page has.
  TempDir site;
  std::vector<std::string> urls;
  fixture::FixtureServer server(site.path().string());
  for (int page = 0; page < 3; ++page) {
    std::string html = fmt::format("<html><body><h1>page {}</h1>", page);
    for (int i = 0; i < 30000; ++i) html += fmt::format("<x{}-{} a{}=\"v\"></x{}-{}>", page, i, i, page, i);
    html += "<p>end</p></body></html>";
    test::write_file(site.file(fmt::format("p{}.html", page)), html);
    urls.push_back(server.url(fmt::format("/p{}.html", page)));
  }
  urls.push_back(server.url("/p0.html"));
  TempDir dir;
  std::string pipeline = parse_pipeline(dir, urls, "    fields: {h: h1, p: p}");
  pipeline.replace(pipeline.find("  - id: get\n    type: fetch\n"), 28,
                   "  - id: get\n    type: fetch\n    robots: ignore\n");
  RunReport report = run_pipeline(test::plan_of(pipeline));
  REQUIRE(report.errors.empty());
  std::vector<std::string> got;
  for (const auto& l : item_lines(dir)) got.push_back(l.substr(l.find("\"h\":")));
  std::sort(got.begin(), got.end());
  CHECK(got == std::vector<std::string>{R"("h":"page 0","p":"end"})", R"("h":"page 0","p":"end"})",
                                        R"("h":"page 1","p":"end"})", R"("h":"page 2","p":"end"})"});
}

TEST_CASE("broken and non-UTF-8 HTML parse without crashing", "[parse]") {
  fixture::FixtureServer server(kSite);
  TempDir dir;
  RunReport report = run_pipeline(test::plan_of(
      parse_pipeline(dir, {server.url("/catalogue/broken.html"), server.url("/catalogue/latin1.html")},
                     "    items: div.product\n    fields:\n      name: h2.name\n      price: span.price")));
  REQUIRE(report.errors.empty());
  auto items = test::lines_of(test::read_file(dir.file("items.jsonl")));
  REQUIRE(items.size() >= 2);
  std::string all = test::read_file(dir.file("items.jsonl"));
  CHECK(all.find(R"("name":"Second","price":"EUR 6.00")") != std::string::npos);
  CHECK(all.find("Caf\xC3\xA9 cr\xC3\xA8me") != std::string::npos);  // decoded from ISO-8859-1
}

TEST_CASE("a page nested deeper than libxml2's default limit of 256 is parsed whole", "[parse]") {
  // Broken pages nest deep: every unclosed <font> or <div> is one level more. At the default limit
  // libxml2 stopped, and the page gave no items and no error at all.
  TempDir site, dir;
  std::string page = "<html><body><div class=\"product\"><h2 class=\"name\">first</h2></div>";
  for (int i = 0; i < 5000; ++i) page += "<font>";
  page += "<div class=\"product\"><h2 class=\"name\">deep</h2><a href=\"/next\">n</a></div>";
  for (int i = 0; i < 5000; ++i) page += "</font>";
  page += "<div class=\"product\"><h2 class=\"name\">last</h2></div></body></html>";
  test::write_file(site.file("deep.html"), page);
  fixture::FixtureServer server(site.path().string());
  RunReport report = run_pipeline(test::plan_of(
      parse_pipeline(dir, {server.url("/deep.html")},
                     "    items: div.product\n    links: a[href]::attr(href)\n    fields:\n      name: h2.name")));
  REQUIRE(report.errors.empty());
  std::string items = test::read_file(dir.file("items.jsonl"));
  CHECK(test::lines_of(items).size() == 3);
  for (const char* name : {"first", "deep", "last"}) {
    CHECK(items.find(fmt::format(R"("name":"{}")", name)) != std::string::npos);
  }
  CHECK(test::read_file(dir.file("links.jsonl")).find(server.url("/next")) != std::string::npos);
}

TEST_CASE("parse.json splits an array into items and follows the next-page link", "[parse]") {
  fixture::FixtureServer server(kSite);
  TempDir dir;
  std::string pipeline = json_pipeline(
      dir, {server.url("/api/items1.json"), server.url("/api/broken.json"), server.url("/catalogue/page1.html")},
      R"(    items: data.items
    fields:
      id: id
      name: /name
      price: {path: price.amount, required: true}
      tags: tags
    next: links.next)");
  RunReport report = run_pipeline(test::plan_of(pipeline));
  REQUIRE(report.errors.empty());
  std::string page = server.url("/api/items1.json");
  auto items = item_lines(dir);
  REQUIRE(items.size() == 2);
  CHECK(items[0] ==
        fmt::format(R"({{"page_url":"{}","id":1,"name":"Blue Kettle","price":19.9,"tags":["kitchen","blue"]}})", page));
  CHECK(items[1] == fmt::format(R"({{"page_url":"{}","id":2,"name":"Red Toaster","price":34.5,"tags":[]}})", page));
  auto bad = test::read_file(dir.file("bad.jsonl"));
  CHECK(bad.find("required field 'price' not found (path 'price.amount')") != std::string::npos);
  CHECK(bad.find(fmt::format("invalid JSON from '{}'", server.url("/api/broken.json"))) != std::string::npos);
  CHECK(bad.find("content type is 'application/json'") == std::string::npos);  // said only when it is not JSON
  // An HTML page where JSON was expected: the message says what came.
  CHECK(bad.find(fmt::format("invalid JSON from '{}'", server.url("/catalogue/page1.html"))) != std::string::npos);
  CHECK(bad.find("(the response's content type is 'text/html; charset=utf-8')") != std::string::npos);
  CHECK(test::lines_of(test::read_file(dir.file("links.jsonl"))) ==
        std::vector<std::string>{
            fmt::format(R"({{"url":"{}","depth":1,"from_url":"{}"}})", server.url("/api/items2.json"), page)});
}

TEST_CASE("parse.json keeps an object it takes whole as an object, and an integer above int64 as its digits",
          "[parse]") {
  fixture::FixtureServer server(kSite);
  TempDir dir;
  std::string pipeline = json_pipeline(dir, {server.url("/api/nested.json")}, R"(    items: items
    fields:
      id: id
      small: small
      address: address
      variants: variants
      city: {path: address.city, fallback: [address.geo]}
      as_number: {path: id, type: number}
      as_integer: {path: id, type: integer}
      geo_number: {path: address.geo, type: number, required: false})");
  pipeline.replace(pipeline.find("edges:"), 6,
                   fmt::format(R"(  - id: db
    type: store.sqlite
    path: {}
    table: items
    columns: {{id: TEXT, small: INTEGER, address: TEXT, variants: TEXT}}
edges:
  - parse -> db)",
                               dir.file("items.db")));
  RunReport report = run_pipeline(test::plan_of(pipeline));
  REQUIRE(report.errors.empty());
  const std::string page = server.url("/api/nested.json");
  const std::string address = R"({"street":"Main St 1","geo":{"lat":52.5,"lng":13.4},"tags":["a",{"k":null}]})";
  const std::string variants = R"([{"sku":"k-1","price":19.9},{"sku":"k-2","price":21}])";
  // A double would make the id 12345678901234567168; its digits are kept as text. An object is
  // written as one, also inside a list: never as a string of JSON.
  CHECK(item_lines(dir) ==
        std::vector<std::string>{fmt::format(
            R"({{"page_url":"{}","id":"12345678901234567890","small":-9223372036854775808,"address":{},)"
            R"("variants":{},"city":{{"lat":52.5,"lng":13.4}},"as_number":1.2345678901234567e+19,"as_integer":null,)"
            R"("geo_number":null}})",
            page, address, variants)});
  // An object is no number: said without a hint about decimal separators, which read none in it.
  CHECK(
      notice_messages(report) ==
      std::vector<std::string>{
          "parse: field 'as_integer' (type: integer) had 1 value with no whole number in it (the first: "
          "'12345678901234567890'); it was left out",
          R"(parse: field 'geo_number' (type: number) had 1 value with no number in it (the first: '{"lat":52.5,"lng":13.4}'); it was left out)"});
  CHECK(
      test::query(dir.file("items.db"), "SELECT id, typeof(id), small, address, variants FROM items") ==
      std::vector<std::string>{fmt::format("12345678901234567890|text|-9223372036854775808|{}|{}", address, variants)});
  CHECK(test::query(dir.file("items.db"), "SELECT json_extract(address, '$.geo.lat') FROM items") ==
        std::vector<std::string>{"52.5"});
}

TEST_CASE(
    "parse.json with item_key takes an object's members as items, their names in a field, or positions in an array",
    "[parse]") {
  fixture::FixtureServer server(kSite);
  TempDir dir;
  // Three parse nodes over one page: items keyed by id, a ranked array, and (without item_key) an
  // object that is one item.
  std::string pipeline = json_pipeline(dir, {server.url("/api/keyed.json")}, R"(    items: data
    item_key: sku
    fields:
      name: name
      price: {path: price, type: number}
      whole: ''
  - id: ranked
    type: parse.json
    items: ranked
    item_key: rank
    fields: {term: ''}
  - id: one
    type: parse.json
    items: one
    fields: {name: name}
  - id: all
    type: sink.jsonl
    path: {})");
  pipeline.replace(pipeline.find("path: {}"), 8, fmt::format("path: {}", dir.file("all.jsonl")));
  pipeline += "  - get -> ranked -> all\n  - get -> one -> all\n";
  RunReport report = run_pipeline(test::plan_of(pipeline));
  REQUIRE(report.errors.empty());
  const std::string page = server.url("/api/keyed.json");
  CHECK(
      item_lines(dir) ==
      std::vector<std::string>{
          fmt::format(
              R"({{"page_url":"{}","sku":"A1","name":"Kettle","price":19.9,"whole":{{"name":"Kettle","price":19.9}}}})",
              page),
          fmt::format(
              R"({{"page_url":"{}","sku":"B2","name":"Toaster","price":34.5,"whole":{{"name":"Toaster","price":34.5}}}})",
              page),
          fmt::format(R"({{"page_url":"{}","sku":"C3","name":null,"price":null,"whole":"a note"}})", page)});
  std::vector<std::string> all = item_lines(dir, "all.jsonl");
  std::sort(all.begin(), all.end());
  CHECK(all == std::vector<std::string>{fmt::format(R"({{"page_url":"{}","name":"Lamp"}})", page),
                                        fmt::format(R"({{"page_url":"{}","rank":0,"term":"kettle"}})", page),
                                        fmt::format(R"({{"page_url":"{}","rank":1,"term":"toaster"}})", page)});
}

TEST_CASE("parse.json reads a body of JSON Lines a line at a time, and JSON after a byte order mark", "[parse]") {
  fixture::FixtureServer server(kSite);
  TempDir dir;
  // export.jsonl: CRLF and a blank line; broken.jsonl: a document over two lines and a line of text
  // among good lines; bom.json: one document after a UTF-8 byte order mark.
  std::string pipeline = json_pipeline(
      dir, {server.url("/api/export.jsonl"), server.url("/api/broken.jsonl"), server.url("/api/bom.json")},
      R"(    fields: {id: id, name: name, first: data.items.0.name}
    next: next)");
  RunReport report = run_pipeline(test::plan_of(pipeline));
  REQUIRE(report.errors.empty());
  const std::string lines = server.url("/api/export.jsonl"), broken = server.url("/api/broken.jsonl"),
                    bom = server.url("/api/bom.json");
  // Each page's items in the order of its lines (pages are parsed in parallel: in any order).
  const std::vector<std::string> items = item_lines(dir);
  auto of = [&](const std::string& page) {
    std::vector<std::string> out;
    for (const auto& line : items)
      if (line.find(fmt::format(R"("page_url":"{}")", page)) != std::string::npos) out.push_back(line);
    return out;
  };
  CHECK(items.size() == 7);
  CHECK(of(lines) ==
        std::vector<std::string>{fmt::format(R"({{"page_url":"{}","id":1,"name":"Kettle","first":null}})", lines),
                                 fmt::format(R"({{"page_url":"{}","id":2,"name":"Toaster","first":null}})", lines),
                                 fmt::format(R"({{"page_url":"{}","id":3,"name":null,"first":null}})", lines)});
  CHECK(of(broken) ==
        std::vector<std::string>{
            fmt::format(R"({{"page_url":"{}","id":4,"name":"Lamp","first":null}})", broken),
            fmt::format(R"({{"page_url":"{}","id":null,"name":null,"first":null}})", broken),  // the line '[]'
            fmt::format(R"({{"page_url":"{}","id":6,"name":"Desk","first":null}})", broken)});
  CHECK(of(bom) ==
        std::vector<std::string>{fmt::format(R"({{"page_url":"{}","id":null,"name":null,"first":"Chair"}})", bom)});
  // The line numbers count every line, blank ones too; the page fails after its good lines' items.
  const std::string bad = test::read_file(dir.file("bad.jsonl"));
  CHECK(bad.find(fmt::format("invalid JSON Lines from '{}' at line 2: ", broken)) != std::string::npos);
  CHECK(bad.find("(and 1 more line)") != std::string::npos);
  CHECK(test::lines_of(bad).size() == 1);
  // A next link on a line is followed as on a page.
  CHECK(test::lines_of(test::read_file(dir.file("links.jsonl"))) ==
        std::vector<std::string>{
            fmt::format(R"({{"url":"{}","depth":1,"from_url":"{}"}})", server.url("/api/more.jsonl"), lines)});
}

TEST_CASE("parse.json's next_url makes the next page's URL from a cursor or page number, and ends at none", "[parse]") {
  fixture::FixtureServer server(kSite);
  TempDir dir;
  std::vector<std::string> urls;
  for (int i = 1; i <= 5; ++i) urls.push_back(server.url(fmt::format("/api/cursor{}.json", i)));
  std::string pipeline = json_pipeline(dir, urls, R"(    items: items
    fields: {id: id}
    next: meta.next_cursor
    next_url: '/api/cursor.json?after={next:url}&status={status}')");
  RunReport report = run_pipeline(test::plan_of(pipeline));
  REQUIRE(report.errors.empty());
  CHECK(test::read_file(dir.file("bad.jsonl")).empty());
  // "b&2" percent-encoded, 7 as written; null, "" and false are the last page. Links resolve
  // against the page's URL, and the page's own fields ({status}) fill in too.
  std::vector<std::string> links = test::lines_of(test::read_file(dir.file("links.jsonl")));
  std::sort(links.begin(), links.end());
  CHECK(links == std::vector<std::string>{fmt::format(R"({{"url":"{}","depth":1,"from_url":"{}"}})",
                                                      server.url("/api/cursor.json?after=7&status=200"), urls[2]),
                                          fmt::format(R"({{"url":"{}","depth":1,"from_url":"{}"}})",
                                                      server.url("/api/cursor.json?after=b%262&status=200"), urls[0])});
}

TEST_CASE("parse.json's fail_if fails a page whose API reports an error in a 200 answer, also a JSON Lines line",
          "[parse]") {
  fixture::FixtureServer server(kSite);
  TempDir dir;
  const std::string errors = server.url("/api/gql_errors.json"), ok = server.url("/api/gql_ok.json"),
                    token = server.url("/api/gql_token.json"), lines = server.url("/api/gql_errors.jsonl");
  RunReport report = run_pipeline(test::plan_of(json_pipeline(dir, {errors, ok, token, lines}, R"(    items: data.items
    fields: {id: id}
    fail_if: errors)")));
  REQUIRE(report.errors.empty());
  // An empty list of errors is none; the good lines of JSON Lines give their items.
  std::vector<std::string> items = item_lines(dir);
  std::sort(items.begin(), items.end());
  CHECK(items == std::vector<std::string>{fmt::format(R"({{"page_url":"{}","id":3}})", lines),
                                          fmt::format(R"({{"page_url":"{}","id":4}})", lines),
                                          fmt::format(R"({{"page_url":"{}","id":1}})", ok),
                                          fmt::format(R"({{"page_url":"{}","id":2}})", ok)});
  const std::string bad = test::read_file(dir.file("bad.jsonl"));
  CHECK(test::lines_of(bad).size() == 3);
  // In sink.jsonl's lines, so quotes escaped.
  CHECK(bad.find(fmt::format(R"('{}' answered with an error at 'errors': [{{\"message\":\"Too many requests\",)"
                             R"(\"extensions\":{{\"code\":\"RATE_LIMITED\"}}}}])",
                             errors)) != std::string::npos);
  CHECK(bad.find(fmt::format("'{}' answered with an error at 'errors': invalid token", token)) != std::string::npos);
  CHECK(bad.find(fmt::format(R"('{}' answered with an error at 'errors': [{{\"message\":\"boom\"}}] at line 2)",
                             lines)) != std::string::npos);
}

TEST_CASE("parse.json's link_header follows a REST API's pages by the rel=next of their Link header",
          "[parse][crawl]") {
  fixture::FixtureServer server(kSite);
  TempDir dir;
  auto crawl = [&](const std::string& keep_headers) {
    return test::plan_of(fmt::format(R"(pipeline: rest
nodes:
  - {{id: seeds, type: source.list, urls: ['{seed}']}}
  - {{id: frontier, type: frontier}}
  - {{id: lim, type: limit, max_in_flight: 2}}
  - {{id: get, type: fetch, robots: ignore{keep}}}
  - {{id: api, type: parse.json, fields: {{id: id}}, items: '', link_header: header_link}}
  - {{id: out, type: sink.jsonl, path: {out}, fields: [id, page_url]}}
edges:
  - seeds -> frontier -> lim -> get -> api -> out
  - api.links -> frontier
)",
                                     fmt::arg("seed", server.url("/paged/45?per=10")), fmt::arg("keep", keep_headers),
                                     fmt::arg("out", dir.file("items.jsonl"))));
  };
  RunReport report = run_pipeline(crawl(", keep_headers: [link]"));
  REQUIRE(report.errors.empty());
  const std::vector<std::string> items = test::lines_of(test::read_file(dir.file("items.jsonl")));
  CHECK(items.size() == 45);
  CHECK(std::count_if(items.begin(), items.end(), [&](const std::string& l) {
          return l.find(R"("id":44,)") != std::string::npos &&
                 l.find(server.url("/paged/45?page=5&per=10")) != std::string::npos;
        }) == 1);
  CHECK(server.counter("/paged").requests == 5);  // the last page has no rel="next"
  CHECK(selector_rows(report, "api") ==
        std::vector<std::string>{"link_header header_link 5 4 1 4", "items  5 5 0 45", "fields.id id 45 45 0 45"});
  CHECK(report.notices.empty());
  // Without the header kept, the first page is all, and the run says why.
  server.reset_counters();
  RunReport unkept = run_pipeline(crawl(""));
  REQUIRE(unkept.errors.empty());
  CHECK(server.counter("/paged").requests == 1);
  CHECK(notice_messages(unkept) ==
        std::vector<std::string>{"api: 'link_header: header_link' found nothing in the one page it was tried on",
                                 "api: link_header: the page had no field 'header_link', so no next page was "
                                 "followed: add link to fetch's keep_headers (keep_headers: [link])"});
}

// Runs pipelines/`name` with the environment `env` (other variables unset).
RunReport run_shipped(const std::string& name, const std::map<std::string, std::string>& env) {
  LoadOptions options;
  options.env = [env](const std::string& var) -> std::optional<std::string> {
    auto it = env.find(var);
    return it == env.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
  Diagnostics diags;
  auto plan = load_pipeline_file(SLUICE_SOURCE_DIR "/pipelines/" + name, test::builtin_registry(), options, diags);
  INFO(diags.to_string());
  REQUIRE(plan);
  return run_pipeline(std::move(*plan));
}

TEST_CASE("pipelines/github_issues.yaml stores every page of a repository's issues from a GitHub-like API",
          "[parse][crawl]") {
  fixture::FixtureServer server(kSite);
  TempDir dir;
  const std::string db = dir.file("issues.db");
  // No GITHUB_AUTH: no Authorization header.
  RunReport report =
      run_shipped("github_issues.yaml", {{"API", server.url("/github")}, {"REPO", "octo/demo"}, {"DB", db}});
  REQUIRE(report.errors.empty());
  CHECK(server.counter("/github").requests == 3);  // 100, 100 and 30 issues; the last page has no rel="next"
  CHECK(test::query(db,
                    "SELECT count(*), count(DISTINCT number), sum(pull_request IS NOT NULL), min(number), "
                    "max(number) FROM issues") == std::vector<std::string>{"230|230|46|1|230"});
  CHECK(test::query(db, "SELECT title, state, author, labels, comments, created FROM issues WHERE number IN (2, 4)") ==
        std::vector<std::string>{R"(Issue 2|open|user2|["bug","help wanted"]|2|2026-03-12T10:00:00Z)",
                                 "Issue 4|open|user4|NULL|0|2026-05-14T10:00:00Z"});
  CHECK(report.notices.empty());
}

TEST_CASE("pipelines/github_issues_graphql.yaml stores a repository's issues from a GitHub-like GraphQL API",
          "[parse][crawl]") {
  fixture::FixtureServer server(kSite);
  TempDir dir;
  const std::string db = dir.file("issues.db");
  auto run = [&](const std::string& name, const std::string& auth) {
    std::map<std::string, std::string> env = {
        {"API", server.url("/github")}, {"REPO_OWNER", "octo"}, {"REPO_NAME", name}, {"DB", db}};
    if (!auth.empty()) env["GITHUB_AUTH"] = auth;
    return run_shipped("github_issues_graphql.yaml", env);
  };
  RunReport report = run("demo", "Bearer t0ken");
  REQUIRE(report.errors.empty());
  // 184 issues (230 less every fifth, a pull request) 100 a page: two POSTs to one URL.
  CHECK(server.counter("/github").requests == 2);
  CHECK(test::query(db, "SELECT count(*), count(DISTINCT number), min(number), max(number) FROM issues") ==
        std::vector<std::string>{"184|184|1|229"});
  CHECK(test::query(db, "SELECT title, state, author, labels, comments, created FROM issues WHERE number IN (2, 4)") ==
        std::vector<std::string>{R"(Issue 2|OPEN|user2|["bug","help wanted"]|2|2026-03-12T10:00:00Z)",
                                 "Issue 4|OPEN|user4|NULL|0|2026-05-14T10:00:00Z"});
  CHECK(report.notices.empty());
  // A repository that is not there: GitHub answers 200 with an error, which fails the run saying so.
  RunReport missing = run("missing", "Bearer t0ken");
  REQUIRE(missing.errors.size() == 1);
  CHECK(test::contains(missing.errors[0].message,
                       "answered with an error at 'errors': [{\"type\":\"NOT_FOUND\","
                       "\"message\":\"Could not resolve to a Repository with the name "
                       "'octo/missing'.\"}]"));
  // Without a token: 401, the run fails with its status.
  RunReport anonymous = run("demo", "");
  REQUIRE(anonymous.errors.size() == 1);
  CHECK(test::contains(anonymous.errors[0].message, "401"));
}

TEST_CASE("pipelines/api_oauth2.yaml stores an API's orders with a token from an OAuth 2.0 server",
          "[parse][crawl][oauth2]") {
  fixture::FixtureServer server(kSite);
  TempDir dir;
  const std::string db = dir.file("orders.db");
  auto run = [&](const std::string& secret) {
    return run_shipped("api_oauth2.yaml", {{"API", server.url("/oauth-api")},
                                           {"TOKEN_URL", server.url("/oauth-token")},
                                           {"API_CLIENT_ID", "sluice"},
                                           {"API_CLIENT_SECRET", secret},
                                           {"DB", db}});
  };
  RunReport report = run("s3cret");
  REQUIRE(report.errors.empty());
  // 95 orders, 20 a page: 5 pages, one token.
  CHECK(server.counter("/oauth-api").requests == 5);
  CHECK(server.counter("/oauth-token").requests == 1);
  CHECK(
      test::query(db, "SELECT count(*), count(DISTINCT id), min(id), max(id), sum(status = 'refunded') FROM orders") ==
      std::vector<std::string>{"95|95|1|95|23"});
  CHECK(test::query(db, "SELECT customer, total, status, created FROM orders WHERE id IN (4, 9) ORDER BY id") ==
        std::vector<std::string>{"customer2|148.44|refunded|2026-11-05T09:30:00Z",
                                 "customer11|333.99|paid|2026-11-10T09:30:00Z"});
  // A wrong secret: the run fails with the server's words, and the API is not asked.
  server.reset_counters();
  RunReport refused = run("wrong");
  REQUIRE(refused.errors.size() == 1);
  CHECK(refused.errors[0].message ==
        fmt::format("auth: no access token from {}: HTTP 401: invalid_client (Client authentication failed)",
                    server.url("/oauth-token")));
  CHECK(server.counter("/oauth-api").requests == 0);
}

TEST_CASE("parse.json's page_param and offset_param step through an API's pages while they give items",
          "[parse][crawl]") {
  fixture::FixtureServer server(kSite);
  TempDir dir;
  auto crawl = [&](const std::string& seed, const std::string& option) {
    return test::plan_of(fmt::format(R"(pipeline: steps
nodes:
  - {{id: seeds, type: source.list, urls: ['{seed}']}}
  - {{id: frontier, type: frontier}}
  - {{id: lim, type: limit, max_in_flight: 2}}
  - {{id: get, type: fetch, robots: ignore}}
  - {{id: api, type: parse.json, fields: {{id: id}}, items: '', {option}}}
  - {{id: out, type: sink.jsonl, path: {out}, fields: [id, page_url]}}
edges:
  - seeds -> frontier -> lim -> get -> api -> out
  - api.links -> frontier
)",
                                     fmt::arg("seed", seed), fmt::arg("option", option),
                                     fmt::arg("out", dir.file("items.jsonl"))));
  };
  auto ids = [&] {
    std::set<std::string> out;
    for (const auto& l : test::lines_of(test::read_file(dir.file("items.jsonl")))) out.insert(l.substr(0, l.find(',')));
    return out;
  };
  // Pages 1 (no page in the URL) to 5, then page 6 gives none: six requests, 45 items once each.
  RunReport pages = run_pipeline(crawl(server.url("/paged/45?per=10"), "page_param: page"));
  REQUIRE(pages.errors.empty());
  CHECK(ids().size() == 45);
  CHECK(test::lines_of(test::read_file(dir.file("items.jsonl"))).size() == 45);
  CHECK(server.counter("/paged").requests == 6);
  CHECK(test::read_file(dir.file("items.jsonl")).find(server.url("/paged/45?per=10&page=5")) != std::string::npos);
  // Offsets 0, 10, 20, 30, 40 (5 items), 45 (none); a page number that is no number ends the pages.
  server.reset_counters();
  RunReport offsets = run_pipeline(crawl(server.url("/paged/45?offset=0&per=10"), "offset_param: offset"));
  REQUIRE(offsets.errors.empty());
  CHECK(ids().size() == 45);
  CHECK(server.counter("/paged").requests == 6);
  server.reset_counters();
  RunReport odd = run_pipeline(crawl(server.url("/paged/45?per=10&page=1x"), "page_param: page"));
  REQUIRE(odd.errors.empty());
  CHECK(server.counter("/paged").requests == 1);
  CHECK(selector_rows(odd, "api") ==
        std::vector<std::string>{"page_param page 1 0 1 0", "items  1 1 0 10", "fields.id id 10 10 0 10"});
  // An API that does not take the parameter (a misspelt one: 'pg') answers every page with the
  // first: the second page's items are the first's, so no third page is asked for (the pages would
  // go on for ever), and a notice says so. The same for offsets.
  for (const std::string option : {"page_param: pg", "offset_param: skip"}) {
    server.reset_counters();
    RunReport ignored = run_pipeline(crawl(server.url("/paged/45?per=10"), option));
    REQUIRE(ignored.errors.empty());
    CHECK(server.counter("/paged").requests == 2);
    CHECK(ids().size() == 10);
    const std::string name = option.substr(0, option.find(':')), param = option.substr(option.find(' ') + 1);
    CHECK(notice_messages(ignored) ==
          std::vector<std::string>{fmt::format(
              "api: {}: a page gave the same items as the page before it, so no page after it was asked for (the "
              "first: '{}'): does the API take '{}'?",
              name, server.url(fmt::format("/paged/45?per=10&{}={}", param, name == "page_param" ? 2 : 10)), param)});
  }
}

TEST_CASE("parse.json's next_if with a leading '!' follows the next page only while the value is false",
          "[parse][crawl]") {
  fixture::FixtureServer server(kSite);
  TempDir dir;
  // Atlassian's form: isLast true on the last page, whose next still names a page (that is missing).
  RunReport report = run_pipeline(test::plan_of(fmt::format(R"(pipeline: last
nodes:
  - {{id: seeds, type: source.list, urls: ['{seed}']}}
  - {{id: frontier, type: frontier}}
  - {{id: lim, type: limit, max_in_flight: 2}}
  - {{id: get, type: fetch, robots: ignore}}
  - {{id: api, type: parse.json, items: values, fields: {{id: id}}, next: next, next_if: '!isLast'}}
  - {{id: out, type: sink.jsonl, path: {out}, fields: [id]}}
edges:
  - seeds -> frontier -> lim -> get -> api -> out
  - api.links -> frontier
)",
                                                            fmt::arg("seed", server.url("/api/lastpage1.json")),
                                                            fmt::arg("out", dir.file("items.jsonl")))));
  REQUIRE(report.errors.empty());  // /api/lastpage3.json (404) was never asked for
  std::vector<std::string> items = test::lines_of(test::read_file(dir.file("items.jsonl")));
  std::sort(items.begin(), items.end());
  CHECK(items == std::vector<std::string>{R"({"id":1})", R"({"id":2})", R"({"id":3})"});
  CHECK(server.counter("/api").requests == 2);
}

// A GraphQL API's pages (the fixture's /cursor endpoints) crawled through a frontier with `key`
// (none when ""): fetch POSTs the cursor a page's link carries in `after`; the store keeps the items,
// after a test.fail node that fails at the item named `fail_at`.
std::string graphql_crawl(const std::vector<std::string>& seeds, const std::string& key, const std::string& db,
                          const std::string& settings = "", const std::string& fail_at = "none", bool as_json = false) {
  std::string text = R"(pipeline: graphql
settings: {SETTINGS}
nodes:
  - {id: seeds, type: source.list, urls: [SEEDS]}
  - id: frontier
    type: frontier
    memory: 1
KEY
  - {id: lim, type: limit, max_in_flight: 2}
  - id: get
    type: fetch
    robots: ignore
    method: POST
BODY
  - id: api
    type: parse.json
    items: data.items.edges
    fields: {id: node.id, name: node.name, cursor: cursor}
    next: data.items.pageInfo.endCursor
    next_if: data.items.pageInfo.hasNextPage
    next_field: after
  - {id: boom, type: test.fail, field: name, equals: "FAIL_AT"}
  - id: store
    type: store.sqlite
    path: DB
    table: items
    columns: {id: INTEGER, name: TEXT, cursor: TEXT, page_url: TEXT}
    key: [page_url, id]
    batch: {rows: 5}
edges:
  - seeds -> frontier -> lim -> get -> api -> boom -> store
  - api.links -> frontier
)";
  std::string urls;
  for (const auto& seed : seeds) urls += (urls.empty() ? "'" : ", '") + seed + "'";
  text.replace(text.find("SETTINGS"), 8, settings);
  text.replace(text.find("SEEDS"), 5, urls);
  text.replace(text.find("KEY\n"), 4, key.empty() ? "" : fmt::format("    key: '{}'\n", key));
  text.replace(text.find("FAIL_AT"), 7, fail_at);
  text.replace(text.find("DB\n"), 2, db);
  // The same request, its JSON written out with doubled braces, or as YAML with fetch's json.
  text.replace(text.find("BODY\n"), 5,
               as_json ? R"(    json:
      query: "query($after: String) { items(after: $after) { edges { node { id } } } }"
      variables: {after: "{after}"}
)"
                       : R"(    headers: {Content-Type: application/json}
    body: '{{"query": "query($after: String) {{ items(after: $after) {{ edges {{ node {{ id }} }} }} }}", "variables": {{"after": {after:json}}}}}'
)");
  return text;
}

TEST_CASE("a GraphQL API paged by a cursor in the POST body: next_field and next_if with a frontier's key",
          "[parse][crawl]") {
  fixture::FixtureServer server(kSite);
  TempDir dir;
  // Two endpoints (45 items 10 a page, 23 items 5 a page) through one frontier that spills (memory 1).
  const std::string a = server.url("/cursor/45"), b = server.url("/cursor/23?per=5");
  RunReport report = run_pipeline(test::plan_of(graphql_crawl({a, b}, "{url} {after}", dir.file("keyed.db"))));
  REQUIRE(report.errors.empty());
  // Every page once: 5 and 5 requests (hasNextPage false on the last, whose endCursor is not null).
  CHECK(server.counter("/cursor").requests == 10);
  CHECK(test::query(dir.file("keyed.db"),
                    "SELECT page_url, count(*), count(DISTINCT id), min(id), max(id) FROM items "
                    "GROUP BY page_url ORDER BY count(*) DESC") ==
        std::vector<std::string>{a + "|45|45|0|44", b + "|23|23|0|22"});
  CHECK(test::query(dir.file("keyed.db"), "SELECT count(*) FROM items WHERE cursor = 'c' || id") ==
        std::vector<std::string>{"68"});
  // Without the key the frontier knows a page by its URL: each endpoint's second page is "seen".
  server.reset_counters();
  RunReport unkeyed = run_pipeline(test::plan_of(graphql_crawl({a, b}, "", dir.file("unkeyed.db"))));
  REQUIRE(unkeyed.errors.empty());
  CHECK(server.counter("/cursor").requests == 2);
  CHECK(test::query(dir.file("unkeyed.db"), "SELECT count(*) FROM items") == std::vector<std::string>{"15"});
}

TEST_CASE("a GraphQL crawl with its request body written as fetch's json: the query as written, the cursor typed",
          "[parse][crawl]") {
  fixture::FixtureServer server(kSite);
  TempDir dir;
  const std::string a = server.url("/cursor/45"), b = server.url("/cursor/23?per=5");
  RunReport report =
      run_pipeline(test::plan_of(graphql_crawl({a, b}, "{url} {after}", dir.file("json.db"), "", "none", true)));
  REQUIRE(report.errors.empty());
  CHECK(server.counter("/cursor").requests == 10);
  CHECK(test::query(dir.file("json.db"),
                    "SELECT page_url, count(*), count(DISTINCT id), min(id), max(id) FROM items "
                    "GROUP BY page_url ORDER BY count(*) DESC") ==
        std::vector<std::string>{a + "|45|45|0|44", b + "|23|23|0|22"});
}

TEST_CASE("a resumed GraphQL crawl fetches the cursor pages it had not done, each once", "[parse][crawl][resume]") {
  fixture::FixtureServer server(kSite);
  TempDir dir;
  const std::string a = server.url("/cursor/45?per=5"), db = dir.file("api.db");
  const std::string state = "state: " + db;
  RunReport first = run_pipeline(test::plan_of(graphql_crawl({a}, "{url} {after}", db, state, "item 27")));
  REQUIRE(first.errors.size() == 1);
  CHECK(test::query(db, "SELECT count(*) < 45 FROM items") == std::vector<std::string>{"1"});
  server.reset_counters();
  RunOptions resume;
  resume.resume = true;
  RunReport second = run_pipeline(test::plan_of(graphql_crawl({a}, "{url} {after}", db, state)), resume);
  REQUIRE(second.errors.empty());
  CHECK(test::query(db, "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM items") ==
        std::vector<std::string>{"45|45|0|44"});
  // The failed page (items 25-29) and those after it (4), and the page before it when the state
  // had not yet recorded that page as done (resume is at least once; the store's key keeps one
  // row per item): not all 9 pages again.
  const auto requests = server.counter("/cursor").requests;
  CHECK(requests >= 4);
  CHECK(requests <= 5);
}

TEST_CASE("parse.json's '*' step gives a list of what it reaches in every element of an array or member of an object",
          "[parse]") {
  fixture::FixtureServer server(kSite);
  TempDir dir;
  std::string pipeline = json_pipeline(dir, {server.url("/api/gallery.json")}, R"(    items: items
    fields:
      id: id
      images: images.*.url
      prices: {path: /variants/*/price, type: number, decimal: ','}
      tags: 'tags.*'
      first: {path: nothing.*.url, fallback: [images.0.url]}
      some: {path: images.*.url, required: true})");
  RunReport report = run_pipeline(test::plan_of(pipeline));
  REQUIRE(report.errors.empty());
  const std::string page = server.url("/api/gallery.json");
  // Nulls and elements without the step are left out; a value with no number in it too (and
  // counted in the warning); a field whose paths reach nothing is null. A field with a '*' in any
  // of its paths is a list, also when a fallback without one gives its value.
  CHECK(item_lines(dir) == std::vector<std::string>{
                               fmt::format(R"({{"page_url":"{}","id":1,"images":["/a.jpg","/b.jpg"],"prices":[1.5,2],)"
                                           R"("tags":["x","y"],"first":["/a.jpg"],"some":["/a.jpg","/b.jpg"]}})",
                                           page)});
  const std::string bad = test::read_file(dir.file("bad.jsonl"));
  CHECK(bad.find("required field 'some' not found (path 'images.*.url')") != std::string::npos);
  CHECK(bad.find(R"("id":2,"images":null,"prices":null,"tags":null,"first":null)") != std::string::npos);
  CHECK(notice_messages(report) ==
        std::vector<std::string>{"parse: field 'prices' (type: number) had 1 value with no number in it (the first: "
                                 "'ask'); it was left out"});
  // A '*' path counts each value it reaches (the second item's paths reach none).
  const std::vector<std::string> rows = selector_rows(report, "parse");
  CHECK(std::count(rows.begin(), rows.end(), "fields.images images.*.url 2 1 1 2") == 1);
  CHECK(std::count(rows.begin(), rows.end(), "fields.prices /variants/*/price 2 1 1 3") == 1);
}

TEST_CASE("parse.json's items with '*' steps are the items of every array they reach, in order", "[parse]") {
  fixture::FixtureServer server(kSite);
  TempDir dir;
  std::string pipeline = json_pipeline(dir, {server.url("/api/catalog.json")}, R"(    items: categories.*.products
    item_key: position
    fields: {id: id}
  - id: none
    type: parse.json
    items: nothing
    fields: {id: id}
  - id: all
    type: sink.jsonl
    path: {})");
  pipeline.replace(pipeline.find("path: {}"), 8, fmt::format("path: {}", dir.file("none.jsonl")));
  pipeline += "  - get -> none -> all\n";
  RunReport report = run_pipeline(test::plan_of(pipeline));
  REQUIRE(report.errors.empty());
  const std::string page = server.url("/api/catalog.json");
  // Each item's position is in its own array; an empty, null or missing array gives none.
  CHECK(item_lines(dir) == std::vector<std::string>{fmt::format(R"({{"page_url":"{}","position":0,"id":1}})", page),
                                                    fmt::format(R"({{"page_url":"{}","position":1,"id":2}})", page),
                                                    fmt::format(R"({{"page_url":"{}","position":0,"id":3}})", page)});
  // items at a null: no item (not one whose fields are all null).
  CHECK(test::read_file(dir.file("none.jsonl")).empty());
  const std::vector<std::string> rows = selector_rows(report, "parse");
  CHECK(std::count(rows.begin(), rows.end(), "items categories.*.products 1 1 0 3") == 1);
}

TEST_CASE(
    "parse.json reads numbers from text with type: number, takes whole ones with type: integer, and "
    "tries fallback paths",
    "[parse][number]") {
  fixture::FixtureServer server(kSite);
  TempDir dir;
  std::string pipeline = json_pipeline(dir, {server.url("/api/prices.json")}, R"(    items: items
    fields:
      sku: sku
      label: {path: title, fallback: [name, sku]}
      price: {path: price, type: number, decimal: ','}
      stock: {path: stock, type: integer, required: true})");
  RunReport report = run_pipeline(test::plan_of(pipeline));
  REQUIRE(report.errors.empty());
  const std::string page = server.url("/api/prices.json");
  CHECK(item_lines(dir) ==
        std::vector<std::string>{
            fmt::format(R"({{"page_url":"{}","sku":"a","label":"Kettle","price":1299,"stock":7}})", page),
            // A null is no value: the first fallback with one gives the label.
            fmt::format(R"({{"page_url":"{}","sku":"b","label":"Toaster","price":19.9,"stock":4}})", page),
        });
  const std::string bad = test::read_file(dir.file("bad.jsonl"));
  CHECK(test::contains(bad, "required field 'stock' has no integer in '2.5' (path 'stock', type: integer)"));
  CHECK(test::contains(bad, R"("label":"c")"));                                   // the last fallback, the item's sku
  CHECK(test::contains(bad, "required field 'stock' not found (path 'stock')"));  // null: not there at all
  CHECK(notice_messages(report) ==
        std::vector<std::string>{
            "parse: field 'price' (type: number) had 2 values with no number in them (the first: 'n/a'); "
            "they were left out",
            "parse: field 'stock' (type: integer) had 1 value with no whole number in it (the first: "
            "'2.5'); it was left out",
        });
}

TEST_CASE("parse.html and parse.json count what each selector found, and warn of one that found nothing in the run",
          "[parse]") {
  // A site that changed its markup makes a selector find nothing, and the run succeeds with no items
  // or a column of nulls: the table and the warning say so. Two pages parsed well within a second:
  // the counts of both are the ones of finish(), not of the live table given after the first page.
  fixture::FixtureServer server(kSite);
  SECTION("parse.html") {
    TempDir dir;
    RunReport report = run_pipeline(
        test::plan_of(parse_pipeline(dir, {server.url("/catalogue/page1.html"), server.url("/catalogue/page2.html")},
                                     R"(    items: div.product
    links: a.more::attr(href)
    fields:
      name: h2.name
      price: {select: span.price, regex: '([0-9]+\.[0-9]+)'}
      sku: span.sku)")));
    REQUIRE(report.errors.empty());
    CHECK(selector_rows(report, "parse") == std::vector<std::string>{
                                                "fields.sku span.sku 4 0 4 0",
                                                "fields.price span.price 4 3 1 3",
                                                "items div.product 2 2 0 4",
                                                "links a.more::attr(href) 2 2 0 4",
                                                "fields.name h2.name 4 4 0 4",
                                            });
    CHECK(
        notice_messages(report) ==
        std::vector<std::string>{"parse: 'fields.sku: span.sku' found nothing in any of the 4 items it was tried on"});
  }
  SECTION("parse.json, and a page without items") {
    TempDir dir;
    std::string pipeline = json_pipeline(dir, {server.url("/api/items1.json"), server.url("/api/items2.json")},
                                         R"(    items: data.items
    next: links.next
    fields:
      id: id
      price: price.amount
      color: colour.name)");
    RunReport report = run_pipeline(test::plan_of(pipeline));
    REQUIRE(report.errors.empty());
    CHECK(selector_rows(report, "parse") == std::vector<std::string>{
                                                "fields.color colour.name 4 0 4 0",
                                                "next links.next 2 1 1 1",
                                                "fields.price price.amount 4 3 1 3",
                                                "items data.items 2 2 0 4",
                                                "fields.id id 4 4 0 4",
                                            });
    CHECK(notice_messages(report) ==
          std::vector<std::string>{"parse: 'fields.color: colour.name' found nothing in any of the 4 items it was "
                                   "tried on"});
  }
  SECTION("one page, no items: the fields were never tried, and only items is warned of") {
    TempDir dir;
    RunReport report = run_pipeline(test::plan_of(
        parse_pipeline(dir, {server.url("/catalogue/page1.html")}, "    items: div.article\n    fields: {title: h1}")));
    REQUIRE(report.errors.empty());
    CHECK(selector_rows(report, "parse") ==
          std::vector<std::string>{"items div.article 1 0 1 0", "fields.title h1 0 0 0 0"});
    CHECK(notice_messages(report) ==
          std::vector<std::string>{"parse: 'items: div.article' found nothing in the one page it was tried on"});
  }
}

TEST_CASE("parse.regex turns named RE2 groups into fields", "[parse]") {
  fixture::FixtureServer server(kSite);
  TempDir dir;
  RunReport report = run_pipeline(test::plan_of(regex_pipeline(
      dir, server.url("/prices.txt"), "    pattern: 'SKU (?P<sku>[A-Z0-9]+): (?P<price>[0-9.]+)'\n    all: true")));
  REQUIRE(report.errors.empty());
  auto items = item_lines(dir);
  REQUIRE(items.size() == 3);
  CHECK(items[1].find(R"("price":"5.00","sku":"B200")") != std::string::npos);
}

TEST_CASE("parse.regex reads named groups as numbers with types, and warns of captures with none", "[parse][number]") {
  fixture::FixtureServer server(kSite);
  TempDir dir;
  RunReport report = run_pipeline(
      test::plan_of(regex_pipeline(dir, server.url("/prices.txt"),
                                   "    pattern: '(?P<sku>[A-Z])(?P<n>[0-9]+): (?P<price>[0-9.,]+)'\n    all: true\n"
                                   "    types: {n: integer, price: number}\n    decimal: ','")));
  REQUIRE(report.errors.empty());
  auto items = item_lines(dir);
  REQUIRE(items.size() == 3);
  // With decimal ',' the '.' groups thousands: "19.90" has no number, "12.00" neither.
  CHECK(test::contains(items[0], R"("n":100,"price":null,"sku":"A")"));
  CHECK(test::contains(items[1], R"("n":200,"price":null,"sku":"B")"));
  CHECK(notice_messages(report).front() ==
        std::string("parse: field 'price' (type: number) had 3 values with no number in them (the first: "
                    "'19.90') (written with a decimal '.'? set decimal: '.'); they were left out"));
  // A type for a group the pattern does not have is an error where it is written.
  Diagnostics diags;
  const std::string bad = regex_pipeline(dir, server.url("/prices.txt"),
                                         "    pattern: 'SKU (?P<sku>[A-Z0-9]+)'\n    types: {prise: number}");
  CHECK_FALSE(load_pipeline_text(bad, "p.yaml", test::builtin_registry(), LoadOptions{{}, test::fixed_env()}, diags));
  CHECK(
      test::contains(diags.to_string(), "error: types: 'prise' is no named group of the pattern (its groups: 'sku')"));
}

TEST_CASE("keep copies fields of the page's record into each item of parse.html, parse.json and parse.regex",
          "[parse]") {
  // What a page was fetched for (a product id from an earlier stage, a search term) goes with what
  // was found on it; a kept field the page lacks is left out.
  fixture::FixtureServer server(kSite);
  TempDir dir;
  auto items_of = [&](const std::string& path, const std::string& type, const std::string& config) {
    std::string pipeline = parse_pipeline(dir, {server.url(path)}, config);
    pipeline.replace(pipeline.find("type: parse.html"), 16, "type: " + type);
    if (type != "parse.html") pipeline.replace(pipeline.find("  - parse.links -> links\n"), 24, "  - src -> links\n");
    pipeline.replace(pipeline.find("  - src -> get"), 14, "  - src -> tag -> get");
    pipeline.replace(pipeline.find("  - id: get\n"), 12,
                     "  - id: tag\n    type: set\n    fields: {term: kettle, rank: 7}\n  - id: get\n");
    RunReport report = run_pipeline(test::plan_of(pipeline));
    REQUIRE(report.errors.empty());
    return item_lines(dir);
  };
  SECTION("parse.html, on items and links") {
    auto items = items_of("/catalogue/page1.html", "parse.html",
                          "    items: div.product\n    keep: [term, rank, nothing, url]\n    fields: {name: h2.name}\n"
                          "    links: a.more");
    REQUIRE(items.size() == 3);
    const std::string page = server.url("/catalogue/page1.html");
    CHECK(items[0] ==
          fmt::format(R"({{"page_url":"{0}","term":"kettle","rank":7,"url":"{0}","name":"Blue Kettle"}})", page));
    // A link keeps its own url: keep: [url] does not make every link point to its page.
    CHECK(test::read_file(dir.file("links.jsonl"))
              .find(fmt::format(R"({{"url":"{}","depth":1,"from_url":"{}"}})", server.url("/item/1.html"), page)) !=
          std::string::npos);
  }
  SECTION("parse.json") {
    auto items =
        items_of("/api/items1.json", "parse.json", "    items: data.items\n    keep: [term]\n    fields: {id: id}");
    REQUIRE(items.size() == 3);
    CHECK(items[1] == fmt::format(R"({{"page_url":"{}","term":"kettle","id":2}})", server.url("/api/items1.json")));
  }
  SECTION("parse.regex") {
    auto items = items_of("/prices.txt", "parse.regex",
                          "    pattern: 'SKU (?P<sku>[A-Z0-9]+)'\n    all: true\n    keep: [rank, url]");
    REQUIRE(items.size() == 3);
    CHECK(items[0] == fmt::format(R"({{"rank":7,"url":"{}","sku":"A100"}})", server.url("/prices.txt")));
  }
}

TEST_CASE("parse.regex matches and captures UTF-8, whatever charset the text came in", "[parse]") {
  TempDir site;
  // "Имя: Пётр" in KOI8-R, declared in the Content-Type only.
  test::write_file(site.file("name.txt"), "\xe9\xcd\xd1: \xf0\xa3\xd4\xd2\n");
  test::write_file(site.file("name.txt.content-type"), "text/plain; charset=KOI8-R\n");
  fixture::FixtureServer server(site.path().string());
  TempDir dir;
  RunReport report = run_pipeline(test::plan_of(
      regex_pipeline(dir, server.url("/name.txt"), "    pattern: '\xd0\x98\xd0\xbc\xd1\x8f: (?P<name>\\S+)'")));
  REQUIRE(report.errors.empty());
  auto items = item_lines(dir);
  REQUIRE(items.size() == 1);
  CHECK(items[0].find("\"name\":\"\xd0\x9f\xd1\x91\xd1\x82\xd1\x80\"") != std::string::npos);  // Пётр
}

TEST_CASE("a crawl follows links through the frontier, fetches no URL twice and ends by itself", "[crawl]") {
  fixture::FixtureServer server(kSite);
  TempDir dir;
  Plan plan = test::plan_of(fmt::format(R"(pipeline: crawl
nodes:
  - id: seeds
    type: source.list
    urls: ["{seed}"]
  - id: frontier
    type: frontier
    max_depth: {depth}
  - id: lim
    type: limit
    max_in_flight: 2
  - id: get
    type: fetch
    on_error: skip
  - id: parse
    type: parse.html
    links: a[href]::attr(href)
    fields: {{title: h1.name}}
  - id: pages
    type: sink.jsonl
    path: {out}
    fields: [page_url, title]
edges:
  - seeds -> frontier -> lim -> get -> parse -> pages
  - parse.links -> frontier
)",
                                        fmt::arg("seed", server.url("/catalogue/page1.html")), fmt::arg("depth", 5),
                                        fmt::arg("out", dir.file("pages.jsonl"))));
  RunReport report = run_pipeline(plan);
  REQUIRE(report.errors.empty());
  CHECK(report.status == RunStatus::succeeded);
  auto pages = test::lines_of(test::read_file(dir.file("pages.jsonl")));
  std::sort(pages.begin(), pages.end());
  std::vector<std::string> expected;
  for (const char* p : {"/catalogue/", "/catalogue/page1.html", "/catalogue/page2.html"}) {
    expected.push_back(fmt::format(R"({{"page_url":"{}","title":null}})", server.url(p)));
  }
  for (int i : {1, 2, 4}) {
    expected.push_back(
        fmt::format(R"({{"page_url":"{}","title":"Item {}"}})", server.url(fmt::format("/item/{}.html", i)), i));
  }
  expected.push_back(fmt::format(R"({{"page_url":"{}","title":"Open"}})", server.url("/private/open.html")));
  std::sort(expected.begin(), expected.end());
  CHECK(pages == expected);
  // Every URL was fetched once: robots.txt and 7 pages; /private/secret.html is disallowed by
  // robots.txt and localhost:80 is another host.
  CHECK(server.counter("*").requests == 8);
  CHECK(server.counter("/robots.txt").requests == 1);
  CHECK(server.counter("/private").requests == 1);
  CHECK(test::stats_of(report, "frontier").records_out == 8);
  CHECK(test::stats_of(report, "get").errors == 1);  // the disallowed URL, skipped
}

TEST_CASE("known: a crawl does not fetch again the pages an earlier run stored, and still fetches its seeds",
          "[crawl]") {
  fixture::FixtureServer server(kSite);
  TempDir dir;
  const std::string db = dir.file("done.db");
  // What an earlier run stored: two item pages (one spelled as a link would not be: normalized
  // like links), a seed, and rows that are not URLs at all.
  test::execute(db, fmt::format("CREATE TABLE items (page_url TEXT, n INT);"
                                "INSERT INTO items VALUES ('{}', 1), ('{}', 2), ('{}', 3), (NULL, 4), ('', 5);",
                                server.url("/item/1.html"), server.url("/item/2.html#reviews"),
                                server.url("/catalogue/page1.html")));
  const std::string known = fmt::format("    known: {{path: {}, query: SELECT page_url FROM items}}", db);
  RunReport report = run_pipeline(test::plan_of(
      crawl_pipeline({server.url("/catalogue/page1.html")}, known, "    robots: ignore", "", dir.file("pages.jsonl"))));
  REQUIRE(report.errors.empty());
  // The seed page1 (known, fetched as a seed), page2 and /catalogue/; of the items only the new
  // /item/4.html (counters are per first path segment).
  CHECK(server.counter("/catalogue").requests == 3);
  CHECK(server.counter("/item").requests == 1);
  CHECK(test::stats_of(report, "frontier").dropped >= 2);

  // A query that is not one column of URLs, or a database that is not there, fails the run before
  // anything is fetched, naming the node.
  auto failure = [&](const std::string& config) {
    server.reset_counters();
    RunReport r = run_pipeline(test::plan_of(
        crawl_pipeline({server.url("/catalogue/page1.html")}, config, "    robots: ignore", "", dir.file("p.jsonl"))));
    CHECK(r.status == RunStatus::failed);
    CHECK(server.counter("*").requests == 0);
    REQUIRE_FALSE(r.errors.empty());
    return r.errors[0].to_string();
  };
  CHECK(failure(fmt::format("    known: {{path: {}, query: \"SELECT page_url, n FROM items\"}}", db)) ==
        "node 'frontier': could not start: known: query returns 2 columns: expected one, the URLs");
  CHECK(failure(fmt::format("    known: {{path: {}, query: SELECT url FROM pages}}", db)) ==
        fmt::format("node 'frontier': could not start: known: query on '{}': no such table: pages", db));
  CHECK(failure(fmt::format("    known: {{path: {}, query: SELECT 1}}", dir.file("missing.db"))) ==
        fmt::format("node 'frontier': could not start: known: cannot open database '{}': no such file",
                    dir.file("missing.db")));
}

TEST_CASE("max_depth bounds a crawl", "[crawl]") {
  fixture::FixtureServer server(kSite);
  TempDir dir;
  Plan plan = test::plan_of(crawl_pipeline({server.url("/catalogue/page1.html")},
                                           "    max_depth: 1\n    deny: ['/catalogue/$']", "    robots: obey", "",
                                           dir.file("pages.jsonl")));
  RunReport report = run_pipeline(plan);
  REQUIRE(report.errors.empty());
  // depth 0: page1; depth 1: item/1, item/2, page2 (the base-href link to /catalogue/ is denied).
  CHECK(test::lines_of(test::read_file(dir.file("pages.jsonl"))).size() == 4);
  CHECK(server.counter("*").requests == 5);  // and robots.txt
}

TEST_CASE("allow and deny pick the links to follow — a seed that matches neither is still fetched", "[crawl]") {
  // Before, a seed at the site's root with allow: ['/catalogue/'] was dropped: the crawl did nothing.
  TempDir site;
  test::write_file(site.file("index.html"), R"(<a href="/catalogue/a.html">a</a> <a href="/about.html">about</a>
<a href="/catalogue/b.html?sort=price">b</a>)");
  std::filesystem::create_directories(site.file("catalogue"));
  test::write_file(site.file("catalogue/a.html"), "a");
  test::write_file(site.file("about.html"), "about");
  fixture::FixtureServer server(site.path().string());
  TempDir dir;
  RunReport report = run_pipeline(test::plan_of(
      crawl_pipeline({server.url("/index.html")}, "    allow: ['/catalogue/']\n    deny: ['sort=', 'index']",
                     "    robots: ignore", "", dir.file("pages.jsonl"))));
  REQUIRE(report.errors.empty());
  std::set<std::string> pages;
  for (const auto& l : test::lines_of(test::read_file(dir.file("pages.jsonl")))) pages.insert(l);
  CHECK(pages == std::set<std::string>{fmt::format(R"({{"page_url":"{}"}})", server.url("/index.html")),
                                       fmt::format(R"({{"page_url":"{}"}})", server.url("/catalogue/a.html"))});
  CHECK(server.counter("/about.html").requests == 0);
  CHECK(server.counter("/catalogue/b.html").requests == 0);
  // The frontier's links table says what came of each URL, with the first of each kind.
  std::vector<std::string> rows;
  for (const auto& t : report.tables) {
    if (t.node != "frontier" || t.name != "links") continue;
    for (const auto& r : t.rows)
      rows.push_back(
          fmt::format("{} {} {}", r.get("outcome")->to_text(), r.get("count")->to_text(), r.get("first")->to_text()));
  }
  CHECK(rows == std::vector<std::string>{
                    "seed 1 " + server.url("/index.html"),
                    "followed 1 " + server.url("/catalogue/a.html"),
                    "allow 1 " + server.url("/about.html"),
                    "deny 1 " + server.url("/catalogue/b.html?sort=price"),
                });
  CHECK(report.notices.empty());  // a link was followed
}

TEST_CASE("a crawl that follows none of its pages' links says why at the end", "[crawl]") {
  TempDir site;
  test::write_file(site.file("index.html"), R"(<a href="http://other.invalid/page">elsewhere</a>
<a href="/files/all.zip">archive</a> <a href="/files/more.zip">archive</a> <a href="/index.html">itself</a>)");
  fixture::FixtureServer server(site.path().string());
  TempDir dir;
  RunReport report = run_pipeline(test::plan_of(
      crawl_pipeline({server.url("/index.html")}, "", "    robots: ignore", "", dir.file("pages.jsonl"))));
  REQUIRE(report.errors.empty());
  CHECK(test::notices_of(report, "frontier") ==
        std::vector<std::string>{
            fmt::format("the crawl followed none of the 4 links its pages gave: other_host 1 (the first: "
                        "http://other.invalid/page), extension 2 (the first: {}); see the 'links' table",
                        server.url("/files/all.zip"))});
}

TEST_CASE("a crawl leaves out links to files by extension — seeds are kept, and deny_extensions [] follows all",
          "[crawl]") {
  TempDir site;
  test::write_file(site.file("index.html"), R"(<a href="/a.html">a</a> <a href="/report.PDF">pdf</a>
<a href="/photo.jpg?size=2">jpg</a> <a href="/search?file=x.zip">query</a> <a href="/v1.2/">dir</a>
<a href="/archive.tar.gz#top">tgz</a> <a href="/sitemap-1.XML.gz?v=2">a gzipped sitemap: not an archive</a>)");
  for (const char* f :
       {"a.html", "report.PDF", "photo.jpg", "search", "archive.tar.gz", "seed.pdf", "sitemap-1.XML.gz"})
    test::write_file(site.file(f), "x");
  std::filesystem::create_directory(site.path() / "v1.2");
  test::write_file(site.file("v1.2/index.html"), "x");
  fixture::FixtureServer server(site.path().string());
  auto crawl = [&](const std::string& frontier_config) {
    TempDir dir;
    Plan plan = test::plan_of(crawl_pipeline({server.url("/index.html"), server.url("/seed.pdf")}, frontier_config,
                                             "    robots: ignore", "    on_error: skip", dir.file("pages.jsonl")));
    server.reset_counters();
    REQUIRE(run_pipeline(plan).errors.empty());
    std::set<std::string> fetched;  // first path segments
    for (const auto& [key, counter] : server.counters())
      if (key.starts_with("/") && counter.requests > 0) fetched.insert(key);
    return fetched;
  };
  CHECK(crawl("    same_host: true") ==
        std::set<std::string>{"/index.html", "/seed.pdf", "/a.html", "/search", "/v1.2", "/sitemap-1.XML.gz"});
  CHECK(crawl("    deny_extensions: []") == std::set<std::string>{"/index.html", "/seed.pdf", "/a.html", "/search",
                                                                  "/v1.2", "/report.PDF", "/photo.jpg",
                                                                  "/archive.tar.gz", "/sitemap-1.XML.gz"});
  CHECK(crawl("    deny_extensions: [xml.gz]") == std::set<std::string>{"/index.html", "/seed.pdf", "/a.html",
                                                                        "/search", "/v1.2", "/report.PDF", "/photo.jpg",
                                                                        "/archive.tar.gz"});
}

TEST_CASE("a crawl from a sitemap index reaches the pages its gzipped sitemaps list", "[crawl]") {
  TempDir site;
  fixture::FixtureServer server(site.path().string());
  auto urlset = [&](std::initializer_list<const char*> pages) {
    std::string xml = R"(<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">)";
    for (const char* p : pages) xml += fmt::format("<url><loc>{}</loc></url>", server.url(p));
    return xml + "</urlset>";
  };
  test::write_file(site.file("sitemap_index.xml"),
                   fmt::format(R"(<?xml version="1.0" encoding="UTF-8"?>
<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <sitemap><loc>{}</loc></sitemap><sitemap><loc>{}</loc></sitemap>
</sitemapindex>)",
                               server.url("/sitemap-1.xml.gz"), server.url("/sitemap-2.xml.gz")));
  test::write_file(site.file("sitemap-1.xml.gz"), test::gzip(urlset({"/p1.html", "/p2.html"})));
  test::write_file(site.file("sitemap-2.xml.gz"), test::gzip(urlset({"/p3.html"})));
  for (const char* f : {"p1.html", "p2.html", "p3.html"}) test::write_file(site.file(f), "<h1>page</h1>");
  TempDir dir;
  std::string pipeline = crawl_pipeline({server.url("/sitemap_index.xml")}, "    same_host: true", "    robots: ignore",
                                        "", dir.file("pages.jsonl"));
  pipeline.replace(pipeline.find("links: a[href]"), 14, "links: loc::text");
  REQUIRE(run_pipeline(test::plan_of(pipeline)).errors.empty());
  auto pages = test::lines_of(test::read_file(dir.file("pages.jsonl")));
  std::sort(pages.begin(), pages.end());
  std::vector<std::string> expected;
  for (const char* p :
       {"/p1.html", "/p2.html", "/p3.html", "/sitemap-1.xml.gz", "/sitemap-2.xml.gz", "/sitemap_index.xml"})
    expected.push_back(fmt::format(R"({{"page_url":"{}"}})", server.url(p)));
  CHECK(pages == expected);
}

TEST_CASE("seeds are normalized like links, so that a page a seed names differently is fetched once", "[crawl]") {
  TempDir site;
  test::write_file(site.file("index.html"), R"(<a href="/">home</a> <a href="/index.html">index</a>)");
  fixture::FixtureServer server(site.path().string());
  TempDir dir;
  const std::string root = server.url("");  // http://127.0.0.1:PORT, no path
  std::string shouted = server.url("/index.html#top");
  shouted.replace(0, 4, "HTTP");
  RunReport report = run_pipeline(test::plan_of(
      crawl_pipeline({shouted, root}, "    same_host: true", "    robots: ignore", "", dir.file("pages.jsonl"))));
  REQUIRE(report.errors.empty());
  CHECK(server.counter("*").requests == 2);  // / and /index.html, each once
  auto pages = test::lines_of(test::read_file(dir.file("pages.jsonl")));
  std::sort(pages.begin(), pages.end());
  CHECK(pages == std::vector<std::string>{fmt::format(R"({{"page_url":"{}"}})", server.url("/")),
                                          fmt::format(R"({{"page_url":"{}"}})", server.url("/index.html"))});
}

TEST_CASE("a crawl strips tracking parameters from URLs, so that a tagged link is the page it tags", "[crawl]") {
  TempDir site;
  test::write_file(site.file("index.html"), R"(<a href="/a.html?utm_source=nav&utm_medium=menu">a</a>
<a href="/a.html">a again</a> <a href="/a.html?fbclid=XYZ#top">a, shared</a>
<a href="/b.html?utm_campaign=x&amp;id=5&amp;gclid=abc">b 5</a> <a href="/b.html?id=5">b 5 again</a>
<a href="/b.html?id=6&amp;ref=home">b 6</a> <a href="/b.html?ref=home&amp;id=6">b 6, in another order</a>)");
  test::write_file(site.file("a.html"), "a");
  test::write_file(site.file("b.html"), "b");
  fixture::FixtureServer server(site.path().string());
  auto crawl = [&](const std::string& frontier_config) {
    TempDir dir;
    RunReport report =
        run_pipeline(test::plan_of(crawl_pipeline({server.url("/index.html?utm_source=seed")}, frontier_config,
                                                  "    robots: ignore", "", dir.file("pages.jsonl"))));
    REQUIRE(report.errors.empty());
    auto pages = test::lines_of(test::read_file(dir.file("pages.jsonl")));
    std::sort(pages.begin(), pages.end());
    return pages;
  };
  auto page = [&](const std::string& path) { return fmt::format(R"({{"page_url":"{}"}})", server.url(path)); };
  SECTION("the default strips utm_*, gclid, fbclid and the like, from seeds too") {
    CHECK(crawl("    same_host: true") == std::vector<std::string>{page("/a.html"), page("/b.html?id=5"),
                                                                   page("/b.html?id=6&ref=home"),
                                                                   page("/b.html?ref=home&id=6"), page("/index.html")});
    CHECK(server.counter("/a.html").requests == 1);
    CHECK(server.counter("/b.html").requests == 3);
  }
  SECTION("a list of one's own: names, and a trailing * for any ending") {
    server.reset_counters();
    CHECK(crawl("    strip_query: [utm_*, gclid, fbclid, re*]") ==
          std::vector<std::string>{page("/a.html"), page("/b.html?id=5"), page("/b.html?id=6"), page("/index.html")});
  }
  SECTION("sort_query: true makes the order of the parameters not matter") {
    server.reset_counters();
    CHECK(crawl("    sort_query: true") == std::vector<std::string>{page("/a.html"), page("/b.html?id=5"),
                                                                    page("/b.html?id=6&ref=home"),
                                                                    page("/index.html")});
    CHECK(server.counter("/b.html").requests == 2);
  }
  SECTION("[] keeps every parameter") {
    server.reset_counters();
    CHECK(crawl("    strip_query: []").size() == 8);
    CHECK(server.counter("/a.html").requests == 3);  // three URLs: tagged twice, and bare
  }
}

TEST_CASE("same_host follows a seed to the host it redirects to (http://example.com/ -> https://www.example.com/)",
          "[crawl]") {
  // Before, every link of such a site went to a host that was not the seed's: the crawl ended at
  // its first page.
  TempDir site;
  test::write_file(site.file("home.html"), R"(<a href="/a.html">a</a> <a href="http://other.localhost/x">x</a>)");
  test::write_file(site.file("a.html"), R"(<a href="/b.html">b</a>)");
  test::write_file(site.file("b.html"), "end");
  fixture::FixtureServer server(site.path().string());
  const std::string port = server.url("").substr(server.url("").rfind(':') + 1);
  const std::string landed = "http://localhost:" + port;  // another host name for the same server
  TempDir dir;
  RunReport report = run_pipeline(
      test::plan_of(crawl_pipeline({server.url("/redirect-to?url=" + landed + "/home.html")}, "    same_host: true",
                                   "    robots: ignore", "", dir.file("pages.jsonl"))));
  REQUIRE(report.errors.empty());
  auto pages = test::lines_of(test::read_file(dir.file("pages.jsonl")));
  std::sort(pages.begin(), pages.end());
  CHECK(pages == std::vector<std::string>{fmt::format(R"({{"page_url":"{}/a.html"}})", landed),
                                          fmt::format(R"({{"page_url":"{}/b.html"}})", landed),
                                          fmt::format(R"({{"page_url":"{}/home.html"}})", landed)});
  CHECK(test::stats_of(report, "frontier").dropped == 1);  // other.localhost stays out
}

TEST_CASE("a page reached through a redirect is not fetched again when a link names where it landed", "[crawl]") {
  // Before, the frontier knew only the URLs it let out: a site whose links say http:// and redirect
  // to https:// had every page fetched twice, once more through its https links.
  TempDir site;
  test::write_file(site.file("a.html"), R"(<a href="/a.html">self</a> <a href="/b.html">b</a>)");
  test::write_file(site.file("b.html"), R"(<a href="/a.html">a</a>)");
  fixture::FixtureServer server(site.path().string());
  TempDir dir;
  RunReport report = run_pipeline(
      test::plan_of(crawl_pipeline({server.url("/redirect-to?url=" + server.url("/a.html"))}, "    max_pages: 10",
                                   "    robots: ignore", "", dir.file("pages.jsonl"))));
  REQUIRE(report.errors.empty());
  CHECK(server.counter("/a.html").requests == 1);
  CHECK(server.counter("/b.html").requests == 1);
  CHECK(test::lines_of(test::read_file(dir.file("pages.jsonl"))).size() == 2);
}

TEST_CASE(
    "a frontier with little memory spills parked URLs to SQLite, fetches each page once, and removes spill files of "
    "killed runs",
    "[crawl]") {
  fixture::FixtureServer server(kSite);
  TempDir dir;
  // What killed runs left behind: the spill file of a process that is gone is removed when a
  // frontier starts; one of a live process (this one), and other files, are not touched.
  const pid_t gone = ::fork();
  if (gone == 0) ::_exit(0);
  ::waitpid(gone, nullptr, 0);
  const std::string stale = fmt::format("sluice-frontier-{}-0.db", gone);
  const std::string live = fmt::format("sluice-frontier-{}-99.db", ::getpid());
  for (const auto& name : {stale, live, std::string("sluice-frontier-notes.db")}) test::write_file(dir.file(name), "x");
  Plan plan = test::plan_of(crawl_pipeline({server.url("/catalogue/page1.html")},
                                           "    window: 1\n    memory: 1\n    spill_dir: " + dir.path().string(),
                                           "    on_error: skip", "", dir.file("pages.jsonl"), 2));
  RunReport report = run_pipeline(plan);
  REQUIRE(report.errors.empty());
  CHECK(test::lines_of(test::read_file(dir.file("pages.jsonl"))).size() == 7);
  CHECK(server.counter("*").requests == 8);  // 7 pages and robots.txt, each once
  CHECK(test::stats_of(report, "frontier").records_out == 8);
  // The spill file is gone at the end, and so is the stale one.
  std::set<std::string> left;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    if (entry.path().filename().string().starts_with("sluice-frontier-")) left.insert(entry.path().filename());
  }
  CHECK(left == std::set<std::string>{live, "sluice-frontier-notes.db"});
}

namespace {

// Two categories of 30 pages each, chained by a.next links, two items a page.
void write_category_site(const TempDir& site) {
  for (const std::string category : {"tea", "pots"}) {
    std::filesystem::create_directories(site.file(category));
    for (int i = 1; i <= 30; ++i) {
      std::string page = fmt::format(
          R"(<div class="item"><h2>{0} {1}a</h2></div><div class="item"><h2>{0} {1}b</h2></div>)", category, i);
      if (i < 30) page += fmt::format(R"(<a class="next" href="{}.html">next</a>)", i + 1);
      test::write_file(site.file(fmt::format("{}/{}.html", category, i)), page);
    }
  }
}

// Seeds from source.sqlite with a category and a rank; the frontier (memory 2: it spills) carries
// them to every page of the chain; parse.html keeps them on items and links.
std::string category_crawl(const std::string& db, const std::string& out, const std::string& extra_nodes,
                           const std::string& settings, const std::string& next) {
  return fmt::format(R"(pipeline: categories
settings: {{{settings}}}
nodes:
  - id: seeds
    type: source.sqlite
    path: {db}
    query: SELECT url, category, rank FROM seeds
  - id: frontier
    type: frontier
    memory: 2
  - id: lim
    type: limit
    max_in_flight: 2
  - id: get
    type: fetch
    robots: ignore
  - id: parse
    type: parse.html
    items: div.item
    fields: {{name: h2}}
    keep: [category, rank]
    links: a.next
{extra}
edges:
  - seeds -> frontier -> lim -> get -> parse -> {next}
  - parse.links -> frontier
)",
                     fmt::arg("settings", settings), fmt::arg("db", db), fmt::arg("extra", extra_nodes),
                     fmt::arg("next", next), fmt::arg("out", out));
}

}  // namespace

TEST_CASE("a frontier carries its URLs' fields to the pages their links lead to, also through a spill", "[crawl]") {
  // A category from the seed's row reaches the items of page 30 of its chain (Scrapy's meta).
  TempDir site;
  write_category_site(site);
  fixture::FixtureServer server(site.path().string());
  TempDir dir;
  test::execute(dir.file("seeds.db"), fmt::format("CREATE TABLE seeds (url TEXT, category TEXT, rank INTEGER);"
                                                  "INSERT INTO seeds VALUES ('{}', 'Tea', 1), ('{}', 'Pots', 2);",
                                                  server.url("/tea/1.html"), server.url("/pots/1.html")));
  RunReport report = run_pipeline(test::plan_of(category_crawl(
      dir.file("seeds.db"), "",
      fmt::format("  - {{id: items, type: sink.jsonl, path: {}, fields: [name, category, rank, page_url]}}",
                  dir.file("items.jsonl")),
      "", "items")));
  REQUIRE(report.errors.empty());
  auto items = test::lines_of(test::read_file(dir.file("items.jsonl")));
  REQUIRE(items.size() == 120);
  for (const auto& item : items) {
    CAPTURE(item);
    const bool tea = item.find("/tea/") != std::string::npos;
    CHECK(item.find(tea ? R"("category":"Tea","rank":1,)" : R"("category":"Pots","rank":2,)") != std::string::npos);
  }
  CHECK(std::count_if(items.begin(), items.end(),
                      [](const std::string& i) { return i.find(R"("name":"pots 30b")") != std::string::npos; }) == 1);
}

TEST_CASE("a resumed crawl's pending URLs keep the fields they carried", "[crawl][resume]") {
  TempDir site;
  write_category_site(site);
  fixture::FixtureServer server(site.path().string());
  TempDir dir;
  const std::string db = dir.file("crawl.db");
  test::execute(db, fmt::format("CREATE TABLE seeds (url TEXT, category TEXT, rank INTEGER);"
                                "INSERT INTO seeds VALUES ('{}', 'Tea', 1), ('{}', 'Pots', 2);",
                                server.url("/tea/1.html"), server.url("/pots/1.html")));
  auto crawl = [&](const std::string& fail_at) {
    return test::plan_of(category_crawl(db, "",
                                        fmt::format(R"(  - id: boom
    type: test.fail
    field: name
    equals: "{}"
  - id: store
    type: store.sqlite
    path: {}
    table: items
    columns: {{name: TEXT, category: TEXT, rank: INTEGER, page_url: TEXT}}
    key: [name]
    batch: {{rows: 5}})",
                                                    fail_at, db),
                                        fmt::format("state: {}", db), "boom -> store"));
  };
  RunReport first = run_pipeline(crawl("tea 12a"));
  std::string errors;
  for (const auto& e : first.errors) errors += e.to_string() + "\n";
  INFO(errors);
  REQUIRE(first.errors.size() == 1);
  CHECK(test::query(db, "SELECT count(*) < 120 FROM items") == std::vector<std::string>{"1"});
  CHECK(test::query(db, "SELECT count(*) > 0 FROM sluice_frontier WHERE done = 0 AND fields IS NOT NULL") ==
        std::vector<std::string>{"1"});
  RunOptions resume;
  resume.resume = true;
  RunReport second = run_pipeline(crawl("none"), resume);
  REQUIRE(second.errors.empty());
  CHECK(test::query(db,
                    "SELECT count(*), sum(category = CASE WHEN page_url LIKE '%/tea/%' THEN 'Tea' ELSE 'Pots' END), "
                    "sum(typeof(rank) = 'integer') FROM items") == std::vector<std::string>{"120|120|120"});
}

TEST_CASE("a graceful stop ends a crawl: parked URLs are dropped and the run ends", "[crawl]") {
  fixture::FixtureServer server(kSite);
  TempDir dir;
  Plan plan = test::plan_of(fmt::format(R"(pipeline: stop_crawl
settings: {{max_items: 1}}
nodes:
  - id: seeds
    type: source.list
    urls: ["{}"]
  - id: frontier
    type: frontier
    window: 1
  - id: get
    type: fetch
  - id: parse
    type: parse.html
    links: a[href]::attr(href)
  - id: pages
    type: sink.jsonl
    path: {}
    fields: [page_url]
edges:
  - seeds -> frontier -> get -> parse -> pages
  - parse.links -> frontier
)",
                                        server.url("/catalogue/page1.html"), dir.file("pages.jsonl")));
  RunReport report = run_pipeline(plan);
  REQUIRE(report.errors.empty());
  CHECK(report.status == RunStatus::succeeded);
  CHECK(test::lines_of(test::read_file(dir.file("pages.jsonl"))).size() < 7);
}

namespace {

// /wide/index.html links to /wide/1.html ... /wide/40.html, and each of those to the next: seeded
// at the index a site offers 40 URLs at once, seeded at 1.html one at a time.
void write_wide_site(const TempDir& site) {
  std::filesystem::create_directories(site.file("wide"));
  std::string index;
  for (int i = 1; i <= 40; ++i) {
    index += fmt::format(R"(<a href="{}.html">{}</a>)", i, i);
    test::write_file(site.file(fmt::format("wide/{}.html", i)),
                     i < 40 ? fmt::format(R"(<h1>{}</h1><a href="{}.html">next</a>)", i, i + 1) : "<h1>40</h1>");
  }
  test::write_file(site.file("wide/index.html"), index);
}

// Two sites of one crawl: 127.0.0.1 and localhost (the same fixture server under two host names).
std::string two_site_crawl(const fixture::FixtureServer& server, const std::string& seed_a, const std::string& seed_b,
                           const std::string& settings, const std::string& frontier, const std::string& fetch,
                           const std::string& out) {
  return crawl_pipeline({fmt::format("http://127.0.0.1:{}{}", server.port(), seed_a),
                         fmt::format("http://localhost:{}{}", server.port(), seed_b)},
                        frontier, "    robots: ignore\n" + fetch, "", out, 4, settings);
}

// Distinct pages written to `file`, by host.
std::map<std::string, std::set<std::string>> pages_by_host(const std::string& file) {
  std::map<std::string, std::set<std::string>> out;
  for (const auto& line : test::lines_of(test::read_file(file))) {
    const auto host = line.find("://") + 3;
    out[line.substr(host, line.find(':', host) - host)].insert(line);
  }
  return out;
}

}  // namespace

TEST_CASE("per_host_window: a slow site holds a few limit slots, not all of them, and the other sites go on",
          "[crawl]") {
  // 127.0.0.1 is slow (2 requests a second) and offers 40 URLs at once; localhost is fast and
  // offers its 40 pages one at a time. For 2 s, with 4 limit slots:
  TempDir site;
  write_wide_site(site);
  fixture::FixtureServer server(site.path().string());
  TempDir dir;
  auto crawl = [&](const std::string& frontier) {
    const std::string out = dir.file(fmt::format("pages{}.jsonl", frontier.size()));
    RunReport report =
        run_pipeline(test::plan_of(two_site_crawl(server, "/wide/index.html", "/wide/1.html", "max_duration: 2s",
                                                  frontier, "    hosts: {127.0.0.1: {rate: 2/s}}", out)));
    REQUIRE(report.errors.empty());
    CHECK(report.status == RunStatus::succeeded);
    return pages_by_host(out);
  };
  // Without a cap per host the slow site's 40 URLs go out at once, fill the slots and wait for
  // their turn at its rate; each of the fast site's URLs found after that queues behind them (how
  // many it fetched before depends on how soon the slow site's index came back: 2 to 12 seen).
  auto held = crawl("    per_host_window: 0");
  CHECK(held["127.0.0.1"].size() < 10);
  CHECK(held["localhost"].size() < 40);
  // With per_host_window 1 the slow site holds one slot: the fast one is crawled whole.
  auto fair = crawl("    per_host_window: 1");
  CHECK(fair["127.0.0.1"].size() < 10);
  CHECK(fair["localhost"].size() == 40);
}

TEST_CASE("max_pages_per_host bounds each site of a crawl, also across a resumed run", "[crawl][resume]") {
  TempDir site;
  write_wide_site(site);
  fixture::FixtureServer server(site.path().string());
  TempDir dir;
  const std::string out = dir.file("pages.jsonl");
  auto crawl = [&](const std::string& settings) {
    return test::plan_of(two_site_crawl(server, "/wide/index.html", "/wide/1.html",
                                        settings + ", state: " + dir.file("state.db"),
                                        "    max_pages_per_host: 5\n    window: 2", "", out));
  };
  // The first run stops after 3 pages, with URLs accepted and not fetched; the second fetches
  // them (and the pages whose links the stop cut off, again), and the links they lead to are beyond
  // each site's 5 — also the chain's next pages, which the first run never saw. Every page fetched
  // is written: 5 distinct pages of each site.
  RunReport first = run_pipeline(crawl("max_items: 3"));
  REQUIRE(first.errors.empty());
  CHECK(test::lines_of(test::read_file(out)).size() < 10);
  RunOptions resume;
  resume.resume = true;
  RunReport second = run_pipeline(crawl("max_items: 0"), resume);
  REQUIRE(second.errors.empty());
  auto pages = pages_by_host(out);
  CHECK(pages["127.0.0.1"].size() == 5);
  CHECK(pages["localhost"].size() == 5);
}

TEST_CASE("a store commits when the frontier's window is full, instead of waiting for its interval", "[crawl]") {
  // window 1: the next URL goes out when the last page's row is committed. A store that waited
  // for its 10 s interval each time would take 70 s for the site's 7 pages.
  fixture::FixtureServer server(kSite);
  TempDir dir;
  const auto started = std::chrono::steady_clock::now();
  RunReport report =
      run_pipeline(test::plan_of(fmt::format(R"(pipeline: window_store
nodes:
  - id: seeds
    type: source.list
    urls: ["{}"]
  - id: frontier
    type: frontier
    window: 1
  - id: get
    type: fetch
    on_error: skip
  - id: parse
    type: parse.html
    links: a[href]
  - id: store
    type: store.sqlite
    path: {}
    table: pages
    columns: {{page_url: TEXT}}
    batch: {{rows: 1000, interval: 10s}}
edges:
  - seeds -> frontier -> get -> parse -> store
  - parse.links -> frontier
)",
                                             server.url("/catalogue/page1.html"), dir.file("pages.db"))));
  const auto took = std::chrono::steady_clock::now() - started;
  REQUIRE(report.errors.empty());
  CHECK(test::query(dir.file("pages.db"), "SELECT count(*) FROM pages") == std::vector<std::string>{"7"});
  CHECK(took < std::chrono::seconds(9));
}
