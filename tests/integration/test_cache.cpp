// fetch's cache: pipelines run twice against the fixture server, the second time answered from a
// real SQLite file.
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <algorithm>

#include "../support.hpp"
#include "fixture_server.hpp"

using namespace sluice;
using fixture::FixtureServer;
using test::contains;
using test::TempDir;

namespace {

// urls.txt -> limit -> fetch (with `fetch_config`) -> same.jsonl (what a cached record must repeat)
// and how.jsonl (how it came); failures -> bad.jsonl.
std::string cache_pipeline(const TempDir& dir, const std::vector<std::string>& urls, const std::string& fetch_config) {
  std::string list;
  for (const auto& u : urls) list += u + "\n";
  test::write_file(dir.file("urls.txt"), list);
  return fmt::format(R"(pipeline: cache_test
nodes:
  - {{id: src, type: source.list, file: {urls}}}
  - {{id: lim, type: limit, max_in_flight: 8}}
  - id: get
    type: fetch
    robots: ignore
    retries: {{attempts: 1}}
    on_error: route
{config}
  - {{id: same, type: sink.jsonl, path: {same}, fields: [url, status, final_url, content_type, header_etag, body]}}
  - {{id: how, type: sink.jsonl, path: {how}, fields: [url, cached, attempts, header_x_tag, time_total]}}
  - {{id: bad, type: sink.jsonl, path: {bad}, fields: [url, status, reason]}}
  - {{id: bad_full, type: sink.jsonl, path: {bad_full}}}
edges:
  - src -> lim -> get -> same
  - get -> how
  - get.error -> bad
  - get.error -> bad_full
)",
                     fmt::arg("urls", dir.file("urls.txt")), fmt::arg("config", fetch_config),
                     fmt::arg("same", dir.file("same.jsonl")), fmt::arg("how", dir.file("how.jsonl")),
                     fmt::arg("bad", dir.file("bad.jsonl")), fmt::arg("bad_full", dir.file("bad_full.jsonl")));
}

std::vector<std::string> sorted_lines(const TempDir& dir, const std::string& name) {
  auto lines = test::lines_of(test::read_file(dir.file(name)));
  std::sort(lines.begin(), lines.end());
  return lines;
}

// The cache table's row of the run: from_cache, stored, not_stored.
std::string cache_row(const RunReport& report) {
  for (const auto& t : report.tables) {
    if (t.name != "cache") continue;
    REQUIRE(t.rows.size() == 1);
    const Record& r = t.rows[0];
    return fmt::format("{} {} {}", r.get("from_cache")->to_text(), r.get("stored")->to_text(),
                       r.get("not_stored")->to_text());
  }
  FAIL("no cache table");
  return "";
}

std::uint64_t requests(const FixtureServer& server) {
  return server.counter("*").requests;
}

}  // namespace

TEST_CASE("a pipeline run again is answered from the cache: no request, the same records", "[fetch][cache]") {
  FixtureServer server(std::string(SLUICE_SOURCE_DIR) + "/tests/fixtures/site");
  TempDir dir;
  std::vector<std::string> urls;
  for (int i = 0; i < 20; ++i) urls.push_back(server.url(fmt::format("/headers?X-Tag=a&X-Tag=b&i={}", i)));
  urls.push_back(server.url("/gzip"));                 // decoded once, kept decoded
  urls.push_back(server.url("/huge/300000"));          // compressed in the file
  urls.push_back(server.url("/bytes/100000?seed=3"));  // not compressible: kept as it is
  urls.push_back(server.url("/bytes/10?seed=4"));      // too short to compress
  urls.push_back(server.url("/status/204"));           // no body
  urls.push_back(server.url("/redirect/2"));           // its final_url differs
  urls.push_back(server.url("/item/1.html"));          // a file, with an ETag
  const std::string cache = "    cache: {path: " + dir.file("cache.db") + "}\n";

  RunReport first = run_pipeline(test::plan_of(cache_pipeline(dir, urls, cache)));
  REQUIRE(first.errors.empty());
  CAPTURE(test::read_file(dir.file("bad.jsonl")));
  REQUIRE(test::lines_of(test::read_file(dir.file("bad.jsonl"))).empty());
  const auto first_records = sorted_lines(dir, "same.jsonl");
  REQUIRE(first_records.size() == urls.size());
  CHECK(cache_row(first) == fmt::format("0 {} 0", urls.size()));
  for (const auto& line : sorted_lines(dir, "how.jsonl")) {
    CAPTURE(line);
    CHECK(contains(line, R"("cached":false,"attempts":1,"header_x_tag":null,)"));
  }
  const std::uint64_t seen = requests(server);
  CHECK(seen == urls.size() + 2);  // the redirects' hops

  // Run again, keeping a header the first run did not: the cache kept every header.
  RunReport second =
      run_pipeline(test::plan_of(cache_pipeline(dir, urls, cache + "    keep_headers: [etag, x-tag]\n")));
  REQUIRE(second.errors.empty());
  CHECK(requests(server) == seen);
  CHECK(sorted_lines(dir, "same.jsonl") == first_records);
  CHECK(cache_row(second) == fmt::format("{} 0 0", urls.size()));
  const auto how = sorted_lines(dir, "how.jsonl");
  REQUIRE(how.size() == urls.size());
  int tagged = 0;
  for (const auto& line : how) {
    CAPTURE(line);
    CHECK(contains(line, R"("cached":true,"attempts":0,)"));
    CHECK(contains(line, R"("time_total":0})"));
    if (contains(line, R"("header_x_tag":"a, b")")) ++tagged;
  }
  CHECK(tagged == 20);
  CHECK(test::query(dir.file("cache.db"), "SELECT count(*), sum(compressed) FROM responses") ==
        std::vector<std::string>{fmt::format("{}|2", urls.size())});  // /huge and the item page
}

TEST_CASE("cache: max_age fetches older responses again and replaces them, and 0s fetches every one",
          "[fetch][cache]") {
  FixtureServer server;
  TempDir dir;
  std::vector<std::string> urls;
  for (int i = 0; i < 10; ++i) urls.push_back(server.url(fmt::format("/status/200?i={}", i)));
  const std::string cache = "    cache: {path: " + dir.file("cache.db") + ", max_age: ";

  REQUIRE(run_pipeline(test::plan_of(cache_pipeline(dir, urls, cache + "1h}"))).errors.empty());
  CHECK(requests(server) == 10);
  const auto stored_at = test::query(dir.file("cache.db"), "SELECT max(fetched_at) FROM responses");

  RunReport again = run_pipeline(test::plan_of(cache_pipeline(dir, urls, cache + "0s}")));
  REQUIRE(again.errors.empty());
  CHECK(requests(server) == 20);
  CHECK(cache_row(again) == "0 10 0");
  for (const auto& line : sorted_lines(dir, "how.jsonl")) CHECK(contains(line, R"("cached":false,"attempts":1,)"));
  CHECK(test::query(dir.file("cache.db"), "SELECT count(*) FROM responses") == std::vector<std::string>{"10"});
  CHECK(test::query(dir.file("cache.db"), "SELECT min(fetched_at) FROM responses") > stored_at);

  RunReport fresh = run_pipeline(test::plan_of(cache_pipeline(dir, urls, cache + "1h}")));
  REQUIRE(fresh.errors.empty());
  CHECK(requests(server) == 20);
  CHECK(cache_row(fresh) == "10 0 0");
}

TEST_CASE("cache: requests that differ in method, body or headers are kept apart", "[fetch][cache]") {
  FixtureServer server;
  TempDir dir;
  const auto run = [&](int to, const std::string& config) {
    RunReport report = run_pipeline(test::plan_of(
        fmt::format(R"(pipeline: keys
nodes:
  - {{id: src, type: source.list, template: "{{n}}", to: {to}}}
  - {{id: url, type: set, fields: {{url: "{echo}"}}}}
  - id: get
    type: fetch
    robots: ignore
    cache: {{path: {cache}}}
{config}
  - {{id: out, type: sink.jsonl, path: {out}, fields: [n, cached, body]}}
edges:
  - src -> url -> get -> out
)",
                    fmt::arg("to", to), fmt::arg("echo", server.url("/echo")), fmt::arg("cache", dir.file("cache.db")),
                    fmt::arg("config", config), fmt::arg("out", dir.file("out.jsonl")))));
    REQUIRE(report.errors.empty());
    return cache_row(report);
  };
  const std::string post = "    method: POST\n    body: \"q={n}\"\n";
  CHECK(run(2, post) == "0 2 0");
  CHECK(requests(server) == 2);
  CHECK(run(3, post) == "2 1 0");  // only q=3 goes out
  CHECK(requests(server) == 3);
  // Each record got the answer to its own body.
  const auto out = test::lines_of(test::read_file(dir.file("out.jsonl")));
  REQUIRE(out.size() == 3);
  for (const auto& line : out) {
    CAPTURE(line);
    const std::string n = line.substr(5, 1);
    CHECK(contains(line, "q=" + n));
  }
  CHECK(run(1, "    method: PUT\n    body: \"q={n}\"\n") == "0 1 0");  // another method
  CHECK(run(1, post + "    headers: {X-Q: \"{n}\"}\n") == "0 1 0");    // another header
  CHECK(run(1, post + "    headers: {X-Q: \"{n}\"}\n") == "1 0 0");
  CHECK(run(1, "    method: GET\n") == "0 1 0");  // no body
  CHECK(requests(server) == 6);
}

TEST_CASE("cache: failures are not kept, and a kept response the node would now refuse is fetched again",
          "[fetch][cache]") {
  FixtureServer server(std::string(SLUICE_SOURCE_DIR) + "/tests/fixtures/site");
  TempDir dir;
  const std::vector<std::string> urls = {server.url("/status/404"), server.url("/status/503"),
                                         server.url("/item/1.html")};
  const std::string cache = "    cache: {path: " + dir.file("cache.db") + "}\n";
  RunReport first = run_pipeline(test::plan_of(cache_pipeline(dir, urls, cache)));
  CHECK(cache_row(first) == "0 1 0");
  CHECK(requests(server) == 3);
  RunReport second = run_pipeline(test::plan_of(cache_pipeline(dir, urls, cache)));
  CHECK(cache_row(second) == "1 0 0");
  CHECK(requests(server) == 5);  // the two failures again
  CHECK(sorted_lines(dir, "bad.jsonl").size() == 2);

  // The page is not one of the content_types the node now wants: fetched, and refused, again.
  RunReport third = run_pipeline(test::plan_of(cache_pipeline(dir, urls, cache + "    content_types: [image/*]\n")));
  CHECK(cache_row(third) == "0 0 0");
  CHECK(requests(server) == 8);
  const auto bad = sorted_lines(dir, "bad.jsonl");
  REQUIRE(bad.size() == 3);
  CHECK(contains(bad[0], R"("reason":"content_type")"));
  // Nor one larger than max_body.
  RunReport fourth = run_pipeline(test::plan_of(cache_pipeline(dir, urls, cache + "    max_body: 10\n")));
  CHECK(cache_row(fourth) == "0 0 0");
  CHECK(requests(server) == 11);
}

TEST_CASE("cache: another program's database is refused, and a damaged cache leaves the run to the network",
          "[fetch][cache]") {
  FixtureServer server;
  TempDir dir;
  const std::vector<std::string> urls = {server.url("/huge/20000"), server.url("/huge/30000")};
  const std::string db = dir.file("cache.db");
  const std::string cache = "    cache: {path: " + db + "}\n";

  test::execute(dir.file("shop.db"), "CREATE TABLE items (url TEXT)");
  RunReport refused =
      run_pipeline(test::plan_of(cache_pipeline(dir, urls, "    cache: {path: " + dir.file("shop.db") + "}\n")));
  REQUIRE(refused.errors.size() == 1);
  CHECK(refused.errors[0].message ==
        fmt::format("could not start: cache: '{}' is not a response cache (it holds other tables): give "
                    "the cache a file of its own",
                    dir.file("shop.db")));
  CHECK(requests(server) == 0);

  REQUIRE(run_pipeline(test::plan_of(cache_pipeline(dir, urls, cache))).errors.empty());
  test::execute(db, "UPDATE responses SET body = x'00010203' WHERE url LIKE '%20000'");
  RunReport damaged = run_pipeline(test::plan_of(cache_pipeline(dir, urls, cache)));
  REQUIRE(damaged.errors.empty());
  CHECK(sorted_lines(dir, "same.jsonl").size() == 2);
  CHECK(test::notices_of(damaged, "get") ==
        std::vector<std::string>{
            fmt::format("cache: the stored body of '{}' in '{}' is damaged; the rest of the run does without the cache",
                        urls[0], db)});
  CHECK(requests(server) == (cache_row(damaged).starts_with("1 ") ? 3u : 4u));  // the other one may have come first

  Diagnostics diags;
  CHECK_FALSE(load_pipeline_text(cache_pipeline(dir, urls, cache + "    download: {dir: " + dir.file("files") + "}\n"),
                                 "p.yaml", test::builtin_registry(), LoadOptions{{}, test::fixed_env()}, diags));
  CAPTURE(diags.to_string());
  CHECK(contains(diags.to_string(),
                 "p.yaml:10:12: error: cache: a download's files are not kept in the cache (download's exists: keep "
                 "keeps the files a run fetched before)"));
}

TEST_CASE("cache: a run cancelled while its answers come from the cache accounts for every record", "[fetch][cache]") {
  FixtureServer server;
  TempDir dir;
  std::vector<std::string> urls;
  for (int i = 0; i < 3000; ++i) urls.push_back(server.url(fmt::format("/status/200?i={}", i)));
  const std::string cache = "    cache: {path: " + dir.file("cache.db") + "}\n";
  REQUIRE(run_pipeline(test::plan_of(cache_pipeline(dir, urls, cache))).errors.empty());
  std::string pipeline = cache_pipeline(dir, urls, cache);
  // A node after fetch fails the 500th record it sees: the run is cancelled with answers in flight.
  const std::string edge = "get -> same";
  pipeline.replace(pipeline.find(edge), edge.size(), "get -> boom -> same");
  pipeline.replace(
      pipeline.find("edges:"), 6,
      fmt::format("  - {{id: boom, type: test.fail, field: url, equals: \"{}\", message: \"{{url}}\"}}\nedges:",
                  urls[500]));
  RunReport report = run_pipeline(test::plan_of(pipeline));
  CHECK(report.status == RunStatus::failed);
  REQUIRE(report.errors.size() == 1);
  CHECK(contains(report.errors[0].message, "i=500"));
  CHECK(requests(server) == 3000);
}

TEST_CASE("cache: a response older than max_age is asked for with its ETag, and a 304 keeps it fresh",
          "[fetch][cache]") {
  TempDir site;
  for (int i = 0; i < 5; ++i) test::write_file(site.file(fmt::format("p{}.html", i)), fmt::format("<p>page {}</p>", i));
  FixtureServer server(site.path().string());
  TempDir dir;
  std::vector<std::string> urls;
  for (int i = 0; i < 5; ++i) urls.push_back(server.url(fmt::format("/p{}.html", i)));
  const std::string db = dir.file("cache.db");
  const std::string cache = "    cache: {path: " + db + ", max_age: 1h}\n";
  const auto hosts_row = [](const RunReport& report) {
    for (const auto& t : report.tables)
      if (t.name == "hosts")
        return fmt::format("{} 2xx {} 3xx", t.rows[0].get("http_2xx")->to_text(), t.rows[0].get("http_3xx")->to_text());
    return std::string("no hosts");
  };

  REQUIRE(run_pipeline(test::plan_of(cache_pipeline(dir, urls, cache))).errors.empty());
  test::execute(db, "UPDATE responses SET fetched_at = fetched_at - 7200");  // two hours old
  test::write_file(site.file("p3.html"), "<p>page 3, changed</p>");

  RunReport second = run_pipeline(test::plan_of(cache_pipeline(dir, urls, cache)));
  REQUIRE(second.errors.empty());
  CHECK(cache_row(second) == "0 1 0");  // from_cache, stored (p3), not_stored
  CHECK(hosts_row(second) == "1 2xx 4 3xx");
  for (const auto& t : second.tables)
    if (t.name == "cache") CHECK(t.rows[0].get("revalidated")->to_text() == "4");
  const auto same = sorted_lines(dir, "same.jsonl");
  REQUIRE(same.size() == 5);
  CHECK(contains(same[3], R"("status":200,)"));
  CHECK(contains(same[3], R"("body":"<p>page 3, changed</p>")"));
  CHECK(contains(same[4], R"("body":"<p>page 4</p>")"));
  const auto how = sorted_lines(dir, "how.jsonl");
  for (int i = 0; i < 5; ++i) {
    CAPTURE(how[i]);
    CHECK(contains(how[i], i == 3 ? R"("cached":false,"attempts":1,)" : R"("cached":true,"attempts":1,)"));
  }
  CHECK(test::query(db, "SELECT count(*) FROM responses WHERE fetched_at > unixepoch() - 60") ==
        std::vector<std::string>{"5"});

  // Fresh again: no request at all.
  const auto seen = requests(server);
  RunReport third = run_pipeline(test::plan_of(cache_pipeline(dir, urls, cache)));
  CHECK(cache_row(third) == "5 0 0");
  CHECK(requests(server) == seen);
  CHECK(sorted_lines(dir, "same.jsonl") == same);
}

TEST_CASE("cache: a crawl run again from the cache finds the same pages and items without a request",
          "[fetch][cache][crawl]") {
  FixtureServer server(std::string(SLUICE_SOURCE_DIR) + "/pipelines/quickstart/site");
  TempDir dir;
  const auto crawl = [&](const std::string& db) {
    RunReport report = run_pipeline(test::plan_of(fmt::format(
        R"(pipeline: cached_crawl
nodes:
  - {{id: seeds, type: source.list, urls: ["{seed}"]}}
  - {{id: frontier, type: frontier, max_depth: 5, deny: ['/cart/']}}
  - {{id: polite, type: limit, max_in_flight: 4}}
  - id: get
    type: fetch
    cache: {{path: {cache}}}
  - id: items
    type: parse.html
    items: div.item
    links: a[href]
    fields: {{name: h1.name, sku: span.sku}}
  - {{id: store, type: store.sqlite, path: {db}, table: items, columns: {{sku: TEXT, name: TEXT}}, key: [sku]}}
edges:
  - seeds -> frontier -> polite -> get -> items -> store
  - items.links -> frontier
)",
        fmt::arg("seed", server.url("/index.html")), fmt::arg("cache", dir.file("cache.db")), fmt::arg("db", db))));
    REQUIRE(report.errors.empty());
    return report;
  };
  RunReport first = crawl(dir.file("first.db"));
  const auto seen = requests(server);
  const std::uint64_t pages = test::stats_of(first, "get").records_out;
  CHECK(seen == pages + 1);  // and robots.txt
  RunReport second = crawl(dir.file("second.db"));
  CHECK(requests(server) == seen);
  CHECK(test::stats_of(second, "get").records_out == pages);
  CHECK(cache_row(second) == fmt::format("{} 0 0", pages));
  const std::string items = "SELECT sku, name FROM items ORDER BY sku";
  CHECK(test::query(dir.file("second.db"), items).size() == 12);
  CHECK(test::query(dir.file("second.db"), items) == test::query(dir.file("first.db"), items));
}

TEST_CASE("cache: a disk that fills up turns the cache off, and the run goes on over the network", "[fetch][cache]") {
  FixtureServer server;
  TempDir dir;
  const std::string db = dir.file("cache.db");
  const Plan plan = test::plan_of(fmt::format(R"(pipeline: full_disk
nodes:
  - {{id: src, type: source.list, template: "{url}?seed={{n}}", to: 40}}
  - {{id: lim, type: limit, max_in_flight: 4}}
  - id: get
    type: fetch
    robots: ignore
    cache: {{path: {db}}}
  - {{id: out, type: sink.jsonl, path: /dev/null, fields: [url, cached]}}
edges:
  - src -> lim -> get -> out
)",
                                              fmt::arg("url", server.url("/bytes/100000")), fmt::arg("db", db)));
  // Files may grow to 1 MB (RLIMIT_FSIZE), as on a disk that fills up: about ten of the bodies fit.
  RunReport report = test::run_with_file_limit(plan, 1 << 20);
  REQUIRE(report.errors.empty());
  CHECK(test::stats_of(report, "out").records_in == 40);
  CHECK(requests(server) == 40);
  REQUIRE(report.notices.size() == 1);
  CAPTURE(report.notices[0].message);
  CHECK(report.notices[0].message.starts_with("cache: storing "));
  CHECK(contains(report.notices[0].message, fmt::format(" in '{}' failed: ", db)));
  CHECK(report.notices[0].message.ends_with("; the rest of the run does without the cache"));
  // What was committed before stays usable.
  RunReport again = run_pipeline(plan);
  REQUIRE(again.errors.empty());
  const auto row = cache_row(again);
  CAPTURE(row);
  CHECK_FALSE(row.starts_with("0 "));
  CHECK(requests(server) < 80);
}

TEST_CASE("cache: offline replays what a run recorded without the network, and fails what it lacks", "[fetch][cache]") {
  TempDir dir;
  const std::string db = dir.file("cache.db");
  std::vector<std::string> urls;
  std::vector<std::string> recorded;
  {
    FixtureServer server(std::string(SLUICE_SOURCE_DIR) + "/tests/fixtures/site");
    for (const char* path : {"/item/1.html", "/item/2.html", "/catalogue/page1.html", "/gzip", "/redirect/1"})
      urls.push_back(server.url(path));
    REQUIRE(run_pipeline(test::plan_of(cache_pipeline(dir, urls, "    cache: {path: " + db + "}\n"))).errors.empty());
    recorded = sorted_lines(dir, "same.jsonl");
    REQUIRE(recorded.size() == 5);
    urls.push_back(server.url("/item/4.html"));  // not recorded
  }                                              // the server is gone: a request would fail with reason connect
  RunReport replay = run_pipeline(
      test::plan_of(cache_pipeline(dir, urls, "    cache: {path: " + db + ", offline: true}\n    max_body: 1MiB\n")));
  REQUIRE(replay.errors.empty());
  CHECK(sorted_lines(dir, "same.jsonl") == recorded);
  const auto bad = test::lines_of(test::read_file(dir.file("bad.jsonl")));
  REQUIRE(bad.size() == 1);
  CHECK(bad[0] == fmt::format(R"({{"url":"{}","status":null,"reason":"not_cached"}})", urls.back()));
  CHECK(cache_row(replay) == "5 0 0");
  // The recorded pages are too large for a node that takes 10 bytes at most: not answered either.
  RunReport small = run_pipeline(test::plan_of(
      cache_pipeline(dir, {urls[0]}, "    cache: {path: " + db + ", offline: true}\n    max_body: 10\n")));
  CHECK(cache_row(small) == "0 0 0");
  CHECK(test::read_file(dir.file("bad.jsonl")) ==
        fmt::format(R"({{"url":"{}","status":null,"reason":"not_cached"}})", urls[0]) + "\n");

  // A pipeline with a max_age replays too (offline set from the command line): old responses answer,
  // and none is removed from the file.
  test::execute(db, "UPDATE responses SET fetched_at = fetched_at - 7200");
  RunReport aged = run_pipeline(test::plan_of(
      cache_pipeline(dir, urls, "    cache: {path: " + db + ", max_age: 1h, offline: true}\n    max_body: 1MiB\n")));
  CHECK(cache_row(aged) == "5 0 0");
  CHECK(sorted_lines(dir, "same.jsonl") == recorded);
  CHECK(test::query(db, "SELECT count(*) FROM responses") == std::vector<std::string>{"5"});
}

TEST_CASE("cache: keep_status keeps failures such as a dead link's 404 and answers them as the same failure",
          "[fetch][cache]") {
  FixtureServer server(std::string(SLUICE_SOURCE_DIR) + "/tests/fixtures/site");
  TempDir dir;
  const std::vector<std::string> urls = {server.url("/status/404?type=application/json&header=X-Tag:gone"),
                                         server.url("/status/503"), server.url("/item/1.html")};
  const std::string db = dir.file("cache.db");
  const std::string cache =
      "    cache: {path: " + db + ", keep_status: [404]}\n    keep_headers: [x-tag]\n    error_body: true\n";
  RunReport first = run_pipeline(test::plan_of(cache_pipeline(dir, urls, cache)));
  CHECK(cache_row(first) == "0 2 0");
  const auto failures = sorted_lines(dir, "bad.jsonl");
  REQUIRE(failures.size() == 2);
  CHECK(test::query(db, "SELECT status FROM responses ORDER BY status") == std::vector<std::string>{"200", "404"});
  // The answer's content type and kept headers, as the failure had them when it was fetched.
  auto answer_of_404 = [&] {
    for (const auto& line : test::lines_of(test::read_file(dir.file("bad_full.jsonl"))))
      if (contains(line, "/status/404")) return line;
    return std::string();
  };
  CHECK(contains(answer_of_404(), R"("content_type":"application/json","header_x_tag":"gone","body":"status 404\n")"));

  RunReport second = run_pipeline(test::plan_of(cache_pipeline(dir, urls, cache)));
  CHECK(cache_row(second) == "2 0 0");
  CHECK(requests(server) == 4);  // the 503 again
  CHECK(sorted_lines(dir, "bad.jsonl") == failures);
  CHECK(contains(failures[0], R"("status":404,"reason":"http_status")"));
  CHECK(contains(answer_of_404(), R"("content_type":"application/json","header_x_tag":"gone","body":"status 404\n")"));

  RunReport offline = run_pipeline(
      test::plan_of(cache_pipeline(dir, urls, "    cache: {path: " + db + ", keep_status: [404], offline: true}\n")));
  CHECK(requests(server) == 4);
  const auto replayed = sorted_lines(dir, "bad.jsonl");
  REQUIRE(replayed.size() == 2);
  CHECK(replayed[0] == failures[0]);
  CHECK(contains(replayed[1], R"("reason":"not_cached")"));

  Diagnostics diags;  // 503 is retried: it would never be kept
  CHECK_FALSE(load_pipeline_text(cache_pipeline(dir, urls, "    cache: {path: c.db, keep_status: [4xx, 503]}\n"),
                                 "p.yaml", test::builtin_registry(), LoadOptions{{}, test::fixed_env()}, diags));
  CHECK(diags.to_string() ==
        "p.yaml:10:38: error: cache.keep_status: 429 is retried (retries.on_status), and a retried status is never "
        "kept\n"
        "p.yaml:10:38: error: cache.keep_status: 503 is retried (retries.on_status), and a retried status is never "
        "kept\n");
}

TEST_CASE("cache: stale_if_error answers with an old response when its host fails", "[fetch][cache]") {
  TempDir dir;
  const std::string db = dir.file("cache.db");
  std::vector<std::string> urls;
  std::vector<std::string> recorded;
  const std::string cache = "    cache: {path: " + db + ", max_age: 1h, stale_if_error: true}\n";
  {
    FixtureServer server(std::string(SLUICE_SOURCE_DIR) + "/tests/fixtures/site");
    urls = {server.url("/item/1.html"), server.url("/item/2.html"), server.url("/headers?X-Tag=a")};
    REQUIRE(run_pipeline(test::plan_of(cache_pipeline(dir, urls, cache))).errors.empty());
    recorded = sorted_lines(dir, "same.jsonl");
    REQUIRE(recorded.size() == 3);
  }  // the server is gone: requests fail with reason connect
  test::execute(db, "UPDATE responses SET fetched_at = fetched_at - 7200");  // two hours old

  RunReport down = run_pipeline(test::plan_of(cache_pipeline(dir, urls, cache)));
  REQUIRE(down.errors.empty());
  CHECK(sorted_lines(dir, "same.jsonl") == recorded);
  CHECK(test::read_file(dir.file("bad.jsonl")).empty());
  for (const auto& line : sorted_lines(dir, "how.jsonl")) CHECK(contains(line, R"("cached":true,"attempts":1,)"));
  for (const auto& t : down.tables)
    if (t.name == "cache") CHECK(t.rows[0].get("stale_if_error")->to_text() == "3");

  // Without it, the failures are the records' (and old responses without a version are swept).
  RunReport plain =
      run_pipeline(test::plan_of(cache_pipeline(dir, urls, "    cache: {path: " + db + ", max_age: 1h}\n")));
  const auto bad = sorted_lines(dir, "bad.jsonl");
  REQUIRE(bad.size() == 3);
  for (const auto& line : bad) CHECK(contains(line, R"("status":null,"reason":"connect")"));
  CHECK(test::query(db, "SELECT count(*) FROM responses") == std::vector<std::string>{"2"});

  Diagnostics diags;
  CHECK_FALSE(load_pipeline_text(cache_pipeline(dir, urls, "    cache: {path: c.db, stale_if_error: true}\n"), "p.yaml",
                                 test::builtin_registry(), LoadOptions{{}, test::fixed_env()}, diags));
  CHECK(diags.to_string() ==
        "p.yaml:10:41: error: cache: stale_if_error needs a max_age (without one no response is ever old, and every "
        "one is answered from the cache)\n");
}
