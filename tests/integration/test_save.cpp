// save: fetched bodies into files of their own, against the real fixture server and real files.
#include <fmt/format.h>
#include <sys/stat.h>
#include <catch2/catch.hpp>

#include <filesystem>
#include <set>

#include "../support.hpp"
#include "fixture_server.hpp"
#include "sluice/template.hpp"

using namespace sluice;
using fixture::FixtureServer;
using test::TempDir;

namespace {

// Every file under `root`, as paths relative to it.
std::set<std::string> files_under(const std::filesystem::path& root) {
  std::set<std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
    if (e.is_regular_file()) out.insert(std::filesystem::relative(e.path(), root).string());
  }
  return out;
}

// A pipeline of records made by `set` from a numbered list (fields n and those of `fields`),
// saved by a save node with `save_config`; saved records to out.jsonl, failed ones to bad.jsonl.
std::string offline_pipeline(const TempDir& dir, int count, const std::string& fields, const std::string& save_config) {
  return fmt::format(R"(nodes:
  - id: src
    type: source.list
    template: "https://shop.example/p/{{n}}"
    to: {count}
  - id: make
    type: set
    fields: {fields}
  - id: save
    type: save
    dir: {dir}
    on_error: route
{config}
  - id: out
    type: sink.jsonl
    path: {out}
  - id: bad
    type: sink.jsonl
    path: {bad}
    fields: [n, _error]
edges:
  - src -> make -> save -> out
  - save.error -> bad
)",
                     fmt::arg("count", count), fmt::arg("fields", fields), fmt::arg("dir", dir.file("files")),
                     fmt::arg("config", save_config), fmt::arg("out", dir.file("out.jsonl")),
                     fmt::arg("bad", dir.file("bad.jsonl")));
}

}  // namespace

TEST_CASE("save writes each fetched body byte for byte to a file of its own and passes the record on", "[save]") {
  FixtureServer server;
  TempDir dir;
  const int count = 40;
  const std::string db = dir.file("files.db");
  RunReport report =
      run_pipeline(test::plan_of(fmt::format(R"(nodes:
  - id: src
    type: source.list
    template: "{base}/bytes/{{n}}?seed={{n}}"
    from: 0
    to: {last}
  - id: lim
    type: limit
    max_in_flight: 8
  - id: get
    type: fetch
    robots: ignore
  - id: save
    type: save
    dir: {dir}
    path: "n{{n}}/{{n}}.bin"
  - id: store
    type: store.sqlite
    path: {db}
    table: files
    columns: {{url: TEXT, n: INTEGER, file: TEXT, file_size: INTEGER, body: BLOB}}
edges:
  - src -> lim -> get -> save -> store
)",
                                             fmt::arg("base", server.url("")), fmt::arg("last", count - 1),
                                             fmt::arg("dir", dir.file("files")), fmt::arg("db", db))));
  REQUIRE(report.errors.empty());
  CHECK(test::stats_of(report, "save").records_out == static_cast<std::uint64_t>(count));
  // Sizes from 0 bytes up: NULs, bytes that are not UTF-8, line breaks, all kept as they came.
  for (int n = 0; n < count; ++n) {
    const std::string path = dir.file(fmt::format("files/n{0}/{0}.bin", n));
    CAPTURE(path);
    CHECK(test::read_file(path) == fixture::random_bytes(static_cast<std::size_t>(n), static_cast<std::uint64_t>(n)));
  }
  // The record goes on with the file's path and size, and without the body it no longer needs.
  CHECK(test::query(db, "SELECT file, file_size, body FROM files WHERE n = 7") ==
        std::vector<std::string>{dir.file("files/n7/7.bin") + "|7|NULL"});
  CHECK(test::query(db, "SELECT count(*), sum(file_size) FROM files") ==
        std::vector<std::string>{fmt::format("{}|{}", count, count * (count - 1) / 2)});
  CHECK(files_under(dir.file("files")).size() == static_cast<std::size_t>(count));  // no temporary file left
}

TEST_CASE("save names a file by its URL's hash, with the URL's extension or one for its Content-Type", "[save]") {
  FixtureServer server("tests/fixtures/site");
  TempDir dir;
  const std::vector<std::string> urls = {server.url("/robots.txt"), server.url("/bytes/10?type=image/png"),
                                         server.url("/bytes/10"), server.url("/catalogue/")};
  std::string list;
  for (const auto& u : urls) list += u + "\n";
  test::write_file(dir.file("urls.txt"), list);
  RunReport report =
      run_pipeline(test::plan_of(fmt::format(R"(nodes:
  - id: src
    type: source.list
    file: {urls}
  - id: get
    type: fetch
    robots: ignore
  - id: save
    type: save
    dir: {dir}
    keep_field: true
  - id: out
    type: sink.jsonl
    path: {out}
    fields: [url, file, file_size]
edges:
  - src -> get -> save -> out
)",
                                             fmt::arg("urls", dir.file("urls.txt")), fmt::arg("dir", dir.file("files")),
                                             fmt::arg("out", dir.file("out.jsonl")))));
  REQUIRE(report.errors.empty());
  const std::vector<std::string> extensions = {".txt", ".png", "", ".html"};
  std::set<std::string> expected;
  for (std::size_t i = 0; i < urls.size(); ++i) {
    expected.insert(fmt::format("{:016x}{}", fnv1a64(urls[i]), extensions[i]));
  }
  CHECK(files_under(dir.file("files")) == expected);
  CHECK(test::read_file(dir.file("files/" + fmt::format("{:016x}.txt", fnv1a64(urls[0])))) ==
        test::read_file("tests/fixtures/site/robots.txt"));
  CHECK(test::lines_of(test::read_file(dir.file("out.jsonl"))).size() == urls.size());
}

TEST_CASE("a scraped value never makes save write outside its folder", "[save]") {
  TempDir dir;
  SECTION("a raw field with '..' or an absolute path fails its record, naming the path") {
    RunReport report = run_pipeline(test::plan_of(
        offline_pipeline(dir, 4, R"({body: "data {n}", name: "a/./../../escaped-{n}"})", R"(    path: "{name}")")));
    CHECK(report.status == RunStatus::succeeded);
    CHECK(test::stats_of(report, "save").errors == 4);
    CHECK(test::read_file(dir.file("bad.jsonl")).find("path refused: 'a/./../../escaped-1' leaves dir ('..')") !=
          std::string::npos);
    CHECK_FALSE(std::filesystem::exists(dir.path() / "escaped-1"));

    TempDir dir2;
    report = run_pipeline(
        test::plan_of(offline_pipeline(dir2, 2, R"({body: "x", p: "/tmp/sluice-escaped-{n}"})", R"(    path: "{p}")")));
    CHECK(test::stats_of(report, "save").errors == 2);
    CHECK(test::read_file(dir2.file("bad.jsonl")).find("path refused: '/tmp/sluice-escaped-1' is absolute") !=
          std::string::npos);
    CHECK_FALSE(std::filesystem::exists("/tmp/sluice-escaped-1"));
    CHECK(files_under(dir.file("files")).empty());
  }
  SECTION("{field:file} turns the same values into names inside the folder") {
    RunReport report =
        run_pipeline(test::plan_of(offline_pipeline(dir, 2, R"({body: "data {n}", name: "../../etc/x{n}", empty: ""})",
                                                    R"(    path: "{name:file}/{empty:file}.txt")")));
    REQUIRE(report.errors.empty());
    CHECK(files_under(dir.file("files")) == std::set<std::string>{"_._.._etc_x1/_.txt", "_._.._etc_x2/_.txt"});
    CHECK(test::read_file(dir.file("files/_._.._etc_x2/_.txt")) == "data 2");
  }
}

TEST_CASE("save's exists: replace, keep or fail a file an earlier run wrote", "[save]") {
  TempDir dir;
  const std::string exists = GENERATE(std::string("replace"), std::string("keep"), std::string("fail"));
  const std::string config = "    path: \"{n}.txt\"\n    exists: " + exists;
  REQUIRE(run_pipeline(test::plan_of(offline_pipeline(dir, 3, R"({body: "first run {n}"})", config))).errors.empty());
  RunReport second = run_pipeline(test::plan_of(offline_pipeline(dir, 3, R"({body: "second {n}"})", config)));
  const std::string text = test::read_file(dir.file("files/2.txt"));
  const auto out = test::lines_of(test::read_file(dir.file("out.jsonl")));
  if (exists == "replace") {
    CHECK(text == "second 2");
    CHECK(out.size() == 3);
  } else if (exists == "keep") {
    CHECK(text == "first run 2");
    REQUIRE(out.size() == 3);
    CHECK(out[1].find("\"file_size\":11") != std::string::npos);  // the file that is there
  } else {
    CHECK(text == "first run 2");
    CHECK(out.empty());
    CHECK(test::stats_of(second, "save").errors == 3);
    CHECK(test::read_file(dir.file("bad.jsonl")).find("file exists: '" + dir.file("files/2.txt") + "'") !=
          std::string::npos);
  }
  CHECK(files_under(dir.file("files")).size() == 3);
}

TEST_CASE("save gives no two URLs of a run one file: a path that names them alike fails the later ones", "[save]") {
  TempDir dir;
  const std::string exists = GENERATE(std::string("replace"), std::string("keep"));
  // Three records of three URLs, one file name.
  RunReport report = run_pipeline(test::plan_of(offline_pipeline(dir, 3, R"({body: "body {n}", name: same})",
                                                                 "    path: \"{name}.txt\"\n    exists: " + exists)));
  REQUIRE(report.errors.empty());
  const auto out = test::lines_of(test::read_file(dir.file("out.jsonl")));
  REQUIRE(out.size() == 1);
  const std::string n = out[0].substr(out[0].find("\"n\":") + 4, 1);
  CHECK(test::read_file(dir.file("files/same.txt")) == "body " + n);  // the bytes of the record that names it
  const auto bad = test::lines_of(test::read_file(dir.file("bad.jsonl")));
  REQUIRE(bad.size() == 2);
  for (const auto& line : bad) {
    CHECK(line.find("'" + dir.file("files/same.txt") + "' is the file of another URL of this run already") !=
          std::string::npos);
  }
  CHECK(files_under(dir.file("files")) == std::set<std::string>{"same.txt"});
}

TEST_CASE("a full disk fails the record being saved and leaves no piece of its file", "[save]") {
  TempDir dir;
  const std::string on_error = GENERATE(std::string("route"), std::string("skip"));
  std::string body = "{n}";
  for (int i = 0; i < 100; ++i) body += "{pad}";
  std::string yaml = offline_pipeline(
      dir, 30, fmt::format(R"({{pad: "{}", body: "{}"}})", std::string(1000, 'p'), body), "    path: \"{n}.txt\"");
  yaml.replace(yaml.find("on_error: route"), 15, "on_error: " + on_error);
  // Each body is about 100 KB; files may not grow past 50 KB (the output lines, without the bodies,
  // stay far below): every file fills up part way through its write.
  RunReport report = test::run_with_file_limit(test::plan_of(yaml), 50000);
  CHECK(report.status == RunStatus::succeeded);
  CHECK(test::stats_of(report, "save").errors == 30);
  CHECK(files_under(dir.file("files")).empty());  // no half file, under its name or a temporary one
  if (on_error == "skip") {
    REQUIRE(report.skipped.size() == 1);  // one kind, whatever the file
    CHECK(report.skipped[0].count == 30);
  } else {
    CHECK(test::read_file(dir.file("bad.jsonl")).find("cannot write: File too large: '" + dir.file("files/")) !=
          std::string::npos);
  }
}

TEST_CASE("save refuses a folder it cannot create before anything runs, and a bad path template when loading",
          "[save]") {
  TempDir dir;
  test::write_file(dir.file("files"), "a file where the folder should be");
  RunReport report = run_pipeline(test::plan_of(offline_pipeline(dir, 3, R"({body: "x"})", "")));
  CHECK(report.status == RunStatus::failed);
  REQUIRE_FALSE(report.errors.empty());
  CHECK(report.errors[0].to_string().find("cannot create folder: a file of that name is in its path: '" +
                                          dir.file("files") + "'") != std::string::npos);
  CHECK(test::stats_of(report, "src").records_out == 0);

  Diagnostics diags;
  auto plan = load_pipeline_text(offline_pipeline(dir, 3, R"({body: "x"})", "    path: \"{n.txt\""), "p.yaml",
                                 test::builtin_registry(), LoadOptions{{}, test::fixed_env()}, diags);
  CHECK_FALSE(plan);
  CHECK(diags.to_string().find("p.yaml:13:11: error: path: unterminated '{' in '{n.txt'") != std::string::npos);
  Diagnostics empty;
  CHECK_FALSE(load_pipeline_text(offline_pipeline(dir, 3, R"({body: "x"})", "    path: \"\""), "p.yaml",
                                 test::builtin_registry(), LoadOptions{{}, test::fixed_env()}, empty));
  CHECK(empty.to_string().find("p.yaml:13:11: error: path: empty: leave path out") != std::string::npos);
}

TEST_CASE("template formats file and hash", "[save][template]") {
  Record r;
  r.set("t", Value("a/b\\c:d*e?f\"g<h>i|j\x01k"));
  r.set("dot", Value(".hidden"));
  r.set("long", Value(std::string(198, 'x') + "\xC3\xA9\xC3\xA9"));  // a 2-byte character across byte 200
  r.set("url", Value("https://shop.example/p/1"));
  auto t = FieldTemplate::compile("{t:file}|{dot:file}|{missing:file}|{url:hash}");
  REQUIRE(t);
  CHECK(t->render(r) == fmt::format("a_b_c_d_e_f_g_h_i_j_k|_hidden|_|{:016x}", fnv1a64("https://shop.example/p/1")));
  CHECK(fnv1a64("") == 0xcbf29ce484222325ull);  // FNV-1a's offset basis: the published constants
  CHECK(fnv1a64("a") == 0xaf63dc4c8601ec8cull);
  auto l = FieldTemplate::compile("{long:file}");
  CHECK(l->render(r) == std::string(198, 'x') + "\xC3\xA9");
  std::string error;
  CHECK_FALSE(FieldTemplate::compile("{x:base64}", &error));
  CHECK(error == "unknown format 'base64' in '{x:base64}' (url, json, file, hash, lower, upper or trim)");
}

TEST_CASE("template formats lower, upper and trim normalise text for keys and names", "[template]") {
  Record r;
  r.set("email", Value(" Ann.Lee@Example.COM\t"));
  r.set("city", Value("M\xC3\xBCnchen"));
  r.set("n", Value(std::int64_t{42}));
  auto t = FieldTemplate::compile("{email:trim}|{email:lower}|{city:upper}|{n:lower}|{missing:trim}|{empty:lower}");
  REQUIRE(t);
  // lower and upper change ASCII letters only: a UTF-8 letter stays as it is.
  CHECK(t->render(r) == "Ann.Lee@Example.COM| ann.lee@example.com\t|M\xC3\xBCNCHEN|42||");
}

TEST_CASE("a failure elsewhere ends the run with every record given to save accounted for", "[save]") {
  TempDir dir;
  std::string yaml = offline_pipeline(dir, 5000, R"({body: "data {n}"})", "    path: \"{n}.txt\"");
  yaml.replace(yaml.find("  - id: out\n"), 0, "  - id: boom\n    type: test.fail\n    equals: 300\n");
  yaml.replace(yaml.find("save -> out"), 11, "save -> boom -> out");
  RunReport report = run_pipeline(test::plan_of(yaml));
  CHECK(report.status == RunStatus::failed);
  REQUIRE(report.errors.size() == 1);  // the injected failure; no record lost or ended twice
  CHECK(report.errors[0].to_string().find("injected failure") != std::string::npos);
  // Every file under its final name is whole, and no temporary one is left.
  const auto files = files_under(dir.file("files"));
  CHECK(files.size() >= test::stats_of(report, "save").records_out);
  for (const auto& name : files) {
    CHECK(test::read_file(dir.file("files/" + name)) == "data " + name.substr(0, name.size() - 4));
  }
}

TEST_CASE("min_free: a file that would leave the disk almost full fails its record, and max_errors ends the run",
          "[save]") {
  TempDir dir;
  // No disk here has 100,000 GiB free: every write would leave less than that.
  std::string yaml = offline_pipeline(dir, 100000, R"({body: "data {n}"})", "    min_free: 100000GiB");
  yaml.replace(yaml.find("nodes:"), 6, "settings: {batch: 10, max_pending: 2, max_errors: 20}\nnodes:");
  RunReport report = run_pipeline(test::plan_of(yaml));
  CHECK(report.status == RunStatus::failed);
  REQUIRE(report.errors.size() == 1);
  CHECK(report.errors[0].to_string().find("more than max_errors (20)") != std::string::npos);
  const auto& save = test::stats_of(report, "save");
  CHECK(save.errors > 20);
  CHECK(save.errors < 1000);  // the run stopped long before the 100,000 records
  CHECK(save.records_out == 0);
  CHECK(files_under(dir.file("files")).empty());
  CHECK(test::read_file(dir.file("bad.jsonl")).find("disk almost full: '" + dir.file("files/")) != std::string::npos);

  // A bound the disk has room for lets every file through.
  TempDir roomy;
  report = run_pipeline(test::plan_of(offline_pipeline(roomy, 10, R"({body: "data {n}"})", "    min_free: 1KiB")));
  REQUIRE(report.errors.empty());
  CHECK(files_under(roomy.file("files")).size() == 10);
}
