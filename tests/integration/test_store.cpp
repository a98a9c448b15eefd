// store.sqlite with real SQLite files.
#include <fmt/format.h>
#include <sqlite3.h>
#include <catch2/catch.hpp>

#include <thread>

#include "../process.hpp"
#include "../support.hpp"
#include "fixture_server.hpp"

using namespace sluice;
using test::query;
using test::TempDir;

namespace {

std::string store_pipeline(const std::string& db, int to, const std::string& store_extra = "",
                           const std::string& middle = "", const std::string& settings = "batch: 100") {
  return fmt::format(R"(pipeline: store_test
settings: {{{settings}}}
nodes:
  - id: src
    type: source.list
    template: "https://x.example/p/{{n}}"
    to: {to}
  - id: tag
    type: set
    fields: {{name: "item {{n}}", price: 2.5}}
{middle}
  - id: store
    type: store.sqlite
    path: {db}
    table: items
    columns: {{url: TEXT, n: INTEGER, name: TEXT, price: REAL}}
{extra}
edges:
  - src -> tag -> {next}
)",
                     fmt::arg("settings", settings), fmt::arg("to", to), fmt::arg("middle", middle), fmt::arg("db", db),
                     fmt::arg("extra", store_extra), fmt::arg("next", middle.empty() ? "store" : "boom -> store"));
}

}  // namespace

TEST_CASE("store.sqlite creates the table and stores every record with typed columns", "[store]") {
  TempDir dir;
  std::string db = dir.file("shop.db");
  RunReport report = run_pipeline(test::plan_of(store_pipeline(db, 2500)));
  REQUIRE(report.errors.empty());
  CHECK(query(db, "SELECT count(*), sum(n), typeof(n), typeof(price) FROM items") ==
        std::vector<std::string>{"2500|3126250|integer|real"});
  CHECK(query(db, "SELECT url, n, name, price FROM items WHERE n = 7") ==
        std::vector<std::string>{"https://x.example/p/7|7|item 7|2.5"});
  CHECK(query(db, "PRAGMA journal_mode") == std::vector<std::string>{"wal"});
  CHECK(test::stats_of(report, "store").records_in == 2500);
}

TEST_CASE("a column or field that no record had is a warning at the end that names the records' fields",
          "[store][run]") {
  // A mistyped name (prcie) fills a column with nulls and fails nothing: the warning says so. A field
  // that some records have (n: the second source's records lack it) is no mistake.
  TempDir dir;
  RunReport report = run_pipeline(test::plan_of(fmt::format(R"(pipeline: t
nodes:
  - id: a
    type: source.list
    template: "https://x.example/a/{{n}}"
    to: 2
  - id: b
    type: source.list
    template: "https://x.example/b/{{n}}"
    to: 1
  - id: name
    type: set
    fields: {{name: "item {{n}}"}}
  - id: drop_n
    type: set
    remove: [n]
  - id: store
    type: store.sqlite
    path: {}
    table: items
    columns: {{url: TEXT, n: INTEGER, name: TEXT, price: REAL, label: TEXT}}
    fields: {{price: prcie}}
    key: [url]
  - id: sheet
    type: sink.csv
    path: {}
    fields: [url, nme, n]
  - id: one
    type: sink.jsonl
    path: {}
    fields: [url, n, tilte]
edges:
  - a -> name -> store
  - b -> drop_n -> store
  - a -> sheet
  - b -> one
)",
                                                            dir.file("t.db"), dir.file("t.csv"), dir.file("t.jsonl"))));
  REQUIRE(report.errors.empty());
  std::vector<std::string> notices;
  for (const auto& n : report.notices) notices.push_back(n.node + ": " + n.message);
  std::sort(notices.begin(), notices.end());
  CHECK(notices == std::vector<std::string>{
                       "one: fields: no record had a field 'tilte', so it is null in the one line (the records' "
                       "fields: n, url)",
                       "sheet: fields: no record had a field 'nme', so it is empty in all 2 rows (the records' "
                       "fields: n, url)",
                       "store: column 'label': no record had a field 'label', so it is null in all 3 rows (the "
                       "records' fields: n, name, url)",
                       "store: column 'price': no record had a field 'prcie', so it is null in all 3 rows (the "
                       "records' fields: n, name, url)",
                   });
  CHECK(query(dir.file("t.db"), "SELECT count(*), count(n), count(price) FROM items") ==
        std::vector<std::string>{"3|2|0"});
}

TEST_CASE("a key that is not unique to a record is a warning when most records of a run went into rows it stored",
          "[store]") {
  // Items keyed by their page: each later item of a page replaces the one before, and nothing fails.
  TempDir dir;
  // `records` items on `pages` pages, each item `times` times (listed on several pages); stored
  // with `key`: the store's warnings.
  auto run = [&](int records, int pages, int times, const std::string& key) {
    std::string csv = "page,name\n";
    for (int i = 0; i < records; ++i) csv += fmt::format("p{},item{}\n", i % pages, i / times);
    test::write_file(dir.file("items.csv"), csv);
    RunReport report = run_pipeline(test::plan_of(fmt::format(R"(pipeline: t
nodes:
  - {{id: src, type: source.csv, path: {}}}
  - {{id: store, type: store.sqlite, path: {}, table: items, columns: {{page: TEXT, name: TEXT}}, key: [{}]}}
edges:
  - src -> store
)",
                                                              dir.file("items.csv"), dir.file("t.db"), key)));
    REQUIRE(report.errors.empty());
    return test::notices_of(report, "store");
  };
  CHECK(
      run(30, 3, 1, "page") ==
      std::vector<std::string>{"30 records went into 3 rows of table 'items': 27 had the key (page) of a row this run "
                               "had stored already, and went into it; if each record is a row of its own, the key "
                               "is not unique to one (a page's items need more than the page's URL: key: "
                               "[page_url, name])"});
  CHECK(query(dir.file("t.db"), "SELECT count(*) FROM items") == std::vector<std::string>{"3"});
  CHECK(run(30, 3, 1, "page").empty());  // the table had rows already: updating them is what a key is for
  std::filesystem::remove(dir.file("t.db"));
  // Each item twice (listed on two pages), keyed by name: half the records went into rows stored
  // before, which is what a key is for too.
  CHECK(run(20, 3, 2, "name").empty());
  CHECK(query(dir.file("t.db"), "SELECT count(*) FROM items") == std::vector<std::string>{"10"});
  std::filesystem::remove(dir.file("t.db"));
  CHECK(run(30, 3, 1, "name").empty());
}

TEST_CASE("a key makes writes UPSERTs: running twice leaves no duplicates", "[store]") {
  TempDir dir;
  std::string db = dir.file("shop.db");
  for (int run = 0; run < 2; ++run) {
    RunReport report = run_pipeline(test::plan_of(store_pipeline(db, 1000, "    key: [url]")));
    REQUIRE(report.errors.empty());
  }
  CHECK(query(db, "SELECT count(*), count(DISTINCT url) FROM items") == std::vector<std::string>{"1000|1000"});
}

TEST_CASE("keep_existing: an UPSERT leaves those columns as they were first stored (first_seen)", "[store]") {
  TempDir dir;
  const std::string db = dir.file("prices.db");
  const auto run = [&](int from, int to, int seen, const std::string& keep) {
    RunReport report =
        run_pipeline(test::plan_of(fmt::format(R"(pipeline: prices
nodes:
  - {{id: src, type: source.list, template: "https://x.example/p/{{n}}", from: {from}, to: {to}}}
  - {{id: tag, type: set, fields: {{price: "{seen}.5", seen: {seen}}}}}
  - id: store
    type: store.sqlite
    path: {db}
    table: prices
    columns: {{url: TEXT, price: REAL, first_seen: INTEGER, last_seen: INTEGER}}
    fields: {{first_seen: seen, last_seen: seen}}
    key: [url]
    keep_existing: {keep}
edges:
  - src -> tag -> store
)",
                                               fmt::arg("from", from), fmt::arg("to", to), fmt::arg("seen", seen),
                                               fmt::arg("db", db), fmt::arg("keep", keep))));
    REQUIRE(report.errors.empty());
  };
  run(1, 3, 1, "[first_seen]");
  run(2, 4, 2, "[first_seen]");
  const std::string rows = "SELECT url, price, first_seen, last_seen FROM prices ORDER BY url";
  CHECK(query(db, rows) == std::vector<std::string>{"https://x.example/p/1|1.5|1|1", "https://x.example/p/2|2.5|1|2",
                                                    "https://x.example/p/3|2.5|1|2", "https://x.example/p/4|2.5|2|2"});
  // Every column but the key: the rows there are kept whole, a new key is added.
  run(3, 5, 3, "[price, first_seen, last_seen]");
  CHECK(query(db, rows) == std::vector<std::string>{"https://x.example/p/1|1.5|1|1", "https://x.example/p/2|2.5|1|2",
                                                    "https://x.example/p/3|2.5|1|2", "https://x.example/p/4|2.5|2|2",
                                                    "https://x.example/p/5|3.5|3|3"});

  const auto diagnostics = [&](const std::string& store) {
    Diagnostics diags;
    load_pipeline_text(fmt::format(R"(pipeline: bad
nodes:
  - {{id: src, type: source.list, urls: [a]}}
  - {{id: store, type: store.sqlite, path: x.db, table: t, columns: {{url: TEXT, seen: INTEGER}}, {}}}
edges:
  - src -> store
)",
                                   store),
                       "p.yaml", test::builtin_registry(), LoadOptions{{}, test::fixed_env()}, diags);
    return diags.to_string();
  };
  CHECK(diagnostics("keep_existing: [seen]") ==
        "p.yaml:4:112: error: keep_existing needs a key: without one every record is a row of its own\n");
  CHECK(diagnostics("key: [url], keep_existing: [url, when]") ==
        "p.yaml:4:124: error: keep_existing: 'url' is a key column, which an UPSERT never changes\n"
        "p.yaml:4:129: error: keep_existing: 'when' is not one of the columns\n");
}

TEST_CASE("a record without a value for a key column is not stored and is counted as an error", "[store]") {
  // SQLite's UNIQUE lets NULLs repeat: before, such rows were added again by every run (and by
  // every resume), so a keyed table grew duplicates.
  TempDir dir;
  const std::string db = dir.file("shop.db");
  auto on_error = GENERATE(std::string("fail"), std::string("skip"));
  Plan plan = test::plan_of(fmt::format(R"(pipeline: keyless
settings: {{batch: 10}}
nodes:
  - {{id: numbered, type: source.list, template: "https://x.example/p/{{n}}", to: 50}}
  - {{id: plain, type: source.list, urls: ["https://x.example/none/1", "https://x.example/none/2"]}}
  - {{id: store, type: store.sqlite, path: {}, table: items, columns: {{url: TEXT, n: INTEGER}}, key: [n], on_error: {}}}
edges:
  - numbered -> store
  - plain -> store
)",
                                        db, on_error));
  for (int run = 0; run < 2; ++run) {
    RunReport report = run_pipeline(plan);
    const auto& stats = test::stats_of(report, "store");
    const auto stored = std::stoull(query(db, "SELECT count(*) FROM items")[0]);
    CHECK(query(db, "SELECT count(*) FROM items WHERE n IS NULL") == std::vector<std::string>{"0"});
    if (on_error == "skip") {
      CHECK(report.status == RunStatus::succeeded);
      CHECK(stats.records_in == 52);
      CHECK(stats.errors == 2);
      CHECK(stored == 50);  // and still 50 after the second run
    } else {
      CHECK(report.status == RunStatus::failed);
      REQUIRE(report.errors.size() == 1);
      CHECK_THAT(report.errors[0].to_string(),
                 Catch::Contains("key column 'n' has no value (record field 'n' is missing) in record "
                                 "'https://x.example/none/"));
      CHECK_THAT(report.errors[0].to_string(),
                 Catch::EndsWith("not stored, since a row without its key would never be replaced (a filter with "
                                 "'op: exists' before the store drops such records)"));
      // The failure cancels the run: the sources stop early, and the broken store counts what it lost.
      if (run == 0) CHECK(stats.records_in == stored + stats.errors);
    }
  }
}

TEST_CASE("text that is not UTF-8 is stored byte for byte as a BLOB, so that UTF-8 readers do not fail on it",
          "[store]") {
  TempDir site;
  test::write_file(site.file("sjis.html"), "<h1>\x93\xfa\x96\x7b</h1>");  // Shift_JIS
  test::write_file(site.file("utf8.html"), "<h1>\xe6\x97\xa5\xe6\x9c\xac</h1>");
  fixture::FixtureServer server(site.path().string());
  TempDir dir;
  // A URL list saved in Latin-1: the first line's URL is not UTF-8.
  test::write_file(dir.file("urls.txt"), server.url("/sjis.html") + "?q=caf\xe9\n" + server.url("/utf8.html") + "\n");
  const std::string db = dir.file("pages.db");
  const std::string pipeline = fmt::format(R"(pipeline: bytes
nodes:
  - {{id: src, type: source.list, file: {}}}
  - {{id: get, type: fetch, robots: ignore}}
  - id: store
    type: store.sqlite
    path: {}
    table: pages
    columns: {{url: TEXT, body: TEXT}}
    key: [url]
edges:
  - src -> get -> store
)",
                                           dir.file("urls.txt"), db);
  for (int run = 0; run < 2; ++run) REQUIRE(run_pipeline(test::plan_of(pipeline)).errors.empty());
  CHECK(query(db, "SELECT typeof(url), typeof(body), hex(body) FROM pages ORDER BY typeof(url)") ==
        std::vector<std::string>{"blob|blob|3C68313E93FA967B3C2F68313E", "text|text|3C68313EE697A5E69CAC3C2F68313E"});
  CHECK(query(db, "SELECT count(*) FROM pages") == std::vector<std::string>{"2"});  // the key holds for a BLOB too
  std::string latin1_url;
  for (unsigned char c : server.url("/sjis.html") + "?q=caf\xe9") latin1_url += fmt::format("{:02X}", c);
  CHECK(query(db, "SELECT hex(url) FROM pages WHERE typeof(url) = 'blob'") == std::vector<std::string>{latin1_url});
}

TEST_CASE("an existing table with columns the node does not write is refused with a clear error", "[store]") {
  TempDir dir;
  std::string db = dir.file("shop.db");
  test::execute(db, "CREATE TABLE items (url TEXT, title TEXT)");
  RunReport report = run_pipeline(test::plan_of(store_pipeline(db, 10)));
  REQUIRE(report.errors.size() == 1);
  CHECK(report.errors[0].to_string() ==
        fmt::format("node 'store': table 'items' in '{}' exists with columns (url TEXT, title TEXT), but this node "
                    "writes (url TEXT, n INTEGER, name TEXT, price REAL); use another table or migrate it (a column "
                    "the node adds is added by itself; one it drops or retypes is not)",
                    db));
  CHECK(query(db, "SELECT count(*) FROM items") == std::vector<std::string>{"0"});
  CHECK(query(db, "SELECT group_concat(name) FROM pragma_table_info('items')") ==
        std::vector<std::string>{"url,title"});  // nothing was added to a table that is refused
}

TEST_CASE("a column the pipeline gained is added to the existing table, and a retyped one is refused", "[store]") {
  // Before, adding a field to a scraper made its next run fail until the table was migrated by hand.
  TempDir dir;
  std::string db = dir.file("shop.db");
  test::execute(db, "CREATE TABLE items (n INTEGER, url TEXT, UNIQUE (url)); INSERT INTO items VALUES (0, 'old')");
  RunReport report = run_pipeline(test::plan_of(store_pipeline(db, 10, "    key: [url]")));
  REQUIRE(report.errors.empty());
  CHECK(query(db, "SELECT group_concat(name || ' ' || type) FROM pragma_table_info('items')") ==
        std::vector<std::string>{"n INTEGER,url TEXT,name TEXT,price REAL"});
  CHECK(query(db, "SELECT count(*), count(price) FROM items") == std::vector<std::string>{"11|10"});
  CHECK(query(db, "SELECT name, price FROM items WHERE url = 'https://x.example/p/3'") ==
        std::vector<std::string>{"item 3|2.5"});
  // The same name with another type is not a new column.
  test::execute(db, "CREATE TABLE retyped (url TEXT, n TEXT)");
  std::string pipeline = store_pipeline(db, 10);
  pipeline.replace(pipeline.find("table: items"), 12, "table: retyped");
  RunReport refused = run_pipeline(test::plan_of(pipeline));
  REQUIRE(refused.errors.size() == 1);
  CHECK(refused.errors[0].message.find("exists with columns (url TEXT, n TEXT)") != std::string::npos);
  CHECK(query(db, "SELECT count(*) FROM pragma_table_info('retyped')") == std::vector<std::string>{"2"});
}

TEST_CASE("a key given to a table that had none gets its UNIQUE index, unless rows repeat a key", "[store]") {
  TempDir dir;
  std::string db = dir.file("shop.db");
  test::execute(db,
                "CREATE TABLE items (url TEXT, n INTEGER, name TEXT, price REAL);"
                "INSERT INTO items VALUES ('https://x.example/p/3', 3, 'old', 1.0);"
                "CREATE TABLE twice (url TEXT, n INTEGER, name TEXT, price REAL);"
                "INSERT INTO twice VALUES ('a', 1, 'x', 1.0), ('a', 2, 'y', 2.0);");
  RunReport report = run_pipeline(test::plan_of(store_pipeline(db, 5, "    key: [url]")));
  REQUIRE(report.errors.empty());
  CHECK(query(db, "SELECT count(*), sum(name = 'item 3') FROM items") == std::vector<std::string>{"5|1"});
  std::string pipeline = store_pipeline(db, 5, "    key: [url]");
  pipeline.replace(pipeline.find("table: items"), 12, "table: twice");
  RunReport refused = run_pipeline(test::plan_of(pipeline));
  REQUIRE(refused.errors.size() == 1);
  CHECK(refused.errors[0].message ==
        fmt::format("making the UNIQUE index key (url) needs on table 'twice' (no two rows may have the same key) "
                    "on '{}' failed: UNIQUE constraint failed: twice.url",
                    db));
}

TEST_CASE("indexes are made on the table for the queries that read it, once, and their columns checked",
          "[store]") {
  TempDir dir;
  std::string db = dir.file("shop.db");
  const std::string indexes = "    indexes: [name, 'price, n']";
  for (int run = 0; run < 2; ++run) {  // the second run finds them made
    RunReport report = run_pipeline(test::plan_of(store_pipeline(db, 50, indexes)));
    REQUIRE(report.errors.empty());
  }
  CHECK(query(db, "SELECT name, sql FROM sqlite_master WHERE type = 'index' ORDER BY name") ==
        std::vector<std::string>{
            R"(sluice_index_items_name|CREATE INDEX "sluice_index_items_name" ON "items" ("name"))",
            R"(sluice_index_items_price_n|CREATE INDEX "sluice_index_items_price_n" ON "items" ("price", "n"))"});
  // SQLite uses it: a lookup by name searches the index instead of scanning the table.
  CHECK(test::contains(query(db, "EXPLAIN QUERY PLAN SELECT * FROM items WHERE name = 'item 7'").at(0),
                       "USING INDEX sluice_index_items_name"));
  CHECK(query(db, "SELECT count(*) FROM items") == std::vector<std::string>{"100"});

  Diagnostics diags;
  CHECK_FALSE(load_pipeline_text(store_pipeline(db, 5, "    indexes: [nme, 'price,', listed]"), "p.yaml",
                                 test::builtin_registry(), LoadOptions{{}, test::fixed_env()}, diags));
  CHECK(diags.to_string() ==
        "p.yaml:17:15: error: indexes: 'nme' is not one of the columns\n"
        "p.yaml:17:20: error: indexes: an index names its columns, separated by commas ('category, price')\n"
        "p.yaml:17:30: error: indexes: 'listed' is not one of the columns\n");
}

TEST_CASE("a batch that cannot commit is rolled back whole and reported with its cause", "[store]") {
  TempDir dir;
  std::string db = dir.file("small.db");
  // A database capped at a few pages fills up like a full disk: SQLITE_FULL.
  RunReport report = run_pipeline(test::plan_of(
      store_pipeline(db, 20000, "    batch: {rows: 500}\n    pragmas: {max_page_count: 40, page_size: 4096}")));
  CHECK(report.status == RunStatus::failed);
  REQUIRE_FALSE(report.errors.empty());
  const std::string error = report.errors[0].to_string();
  CHECK(error.starts_with("node 'store': batch of "));
  CHECK(error.find(fmt::format(" rows rolled back, nothing of it stored in '{}'", db)) != std::string::npos);
  CHECK(report.errors[0].message.find("database or disk is full") != std::string::npos);
  CHECK(report.errors[0].message.find("(database or disk is full)") == std::string::npos);  // said once
  auto count = std::stoi(query(db, "SELECT count(*) FROM items")[0]);
  CHECK(count > 0);
  CHECK(count % 500 == 0);  // whole batches only
  CHECK(query(db, "PRAGMA integrity_check") == std::vector<std::string>{"ok"});
  // Every record the store received is either stored or counted as an error: the rolled-back
  // batch, and what arrived after the store had failed.
  const auto& stats = test::stats_of(report, "store");
  CHECK(stats.records_in == count + stats.errors);
  CHECK(stats.errors > 0);
}

TEST_CASE("on_error: skip on a store counts the rows of a lost batch and keeps storing", "[store]") {
  TempDir dir;
  std::string db = dir.file("small.db");
  RunReport report = run_pipeline(test::plan_of(store_pipeline(
      db, 20000, "    on_error: skip\n    batch: {rows: 500}\n    pragmas: {max_page_count: 40, page_size: 4096}")));
  CHECK(report.status == RunStatus::succeeded);
  CHECK(report.errors.empty());
  const auto& stats = test::stats_of(report, "store");
  CHECK(stats.records_in == 20000);
  auto count = std::stoull(query(db, "SELECT count(*) FROM items")[0]);
  CHECK(count > 0);
  CHECK(stats.errors > 0);
  CHECK(count + stats.errors == 20000);
}

namespace {

// Another connection holding the write lock of `db` (a new database with the store's table) from
// now until release().
class WriteLock {
 public:
  explicit WriteLock(const std::string& db) {
    sqlite3_open(db.c_str(), &holder_);
    sqlite3_exec(holder_, "PRAGMA journal_mode=WAL; CREATE TABLE items (url TEXT, n INTEGER, name TEXT, price REAL);",
                 nullptr, nullptr, nullptr);
    sqlite3_exec(holder_, "BEGIN IMMEDIATE; INSERT INTO items VALUES ('held', 0, 'x', 0);", nullptr, nullptr, nullptr);
  }
  WriteLock(const WriteLock&) = delete;
  WriteLock& operator=(const WriteLock&) = delete;
  ~WriteLock() { release(); }
  void release() {
    if (!holder_) return;
    sqlite3_exec(holder_, "ROLLBACK", nullptr, nullptr, nullptr);
    sqlite3_close(holder_);
    holder_ = nullptr;
  }

 private:
  sqlite3* holder_ = nullptr;
};

}  // namespace

TEST_CASE("a locked database gives a clear error after busy_timeout and no partial batch", "[store]") {
  TempDir dir;
  std::string db = dir.file("locked.db");
  WriteLock lock(db);
  RunReport report = run_pipeline(test::plan_of(store_pipeline(db, 50, "    pragmas: {busy_timeout: 200}")));
  lock.release();
  CHECK(report.status == RunStatus::failed);
  REQUIRE_FALSE(report.errors.empty());
  CHECK(report.errors[0].message ==
        fmt::format("batch of 50 rows dropped, nothing of it stored in '{}': could not start a transaction: "
                    "database is locked",
                    db));
  CHECK(test::stats_of(report, "store").errors == 50);
  CHECK(query(db, "SELECT count(*) FROM items") == std::vector<std::string>{"0"});
}

// A store that fails keeps the rows left after the failed batch for close(), which runs once the
// cancelled graph has ended: flushed from the sink's loop instead, they waited out busy_timeout a
// second time while the records behind them held the graph, and a busy_timeout as long as
// abort_timeout (5 s both, by default) made every run on a locked database end as if a node were
// stuck ("the graph did not end within abort_timeout").
TEST_CASE("a store that fails on a locked database lets the cancelled run end without waiting on it", "[store]") {
  TempDir dir;
  std::string db = dir.file("locked.db");
  WriteLock lock(db);
  RunReport report = run_pipeline(test::plan_of(
      store_pipeline(db, 5000, "    batch: {rows: 1000, interval: 50ms}\n    pragmas: {busy_timeout: 600}", "",
                     "batch: 128, abort_timeout: 400ms")));
  lock.release();
  CHECK(report.status == RunStatus::failed);
  CHECK_FALSE(report.abandoned);
  REQUIRE(report.errors.size() >= 2);
  for (const auto& e : report.errors) {
    INFO(e.to_string());
    CHECK(e.node == "store");
    CHECK(e.message.find("nothing of it stored in") != std::string::npos);
    CHECK(e.message.ends_with("could not start a transaction: database is locked"));
  }
  // Every record it received is accounted for: in a failed batch, among the rows after it (tried
  // once more by close()), or arrived after the failure.
  const auto& stats = test::stats_of(report, "store");
  CHECK(stats.records_in > 1000);
  CHECK(stats.errors == stats.records_in);
  CHECK(query(db, "SELECT count(*) FROM items") == std::vector<std::string>{"0"});
}

TEST_CASE("a database path that cannot be created fails the run before it starts", "[store]") {
  RunReport report = run_pipeline(test::plan_of(store_pipeline("/proc/sluice-no-such-dir/x.db", 10)));
  REQUIRE(report.errors.size() == 1);
  CHECK(report.errors[0].to_string() ==
        "node 'store': cannot open database '/proc/sluice-no-such-dir/x.db': unable to open database file (the "
        "folder '/proc/sluice-no-such-dir' does not exist)");
  CHECK(test::stats_of(report, "src").records_out == 0);
  // A folder that exists but cannot be written keeps SQLite's own words.
  RunReport proc = run_pipeline(test::plan_of(store_pipeline("/proc/x.db", 10)));
  REQUIRE(proc.errors.size() == 1);
  CHECK(proc.errors[0].to_string() == "node 'store': cannot open database '/proc/x.db': unable to open database file");
  // A folder, or a device (SQLite would fail only at its first write, with "disk I/O error").
  TempDir dir;
  RunReport folder = run_pipeline(test::plan_of(store_pipeline(dir.path().string(), 10)));
  REQUIRE(folder.errors.size() == 1);
  CHECK(folder.errors[0].to_string() ==
        fmt::format("node 'store': cannot open database '{}': it is a folder, not a file", dir.path().string()));
  RunReport device = run_pipeline(test::plan_of(store_pipeline("/dev/null", 10)));
  REQUIRE(device.errors.size() == 1);
  CHECK(device.errors[0].to_string() == "node 'store': cannot open database '/dev/null': not a regular file");
  CHECK(test::stats_of(device, "src").records_out == 0);
  // A file that is not a database (a CSV given by mistake) is said so, not by the first PRAGMA.
  const std::string csv = dir.file("items.csv");
  test::write_file(csv, "url,n\nhttps://x.example/1,1\n");
  RunReport text = run_pipeline(test::plan_of(store_pipeline(csv, 10)));
  REQUIRE(text.errors.size() == 1);
  CHECK(text.errors[0].to_string() ==
        fmt::format("node 'store': cannot open database '{}': file is not a database", csv));
  CHECK(test::read_file(csv) == "url,n\nhttps://x.example/1,1\n");
}

TEST_CASE("when a node fails, every record that reached the store is committed", "[store]") {
  TempDir dir;
  std::string db = dir.file("shop.db");
  RunReport report =
      run_pipeline(test::plan_of(store_pipeline(db, 1000000, "    batch: {rows: 100000, interval: 1h}",
                                                "  - id: boom\n    type: test.fail\n    equals: 30000", "batch: 100")));
  CHECK(report.status == RunStatus::failed);
  auto received = test::stats_of(report, "store").records_in;
  CHECK(received > 0);
  CHECK(received < 30000);
  CHECK(query(db, "SELECT count(*) FROM items") == std::vector<std::string>{std::to_string(received)});
}

TEST_CASE("a limit upstream never waits on a store batch: a full limit makes the store commit", "[store][limit]") {
  TempDir dir;
  std::string db = dir.file("shop.db");
  auto started = std::chrono::steady_clock::now();
  RunReport report =
      run_pipeline(test::plan_of(store_pipeline(db, 400, "    batch: {rows: 1000, interval: 1h}",
                                                "  - id: boom\n    type: limit\n    max_in_flight: 4", "batch: 10")));
  auto elapsed = std::chrono::steady_clock::now() - started;
  REQUIRE(report.errors.empty());
  CHECK(query(db, "SELECT count(*) FROM items") == std::vector<std::string>{"400"});
  // Waiting for the batch to fill (or for its 1 h interval) would never finish.
  CHECK(elapsed < std::chrono::seconds(60));
}

TEST_CASE("a store behind fetch never waits on a source's max_pending: no limit, and the run ends", "[store]") {
  // Records that went through fetch carry their source batch's tickets to the store. With one record
  // per batch, max_pending 2 and an interval of an hour, the source waited for tickets the store kept
  // until its interval: a deadlock (ended here by max_duration, with rows missing).
  fixture::FixtureServer server;
  TempDir dir;
  std::string db = dir.file("pages.db");
  RunReport report = run_pipeline(test::plan_of(fmt::format(R"(pipeline: tickets
settings: {{batch: 1, max_pending: 2, max_duration: 60s}}
nodes:
  - id: src
    type: source.list
    template: "{}?n={{n}}"
    to: 50
  - id: get
    type: fetch
    robots: ignore
  - id: store
    type: store.sqlite
    path: {}
    table: pages
    columns: {{url: TEXT, status: INTEGER}}
    batch: {{rows: 1000, interval: 1h}}
edges:
  - src -> get -> store
)",
                                                            server.url("/status/200"), db)));
  REQUIRE(report.errors.empty());
  CHECK(report.status == RunStatus::succeeded);
  CHECK(query(db, "SELECT count(*) FROM pages WHERE status = 200") == std::vector<std::string>{"50"});
}

TEST_CASE("two store nodes write to two tables of one database", "[store]") {
  TempDir dir;
  std::string db = dir.file("shop.db");
  Plan plan = test::plan_of(fmt::format(R"(pipeline: two_tables
nodes:
  - id: src
    type: source.list
    template: "u{{n}}"
    to: 3000
  - id: boom
    type: test.fail
    equals: 7
    on_error: route
  - id: items
    type: store.sqlite
    path: {0}
    table: items
    columns: {{url: TEXT, n: INTEGER}}
  - id: failures
    type: store.sqlite
    path: {0}
    table: failures
    columns: {{url: TEXT}}
edges:
  - src -> boom -> items
  - boom.error -> failures
)",
                                        db));
  RunReport report = run_pipeline(plan);
  REQUIRE(report.errors.empty());
  CHECK(query(db, "SELECT count(*) FROM items") == std::vector<std::string>{"2999"});
  CHECK(query(db, "SELECT url FROM failures") == std::vector<std::string>{"u7"});
}

TEST_CASE("rows waiting for their batch do not hold the database's write lock", "[store]") {
  // Another writer of the file (a second store, the run state) must not wait in SQLite's busy
  // handler while this store's rows wait for `rows` or `interval`: they wait in memory, and the
  // write lock is taken only for the batch's short transaction.
  TempDir dir;
  std::string db = dir.file("shop.db");
  Plan plan = test::plan_of(store_pipeline(db, 10, "    batch: {rows: 1000, interval: 1h}"));
  const PlanNode& node = plan.nodes.back();
  REQUIRE(node.id == "store");
  auto store = node.type->factory(NodeContext{node.id, node.config, node.where, plan.settings});
  auto& sink = dynamic_cast<SinkNode&>(*store);
  std::vector<Record> records(3);
  for (std::size_t i = 0; i < records.size(); ++i) {
    records[i].set("url", Value(fmt::format("https://x.example/p/{}", i)));
    records[i].set("n", Value(static_cast<std::int64_t>(i)));
  }
  sink.write(records);
  CHECK(sink.buffered());

  sqlite3* other = nullptr;
  REQUIRE(sqlite3_open(db.c_str(), &other) == SQLITE_OK);
  sqlite3_busy_timeout(other, 0);  // no waiting: the lock is free now or this fails
  CHECK(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
  CHECK(sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(other);

  CHECK(query(db, "SELECT count(*) FROM items") == std::vector<std::string>{"0"});
  sink.flush();
  CHECK_FALSE(sink.buffered());
  CHECK(query(db, "SELECT n FROM items ORDER BY n") == std::vector<std::string>{"0", "1", "2"});
  sink.close();
}

TEST_CASE("SIGINT during a run exits 130 with every received record committed", "[store][signal]") {
  TempDir dir;
  std::string db = dir.file("shop.db");
  test::write_file(dir.file("p.yaml"), store_pipeline(db, 100000000, "    batch: {rows: 5000, interval: 1h}"));
  test::Process p({SLUICE_BINARY, "run", dir.file("p.yaml")}, dir.file("stdout"), dir.file("stderr"));
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  p.signal(SIGINT);
  CHECK(p.wait() == 130);
  std::string err = test::read_file(dir.file("stderr"));
  // The stats table line of the store: "store  store.sqlite  <in> ..."
  auto at = err.find("\nstore ");
  REQUIRE(at != std::string::npos);
  std::istringstream line(err.substr(at + 1));
  std::string id, type;
  std::uint64_t in = 0;
  line >> id >> type >> in;
  CHECK(in > 0);
  CHECK(query(db, "SELECT count(*) FROM items") == std::vector<std::string>{std::to_string(in)});
}

namespace {

// source.sqlite reading `query` on `db`, into sink.jsonl at `out`.
std::string query_pipeline(const std::string& db, const std::string& query, const std::string& out) {
  return fmt::format(R"(pipeline: query
nodes:
  - id: rows
    type: source.sqlite
    path: {}
    query: "{}"
  - id: out
    type: sink.jsonl
    path: {}
edges:
  - rows -> out
)",
                     db, query, out);
}

}  // namespace

TEST_CASE("source.sqlite emits a query's rows with their types, one field per column", "[store][source]") {
  TempDir dir;
  std::string db = dir.file("in.db");
  test::execute(db,
                "CREATE TABLE items (url TEXT, n INTEGER, price REAL, raw BLOB, note TEXT);"
                "INSERT INTO items VALUES ('https://a.example/1', 1, 2.5, x'6869', NULL),"
                "  ('https://a.example/2', 2, 0.25, NULL, 'caf\xC3\xA9');");
  RunReport report = run_pipeline(test::plan_of(query_pipeline(
      db, "SELECT url, n, price, raw, note, n * 10 AS tens FROM items ORDER BY n", dir.file("out.jsonl"))));
  REQUIRE(report.errors.empty());
  CHECK(test::lines_of(test::read_file(dir.file("out.jsonl"))) ==
        std::vector<std::string>{R"({"url":"https://a.example/1","n":1,"price":2.5,"raw":"hi","note":null,"tens":10})",
                                 "{\"url\":\"https://a.example/"
                                 "2\",\"n\":2,\"price\":0.25,\"raw\":null,\"note\":\"caf\xC3\xA9\",\"tens\":20}"});
  CHECK(test::stats_of(report, "rows").records_out == 2);

  SECTION("a query with no rows ends the run at once") {
    RunReport none =
        run_pipeline(test::plan_of(query_pipeline(db, "SELECT url FROM items WHERE n > 99", dir.file("none.jsonl"))));
    REQUIRE(none.errors.empty());
    CHECK(test::read_file(dir.file("none.jsonl")).empty());
  }
}

TEST_CASE(
    "source.sqlite refuses a bad database or query, naming the node: before anything runs, or when a row fails it",
    "[store][source]") {
  TempDir dir;
  std::string db = dir.file("in.db");
  test::execute(db, "CREATE TABLE items (url TEXT, n INTEGER); INSERT INTO items VALUES ('u', 1);");
  auto error_of = [&](const std::string& path, const std::string& query) {
    RunReport report = run_pipeline(test::plan_of(query_pipeline(path, query, dir.file("out.jsonl"))));
    REQUIRE(report.errors.size() == 1);
    CHECK(test::stats_of(report, "out").records_in == 0);
    return report.errors[0].to_string();
  };
  CHECK(error_of(dir.file("missing.db"), "SELECT 1") ==
        fmt::format("node 'rows': cannot open database '{}': no such file", dir.file("missing.db")));
  CHECK(error_of("/proc/sluice-no-such-dir/in.db", "SELECT 1") ==
        "node 'rows': cannot open database '/proc/sluice-no-such-dir/in.db': no such file (the folder "
        "'/proc/sluice-no-such-dir' does not exist)");
  CHECK(error_of(dir.path().string(), "SELECT 1") ==
        fmt::format("node 'rows': cannot open database '{}': it is a folder, not a file", dir.path().string()));
  // Not a database: said at start, whether or not the query reads a table.
  const std::string csv = dir.file("items.csv");
  test::write_file(csv, "url,n\nhttps://x.example/1,1\n");
  CHECK(error_of(csv, "SELECT 1") ==
        fmt::format("node 'rows': cannot open database '{}': file is not a database", csv));
  CHECK(error_of(csv, "SELECT url FROM items") ==
        fmt::format("node 'rows': cannot open database '{}': file is not a database", csv));
  CHECK(error_of(db, "SELECT url FROM itmes") == fmt::format("node 'rows': query on '{}': no such table: itmes", db));
  CHECK(error_of(db, "SELEC url FROM items") ==
        fmt::format("node 'rows': query on '{}': near \"SELEC\": syntax error", db));
  CHECK(error_of(db, "DELETE FROM items") == "node 'rows': query must only read (a SELECT): 'DELETE FROM items'");
  CHECK(error_of(db, "SELECT url FROM items; DELETE FROM items") ==
        "node 'rows': query holds more than one statement: expected one SELECT");
  CHECK(error_of(db, "SELECT url, n AS url FROM items") ==
        "node 'rows': query returns two columns named 'url': each column becomes the record field of its name; "
        "rename one with AS");
  CHECK(error_of(db, "  ") == "node 'rows': query is empty: expected a SELECT");
  CHECK(error_of(db, "SELECT url FROM items WHERE n > ?") ==
        "node 'rows': query has parameters (?): nothing binds them; write the values in the query, or ${NAME} for "
        "an environment variable");
  CHECK(error_of(db, "SELECT url FROM items WHERE n > :min") ==
        "node 'rows': query has parameters (:min): nothing binds them; write the values in the query, or ${NAME} "
        "for an environment variable");
  // Errors that only running the query meets, on a row it reads: no row of it goes out.
  test::execute(db, "INSERT INTO items VALUES ('{\"a\": 1}', 2), ('{broken', 3);");
  CHECK(error_of(db, "SELECT json(url) AS doc FROM items WHERE n > 1") ==
        fmt::format("node 'rows': running the query on '{}' failed: malformed JSON", db));
  CHECK(error_of(db, "SELECT abs(-9223372036854775807 - n) AS a FROM items") ==
        fmt::format("node 'rows': running the query on '{}' failed: integer overflow", db));
  test::execute(db, "DELETE FROM items WHERE n > 1");
  // A trailing semicolon or comment is not a second statement.
  RunReport ok = run_pipeline(test::plan_of(query_pipeline(db, "SELECT url FROM items; -- all", dir.file("ok.jsonl"))));
  CHECK(ok.errors.empty());
  CHECK(test::read_file(dir.file("ok.jsonl")) == "{\"url\":\"u\"}\n");
  CHECK(query(db, "SELECT count(*) FROM items") == std::vector<std::string>{"1"});
}

TEST_CASE("source.sqlite holds no snapshot of the database while its rows go out", "[store][source]") {
  // A statement streaming its rows for the whole run would keep its snapshot, and the database's
  // WAL could not be restarted (a store writing the same file would grow it with every row).
  TempDir dir;
  std::string db = dir.file("in.db");
  sqlite3* writer = nullptr;  // kept open: its rows stay in the WAL
  REQUIRE(sqlite3_open(db.c_str(), &writer) == SQLITE_OK);
  auto exec = [&](const std::string& sql) {
    REQUIRE(sqlite3_exec(writer, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
  };
  exec(
      "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE items (n INTEGER);"
      "WITH RECURSIVE k(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM k WHERE n < 200) INSERT INTO items SELECT n FROM "
      "k;");
  const std::string yaml = fmt::format(R"(pipeline: snapshot
settings: {{batch: 1, max_pending: 1}}
nodes:
  - id: rows
    type: source.sqlite
    path: {}
    query: SELECT n FROM items ORDER BY n
  - id: one
    type: limit
    max_in_flight: 1
  - id: slow
    type: test.fail
    equals: 2
    delay: 3s
    on_error: skip
  - id: out
    type: sink.jsonl
    path: {}
edges:
  - rows -> one -> slow -> out
)",
                                       db, dir.file("out.jsonl"));
  RunReport report;
  std::thread run([&] { report = run_pipeline(test::plan_of(yaml)); });
  // Record 1 is written; record 2 waits 3 s in `slow` and the source is blocked mid-way.
  for (int i = 0; i < 500 && test::read_file(dir.file("out.jsonl")).empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(test::read_file(dir.file("out.jsonl")) == "{\"n\":1}\n");
  std::vector<std::string> checkpoint;
  sqlite3_exec(
      writer, "PRAGMA wal_checkpoint(TRUNCATE)",
      [](void* rows, int n, char** values, char**) {
        std::string row;
        for (int i = 0; i < n; ++i) row += std::string(i ? "|" : "") + (values[i] ? values[i] : "NULL");
        static_cast<std::vector<std::string>*>(rows)->push_back(row);
        return 0;
      },
      &checkpoint, nullptr);
  CHECK(checkpoint == std::vector<std::string>{"0|0|0"});  // not busy: no reader holds the WAL's frames
  run.join();
  sqlite3_close(writer);
  REQUIRE(report.errors.empty());
  CHECK(test::lines_of(test::read_file(dir.file("out.jsonl"))).size() == 199);
}

TEST_CASE("source.sqlite as a work queue: a resumed run runs its query again and does what is left",
          "[store][source][resume]") {
  TempDir dir;
  std::string db = dir.file("shop.db");
  test::execute(db,
                "CREATE TABLE items (url TEXT PRIMARY KEY, n INTEGER);"
                "WITH RECURSIVE k(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM k WHERE n < 100)"
                "INSERT INTO items SELECT 'https://a.example/' || n, n FROM k;");
  auto pipeline = [&](const std::string& fail_at) {
    return test::plan_of(fmt::format(R"(pipeline: details
settings: {{state: {0}, batch: 10}}
nodes:
  - id: todo
    type: source.sqlite
    path: {0}
    query: SELECT url, n FROM items WHERE NOT EXISTS (SELECT 1 FROM details d WHERE d.url = items.url) ORDER BY n
  - id: boom
    type: test.fail
    equals: "{1}"
  - id: detail
    type: set
    fields: {{detail: "item {{n}}"}}
  - id: store
    type: store.sqlite
    path: {0}
    table: details
    columns: {{url: TEXT, detail: TEXT}}
    key: [url]
    batch: {{rows: 10}}
edges:
  - todo -> boom -> detail -> store
)",
                                     db, fail_at));
  };
  // The store's table does not exist yet: the store is set up before the source prepares its query.
  RunReport first = run_pipeline(pipeline("60"));
  REQUIRE(first.errors.size() == 1);
  CHECK(first.errors[0].to_string() == "node 'boom': record 'https://a.example/60': injected failure");
  const auto stored = std::stoi(query(db, "SELECT count(*) FROM details")[0]);
  CHECK(stored < 60);  // n 60 failed the run

  RunOptions resume;
  resume.resume = true;
  RunReport second = run_pipeline(pipeline("none"), resume);
  REQUIRE(second.errors.empty());
  CHECK(test::stats_of(second, "todo").records_out == static_cast<std::uint64_t>(100 - stored));
  CHECK(query(db, "SELECT count(*), count(DISTINCT url), sum(detail = 'item ' || substr(url, 19)) FROM details") ==
        std::vector<std::string>{"100|100|100"});

  // Nothing is left: a third run (fresh, not resumed) reads no rows.
  RunReport third = run_pipeline(pipeline("none"));
  REQUIRE(third.errors.empty());
  CHECK(test::stats_of(third, "todo").records_out == 0);
}
