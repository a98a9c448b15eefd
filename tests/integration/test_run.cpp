// Run semantics: real pipelines of the offline nodes, run in-process through run_pipeline().
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "../../nodes/parse/gzip.hpp"
#include "../support.hpp"
#include "sluice/template.hpp"

using namespace sluice;
using test::TempDir;

namespace {

std::string chain(const std::string& source, const std::string& middle, const std::string& sink_path,
                  const std::string& settings = "batch: 10") {
  return fmt::format(R"(pipeline: t
settings: {{{}}}
nodes:
{}
{}
  - id: out
    type: sink.jsonl
    path: {}
)",
                     settings, source, middle, sink_path);
}

// Node types that break their contracts the way a buggy plugin might: each throws something that
// is not a std::exception, from source, sink and async node code.
struct Thrown {
  int code;
};

class ThrowingSource final : public SourceNode {
 public:
  bool next(Record& out) override {
    if (++n_ > 5) throw Thrown{1};
    out.set("n", Value(static_cast<std::int64_t>(n_)));
    return true;
  }

 private:
  int n_ = 0;
};

class ThrowingSink final : public SinkNode {
 public:
  void write(std::vector<Record>&) override { throw Thrown{2}; }
  void close() override {}
};

// Throws from its first write, once `count.finish` has passed every record of the run (or after 10
// s): the batches behind the first are then on their way to it when it fails.
class LateThrowingSink final : public SinkNode {
 public:
  void write(std::vector<Record>&) override;
  void close() override {}
  static inline int wait_for = 0;
};

class ThrowingAsync final : public AsyncNode {
 public:
  explicit ThrowingAsync(bool in_start) : in_start_(in_start) {}
  void start(AsyncOutput&) override {
    if (in_start_) throw Thrown{3};
  }
  void submit(Record&&) override { throw Thrown{4}; }
  void cancel() override {}
  void stop() override {}

 private:
  bool in_start_;
};

// A transform that counts its process() and finish() calls (one instance per run at a time).
class FinishCounter final : public TransformNode {
 public:
  explicit FinishCounter(bool throws) : throws_(throws) {}
  void process(Record& record, Emitter& out) override {
    processed.fetch_add(1);
    out.emit(std::move(record));
  }
  void finish() override {
    processed_at_finish.store(processed.load());
    finishes.fetch_add(1);
    if (throws_) throw Thrown{5};
  }
  static inline std::atomic<int> processed{0}, processed_at_finish{-1}, finishes{0};

 private:
  bool throws_;
};

void LateThrowingSink::write(std::vector<Record>&) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (FinishCounter::processed.load() < wait_for && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  throw Thrown{6};
}

const Registry& misbehaving_registry() {
  static const Registry registry = [] {
    Registry r;
    register_builtin_nodes(r);
    const PortSpec in{"in", PortDirection::input, "records"}, out{"out", PortDirection::output, "records"};
    auto add = [&](std::string name, NodeKind kind, std::vector<PortSpec> ports, NodeFactory factory) {
      NodeType t;
      t.name = std::move(name);
      t.kind = kind;
      t.summary = "for tests: throws what is not a std::exception";
      t.ports = std::move(ports);
      t.factory = std::move(factory);
      r.add(std::move(t));
    };
    add("bad.source", NodeKind::source, {out}, [](const NodeContext&) { return std::make_unique<ThrowingSource>(); });
    add("bad.sink", NodeKind::sink, {in}, [](const NodeContext&) { return std::make_unique<ThrowingSink>(); });
    add("late.bad.sink", NodeKind::sink, {in}, [](const NodeContext&) { return std::make_unique<LateThrowingSink>(); });
    add("bad.submit", NodeKind::async, {in, out},
        [](const NodeContext&) { return std::make_unique<ThrowingAsync>(false); });
    add("bad.start", NodeKind::async, {in, out},
        [](const NodeContext&) { return std::make_unique<ThrowingAsync>(true); });
    add("count.finish", NodeKind::transform, {in, out},
        [](const NodeContext&) { return std::make_unique<FinishCounter>(false); });
    add("bad.finish", NodeKind::transform, {in, out},
        [](const NodeContext&) { return std::make_unique<FinishCounter>(true); });
    return r;
  }();
  return registry;
}

}  // namespace

TEST_CASE("offline nodes produce exactly the expected JSON Lines", "[run]") {
  TempDir dir;
  std::string out = dir.file("out.jsonl");
  Plan plan = test::plan_of(fmt::format(R"(pipeline: offline
settings: {{batch: 7}}
nodes:
  - id: pages
    type: source.list
    template: "https://x.example/p/{{n}}"
    from: 1
    to: 1000
  - id: small
    type: filter
    field: n
    op: le
    value: 3
  - id: tag
    type: set
    rename: {{n: page}}
    fields: {{label: "page {{page}}", flag: true, braces: "{{{{page}}}} {{{{x}}}}"}}
    remove: [url]
  - id: out
    type: sink.jsonl
    path: {}
edges:
  - pages -> small -> tag -> out
)",
                                        out));
  RunReport report = run_pipeline(plan);
  REQUIRE(report.errors.empty());
  CHECK(report.status == RunStatus::succeeded);
  CHECK(report.exit_code() == 0);
  CHECK(test::read_file(out) ==
        "{\"page\":1,\"label\":\"page 1\",\"flag\":true,\"braces\":\"{page} {x}\"}\n"
        "{\"page\":2,\"label\":\"page 2\",\"flag\":true,\"braces\":\"{page} {x}\"}\n"
        "{\"page\":3,\"label\":\"page 3\",\"flag\":true,\"braces\":\"{page} {x}\"}\n");
  CHECK(test::stats_of(report, "pages").records_out == 1000);
  CHECK(test::stats_of(report, "small").records_in == 1000);
  CHECK(test::stats_of(report, "small").records_out == 3);
  CHECK(test::stats_of(report, "out").records_in == 3);
}

TEST_CASE("nodes share settings through an x- key's anchor and YAML merge keys", "[run]") {
  TempDir dir;
  std::string out = dir.file("out.jsonl");
  Plan plan = test::plan_of(fmt::format(R"(pipeline: merged
x-tag: &tag
  type: set
  fields: {{site: shop, kind: page}}
nodes:
  - id: pages
    type: source.list
    urls: [a, b]
  - id: first
    <<: *tag
  - id: second
    <<: *tag
    fields: {{kind: item}}
  - id: out
    type: sink.jsonl
    path: {}
edges:
  - pages -> first -> second -> out
)",
                                        out));
  RunReport report = run_pipeline(plan);
  REQUIRE(report.errors.empty());
  CHECK(test::read_file(out) ==
        "{\"url\":\"a\",\"site\":\"shop\",\"kind\":\"item\"}\n"
        "{\"url\":\"b\",\"site\":\"shop\",\"kind\":\"item\"}\n");
}

TEST_CASE("filter keeps what an RE2 pattern matches, and what is (not) in a list of values", "[run]") {
  TempDir dir;
  auto kept = [&](const std::string& condition) {
    RunReport report = run_pipeline(test::plan_of(fmt::format(R"(pipeline: f
nodes:
  - {{id: src, type: source.list, template: "https://shop.example/item/{{n}}.html?ref=x", to: 12}}
  - {{id: keep, type: filter, {}}}
  - {{id: out, type: sink.jsonl, path: {}, fields: [n]}}
edges:
  - src -> keep -> out
)",
                                                              condition, dir.file("out.jsonl"))));
    REQUIRE(report.errors.empty());
    std::string ns;
    for (const auto& line : test::lines_of(test::read_file(dir.file("out.jsonl"))))
      ns += line.substr(5, line.size() - 6) + " ";
    return ns;
  };
  CHECK(kept(R"(field: url, op: matches, value: '/item/1[0-9]?\.html')") == "1 10 11 12 ");
  CHECK(kept("field: n, op: in, values: [3, 5, 99]") == "3 5 ");
  CHECK(kept("field: n, op: not_in, values: [1, 2, 3, 4, 5, 6, 7, 8, 9]") == "10 11 12 ");
  CHECK(kept("field: nothing, op: not_in, values: [1]") == "1 2 3 4 5 6 7 8 9 10 11 12 ");
  CHECK(kept("field: nothing, op: matches, value: '.*'") == "");

  Diagnostics diags;
  CHECK_FALSE(load_pipeline_text(R"(pipeline: t
nodes:
  - {id: s, type: source.list, urls: [a]}
  - {id: a, type: filter, field: url, op: matches, value: "(unclosed"}
  - {id: b, type: filter, field: url, op: in, value: 3}
  - {id: c, type: filter, field: url, op: eq, value: 3, values: [3]}
  - {id: o, type: sink.jsonl, path: /dev/null}
edges:
  - s -> a -> b -> c -> o
)",
                                 "t.yaml", test::builtin_registry(), {}, diags));
  CHECK(diags.to_string() ==
        "t.yaml:4:59: error: value: invalid regular expression: missing ): (unclosed\n"
        "t.yaml:5:5: error: op 'in' needs 'values': a list to look in\n"
        "t.yaml:5:54: error: op 'in' takes no 'value' (it takes 'values')\n"
        "t.yaml:6:65: error: 'values' is for op 'in' and 'not_in', not 'eq'\n");
}

TEST_CASE(
    "filter compares text that is a number (a scraped price) with a number as numbers, and warns of values that are "
    "not numbers",
    "[run]") {
  TempDir dir;
  auto kept = [&](const std::string& condition, std::vector<std::string> notices = {},
                  const std::string& prices = R"("100", "19.99", "5", " 7 ", "-3e1", "+2", "1,299.00", "abc", "inf")") {
    RunReport report = run_pipeline(test::plan_of(fmt::format(R"(pipeline: f
nodes:
  - {{id: src, type: source.list, field: price, urls: [{}]}}
  - {{id: keep, type: filter, field: price, {}}}
  - {{id: out, type: sink.jsonl, path: {}}}
edges:
  - src -> keep -> out
)",
                                                              prices, condition, dir.file("out.jsonl"))));
    REQUIRE(report.errors.empty());
    std::vector<std::string> messages;
    for (const auto& n : report.notices) messages.push_back(n.message);
    CHECK(messages == notices);
    std::string out;
    for (const auto& line : test::lines_of(test::read_file(dir.file("out.jsonl"))))
      out += line.substr(10, line.size() - 12) + "|";
    return out;
  };
  const std::string not_numbers =
      "3 records had a 'price' that is not a number (the first: '1,299.00'), so 'op: {}' with {} let none of them "
      "through; have the parse node read it as a number: {{select: ..., type: number}}";
  // As text, "100" < "20" and "5" > "20".
  CHECK(kept("op: lt, value: 20", {fmt::format(fmt::runtime(not_numbers), "lt", 20)}) == "19.99|5| 7 |-3e1|+2|");
  CHECK(kept("op: ge, value: 20", {fmt::format(fmt::runtime(not_numbers), "ge", 20)}) == "100|");
  CHECK(kept("op: le, value: 5.0", {fmt::format(fmt::runtime(not_numbers), "le", 5)}) == "5|-3e1|+2|");
  CHECK(kept("op: gt, value: -30", {fmt::format(fmt::runtime(not_numbers), "gt", -30)}) == "100|19.99|5| 7 |+2|");
  CHECK(kept("op: eq, value: 7") == " 7 |");
  CHECK(kept("op: in, values: [5, 100, abc]") == "100|5|abc|");
  CHECK(kept("op: ne, value: 5") == "100|19.99| 7 |-3e1|+2|1,299.00|abc|inf|");
  // Text against text stays text.
  CHECK(kept("op: lt, value: '2'") == "100|19.99| 7 |-3e1|+2|1,299.00|");
  CHECK(kept("op: eq, value: '5.0'") == "");
  // A long value is quoted cut short, before a character rather than inside one.
  std::string long_price = "a";
  for (int i = 0; i < 40; ++i) long_price += "\u00e9";
  std::string quoted = "a";
  for (int i = 0; i < 29; ++i) quoted += "\u00e9";
  CHECK(kept("op: gt, value: 1",
             {fmt::format("1 record had a 'price' that is not a number (the first: '{}...'), so 'op: gt' with 1 let "
                          "none of them through; have the parse node read it as a number: {{select: ..., "
                          "type: number}}",
                          quoted)},
             "\"" + long_price + "\", 3") == "3|");
}

TEST_CASE("distinct lets the first record of each key through and drops the repeats, behind a limit too", "[run]") {
  TempDir dir;
  // 3,000 lines, 1,000 URLs each three times, in three passes: u1..u1000, u1..u1000, u1..u1000.
  std::string list;
  for (int pass = 0; pass < 3; ++pass)
    for (int i = 1; i <= 1000; ++i) list += fmt::format("https://shop.example/item/{}\n", i);
  test::write_file(dir.file("urls.txt"), list);
  auto run = [&](const std::string& key) {
    std::filesystem::remove(dir.file("out.jsonl"));
    std::filesystem::remove(dir.file("bad.jsonl"));
    RunReport report = run_pipeline(
        test::plan_of(fmt::format(R"(pipeline: d
settings: {{batch: 7}}
nodes:
  - {{id: src, type: source.list, file: {}}}
  - {{id: lim, type: limit, max_in_flight: 5}}
  - {{id: tag, type: set, fields: {{colour: red}}}}
  - {{id: once, type: distinct, on_error: route, {}}}
  - {{id: out, type: sink.jsonl, path: {}, fields: [url]}}
  - {{id: bad, type: sink.jsonl, path: {}}}
edges:
  - src -> lim -> tag -> once -> out
  - once.error -> bad
)",
                                  dir.file("urls.txt"), key, dir.file("out.jsonl"), dir.file("bad.jsonl"))));
    REQUIRE(report.errors.empty());  // and every limit slot came back: the repeats released theirs
    CHECK(test::stats_of(report, "once").records_in == 3000);
    return test::lines_of(test::read_file(dir.file("out.jsonl")));
  };
  SECTION("by default the url: each URL once, in the order first seen") {
    auto lines = run("key: \"{url}\"");
    REQUIRE(lines.size() == 1000);
    CHECK(lines.front() == R"({"url":"https://shop.example/item/1"})");
    CHECK(lines.back() == R"({"url":"https://shop.example/item/1000"})");
  }
  SECTION("a key every record shares: only the first goes through") {
    CHECK(run("key: \"{colour}\"") == std::vector<std::string>{R"({"url":"https://shop.example/item/1"})"});
  }
  SECTION("a record with none of the key's fields fails, naming the key") {
    CHECK(run("key: \"{missing}/{gone}\"").empty());
    auto bad = test::lines_of(test::read_file(dir.file("bad.jsonl")));
    REQUIRE(bad.size() == 3000);
    CHECK(bad[0].find("distinct: the record has none of the fields of its key '{missing}/{gone}'") !=
          std::string::npos);
  }
}

TEST_CASE("templates write a field percent-encoded for a URL with {field:url} and as JSON with {field:json}", "[run]") {
  // Before, a search term with '&' or '#' cut the URL it was put in, and a quote broke a JSON body.
  TempDir dir;
  test::write_file(dir.file("terms.txt"), "brass lamp\nR&D #1\nsay \"hi\"/caf\xc3\xa9\n");
  RunReport report = run_pipeline(test::plan_of(fmt::format(R"(pipeline: templates
nodes:
  - {{id: terms, type: source.list, file: {}, field: term}}
  - id: query
    type: set
    fields:
      url: "https://shop.example/search?q={{term:url}}&page=1"
      body: '{{{{"q": {{term:json}}, "n": {{n:json}}, "none": {{nope:json}}}}}}'
  - {{id: out, type: sink.jsonl, path: {}, fields: [url, body]}}
edges:
  - terms -> query -> out
)",
                                                            dir.file("terms.txt"), dir.file("out.jsonl"))));
  REQUIRE(report.errors.empty());
  CHECK(test::read_file(dir.file("out.jsonl")) ==
        "{\"url\":\"https://shop.example/search?q=brass%20lamp&page=1\",\"body\":\"{\\\"q\\\": \\\"brass lamp\\\", "
        "\\\"n\\\": null, \\\"none\\\": null}\"}\n"
        "{\"url\":\"https://shop.example/search?q=R%26D%20%231&page=1\",\"body\":\"{\\\"q\\\": \\\"R&D #1\\\", "
        "\\\"n\\\": null, \\\"none\\\": null}\"}\n"
        "{\"url\":\"https://shop.example/search?q=say%20%22hi%22%2Fcaf%C3%A9&page=1\",\"body\":\"{\\\"q\\\": "
        "\\\"say \\\\\\\"hi\\\\\\\"/caf\xc3\xa9\\\", \\\"n\\\": null, \\\"none\\\": null}\"}\n");
  // Another format is an error at its place.
  Diagnostics diags;
  CHECK_FALSE(load_pipeline_text(R"(pipeline: t
nodes:
  - {id: s, type: source.list, urls: [a]}
  - {id: q, type: set, fields: {u: "x={url:jsn}"}}
  - {id: o, type: sink.jsonl, path: /dev/null}
edges:
  - s -> q -> o
)",
                                 "t.yaml", test::builtin_registry(), {}, diags));
  CHECK(diags.to_string() ==
        "t.yaml:4:33: error: fields.u: unknown format 'jsn' in '{url:jsn}' (url, json, file, hash, lower, upper or trim)\n");
}

TEST_CASE("a null field renders as empty text, as a missing one does, and as null with :json", "[run]") {
  // Before, it rendered as "null": a header If-None-Match: "{header_etag}" sent "null" for a page
  // without an ETag, and a search URL searched for "null".
  Record r;
  r.set("none", Value());
  r.set("n", Value(3));
  auto t = FieldTemplate::compile("[{none}][{none:url}][{none:json}][{missing}][{n}]");
  REQUIRE(t);
  CHECK(t->render(r) == "[][][null][][3]");
}

TEST_CASE("source.list reads a file's lines lazily, skipping blank and comment lines and a byte order mark", "[run]") {
  TempDir dir;
  // A file saved by a Windows editor: UTF-8 byte order mark, CRLF line ends.
  test::write_file(dir.file("urls.txt"),
                   "\xEF\xBB\xBFhttps://a.example/1\r\n# seeds\n\n  https://a.example/2  \r\n#x\nhttps://a.example/3");
  std::string out = dir.file("out.jsonl");
  Plan plan = test::plan_of(
      chain(fmt::format("  - id: src\n    type: source.list\n    file: {}", dir.file("urls.txt")), "", out) +
      "edges:\n  - src -> out\n");
  RunReport report = run_pipeline(plan);
  REQUIRE(report.errors.empty());
  CHECK(test::read_file(out) ==
        "{\"url\":\"https://a.example/1\"}\n{\"url\":\"https://a.example/2\"}\n{\"url\":\"https://a.example/3\"}\n");
}

TEST_CASE("source.csv reads RFC 4180 rows as spreadsheets write them, named by the header", "[run]") {
  TempDir dir;
  // A byte order mark, CRLF line ends, a blank line, quotes doubled, a delimiter and a line break
  // inside quoted cells, a typed column with an empty cell.
  test::write_file(dir.file("in.csv"),
                   "\xEF\xBB\xBFsku,name,price,rank\r\n"
                   "SL-1,\"Blue, big\",12.5,1\r\n"
                   "\r\n"
                   "SL-2,\"Say \"\"hi\"\"\",,2\r\n"
                   "SL-3,\"two\r\nlines\", 3 ,3\r\n"
                   "0042,plain,0.5,4");
  auto rows = [&](const std::string& config) {
    RunReport report = run_pipeline(test::plan_of(fmt::format(R"(pipeline: c
nodes:
  - {{id: rows, type: source.csv, path: {}, {}}}
  - {{id: out, type: sink.jsonl, path: {}}}
edges:
  - rows -> out
)",
                                                              dir.file("in.csv"), config, dir.file("out.jsonl"))));
    REQUIRE(report.errors.size() <= 1);
    if (!report.errors.empty()) return std::vector<std::string>{report.errors[0].to_string()};
    return test::lines_of(test::read_file(dir.file("out.jsonl")));
  };
  CHECK(rows("types: {price: number, rank: int}") ==
        std::vector<std::string>{R"({"sku":"SL-1","name":"Blue, big","price":12.5,"rank":1})",
                                 R"({"sku":"SL-2","name":"Say \"hi\"","price":null,"rank":2})",
                                 R"({"sku":"SL-3","name":"two\nlines","price":3,"rank":3})",
                                 R"({"sku":"0042","name":"plain","price":0.5,"rank":4})"});
  // Untyped columns stay text: a SKU keeps its leading zeros.
  CHECK(rows("fields: [a, b, c, d]")[3] == R"({"a":"0042","b":"plain","c":"0.5","d":"4"})");

  SECTION("without a header, with another delimiter") {
    test::write_file(dir.file("in.csv"), "x;1\ny;2\n");
    CHECK(rows("delimiter: ';', header: false, fields: [name, n], types: {n: int}") ==
          std::vector<std::string>{R"({"name":"x","n":1})", R"({"name":"y","n":2})"});
  }
  SECTION("date columns become ISO 8601, read by date_order; integer is int") {
    test::write_file(dir.file("in.csv"), "day,at,n\n05/03/2026,\"March 5, 2026 2:30 PM\",1\n13.03.2026,,2\n");
    CHECK(rows("types: {day: date, at: date, n: integer}, date_order: dmy") ==
          std::vector<std::string>{R"({"day":"2026-03-05","at":"2026-03-05T14:30:00","n":1})",
                                   R"({"day":"2026-03-13","at":null,"n":2})"});
    const std::string f = dir.file("in.csv");
    CHECK(rows("types: {day: date}")[0] ==
          fmt::format("node 'rows': line 2 of '{}', column 'day': '05/03/2026' is not a date (day and month could be "
                      "either way round: set date_order: dmy or mdy)",
                      f));
    test::write_file(f, "day\nsoon\n");
    CHECK(rows("types: {day: date}")[0] ==
          fmt::format("node 'rows': line 2 of '{}', column 'day': 'soon' is not a date", f));
  }
  SECTION("a bad file fails the run naming the file, the line and the column") {
    const std::string f = dir.file("in.csv");
    test::write_file(f, "a,b\n1,2\n3\n");
    CHECK(rows("header: true")[0] == fmt::format("node 'rows': line 3 of '{}' has 1 cells, expected 2 (a, b)", f));
    test::write_file(f, "a,b\n1,x\n");
    CHECK(rows("types: {b: number}")[0] ==
          fmt::format("node 'rows': line 2 of '{}', column 'b': 'x' is not a number", f));
    test::write_file(f, "a,b\n1,\"open\n2,3\n");
    CHECK(rows("header: true")[0] ==
          fmt::format("node 'rows': line 2 of '{}': a quoted cell is not closed before the end of the file", f));
    test::write_file(f, "a,a\n1,2\n");
    CHECK(rows("header: true")[0] ==
          fmt::format("node 'rows': '{}' has two columns named 'a': name them in 'fields'", f));
    CHECK(rows("types: {c: int}")[0] ==
          fmt::format("node 'rows': '{}' has two columns named 'a': name them in 'fields'", f));
    test::write_file(f, "a,b\n1,2\n");
    CHECK(rows("types: {c: int}")[0] == fmt::format("node 'rows': types: 'c' is not a column of '{}' (a, b)", f));
    test::write_file(f, "");
    CHECK(rows("header: true")[0] == fmt::format("node 'rows': '{}' is empty: expected a header line", f));
    const char utf16[] =
        "\xFF\xFE"
        "a\0,\0b\0\n\0";  // "a,b\n" in UTF-16LE with its byte order mark
    test::write_file(f, std::string(utf16, sizeof utf16 - 1));
    CHECK(rows("header: true")[0] ==
          fmt::format("node 'rows': '{}' is UTF-16 (Excel's \"Unicode text\"): save it as \"CSV UTF-8\"", f));
  }
}

TEST_CASE("source.list reads standard input with file: '-'", "[run]") {
  TempDir dir;
  test::write_file(dir.file("in.txt"), "a\n\n# comment\nb\n");
  const int saved = ::dup(STDIN_FILENO);
  const int in = ::open(dir.file("in.txt").c_str(), O_RDONLY);
  ::dup2(in, STDIN_FILENO);
  ::close(in);
  RunReport report = run_pipeline(test::plan_of(chain(R"(  - id: src
    type: source.list
    file: "-")",
                                                      "", dir.file("out.jsonl")) +
                                                "edges:\n  - src -> out\n"));
  ::dup2(saved, STDIN_FILENO);
  ::close(saved);
  CHECK(report.status == RunStatus::succeeded);
  CHECK(test::read_file(dir.file("out.jsonl")) == "{\"url\":\"a\"}\n{\"url\":\"b\"}\n");
}

TEST_CASE("source.list stops at a line longer than 1 MiB with an error naming the line", "[run]") {
  // A binary file or /dev/zero is not read into one endless line: the source fails (and with it
  // the run, as any failed node does) at the first line over the bound.
  TempDir dir;
  test::write_file(dir.file("urls.txt"),
                   "https://a.example/1\n" + std::string((1 << 20) + 1, 'x') + "\nhttps://a.example/3\n");
  std::string out = dir.file("out.jsonl");
  Plan plan = test::plan_of(
      chain(fmt::format("  - id: src\n    type: source.list\n    file: {}", dir.file("urls.txt")), "", out) +
      "edges:\n  - src -> out\n");
  RunReport report = run_pipeline(plan);
  CHECK(report.status == RunStatus::failed);
  REQUIRE(report.errors.size() == 1);
  CHECK(report.errors[0].to_string() ==
        fmt::format("node 'src': line 2 of '{}' is longer than 1 MiB: expected text with one value per line",
                    dir.file("urls.txt")));
}

TEST_CASE("source.jsonl reads a JSON object per line: what sink.jsonl writes comes back the same", "[run]") {
  TempDir dir;
  // A byte order mark, CRLF line ends, blank lines, nested values, a name given twice (the last
  // wins), an integer beyond int64 (its digits), escapes.
  test::write_file(dir.file("in.jsonl"),
                   "\xEF\xBB\xBF{\"sku\":\"A-1\",\"n\":1,\"o\":{\"k\":[1,{\"z\":null}]},\"id\":12345678901234567890,"
                   "\"a\":1,\"a\":2}\r\n"
                   "\n   \r\n"
                   "{\"sku\":\"A-2\",\"name\":\"caf\\u00e9 \\\"x\\\"\",\"price\":19.9,\"ok\":true}");
  auto lines = [&](const std::string& in, const std::string& out) {
    RunReport report = run_pipeline(test::plan_of(fmt::format(R"(pipeline: j
nodes:
  - {{id: rows, type: source.jsonl, path: {}}}
  - {{id: out, type: sink.jsonl, path: {}}}
edges:
  - rows -> out
)",
                                                              in, out)));
    REQUIRE(report.errors.size() <= 1);
    if (!report.errors.empty()) return std::vector<std::string>{report.errors[0].to_string()};
    return test::lines_of(test::read_file(out));
  };
  const std::vector<std::string> expected{
      R"({"sku":"A-1","n":1,"o":{"k":[1,{"z":null}]},"id":"12345678901234567890","a":2})",
      R"({"sku":"A-2","name":"café \"x\"","price":19.9,"ok":true})"};
  CHECK(lines(dir.file("in.jsonl"), dir.file("out.jsonl")) == expected);
  // sink.jsonl's output read again gives the same lines.
  CHECK(lines(dir.file("out.jsonl"), dir.file("again.jsonl")) == expected);

  SECTION("gzipped, and a line of several MiB (a page's body) is read whole") {
    const std::string body(5 << 20, 'b');
    test::write_file(dir.file("big.jsonl.gz"), test::gzip(fmt::format("{{\"url\":\"u\",\"body\":\"{}\"}}\n", body)));
    const auto out = lines(dir.file("big.jsonl.gz"), dir.file("out.jsonl"));
    REQUIRE(out.size() == 1);
    CHECK(out[0] == fmt::format(R"({{"url":"u","body":"{}"}})", body));
  }
  SECTION("a line that is not a JSON object fails the run, naming its line") {
    test::write_file(dir.file("bad.jsonl"), "{\"a\":1}\n[1, 2]\n");
    CHECK(lines(dir.file("bad.jsonl"), dir.file("out.jsonl")) ==
          std::vector<std::string>{
              fmt::format("node 'rows': line 2 of '{}': expected a JSON object, got an array", dir.file("bad.jsonl"))});
    test::write_file(dir.file("bad.jsonl"), "{\"a\":1}\n\n{\"a\": 2,\n");
    const auto cut = lines(dir.file("bad.jsonl"), dir.file("out.jsonl"));
    REQUIRE(cut.size() == 1);
    CHECK(cut[0].starts_with(fmt::format("node 'rows': line 3 of '{}': invalid JSON: ", dir.file("bad.jsonl"))));
  }
  SECTION("an object of many members, some given twice, is read in linear work") {
    std::string object = "{";
    for (int i = 0; i < 15000; ++i) object += fmt::format("\"f{}\":{},", i, i);
    for (int i = 0; i < 5000; ++i) object += fmt::format("\"f{}\":{},", 14999 - i, 15000 + i);  // the last ones again
    object.back() = '}';
    test::write_file(dir.file("wide.jsonl"), object + "\n");
    const auto out = lines(dir.file("wide.jsonl"), dir.file("out.jsonl"));
    REQUIRE(out.size() == 1);
    CHECK(out[0].starts_with(R"({"f0":0,"f1":1,)"));
    CHECK(test::contains(out[0], R"("f9999":9999,"f10000":19999,)"));
    CHECK(out[0].ends_with(R"("f14998":15001,"f14999":15000})"));
  }
}

TEST_CASE("source.list and source.csv read a gzipped file (or stream) as the text it holds", "[run][gzip]") {
  TempDir dir;
  // 200,000 lines (3.8 MB of text, more than the reader's buffer) in two gzip members, as
  // `gzip a >> f; gzip b >> f` makes; the name does not matter, the first bytes do.
  std::string first, second;
  for (int i = 0; i < 100000; ++i) first += fmt::format("https://a.example/{}\n", i);
  for (int i = 100000; i < 200000; ++i) second += fmt::format("https://a.example/{}\n", i);
  const std::string zipped = test::gzip(first) + test::gzip(second, 1) + std::string(512, '\0');  // and padding
  test::write_file(dir.file("urls"), zipped);
  auto run_list = [&](const std::string& file) {
    Plan plan = test::plan_of(
        chain(fmt::format("  - id: src\n    type: source.list\n    file: {}", file), "", dir.file("out.jsonl")) +
        "edges:\n  - src -> out\n");
    return run_pipeline(plan);
  };
  RunReport report = run_list(dir.file("urls"));
  REQUIRE(report.errors.empty());
  const auto out = test::lines_of(test::read_file(dir.file("out.jsonl")));
  REQUIRE(out.size() == 200000);
  CHECK(out[0] == R"({"url":"https://a.example/0"})");
  CHECK(out[199999] == R"({"url":"https://a.example/199999"})");

  SECTION("a CSV file, its quoted line breaks across the reader's refills") {
    std::string csv = "sku,name\n";
    for (int i = 0; i < 50000; ++i) csv += fmt::format("S{},\"two\nlines {}\"\n", i, i);
    test::write_file(dir.file("in.csv.gz"), test::gzip(csv));
    RunReport r = run_pipeline(test::plan_of(fmt::format(R"(pipeline: c
nodes:
  - {{id: rows, type: source.csv, path: {}}}
  - {{id: out, type: sink.jsonl, path: {}}}
edges:
  - rows -> out
)",
                                                         dir.file("in.csv.gz"), dir.file("out.jsonl"))));
    REQUIRE(r.errors.empty());
    const auto rows = test::lines_of(test::read_file(dir.file("out.jsonl")));
    REQUIRE(rows.size() == 50000);
    CHECK(rows[49999] == R"({"sku":"S49999","name":"two\nlines 49999"})");
  }
  SECTION("a gzip file cut off, or corrupt, fails the source naming the file") {
    test::write_file(dir.file("cut.gz"), zipped.substr(0, zipped.size() / 3));
    report = run_list(dir.file("cut.gz"));
    REQUIRE(report.errors.size() == 1);
    CHECK(report.errors[0].to_string() ==
          fmt::format("node 'src': '{}' is cut off: its gzip data ends before the file it holds", dir.file("cut.gz")));
    std::string corrupt = zipped;
    corrupt[corrupt.size() / 2] ^= 0x55;
    test::write_file(dir.file("bad.gz"), corrupt);
    report = run_list(dir.file("bad.gz"));
    REQUIRE(report.errors.size() == 1);
    CHECK(report.errors[0].to_string().starts_with(
        fmt::format("node 'src': '{}' is not a valid gzip file: ", dir.file("bad.gz"))));
  }
  SECTION("standard input: a pipe that brings the gzip data in pieces, the first of one byte") {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    const int saved = ::dup(STDIN_FILENO);
    ::dup2(fds[0], STDIN_FILENO);
    ::close(fds[0]);
    std::thread writer([&zipped, fd = fds[1]] {
      // One byte first: the reader must wait for the second to tell gzip data from text.
      for (std::size_t at = 0, size = 1; at < zipped.size(); at += size, size = 100000) {
        const std::string_view piece = std::string_view(zipped).substr(at, size);
        for (std::size_t done = 0; done < piece.size();) {
          const ssize_t n = ::write(fd, piece.data() + done, piece.size() - done);
          if (n <= 0) break;
          done += static_cast<std::size_t>(n);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(15));
      }
      ::close(fd);
    });
    report = run_list("\"-\"");
    writer.join();
    ::dup2(saved, STDIN_FILENO);
    ::close(saved);
    REQUIRE(report.errors.empty());
    CHECK(test::lines_of(test::read_file(dir.file("out.jsonl"))).size() == 200000);
  }
}

TEST_CASE("a source that cannot open its file fails the run before anything starts", "[run]") {
  TempDir dir;
  std::string out = dir.file("out.jsonl");
  Plan plan = test::plan_of(chain("  - id: src\n    type: source.list\n    file: /nonexistent/urls.txt", "", out) +
                            "edges:\n  - src -> out\n");
  RunReport report = run_pipeline(plan);
  CHECK(report.status == RunStatus::failed);
  CHECK(report.exit_code() == 1);
  REQUIRE(report.errors.size() == 1);
  CHECK(report.errors[0].to_string() == "node 'src': cannot open '/nonexistent/urls.txt': No such file or directory");
}

TEST_CASE("a failing node cancels the run: later records are not processed and the run ends promptly", "[run]") {
  TempDir dir;
  std::string out = dir.file("out.jsonl");
  Plan plan = test::plan_of(chain(R"(  - id: src
    type: source.list
    template: "https://x.example/{n}"
    to: 100000000)",
                                  R"(  - id: boom
    type: test.fail
    equals: 50
    message: "exploded on purpose")",
                                  out, "batch: 10, max_pending: 4") +
                            "edges:\n  - src -> boom -> out\n");
  RunReport report = run_pipeline(plan);
  CHECK(report.status == RunStatus::failed);
  CHECK(report.exit_code() == 1);
  REQUIRE(report.errors.size() == 1);
  CHECK(report.errors[0].to_string() == "node 'boom': record 'https://x.example/50': exploded on purpose");
  // The source stopped within its in-flight bound instead of producing 100 million records.
  CHECK(test::stats_of(report, "src").records_out <= 50 + 10 * 6);
  CHECK(test::stats_of(report, "boom").records_in <= 50);
  CHECK(test::stats_of(report, "boom").errors == 1);
  auto lines = test::lines_of(test::read_file(out));
  CHECK(lines.size() < 50);
  CHECK(std::none_of(lines.begin(), lines.end(), [](const std::string& l) { return l.find("\"n\":50}") != l.npos; }));
}

TEST_CASE("errors of nodes that fail concurrently are all reported, not only the first", "[run]") {
  TempDir dir;
  Plan plan = test::plan_of(fmt::format(R"(pipeline: concurrent
settings: {{batch: 1, threads: 2}}
nodes:
  - id: src
    type: source.list
    urls: [a, b, c]
    field: name
  - id: left
    type: test.fail
    field: name
    equals: a
    delay: 300ms
    message: left failed
  - id: right
    type: test.fail
    field: name
    equals: a
    delay: 300ms
    message: right failed
  - id: out
    type: sink.jsonl
    path: {}
edges:
  - src -> left -> out
  - src -> right -> out
)",
                                        dir.file("out.jsonl")));
  RunReport report = run_pipeline(plan);
  CHECK(report.status == RunStatus::failed);
  std::vector<std::string> errors;
  for (const auto& e : report.errors) errors.push_back(e.to_string());
  std::sort(errors.begin(), errors.end());
  REQUIRE(errors.size() == 2);
  CHECK(errors[0] == "node 'left': record '#0': left failed");
  CHECK(errors[1] == "node 'right': record '#0': right failed");
}

TEST_CASE("on_error: skip counts the failure, drops the record and keeps going", "[run]") {
  TempDir dir;
  std::string out = dir.file("out.jsonl");
  Plan plan = test::plan_of(chain(R"(  - id: src
    type: source.list
    template: "u{n}"
    to: 100)",
                                  R"(  - id: boom
    type: test.fail
    equals: 7
    on_error: skip)",
                                  out) +
                            "edges:\n  - src -> boom -> out\n");
  RunReport report = run_pipeline(plan);
  CHECK(report.status == RunStatus::succeeded);
  CHECK(report.errors.empty());
  CHECK(test::stats_of(report, "boom").errors == 1);
  CHECK(test::stats_of(report, "boom").records_out == 99);
  auto lines = test::lines_of(test::read_file(out));
  CHECK(lines.size() == 99);
  CHECK(std::find(lines.begin(), lines.end(), "{\"url\":\"u7\",\"n\":7}") == lines.end());
  // The report says why: the record and its message.
  REQUIRE(report.skipped.size() == 1);
  CHECK(report.skipped[0].node == "boom");
  CHECK(report.skipped[0].record == "u7");
  CHECK(report.skipped[0].message == "injected failure");
  CHECK(report.skipped[0].count == 1);
}

TEST_CASE("skipped errors are grouped by kind: the record's text and the detail after ': ' do not split them",
          "[run]") {
  // Before, on_error: skip only counted: an unattended run said "errors 3000" and never why.
  TempDir dir;
  std::string out = dir.file("out.jsonl");
  Plan plan = test::plan_of(chain(R"(  - id: src
    type: source.list
    template: "https://shop.example/p/{n}"
    to: 40)",
                                  R"(  - id: slow
    type: test.fail
    message: "timeout: Operation timed out after {n} milliseconds"
    on_error: skip
  - id: status
    type: test.fail
    message: "HTTP {n}"
    on_error: skip
  - id: page
    type: test.fail
    message: "'{url}' is not HTML"
    on_error: skip
  - id: odd
    type: test.fail
    equals: 3
    message: "HTTP 404"
    on_error: skip
  - id: dns
    type: test.fail
    message: "dns: Could not resolve host: h{n}.example"
    on_error: skip)",
                                  out) +
                            "edges:\n  - src -> slow -> out\n  - src -> status -> out\n  - src -> page -> out\n"
                            "  - src -> odd -> out\n  - src -> dns -> out\n");
  RunReport report = run_pipeline(plan);
  CHECK(report.status == RunStatus::succeeded);
  std::map<std::string, std::vector<SkippedErrors>> by_node;
  for (const auto& s : report.skipped) by_node[s.node].push_back(s);
  // The detail after the first ": " (libcurl's words) is not the kind.
  REQUIRE(by_node["slow"].size() == 1);
  CHECK(by_node["slow"][0].count == 40);
  CHECK(by_node["slow"][0].record == "https://shop.example/p/1");
  CHECK(by_node["slow"][0].message == "timeout: Operation timed out after 1 milliseconds");
  // Nor is the record's own text.
  REQUIRE(by_node["page"].size() == 1);
  CHECK(by_node["page"][0].count == 40);
  CHECK(by_node["page"][0].message == "'https://shop.example/p/1' is not HTML");
  // A status is: 16 kinds are kept, in the order they appeared, and the other 24 counted together.
  auto& status = by_node["status"];
  REQUIRE(status.size() == SkippedErrors::kGroupsPerNode + 1);
  std::set<std::string> kinds;
  for (std::size_t i = 0; i < SkippedErrors::kGroupsPerNode; ++i) {
    CHECK(status[i].count == 1);
    kinds.insert(status[i].message);
  }
  CHECK(kinds.size() == SkippedErrors::kGroupsPerNode);
  CHECK(status.back().message.empty());
  CHECK(status.back().record.empty());
  CHECK(status.back().count == 40 - SkippedErrors::kGroupsPerNode);
  // Nor is the host of a detail.
  REQUIRE(by_node["dns"].size() == 1);
  CHECK(by_node["dns"][0].count == 40);
  CHECK(by_node["dns"][0].message == "dns: Could not resolve host: h1.example");
  REQUIRE(by_node["odd"].size() == 1);
  CHECK(by_node["odd"][0].count == 1);
  CHECK(test::stats_of(report, "status").errors == 40);
}

TEST_CASE("a run's progress reports each kind of skipped error once, when it first happens", "[run]") {
  TempDir dir;
  Plan plan = test::plan_of(chain(R"(  - id: src
    type: source.list
    template: "u{n}"
    to: 30)",
                                  R"(  - id: boom
    type: test.fail
    message: "timeout: after {n} ms"
    delay: 10ms
    on_error: skip)",
                                  dir.file("out.jsonl"), "batch: 1") +
                            "edges:\n  - src -> boom -> out\n");
  std::mutex mutex;
  std::vector<SkippedErrors> seen;
  int calls = 0;
  RunOptions options;
  options.progress_interval = std::chrono::milliseconds(5);
  options.progress = [&](const RunProgress& p) {
    std::lock_guard lock(mutex);
    ++calls;
    seen.insert(seen.end(), p.new_skips.begin(), p.new_skips.end());
  };
  RunReport report = run_pipeline(plan, options);
  CHECK(report.status == RunStatus::succeeded);
  CHECK(calls > 5);  // the 30 records take 300 ms
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].node == "boom");
  CHECK(seen[0].record == "u1");
  CHECK(seen[0].message == "timeout: after 1 ms");
  REQUIRE(report.skipped.size() == 1);
  CHECK(report.skipped[0].count == 30);
}

TEST_CASE("on_error: route sends the failed record with its error to the error port", "[run]") {
  TempDir dir;
  Plan plan = test::plan_of(fmt::format(R"(pipeline: routed
nodes:
  - id: src
    type: source.list
    template: "u{{n}}"
    to: 20
  - id: boom
    type: test.fail
    equals: 7
    on_error: route
  - id: good
    type: sink.jsonl
    path: {}
  - id: bad
    type: sink.jsonl
    path: {}
  - id: picked
    type: sink.jsonl
    path: {}
    fields: [n, _error]
  - id: table
    type: store.sqlite
    path: {}
    table: failures
    columns: {{url: TEXT, message: TEXT}}
    fields: {{message: _error}}
edges:
  - src -> boom -> good
  - from: boom.error
    to: bad
  - boom.error -> picked
  - boom.error -> table
)",
                                        dir.file("good.jsonl"), dir.file("bad.jsonl"), dir.file("picked.jsonl"),
                                        dir.file("failures.db")));
  RunReport report = run_pipeline(plan);
  CHECK(report.status == RunStatus::succeeded);
  CHECK(test::lines_of(test::read_file(dir.file("good.jsonl"))).size() == 19);
  CHECK(test::read_file(dir.file("bad.jsonl")) ==
        "{\"url\":\"u7\",\"n\":7,\"_error\":{\"node\":\"boom\",\"message\":\"injected failure\"}}\n");
  // The attached error can be picked like a field: by sink.jsonl's `fields`, and as its message by
  // a store.sqlite column.
  CHECK(test::read_file(dir.file("picked.jsonl")) ==
        "{\"n\":7,\"_error\":{\"node\":\"boom\",\"message\":\"injected failure\"}}\n");
  CHECK(test::query(dir.file("failures.db"), "SELECT url, message FROM failures") ==
        std::vector<std::string>{"u7|injected failure"});
  CHECK(test::stats_of(report, "boom").errors == 1);
  CHECK(test::stats_of(report, "boom").records_out == 19);
}

TEST_CASE("fan-out gives every branch its own copy of each record", "[run]") {
  TempDir dir;
  Plan plan = test::plan_of(fmt::format(R"(pipeline: fanout
nodes:
  - id: src
    type: source.list
    urls: [a, b]
  - id: one
    type: set
    fields: {{branch: 1}}
  - id: two
    type: set
    fields: {{branch: 2}}
  - id: out1
    type: sink.jsonl
    path: {}
  - id: out2
    type: sink.jsonl
    path: {}
edges:
  - src -> one -> out1
  - src -> two -> out2
)",
                                        dir.file("1.jsonl"), dir.file("2.jsonl")));
  RunReport report = run_pipeline(plan);
  REQUIRE(report.errors.empty());
  CHECK(test::read_file(dir.file("1.jsonl")) == "{\"url\":\"a\",\"branch\":1}\n{\"url\":\"b\",\"branch\":1}\n");
  CHECK(test::read_file(dir.file("2.jsonl")) == "{\"url\":\"a\",\"branch\":2}\n{\"url\":\"b\",\"branch\":2}\n");
}

TEST_CASE("a sink that cannot write fails the run with the node id and the cause", "[run]") {
  Plan plan = test::plan_of(chain(R"(  - id: src
    type: source.list
    template: "u{n}"
    to: 100000)",
                                  "", "/dev/full") +
                            "edges:\n  - src -> out\n");
  RunReport report = run_pipeline(plan);
  CHECK(report.status == RunStatus::failed);
  REQUIRE_FALSE(report.errors.empty());
  CHECK(report.errors[0].to_string() == "node 'out': write to '/dev/full' failed: No space left on device");
}

TEST_CASE("a sink.jsonl file that cannot grow keeps whole lines and counts every line it lost", "[run]") {
  TempDir dir;
  const std::string path = dir.file("out.jsonl");
  auto on_error = GENERATE(std::string("fail"), std::string("skip"));
  Plan plan = test::plan_of(chain(R"(  - id: src
    type: source.list
    template: "u{n}"
    to: 20000)",
                                  "", path) +
                            "    buffer: 4KiB\n    on_error: " + on_error + "\nedges:\n  - src -> out\n");
  RunReport report = test::run_with_file_limit(plan, 100000);

  const std::string text = test::read_file(path);
  CHECK(text.size() <= 100000);
  CHECK(text.size() > 90000);
  REQUIRE_FALSE(text.empty());
  CHECK(text.back() == '\n');  // cut back to the last whole line
  auto lines = test::lines_of(text);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    REQUIRE(lines[i] == fmt::format("{{\"url\":\"u{0}\",\"n\":{0}}}", i + 1));
  }
  const auto& stats = test::stats_of(report, "out");
  CHECK(stats.records_in == lines.size() + stats.errors);
  CHECK(stats.errors > 0);
  if (on_error == "fail") {
    CHECK(report.status == RunStatus::failed);
    REQUIRE(report.errors.size() == 1);  // the close() that meets the same full file is not a second error
    CHECK(report.errors[0].to_string() == fmt::format("node 'out': write to '{}' failed: File too large", path));
    CHECK(report.skipped.empty());
  } else {
    CHECK(report.status == RunStatus::succeeded);
    CHECK(stats.records_in == 20000);
    // The lost lines are reported with their cause, not only counted.
    REQUIRE(report.skipped.size() == 1);
    CHECK(report.skipped[0].node == "out");
    CHECK(report.skipped[0].record.empty());
    CHECK(report.skipped[0].message == fmt::format("write to '{}' failed: File too large", path));
    CHECK(report.skipped[0].count == stats.errors);
  }
}

TEST_CASE("sink.jsonl and sink.csv write a path ending in .gz gzipped, a valid gzip file after every write",
          "[run][gzip]") {
  TempDir dir;
  auto run = [&](const std::string& sink, const std::string& path, const std::string& extra, int to) {
    return run_pipeline(test::plan_of(fmt::format(R"(pipeline: z
nodes:
  - {{id: src, type: source.list, template: "https://a.example/{{n}}", to: {}}}
  - {{id: out, type: {}, path: {}, buffer: 64KiB{}}}
edges:
  - src -> out
)",
                                                  to, sink, path, extra)));
  };
  auto gunzipped = [](const std::string& path) {
    std::string error;
    auto text = parse::gunzip(test::read_file(path), error, std::size_t{1} << 30);
    INFO(error);
    REQUIRE(text);
    return *text;
  };
  const std::string jsonl = dir.file("out.jsonl.gz");
  RunReport report = run("sink.jsonl", jsonl, "", 100000);
  REQUIRE(report.errors.empty());
  const std::string text = gunzipped(jsonl);
  auto lines = test::lines_of(text);
  REQUIRE(lines.size() == 100000);
  CHECK(lines[99999] == R"({"url":"https://a.example/100000","n":100000})");
  CHECK(test::read_file(jsonl).size() * 5 < text.size());  // compressed, in members of 64 KiB of text
  // append: true (and a resumed run) adds members; the file reads as all of its lines.
  report = run("sink.jsonl", jsonl, ", append: true", 10);
  REQUIRE(report.errors.empty());
  CHECK(test::lines_of(gunzipped(jsonl)).size() == 100010);
  // No record at all: an empty gzip file, not an empty file.
  report = run("sink.jsonl", jsonl, "", 0);
  REQUIRE(report.errors.empty());
  CHECK(gunzipped(jsonl).empty());
  CHECK_FALSE(test::read_file(jsonl).empty());
  // sink.csv: one header line, also in a file appended to.
  const std::string csv = dir.file("out.csv.gz");
  REQUIRE(run("sink.csv", csv, ", fields: [n, url]", 3).errors.empty());
  REQUIRE(run("sink.csv", csv, ", fields: [n, url], append: true", 2).errors.empty());
  CHECK(gunzipped(csv) ==
        "n,url\n1,https://a.example/1\n2,https://a.example/2\n3,https://a.example/3\n"
        "1,https://a.example/1\n2,https://a.example/2\n");
  // source.list reads back what sink.csv wrote: a line per row, and the header line.
  report = run_pipeline(test::plan_of(fmt::format(R"(pipeline: back
nodes:
  - {{id: src, type: source.list, file: {}}}
  - {{id: out, type: sink.jsonl, path: {}}}
edges:
  - src -> out
)",
                                                  csv, dir.file("back.jsonl"))));
  REQUIRE(report.errors.empty());
  CHECK(test::lines_of(test::read_file(dir.file("back.jsonl"))).size() == 6);
}

TEST_CASE("appending to a file whose last line has no line break starts a new line", "[run]") {
  TempDir dir;
  test::write_file(dir.file("out.jsonl"), "{\"old\":1}");
  test::write_file(dir.file("out.csv"), "n,url\n0,x");  // a sheet saved by an editor
  RunReport report = run_pipeline(test::plan_of(fmt::format(R"(pipeline: a
nodes:
  - {{id: src, type: source.list, template: "u{{n}}", to: 2}}
  - {{id: lines, type: sink.jsonl, path: {}, append: true}}
  - {{id: sheet, type: sink.csv, path: {}, append: true, fields: [n, url]}}
edges:
  - src -> lines
  - src -> sheet
)",
                                                            dir.file("out.jsonl"), dir.file("out.csv"))));
  REQUIRE(report.errors.empty());
  CHECK(test::read_file(dir.file("out.jsonl")) == "{\"old\":1}\n{\"url\":\"u1\",\"n\":1}\n{\"url\":\"u2\",\"n\":2}\n");
  CHECK(test::read_file(dir.file("out.csv")) == "n,url\n0,x\n1,u1\n2,u2\n");
}

TEST_CASE("a gzipped sink.jsonl file that cannot grow ends at a whole member and counts every line it lost", "[run]") {
  TempDir dir;
  const std::string path = dir.file("out.jsonl.gz");
  Plan plan = test::plan_of(chain(R"(  - id: src
    type: source.list
    template: "u{n}"
    to: 400000)",
                                  "", path) +
                            "    buffer: 64KiB\n    on_error: skip\nedges:\n  - src -> out\n");
  RunReport report = test::run_with_file_limit(plan, 100000);
  CHECK(report.status == RunStatus::succeeded);
  const std::string zipped = test::read_file(path);
  CHECK(zipped.size() <= 100000);
  std::string error;
  auto text = parse::gunzip(zipped, error, std::size_t{1} << 30);
  INFO(error);
  REQUIRE(text);  // whole members only
  auto lines = test::lines_of(*text);
  REQUIRE(lines.size() > 10000);
  for (std::size_t i = 0; i < lines.size(); ++i)
    REQUIRE(lines[i] == fmt::format("{{\"url\":\"u{0}\",\"n\":{0}}}", i + 1));
  const auto& stats = test::stats_of(report, "out");
  CHECK(stats.records_in == 400000);
  CHECK(stats.errors == 400000 - lines.size());
}

TEST_CASE("sink.csv writes RFC 4180 rows under a header, and keeps a spreadsheet from running scraped formulas",
          "[run]") {
  TempDir dir;
  test::execute(
      dir.file("in.db"),
      "CREATE TABLE t (id INTEGER, text TEXT, price REAL, raw BLOB, tags TEXT);"
      "INSERT INTO t VALUES (1, 'plain', 2.5, x'6869', NULL), (2, 'a, b', NULL, x'ff41', 'x'),"
      "(3, 'say \"hi\"', -1.5, NULL, NULL), (4, 'two' || char(10) || 'lines', 0, NULL, NULL),"
      "(5, '=HYPERLINK(\"http://evil\")', 1, NULL, NULL), (6, '-5', 1, NULL, NULL), (7, '@x', 1, NULL, NULL);");
  auto csv = [&](const std::string& config, bool append = false) {
    RunReport report = run_pipeline(test::plan_of(fmt::format(R"(pipeline: csv
nodes:
  - {{id: rows, type: source.sqlite, path: {}, query: "SELECT * FROM t ORDER BY id"}}
  - id: out
    type: sink.csv
    path: {}
    append: {}
    fields: [id, text, price, raw, missing, tags]
{}
edges:
  - rows -> out
)",
                                                              dir.file("in.db"), dir.file("out.csv"), append, config)));
    REQUIRE(report.errors.empty());
    return test::read_file(dir.file("out.csv"));
  };
  CHECK(csv("") ==
        "id,text,price,raw,missing,tags\n"
        "1,plain,2.5,hi,,\n"
        "2,\"a, b\",,\xEF\xBF\xBD"
        "A,,x\n"
        "3,\"say \"\"hi\"\"\",-1.5,,,\n"
        "4,\"two\nlines\",0,,,\n"
        "5,\"'=HYPERLINK(\"\"http://evil\"\")\",1,,,\n"
        "6,'-5,1,,,\n"
        "7,'@x,1,,,\n");
  SECTION("a tab, no header, formulas as they are; appending adds no second header") {
    CHECK(csv("    delimiter: \"\\t\"\n    header: false\n    escape_formulas: false") ==
          "1\tplain\t2.5\thi\t\t\n"
          "2\ta, b\t\t\xEF\xBF\xBD"
          "A\t\tx\n"
          "3\t\"say \"\"hi\"\"\"\t-1.5\t\t\t\n"
          "4\t\"two\nlines\"\t0\t\t\t\n"
          "5\t\"=HYPERLINK(\"\"http://evil\"\")\"\t1\t\t\t\n"
          "6\t-5\t1\t\t\t\n"
          "7\t@x\t1\t\t\t\n");
    const std::string once = csv("");
    CHECK(csv("", true) == once + once.substr(once.find('\n') + 1));
  }
  SECTION("a byte order mark for Excel starts a new file, not an appended one") {
    const std::string once = csv("    bom: true");
    CHECK(once.starts_with("\xEF\xBB\xBFid,text,"));
    CHECK(csv("    bom: true", true) == once + once.substr(once.find('\n') + 1));
  }
  SECTION("a row of one empty cell is written \"\", not as an empty line, which readers skip") {
    RunReport report = run_pipeline(test::plan_of(fmt::format(R"(pipeline: csv
nodes:
  - {{id: rows, type: source.sqlite, path: {}, query: "SELECT '' AS a UNION ALL SELECT NULL UNION ALL SELECT 'x'"}}
  - {{id: out, type: sink.csv, path: {}, fields: [a]}}
edges:
  - rows -> out
)",
                                                              dir.file("in.db"), dir.file("one.csv"))));
    REQUIRE(report.errors.empty());
    std::vector<std::string> rows = test::lines_of(test::read_file(dir.file("one.csv")));
    std::sort(rows.begin() + 1, rows.end());
    CHECK(rows == std::vector<std::string>{"a", "\"\"", "\"\"", "x"});
  }
  SECTION("a delimiter of more than one character, or a quote, is refused") {
    Diagnostics diags;
    CHECK_FALSE(load_pipeline_text(R"(pipeline: t
nodes:
  - {id: s, type: source.list, urls: [a]}
  - {id: o, type: sink.csv, fields: [url], delimiter: "::"}
edges:
  - s -> o
)",
                                   "t.yaml", test::builtin_registry(), {}, diags));
    CHECK(diags.to_string() ==
          "t.yaml:4:55: error: delimiter: must be one character other than a quote or a line break, got '::'\n");
  }
}

TEST_CASE("a sink.csv file that cannot grow ends at a whole row, also when cells hold line breaks", "[run]") {
  TempDir dir;
  const std::string path = dir.file("out.csv");
  Plan plan = test::plan_of(R"(pipeline: t
nodes:
  - {id: src, type: source.list, template: "u{n}", to: 20000}
  - {id: note, type: set, fields: {note: "two\nlines"}}
  - id: out
    type: sink.csv
    path: )" + path + R"(
    fields: [url, n, note]
    buffer: 4KiB
    on_error: skip
edges:
  - src -> note -> out
)");
  RunReport report = test::run_with_file_limit(plan, 100000);

  const std::string text = test::read_file(path);
  CHECK(text.size() > 90000);
  std::string expected = "url,n,note\n";
  std::size_t rows = 0;
  while (expected.size() < text.size()) expected += fmt::format("u{0},{0},\"two\nlines\"\n", ++rows);
  CHECK(text == expected);  // whole rows only: a line break inside a cell is no row end
  const auto& stats = test::stats_of(report, "out");
  CHECK(stats.records_in == 20000);
  CHECK(stats.errors == 20000 - rows);
}

TEST_CASE(
    "a transform's finish() comes once after its last process(), also when the run fails, and one that throws "
    "fails the run",
    "[run]") {
  TempDir dir;
  const std::string list = "  - id: src\n    type: source.list\n    template: \"u{n}\"\n    to: 1000\n";
  auto run = [&](const std::string& type, const std::string& sink_type) {
    Diagnostics diags;
    auto plan = load_pipeline_text(
        fmt::format("pipeline: t\nsettings: {{batch: 10}}\nnodes:\n{}  - id: mid\n    type: {}\n  - id: out\n    "
                    "type: {}\n{}edges:\n  - src -> mid -> out\n",
                    list, type, sink_type,
                    sink_type == "sink.jsonl" ? fmt::format("    path: {}\n", dir.file("out.jsonl")) : ""),
        "t.yaml", misbehaving_registry(), LoadOptions{{}, test::fixed_env()}, diags);
    REQUIRE(plan);
    FinishCounter::processed = 0;
    FinishCounter::processed_at_finish = -1;
    FinishCounter::finishes = 0;
    return run_pipeline(*plan);
  };
  SECTION("a run that succeeds") {
    RunReport report = run("count.finish", "sink.jsonl");
    CHECK(report.status == RunStatus::succeeded);
    CHECK(FinishCounter::finishes == 1);
    CHECK(FinishCounter::processed_at_finish == 1000);
    CHECK(test::stats_of(report, "out").records_in == 1000);
  }
  SECTION("a run that a sink fails") {
    RunReport report = run("count.finish", "bad.sink");
    CHECK(report.status == RunStatus::failed);
    CHECK(FinishCounter::finishes == 1);
    CHECK(FinishCounter::processed_at_finish == FinishCounter::processed.load());
  }
  SECTION("a finish() that throws") {
    RunReport report = run("bad.finish", "sink.jsonl");
    CHECK(report.status == RunStatus::failed);
    CHECK(FinishCounter::finishes == 1);
    REQUIRE(report.errors.size() == 1);
    CHECK(report.errors[0].to_string() == "node 'mid': finish() threw: an exception that is not a std::exception");
    CHECK(test::stats_of(report, "out").records_in == 1000);  // what was done before it is kept
  }
}

TEST_CASE("a sink that fails while more records are on their way to it: they are counted, and a notice says so",
          "[run]") {
  auto run = [](int records) {
    LateThrowingSink::wait_for = records;
    FinishCounter::processed = 0;
    Diagnostics diags;
    auto plan = load_pipeline_text(
        fmt::format("pipeline: t\nsettings: {{batch: 10, max_pending: 200}}\nnodes:\n  - id: src\n    type: "
                    "source.list\n    template: \"u{{n}}\"\n    to: {}\n  - id: mid\n    type: count.finish\n  - id: "
                    "out\n    type: late.bad.sink\nedges:\n  - src -> mid -> out\n",
                    records),
        "t.yaml", misbehaving_registry(), LoadOptions{{}, test::fixed_env()}, diags);
    REQUIRE(plan);
    RunReport report = run_pipeline(*plan);
    CHECK(report.status == RunStatus::failed);
    const auto& stats = test::stats_of(report, "out");
    CHECK(stats.records_in == static_cast<std::uint64_t>(records));
    CHECK(stats.errors == static_cast<std::uint64_t>(records));  // the first batch of 10, and what followed it
    REQUIRE(report.errors.size() == 1);
    CHECK(report.errors[0].to_string() == "node 'out': an exception that is not a std::exception");
    return test::notices_of(report, "out");
  };
  CHECK(run(1000) == std::vector<std::string>{"990 more records reached it after it failed and were not stored"});
  CHECK(run(11) == std::vector<std::string>{"1 more record reached it after it failed and was not stored"});
  CHECK(run(10).empty());
}

TEST_CASE("filter and set warn at the end of a field that no record had: a name mistyped fails nothing else", "[run]") {
  TempDir dir;
  auto notices = [&](const std::string& middle, const std::string& edges) {
    RunReport report = run_pipeline(test::plan_of(fmt::format(R"(pipeline: t
nodes:
  - id: src
    type: source.list
    template: "https://x.example/p/{{n}}"
    to: 20
{}
  - id: out
    type: sink.jsonl
    path: {}
edges:
  - {}
)",
                                                              middle, dir.file("out.jsonl"), edges)));
    REQUIRE(report.errors.empty());
    std::vector<std::string> messages;
    for (const auto& n : report.notices) messages.push_back(n.node + ": " + n.message);
    return messages;
  };
  CHECK(notices("  - {id: cheap, type: filter, field: prcie, op: lt, value: 10}\n"
                "  - {id: other, type: filter, field: nn, op: ne, value: 3}\n"
                "  - {id: fine, type: filter, field: n, op: ge, value: 0}",
                "src -> cheap -> out\n  - src -> other -> out\n  - src -> fine -> out") ==
        std::vector<std::string>{
            "cheap: no record had a field 'prcie' (or one that is not null), so 'op: lt' let none of them through",
            "other: no record had a field 'nn' (or one that is not null), so 'op: ne' let all of them through",
        });
  CHECK(notices("  - {id: tag, type: set, rename: {n: page, nn: pages}, remove: [url, body]}", "src -> tag -> out") ==
        std::vector<std::string>{
            "tag: rename: no record had a field 'nn' to rename to 'pages'",
            "tag: remove: no record had a field 'body'",
        });
}

TEST_CASE("node code that throws what is not a std::exception fails its node and the run, not the process", "[run]") {
  TempDir dir;
  const std::string sink = fmt::format("  - id: out\n    type: sink.jsonl\n    path: {}\n", dir.file("out.jsonl"));
  const std::string list = "  - id: src\n    type: source.list\n    template: \"u{n}\"\n    to: 1000\n";
  auto run = [&](const std::string& nodes, const std::string& edges) {
    Diagnostics diags;
    auto plan = load_pipeline_text("pipeline: t\nnodes:\n" + nodes + "edges:\n  - " + edges + "\n", "t.yaml",
                                   misbehaving_registry(), LoadOptions{{}, test::fixed_env()}, diags);
    REQUIRE(plan);
    return run_pipeline(*plan);
  };
  const std::string what = "an exception that is not a std::exception";
  SECTION("a source") {
    RunReport report = run("  - id: src\n    type: bad.source\n" + sink, "src -> out");
    CHECK(report.status == RunStatus::failed);
    REQUIRE(report.errors.size() == 1);
    CHECK(report.errors[0].to_string() == "node 'src': " + what);
  }
  SECTION("a sink") {
    RunReport report = run(list + "  - id: out\n    type: bad.sink\n", "src -> out");
    CHECK(report.status == RunStatus::failed);
    REQUIRE(report.errors.size() == 1);
    CHECK(report.errors[0].to_string() == "node 'out': " + what);
    const auto& stats = test::stats_of(report, "out");
    CHECK(stats.errors == stats.records_in);
  }
  SECTION("an async node's submit(), behind a limit: the slots come back and the run ends") {
    RunReport report =
        run(list + "  - id: lim\n    type: limit\n    max_in_flight: 4\n  - id: get\n    type: bad.submit\n" + sink,
            "src -> lim -> get -> out");
    CHECK(report.status == RunStatus::failed);
    REQUIRE_FALSE(report.errors.empty());
    CHECK(report.errors[0].to_string() == "node 'get': submit() threw: " + what);
    for (const auto& e : report.errors) CHECK(e.message.find("engine bug") == std::string::npos);
  }
  SECTION("an async node's start()") {
    RunReport report = run(list + "  - id: get\n    type: bad.start\n" + sink, "src -> get -> out");
    CHECK(report.status == RunStatus::failed);
    REQUIRE(report.errors.size() == 1);
    CHECK(report.errors[0].to_string() == "node 'get': could not start: " + what);
    CHECK(test::stats_of(report, "get").records_in == 0);
  }
}

TEST_CASE("a graceful stop ends the sources and commits every record they emitted", "[run]") {
  TempDir dir;
  std::string out = dir.file("out.jsonl");
  Plan plan = test::plan_of(chain(R"(  - id: src
    type: source.list
    template: "u{n}"
    to: 1000000000)",
                                  R"(  - id: tag
    type: set
    fields: {x: 1})",
                                  out, "batch: 100") +
                            "edges:\n  - src -> tag -> out\n");
  RunReport report = test::run_stopped_after(plan, std::chrono::milliseconds(200));
  CHECK(report.status == RunStatus::interrupted);
  CHECK(report.exit_code() == 130);
  CHECK(report.errors.empty());
  auto emitted = test::stats_of(report, "src").records_out;
  CHECK(emitted > 0);
  CHECK(emitted < 1000000000);
  CHECK(test::stats_of(report, "out").records_in == emitted);
  auto lines = test::lines_of(test::read_file(out));
  CHECK(lines.size() == emitted);
  CHECK(lines.back() == fmt::format("{{\"url\":\"u{}\",\"n\":{},\"x\":1}}", emitted, emitted));
}

TEST_CASE("a second stop request aborts the run like a failure but without errors", "[run]") {
  TempDir dir;
  Plan plan = test::plan_of(chain(R"(  - id: src
    type: source.list
    template: "u{n}"
    to: 1000000000)",
                                  "", dir.file("out.jsonl")) +
                            "edges:\n  - src -> out\n");
  RunReport report = test::run_stopped_after(plan, std::chrono::milliseconds(100), 15, 2);
  CHECK(report.status == RunStatus::interrupted);
  CHECK(report.exit_code() == 143);
  CHECK(report.errors.empty());
  // What reached the sink was written completely: every line is a whole record.
  auto lines = test::lines_of(test::read_file(dir.file("out.jsonl")));
  auto whole = std::count_if(lines.begin(), lines.end(), [](const std::string& l) { return l.back() == '}'; });
  CHECK(static_cast<std::size_t>(whole) == lines.size());
  CHECK(test::stats_of(report, "out").records_in == lines.size());
}

// Found by ThreadSanitizer (the tsan preset): a stop request acted on the graph's parts from the
// signal thread while the run's thread was still building them.
TEST_CASE("a stop request while the graph is being built is carried out once it is built", "[run]") {
  TempDir dir;
  std::string middle = "  - id: lim\n    type: limit\n    max_in_flight: 8\n";
  std::string edges = "edges:\n  - src -> lim";
  for (int i = 0; i < 40; ++i) {
    middle += fmt::format("  - id: s{}\n    type: set\n    fields: {{x{}: {}}}\n", i, i, i);
    edges += fmt::format(" -> s{}", i);
  }
  std::string out = dir.file("out.jsonl");
  Plan plan = test::plan_of(
      chain("  - id: src\n    type: source.list\n    template: \"u{n}\"\n    to: 1000000000", middle, out) + edges +
      " -> out\n");
  for (int round = 0; round < 12; ++round) {
    INFO("round " << round);
    // Round 0: before the run starts; then at moments that fall while the graph is built.
    RunReport report = test::run_stopped_after(plan, std::chrono::microseconds(round == 0 ? -1 : 100 * (round - 1)));
    CHECK(report.status == RunStatus::interrupted);
    CHECK(report.errors.empty());  // also: every slot of the limit came back
    // Records waiting at the limit are dropped by the stop (a resumed run redoes them); every
    // record the limit let through was written.
    auto emitted = test::stats_of(report, "src").records_out;
    auto lim = test::stats_of(report, "lim");
    if (round == 0) CHECK(emitted == 0);
    CHECK(lim.records_in == emitted);
    CHECK(lim.records_out + lim.dropped == emitted);
    CHECK(test::stats_of(report, "out").records_in == lim.records_out);
    CHECK(test::lines_of(test::read_file(out)).size() == lim.records_out);
  }
}

// Found by tools/soak.sh under ThreadSanitizer: a stop request that came as the run ended acted on
// the graph's parts from the signal thread while the run's thread was tearing them down (a limit's
// queue read as it was freed). Requests now end before the teardown; one that comes later finds
// the run finished, and the run counts as interrupted only when a request was acted on.
TEST_CASE("a stop request as the run ends acts on a whole graph or not at all", "[run][signal]") {
  TempDir dir;
  const std::string out = dir.file("out.jsonl");
  const std::string state = dir.file("state.db");
  constexpr int records = 3000;
  Plan plan = test::plan_of(
      chain(fmt::format("  - id: src\n    type: source.list\n    template: \"u{{n}}\"\n    to: {}", records),
            "  - id: lim\n    type: limit\n    max_in_flight: 8\n"
            "  - id: tag\n    type: set\n    fields: {x: 1}\n",
            out, "batch: 10, state: " + state) +
      "edges:\n  - src -> lim -> tag -> out\n");
  const auto started = std::chrono::steady_clock::now();
  REQUIRE(run_pipeline(plan).status == RunStatus::succeeded);
  const auto whole = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started);
  RunOptions resume;
  resume.resume = true;
  for (int round = 0; round < 40; ++round) {
    // Moments from 70% of an uninterrupted run's time to 130%: some while it works, some as it
    // ends, some after; every fourth round with two requests (stop, then cancel).
    const auto after = whole * (70 + round * 3 / 2) / 100;
    const int requests = round % 4 == 3 ? 2 : 1;
    INFO("round " << round << ", " << after.count() << " us of " << whole.count() << ", " << requests << " requests");
    std::filesystem::remove(out);
    RunReport report = test::run_stopped_after(plan, after, 2, requests);
    REQUIRE(report.errors.empty());
    const auto written = test::lines_of(test::read_file(out)).size();
    CHECK(test::stats_of(report, "out").records_in == written);
    if (report.status == RunStatus::succeeded) {
      CHECK(written == static_cast<std::size_t>(records));
      CHECK(run_pipeline(plan, resume).already_finished);  // the state says finished too
    } else {
      REQUIRE(report.status == RunStatus::interrupted);
      CHECK(report.stop_signal == 2);
      if (requests == 1) {
        // A graceful stop: what the limit let through was written, and --resume writes the rest.
        CHECK(test::stats_of(report, "lim").records_out == written);
        RunReport rest = run_pipeline(plan, resume);
        REQUIRE(rest.status == RunStatus::succeeded);
        std::set<std::string> seen;
        for (const auto& line : test::lines_of(test::read_file(out))) seen.insert(line);
        CHECK(seen.size() == static_cast<std::size_t>(records));
      }
    }
  }
}

TEST_CASE("records from one source through serial transforms reach the sink in source order", "[run]") {
  TempDir dir;
  std::string out = dir.file("out.jsonl");
  Plan plan = test::plan_of(chain(R"(  - id: src
    type: source.list
    template: "u{n}"
    to: 300000)",
                                  R"(  - id: tag
    type: set
    fields: {x: 1})",
                                  out, "batch: 100") +
                            "edges:\n  - src -> tag -> out\n");
  RunReport report = run_pipeline(plan);
  REQUIRE(report.errors.empty());
  auto lines = test::lines_of(test::read_file(out));
  REQUIRE(lines.size() == 300000);
  std::size_t out_of_order = 0;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    out_of_order += lines[i] != fmt::format("{{\"url\":\"u{0}\",\"n\":{0},\"x\":1}}", i + 1);
  }
  CHECK(out_of_order == 0);
}

TEST_CASE("max_duration stops the sources gracefully and the run still succeeds", "[run]") {
  TempDir dir;
  std::string out = dir.file("out.jsonl");
  Plan plan = test::plan_of(chain(R"(  - id: src
    type: source.list
    template: "u{n}"
    to: 1000000000)",
                                  "", out, "batch: 100, max_duration: 300ms") +
                            "edges:\n  - src -> out\n");
  RunReport report = run_pipeline(plan);
  CHECK(report.status == RunStatus::succeeded);
  CHECK(report.exit_code() == 0);
  auto emitted = test::stats_of(report, "src").records_out;
  CHECK(emitted > 0);
  CHECK(emitted < 1000000000);
  CHECK(test::lines_of(test::read_file(out)).size() == emitted);
}

TEST_CASE("a source waiting on a pipe that stays silent ends when the run stops", "[run]") {
  // `file: '-'` on a terminal, or a pipe whose writer is idle: before, the source sat in read()
  // and the stopping run (max_duration here, Ctrl-C alike) never ended.
  TempDir dir;
  const std::string fifo = dir.file("fifo");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const int writer = ::open(fifo.c_str(), O_RDWR);  // open for writing, and never closed during the run
  REQUIRE(writer >= 0);
  REQUIRE(::write(writer, "a\nb\n", 4) == 4);
  std::string out = dir.file("out.jsonl");
  Plan plan = test::plan_of(
      chain(fmt::format("  - id: src\n    type: source.list\n    file: {}", fifo), "", out, "max_duration: 300ms") +
      "edges:\n  - src -> out\n");
  auto started = std::chrono::steady_clock::now();
  RunReport report = run_pipeline(plan);
  ::close(writer);
  CHECK(report.status == RunStatus::succeeded);
  CHECK(test::read_file(out) == "{\"url\":\"a\"}\n{\"url\":\"b\"}\n");  // what the pipe said, committed
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(30));
}

TEST_CASE("a source reading a FIFO that no writer has opened waits for one, and a stop ends the wait", "[run]") {
  // Before, open(2) waited for the writer in the factory, where no stop reached it: the run never
  // ended.
  TempDir dir;
  const std::string fifo = dir.file("fifo");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const std::string out = dir.file("out.jsonl");
  Plan plan = test::plan_of(chain(fmt::format("  - id: src\n    type: source.list\n    file: {}", fifo), "", out) +
                            "edges:\n  - src -> out\n");
  SECTION("a writer that comes later") {
    std::thread writer([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      const int fd = ::open(fifo.c_str(), O_WRONLY);
      REQUIRE(fd >= 0);
      REQUIRE(::write(fd, "a\nb\n", 4) == 4);
      ::close(fd);
    });
    RunReport report = run_pipeline(plan);
    writer.join();
    CHECK(report.status == RunStatus::succeeded);
    CHECK(test::read_file(out) == "{\"url\":\"a\"}\n{\"url\":\"b\"}\n");
  }
  SECTION("no writer: Ctrl-C") {
    const auto started = std::chrono::steady_clock::now();
    RunReport report = test::run_stopped_after(plan, std::chrono::milliseconds(300));
    CHECK(report.status == RunStatus::interrupted);
    CHECK(report.errors.empty());
    CHECK(test::read_file(out).empty());
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(30));
  }
}

TEST_CASE("a sink writing to a FIFO waits for its reader, says so after a second, and a stop ends the wait", "[run]") {
  // Before, open(2) waited for the reader in the factory, where no stop reached it.
  TempDir dir;
  const std::string fifo = dir.file("fifo");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  Plan plan = test::plan_of(chain("  - id: src\n    type: source.list\n    template: \"u{n}\"\n    to: 3", "", fifo) +
                            "edges:\n  - src -> out\n");
  SECTION("a reader that comes later") {
    std::string read;
    std::thread reader([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(1300));
      const int fd = ::open(fifo.c_str(), O_RDONLY);
      REQUIRE(fd >= 0);
      char chunk[256];
      for (ssize_t n; (n = ::read(fd, chunk, sizeof chunk)) > 0;) read.append(chunk, static_cast<std::size_t>(n));
      ::close(fd);
    });
    RunReport report = run_pipeline(plan);
    reader.join();
    CHECK(report.status == RunStatus::succeeded);
    CHECK(read == "{\"url\":\"u1\",\"n\":1}\n{\"url\":\"u2\",\"n\":2}\n{\"url\":\"u3\",\"n\":3}\n");
    CHECK(test::notices_of(report, "out") ==
          std::vector<std::string>{"waiting for a reader to open the FIFO '" + fifo + "'"});
  }
  SECTION("no reader: Ctrl-C") {
    RunReport report = test::run_stopped_after(plan, std::chrono::milliseconds(300));
    CHECK(report.status == RunStatus::interrupted);
    CHECK(report.errors.empty());
    CHECK(test::stats_of(report, "src").records_out == 0);
  }
  SECTION("no reader: a stop before the run starts") {
    RunReport report = test::run_stopped_after(plan, std::chrono::milliseconds(-1));
    CHECK(report.status == RunStatus::interrupted);
    CHECK(report.errors.empty());
  }
}

TEST_CASE(
    "a line written to a pipe goes through at once: source.list does not wait for a full batch, sink.jsonl "
    "writes within its interval",
    "[run]") {
  // `producer | sluice run p.yaml`, a crawl piped into jq, a file someone tails: before, a line
  // waited in source.list until 256 lines had come, and in sink.jsonl for 256 KiB of output or the
  // end of the run.
  TempDir dir;
  const std::string fifo = dir.file("fifo");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const int writer = ::open(fifo.c_str(), O_RDWR);
  REQUIRE(writer >= 0);
  const std::string out = dir.file("out.jsonl");
  Plan plan = test::plan_of(
      chain(fmt::format("  - id: src\n    type: source.list\n    file: {}", fifo), "", out, "batch: 256") +
      "    interval: 50ms\nedges:\n  - src -> out\n");
  auto run = std::async(std::launch::async, [&plan] { return run_pipeline(plan); });
  auto written_within = [&](const std::string& expected) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (test::read_file(out) != expected && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return test::read_file(out) == expected;
  };
  REQUIRE(::write(writer, "a\n", 2) == 2);
  CHECK(written_within("{\"url\":\"a\"}\n"));  // while the run goes on
  REQUIRE(::write(writer, "b\n", 2) == 2);
  CHECK(written_within("{\"url\":\"a\"}\n{\"url\":\"b\"}\n"));
  ::close(writer);
  RunReport report = run.get();
  CHECK(report.status == RunStatus::succeeded);
  CHECK(test::stats_of(report, "out").records_in == 2);
}

TEST_CASE("drop discards what it receives on purpose, counted in its stats", "[run]") {
  Plan plan = test::plan_of(R"(pipeline: t
nodes:
  - id: src
    type: source.list
    template: "u{n}"
    to: 1000
  - id: discard
    type: drop
edges:
  - src -> discard
)");
  RunReport report = run_pipeline(plan);
  CHECK(report.status == RunStatus::succeeded);
  CHECK(test::stats_of(report, "discard").records_in == 1000);
  CHECK(test::stats_of(report, "discard").errors == 0);
}

TEST_CASE("max_errors: too many skipped or routed failures stop the run gracefully and fail it", "[run]") {
  TempDir dir;
  const std::string out = dir.file("out.jsonl"), failed = dir.file("failed.jsonl");
  // Every record fails, as when a site blocks the crawler: without a bound the run would go through
  // all hundred million.
  const std::string on_error = GENERATE(std::string("skip"), std::string("route"));
  std::string yaml = chain(R"(  - id: src
    type: source.list
    template: "u{n}"
    to: 100000000
  - id: boom
    type: test.fail
    on_error: )" + on_error,
                           "", out, "batch: 10, max_pending: 2, max_errors: 50");
  if (on_error == "route") yaml += "  - id: failed\n    type: sink.jsonl\n    path: " + failed + "\n";
  yaml += "edges:\n  - src -> boom -> out\n";
  if (on_error == "route") yaml += "  - boom.error -> failed\n";
  RunReport report = run_pipeline(test::plan_of(yaml));
  CHECK(report.status == RunStatus::failed);
  REQUIRE(report.errors.size() == 1);
  CHECK(report.errors[0].to_string() ==
        "node 'settings': more than max_errors (50) records failed in nodes that skip or route them; the run stopped "
        "(the "
        "stats show where)");
  const auto& boom = test::stats_of(report, "boom");
  CHECK(boom.errors > 50);
  CHECK(boom.errors < 1000);  // the source stopped within its in-flight bound
  // A graceful stop: what failed before it still reached the error port's sink, every record of it.
  if (on_error == "route") CHECK(test::lines_of(test::read_file(failed)).size() == boom.errors);

  // Up to the bound the run goes on and succeeds.
  yaml.replace(yaml.find("to: 100000000"), 13, "to: 50");
  report = run_pipeline(test::plan_of(yaml));
  CHECK(report.status == RunStatus::succeeded);
  CHECK(test::stats_of(report, "boom").errors == 50);
}

TEST_CASE("max_items stops gracefully once sinks have received that many records", "[run]") {
  TempDir dir;
  std::string out = dir.file("out.jsonl");
  Plan plan = test::plan_of(chain(R"(  - id: src
    type: source.list
    template: "u{n}"
    to: 1000000000)",
                                  "", out, "batch: 10, max_pending: 2, max_items: 500") +
                            "edges:\n  - src -> out\n");
  RunReport report = run_pipeline(plan);
  CHECK(report.status == RunStatus::succeeded);
  auto written = test::lines_of(test::read_file(out)).size();
  CHECK(written >= 500);
  CHECK(written < 1000);  // the source stopped within its in-flight bound
  CHECK(written == test::stats_of(report, "src").records_out);
}
