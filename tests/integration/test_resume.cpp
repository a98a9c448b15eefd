// Resumable runs: `sluice run` killed with SIGKILL at random points, then `--resume`, against the
// fixture server and real SQLite files.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "../../nodes/parse/gzip.hpp"
#include "../../tools/fixture_server/fixture_server.hpp"
#include "../process.hpp"
#include "../support.hpp"
#include "sluice/state.hpp"
#include "sluice/template.hpp"

using namespace sluice;
using test::query;
using test::TempDir;

namespace {

// An async node, as a plugin would write one, that holds every record it is given until a graceful
// stop and then ends them: with AsyncOutput::set_aside(), or (`set_aside` false) only counted with
// discard(), without marking them unfinished.
class Holding final : public AsyncNode {
 public:
  explicit Holding(bool set_aside) : set_aside_(set_aside) {}
  void start(AsyncOutput& out) override { out_ = &out; }
  void submit(Record&& record) override {
    std::unique_lock lock(mutex_);
    if (!winding_down_) {
      held_.push_back(std::move(record));
      return;
    }
    lock.unlock();
    end(std::move(record));
  }
  void wind_down() override {
    std::vector<Record> held;
    {
      std::lock_guard lock(mutex_);
      winding_down_ = true;
      held.swap(held_);
    }
    for (Record& r : held) end(std::move(r));
  }
  void cancel() override {
    std::vector<Record> held;
    {
      std::lock_guard lock(mutex_);
      held.swap(held_);
    }
    for (Record& r : held) out_->fail(std::move(r), "cancelled");
    out_->flush();
  }
  void stop() override {}

 private:
  void end(Record&& record) {
    if (set_aside_) {
      out_->set_aside(std::move(record));
      return;
    }
    { const Record gone = std::move(record); }
    out_->discard(1);
  }
  bool set_aside_;
  AsyncOutput* out_ = nullptr;
  std::mutex mutex_;
  bool winding_down_ = false;
  std::vector<Record> held_;
};

const Registry& holding_registry() {
  static const Registry registry = [] {
    Registry r;
    register_builtin_nodes(r);
    for (const bool set_aside : {true, false}) {
      NodeType t;
      t.name = set_aside ? "test.hold" : "test.hold_unmarked";
      t.kind = NodeKind::async;
      t.summary = "for tests: holds its records until a graceful stop";
      t.ports = {{"in", PortDirection::input, "records"}, {"out", PortDirection::output, "records"}};
      t.factory = [set_aside](const NodeContext&) { return std::make_unique<Holding>(set_aside); };
      r.add(std::move(t));
    }
    return r;
  }();
  return registry;
}

// The names of the files in `folder`, sorted.
std::vector<std::string> files_of(const std::string& folder) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(folder)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// 600 URLs of /delay/4, 8 in flight: about 0.3 s of work when nothing stops it.
std::string list_pipeline(const fixture::FixtureServer& server, const std::string& db, const std::string& state) {
  return fmt::format(R"(pipeline: resumable_list
settings:
  batch: 32
{}
nodes:
  - id: pages
    type: source.list
    template: "{}?n={{n}}"
    to: 600
  - id: lim
    type: limit
    max_in_flight: 8
  - id: get
    type: fetch
    robots: ignore
    retries: {{attempts: 1}}     # every request the server sees is a fetch of the pipeline's own
  - id: store
    type: store.sqlite
    path: {}
    table: pages
    columns: {{url: TEXT, n: INTEGER, status: INTEGER, body: TEXT}}
    key: [url]
    batch: {{rows: 50, interval: 20ms}}
  - id: lines                    # a file sink whose lines wait in its buffer: they must not count
    type: sink.jsonl             # as done before they are in the file
    path: {}.jsonl
    fields: [n]
    interval: 1h
edges:
  - pages -> lim -> get -> store
  - get -> lines
)",
                     state.empty() ? "" : "  state: " + state, server.url("/delay/4"), db, db);
}

// The distinct n of a list run's JSON Lines file, and whether it holds each of 1..600.
bool lines_complete(const std::string& path) {
  std::set<int> seen;
  for (const auto& line : test::lines_of(test::read_file(path))) seen.insert(std::stoi(line.substr(5)));
  return seen.size() == 600 && *seen.begin() == 1 && *seen.rbegin() == 600;
}

// A generated site of `pages` pages: page i links to i+1 and to (7i mod pages)+1.
void write_site(const std::string& root, int pages) {
  std::filesystem::create_directories(root + "/p");
  for (int i = 1; i <= pages; ++i) {
    test::write_file(fmt::format("{}/p/{}.html", root, i),
                     fmt::format("<html><body><div class=\"product\"><h2>item {}</h2></div>"
                                 "<a href=\"/p/{}.html\">next</a> <a href=\"/p/{}.html\">other</a></body></html>",
                                 i, i % pages + 1, (7 * i) % pages + 1));
  }
}

std::string crawl_pipeline(const fixture::FixtureServer& server, const std::string& db, const std::string& state) {
  return fmt::format(R"(pipeline: resumable_crawl
settings:
  batch: 16
{}
nodes:
  - id: seeds
    type: source.list
    urls: ["{}"]
  - id: frontier
    type: frontier
    window: 16
  - id: lim
    type: limit
    max_in_flight: 4
  - id: get
    type: fetch
    robots: ignore
    rate: 500/s
    burst: 4
  - id: parse
    type: parse.html
    items: div.product
    links: a[href]
    fields: {{name: h2}}
  - id: store
    type: store.sqlite
    path: {}
    table: items
    columns: {{page_url: TEXT, name: TEXT, depth: INTEGER}}
    key: [page_url]
    batch: {{rows: 20, interval: 20ms}}
edges:
  - seeds -> frontier -> lim -> get -> parse -> store
  - parse.links -> frontier
)",
                     state.empty() ? "" : "  state: " + state, server.url("/p/1.html"), db);
}

// Runs `pipeline` and sends it `sig` after each of `kills` delays (a run that ends first is fine),
// resuming every time; then resumes it to the end. Returns the number of runs the signal ended.
int run_with_kills(const TempDir& dir, const std::string& pipeline, const std::vector<int>& kills, int sig = SIGKILL) {
  int killed = 0;
  bool resume = false;
  for (int delay : kills) {
    std::vector<std::string> argv = {SLUICE_BINARY, "run", "-q", pipeline};
    if (resume) argv.push_back("--resume");
    test::Process p(argv, dir.file("stdout"), dir.file("stderr"));
    std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    p.signal(sig);
    int code = p.wait();
    if (code == 128 + sig) {
      ++killed;
    } else {
      INFO(test::read_file(dir.file("stderr")));
      REQUIRE(code == 0);
    }
    resume = true;
  }
  test::Process last({SLUICE_BINARY, "run", "-q", pipeline, "--resume"}, dir.file("stdout"), dir.file("stderr"));
  int code = last.wait();
  INFO(test::read_file(dir.file("stderr")));
  REQUIRE(code == 0);
  return killed;
}

// A state file of an interrupted run of pipeline "p" as an older sluice wrote it (no fields carried
// with a frontier's URLs), with `rows`.
void write_older_state(const std::string& path, const std::string& rows) {
  test::execute(path,
                "CREATE TABLE sluice_run (key TEXT PRIMARY KEY, value TEXT);"
                "INSERT INTO sluice_run VALUES ('pipeline', 'p'), ('status', 'running');"
                "CREATE TABLE sluice_source_done (node TEXT, first INTEGER, last INTEGER);"
                "CREATE TABLE sluice_frontier (node TEXT, hash INTEGER, url TEXT, from_url TEXT, depth INTEGER,"
                " done INTEGER, PRIMARY KEY (node, hash)) WITHOUT ROWID;" +
                    rows);
}

// A source's progress permits, as the runner's SourceProgress issues them (source "pages").
struct PagesProgress final : PermitSource {
  RunState* state = nullptr;
  void on_release(std::uint64_t seq) noexcept override { state->record_done("pages", seq); }
  void on_release_unfinished(std::uint64_t) noexcept override {}
};

// A fresh run state at `path` that tracks `progress`, hosted by the store database at `path` when
// `hosted`, started.
std::unique_ptr<RunState> open_tracking(const std::string& path, PagesProgress& progress, bool hosted) {
  auto state = RunState::open(path, "p", false);
  progress.state = state.get();
  if (hosted) REQUIRE(state->host(path));
  state->track(progress, "pages", false);
  state->start();
  return state;
}

std::vector<int> kill_points(unsigned seed, int count, int from_ms, int to_ms) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> pick(from_ms, to_ms);
  std::vector<int> out;
  for (int i = 0; i < count; ++i) out.push_back(pick(rng));
  return out;
}

}  // namespace

TEST_CASE("a list run killed with SIGKILL at random points and resumed stores the same rows once", "[resume]") {
  fixture::FixtureServer server;
  TempDir dir;
  // The reference: one uninterrupted run without state.
  test::write_file(dir.file("ref.yaml"), list_pipeline(server, dir.file("ref.db"), ""));
  test::Process ref({SLUICE_BINARY, "run", "-q", dir.file("ref.yaml")}, dir.file("stdout"), dir.file("stderr"));
  REQUIRE(ref.wait() == 0);
  const std::string rows = "SELECT url, n, status, body FROM pages ORDER BY n";
  const auto expected = query(dir.file("ref.db"), rows);
  REQUIRE(expected.size() == 600);

  // Seed 1 keeps the state in a file of its own; seeds 2 and 3 in the store's database, where
  // progress commits in the store's transactions.
  for (unsigned seed : {1u, 2u, 3u}) {
    DYNAMIC_SECTION("seed " << seed) {
      const bool hosted = seed != 1;
      const std::string db = dir.file(fmt::format("run{}.db", seed));
      const std::string state = hosted ? db : dir.file(fmt::format("run{}.state", seed));
      const std::string pipeline = dir.file(fmt::format("run{}.yaml", seed));
      test::write_file(pipeline, list_pipeline(server, db, state));
      server.reset_counters();
      int killed = run_with_kills(dir, pipeline, kill_points(seed, 3, 40, 250));
      CHECK(killed >= 1);
      CHECK(query(db, rows) == expected);
      CHECK(query(db, "SELECT count(*), count(DISTINCT url) FROM pages") == std::vector<std::string>{"600|600"});
      // The file sink appended in each resumed run, and none of its lines was lost to a kill (a
      // line of work that was redone may be there twice).
      CHECK(lines_complete(db + ".jsonl"));
      // Each record is recorded done once: a hosting store's transaction or its release, not both.
      CHECK(query(state,
                  "SELECT count(*) FROM sluice_source_done a JOIN sluice_source_done b ON a.rowid < b.rowid"
                  " AND a.node = b.node AND a.first <= b.last AND b.first <= a.last") == std::vector<std::string>{"0"});
      // What was stored is not fetched again. With the state in the store's transactions only what
      // was in flight at each kill is redone, and what was done since the last transaction: the
      // 8 of the limit, and the 8 before them that the file sink flushed but no store transaction
      // recorded yet. With a state file of its own also the last few milliseconds of progress.
      auto fetched = server.counter("/delay").requests;
      CHECK(fetched >= 600);
      CHECK(fetched <= 600 + static_cast<std::uint64_t>(killed) * (hosted ? 16 : 40));

      // Resuming a finished run does nothing and says so.
      server.reset_counters();
      test::Process again({SLUICE_BINARY, "run", pipeline, "--resume"}, dir.file("stdout"), dir.file("stderr"));
      CHECK(again.wait() == 0);
      CHECK_THAT(test::read_file(dir.file("stderr")),
                 Catch::Contains("already finished") && Catch::Contains("nothing to do"));
      CHECK(server.counter("*").requests == 0);
    }
  }
}

TEST_CASE("a list run stopped with Ctrl-C at random points and resumed fetches and writes every record once",
          "[resume]") {
  // A graceful stop drops the records waiting at the limit: they must not count as done, or the
  // resumed run would skip them. What was under way finishes and counts as done: the resumed run
  // does not fetch it, nor write its line, a second time.
  fixture::FixtureServer server;
  TempDir dir;
  const std::string db = dir.file("run.db");
  const std::string pipeline = dir.file("run.yaml");
  const bool hosted = GENERATE(true, false);  // the state in the store's database, or in a file of its own
  test::write_file(pipeline, list_pipeline(server, db, hosted ? db : dir.file("run.state")));
  int stopped = run_with_kills(dir, pipeline, kill_points(4, 3, 40, 250), SIGINT);
  CHECK(stopped >= 1);
  CHECK(query(db, "SELECT count(*), count(DISTINCT url), min(n), max(n) FROM pages") ==
        std::vector<std::string>{"600|600|1|600"});
  CHECK(query(db, "SELECT count(*) FROM pages WHERE status = 200") == std::vector<std::string>{"600"});
  CHECK(lines_complete(db + ".jsonl"));
  CHECK(test::lines_of(test::read_file(db + ".jsonl")).size() == 600);  // no line twice
  CHECK(server.counter("/delay").requests == 600);                      // no URL fetched twice
}

TEST_CASE("a crawl killed with SIGKILL or stopped with Ctrl-C at random points and resumed stores every page once",
          "[resume][crawl]") {
  TempDir dir;
  write_site(dir.file("site"), 300);
  fixture::FixtureServer server(dir.file("site"));
  test::write_file(dir.file("ref.yaml"), crawl_pipeline(server, dir.file("ref.db"), ""));
  test::Process ref({SLUICE_BINARY, "run", "-q", dir.file("ref.yaml")}, dir.file("stdout"), dir.file("stderr"));
  REQUIRE(ref.wait() == 0);
  const std::string rows = "SELECT page_url, name FROM items ORDER BY page_url";
  const auto expected = query(dir.file("ref.db"), rows);
  REQUIRE(expected.size() == 300);

  // Seeds 7 and 9 keep the state in the store's database, 8 and 10 in a file of its own; 9 and 10
  // stop with Ctrl-C, which drops the parked URLs and the requests not started: the resumed crawl
  // finds them again.
  for (unsigned seed : {7u, 8u, 9u, 10u}) {
    const int sig = seed < 9 ? SIGKILL : SIGINT;
    DYNAMIC_SECTION("seed " << seed << ", signal " << sig) {
      const std::string db = dir.file(fmt::format("crawl{}.db", seed));
      const std::string pipeline = dir.file(fmt::format("crawl{}.yaml", seed));
      const std::string state = seed % 2 == 1 ? db : dir.file(fmt::format("crawl{}.state", seed));
      test::write_file(pipeline, crawl_pipeline(server, db, state));
      server.reset_counters();
      int ended = run_with_kills(dir, pipeline, kill_points(seed, 3, 60, 450), sig);
      CHECK(ended >= 1);
      CHECK(query(db, rows) == expected);
      auto fetched = server.counter("/p").requests;
      CHECK(fetched >= 300);
      if (sig == SIGKILL) CHECK(fetched <= 300 + static_cast<std::uint64_t>(ended) * 40);
      // A graceful stop finishes the pages under way, and the frontier keeps the links they gave
      // (parked for the resumed crawl): no page is fetched twice.
      if (sig == SIGINT) CHECK(fetched == 300);
    }
  }
}

TEST_CASE("a resumed frontier knows the hosts its seeds redirected to", "[resume][crawl]") {
  // same_host follows a seed to the host it redirects to; a resumed crawl must too, also when every
  // link found on the seed's page is done and only deeper pages are left.
  TempDir dir;
  const std::string path = dir.file("state.db");
  {
    auto state = RunState::open(path, "p", false);
    state->start();
    state->url_accepted("f", {1, "http://example.com/", "", 0, ""});
    state->url_accepted("f", {2, "https://www.example.com/a", "https://www.example.com/", 1, ""});
    state->url_accepted("f", {3, "https://www.example.com/b", "https://www.example.com/", 1, ""});
    state->url_accepted("f", {4, "https://www.example.com/c", "https://www.example.com/a", 2, ""});
    state->close(false);
  }
  auto resumed = RunState::open(path, "p", true);
  auto seeds = resumed->frontier("f").seeds;
  std::sort(seeds.begin(), seeds.end());
  CHECK(seeds == std::vector<std::string>{"http://example.com/", "https://www.example.com/"});
}

TEST_CASE("a state file of an older sluice, without the carried fields, is resumed", "[resume][crawl]") {
  TempDir dir;
  const std::string path = dir.file("state.db");
  write_older_state(path,
                    "INSERT INTO sluice_frontier VALUES ('f', 7, 'https://a.example/x', 'https://a.example/', 1, 0);");
  auto resumed = RunState::open(path, "p", true);
  const auto& pending = resumed->frontier("f").pending;
  REQUIRE(pending.size() == 1);
  CHECK(pending[0].url == "https://a.example/x");
  CHECK(pending[0].fields.empty());
  resumed->start();
  resumed->url_accepted("f", {8, "https://a.example/y", "https://a.example/x", 2, R"({"category":"Tea"})"});
  resumed->close(false);
  CHECK(test::query(path, "SELECT url, fields FROM sluice_frontier WHERE hash = 8") ==
        std::vector<std::string>{R"(https://a.example/y|{"category":"Tea"})"});
}

TEST_CASE("a hosting store logs each record once, and after a stop what was queued before it only", "[resume]") {
  PagesProgress progress;
  TempDir dir;
  const std::string path = dir.file("shop.db");
  auto state = open_tracking(path, progress, true);
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  // One batch transaction of the store, holding `held`.
  auto commit = [&](const std::vector<PermitRef>& held) {
    REQUIRE(sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
    state->write_in(db, held);
    REQUIRE(sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK);
    state->committed(db);
  };
  const std::string ranges = "SELECT first, last FROM sluice_source_done ORDER BY first";

  std::vector<PermitRef> batch;
  batch.push_back(std::make_shared<const Permit>(progress, 2));
  batch.push_back(std::make_shared<const Permit>(progress, 3));
  PermitRef shared = batch[1];  // a copy outside the batch (an item still on its way): 3 is not done
  commit(batch);
  CHECK(query(path, ranges) == std::vector<std::string>{"2|2"});
  batch.clear();  // committed: 2's release records nothing more
  CHECK_FALSE(state->has_pending());
  shared.reset();  // the last holder: 3 is done from the next transaction on
  CHECK(state->has_pending());
  state->record_done("pages", 0);
  state->freeze();  // a stop: what is released from now on may have lost work that was dropped
  state->record_done("pages", 1);
  batch.push_back(std::make_shared<const Permit>(progress, 4));
  commit(batch);
  CHECK(query(path, ranges) == std::vector<std::string>{"0|0", "2|2", "3|3"});
  batch.clear();
  CHECK_FALSE(state->has_pending());
  sqlite3_close(db);
  state->close(false);
  CHECK(query(path, ranges) == std::vector<std::string>{"0|0", "2|2", "3|3"});
}

TEST_CASE("a record a graceful stop dropped is not logged done, whoever lets its permit go last", "[resume]") {
  PagesProgress progress;
  TempDir dir;
  const std::string ranges = "SELECT first, last FROM sluice_source_done ORDER BY first";
  SECTION("with a state file of its own") {
    const std::string path = dir.file("run.state");
    auto state = open_tracking(path, progress, false);
    auto a = std::make_shared<const Permit>(progress, 0);
    auto b = std::make_shared<const Permit>(progress, 1);
    PermitRef item = a;  // an item of page 0, dropped at a limit: page 0 is not done
    item->mark_unfinished();
    item.reset();
    a.reset();
    b.reset();  // page 1 finished
    state->close(false);
    CHECK(query(path, ranges) == std::vector<std::string>{"1|1"});
  }
  SECTION("hosted by a store, whose batch holds the last references") {
    const std::string path = dir.file("shop.db");
    auto state = open_tracking(path, progress, true);
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    std::vector<PermitRef> batch;
    batch.push_back(std::make_shared<const Permit>(progress, 2));
    batch.push_back(std::make_shared<const Permit>(progress, 3));
    batch[0]->mark_unfinished();  // another item of page 2 was dropped undone
    REQUIRE(sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
    state->write_in(db, batch);
    REQUIRE(sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK);
    state->committed(db);
    CHECK(query(path, ranges) == std::vector<std::string>{"3|3"});
    batch.clear();  // 2's release records nothing either; 3's was written already
    // A release after the store's last transaction (a file sink let its line go): written when the
    // state closes, with the run's status.
    auto late = std::make_shared<const Permit>(progress, 4);
    late.reset();
    sqlite3_close(db);
    state->close(false);
    CHECK(query(path, ranges) == std::vector<std::string>{"3|3", "4|4"});
    CHECK(query(path, "SELECT value FROM sluice_run WHERE key = 'status'") == std::vector<std::string>{"interrupted"});
  }
  SECTION("hosted by a store whose transaction rolls back") {
    const std::string path = dir.file("shop.db");
    auto state = open_tracking(path, progress, true);
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    std::make_shared<const Permit>(progress, 7).reset();  // done, queued for the next transaction
    std::vector<PermitRef> batch;
    batch.push_back(std::make_shared<const Permit>(progress, 8));
    REQUIRE(sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
    state->write_in(db, batch);
    CHECK_FALSE(state->has_pending());  // taken by the transaction
    state->rolled_back(db);             // its COMMIT failed, say
    REQUIRE(sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr) == SQLITE_OK);
    CHECK(state->has_pending());                       // 7 is queued again
    for (const auto& p : batch) p->mark_unfinished();  // the store dropped the batch: 8 is not done
    batch.clear();
    sqlite3_close(db);
    state->close(false);
    CHECK(query(path, ranges) == std::vector<std::string>{"7|7"});
  }
}

TEST_CASE("a plugin's async node that sets its records aside at a graceful stop leaves them to the resumed run",
          "[resume]") {
  // A node ending them with discard() alone would have them logged done: the resumed run skips them.
  const bool set_aside = GENERATE(true, false);
  TempDir dir;
  const std::string db = dir.file("rows.db");
  Diagnostics diags;
  auto plan = load_pipeline_text(fmt::format(R"(pipeline: held
settings: {{state: {}, batch: 4}}
nodes:
  - {{id: src, type: source.list, template: "https://example.com/{{n}}", to: 10}}
  - {{id: hold, type: {}}}
  - {{id: store, type: store.sqlite, path: {}, table: rows, columns: {{url: TEXT}}, key: [url]}}
edges:
  - src -> hold -> store
)",
                                             db, set_aside ? "test.hold" : "test.hold_unmarked", db),
                                 "held.yaml", holding_registry(), {}, diags);
  REQUIRE(plan);
  const RunReport report = test::run_stopped_after(*plan, std::chrono::milliseconds(300));
  INFO(set_aside);
  CHECK(report.status == RunStatus::interrupted);
  CHECK(report.errors.empty());
  CHECK(test::stats_of(report, "hold").dropped == 10);
  const auto done = query(db, "SELECT count(*) FROM sluice_source_done");
  CHECK(done == std::vector<std::string>{set_aside ? "0" : "1"});
}

TEST_CASE("a store batch that could not be committed is stored by the resumed run", "[resume][store]") {
  // A batch the database refused (here a trigger, as a full disk or a locked file would) is lost to
  // the failed run: before, its records counted as done and a resumed run skipped them for good.
  TempDir dir;
  const bool hosted = GENERATE(true, false);
  const std::string db = dir.file("out.db");
  test::execute(db,
                "CREATE TABLE control (fail INTEGER); INSERT INTO control VALUES (1);"
                "CREATE TABLE t (n INTEGER PRIMARY KEY, v TEXT);"
                "CREATE TRIGGER refuse BEFORE INSERT ON t WHEN NEW.n = 150 AND (SELECT fail FROM control) = 1"
                " BEGIN SELECT RAISE(ABORT, 'injected refusal'); END;");
  test::write_file(dir.file("p.yaml"), fmt::format(R"(pipeline: refused
settings: {{state: {}, batch: 10}}
nodes:
  - {{id: src, type: source.list, template: "{{n}}", to: 200}}
  - {{id: set, type: set, fields: {{v: "row {{url}}"}}}}
  - id: store
    type: store.sqlite
    path: {}
    table: t
    columns: {{n: INTEGER, v: TEXT}}
    key: [n]
    batch: {{rows: 25}}
edges:
  - src -> set -> store
)",
                                                   hosted ? db : dir.file("run.state"), db));
  INFO((hosted ? "state in the store's database" : "state file of its own"));
  test::Process first({SLUICE_BINARY, "run", "-q", dir.file("p.yaml")}, dir.file("stdout"), dir.file("stderr"));
  CHECK(first.wait() == 1);
  CHECK_THAT(test::read_file(dir.file("stderr")), Catch::Contains("injected refusal"));
  CHECK(query(db, "SELECT count(*) FROM t WHERE n = 150") == std::vector<std::string>{"0"});
  test::execute(db, "UPDATE control SET fail = 0");
  test::Process resumed({SLUICE_BINARY, "run", "-q", dir.file("p.yaml"), "--resume"}, dir.file("stdout"),
                        dir.file("stderr"));
  INFO(test::read_file(dir.file("stderr")));
  CHECK(resumed.wait() == 0);
  CHECK(query(db, "SELECT count(*), min(n), max(n) FROM t") == std::vector<std::string>{"200|1|200"});
}

TEST_CASE("lines a full disk kept out of a file are written by the resumed run", "[resume]") {
  // The first run writes to /dev/full (every write fails: ENOSPC); before, the lost lines' records
  // counted as done and the resumed run, writing to a real file, skipped them.
  TempDir dir;
  const std::string out = dir.file("out.jsonl");
  std::filesystem::create_symlink("/dev/full", out);
  test::write_file(dir.file("p.yaml"), fmt::format(R"(pipeline: full
settings: {{state: {}, batch: 10}}
nodes:
  - {{id: src, type: source.list, template: "{{n}}", to: 200}}
  - {{id: lines, type: sink.jsonl, path: {}, fields: [n], buffer: 1KiB}}
edges:
  - src -> lines
)",
                                                   dir.file("run.state"), out));
  test::Process first({SLUICE_BINARY, "run", "-q", dir.file("p.yaml")}, dir.file("stdout"), dir.file("stderr"));
  CHECK(first.wait() == 1);
  CHECK_THAT(test::read_file(dir.file("stderr")), Catch::Contains("No space left on device"));
  std::filesystem::remove(out);  // a real file now
  test::Process resumed({SLUICE_BINARY, "run", "-q", dir.file("p.yaml"), "--resume"}, dir.file("stdout"),
                        dir.file("stderr"));
  INFO(test::read_file(dir.file("stderr")));
  CHECK(resumed.wait() == 0);
  std::set<std::string> seen;
  for (const auto& line : test::lines_of(test::read_file(out))) seen.insert(line);
  CHECK(seen.size() == 200);
}

TEST_CASE(
    "a file past the size limit (ulimit -f) fails the run saying so, and the resumed run writes what it lost once",
    "[resume]") {
  // 4,000 lines of about 1 KB, under a limit of 2,048 blocks (1 or 2 MiB): the first run's writes
  // stop mid-way. Before, SIGXFSZ killed the process (and dumped its core); and then the lines a
  // failed write kept in the file were written again by the resumed run.
  TempDir dir;
  const std::string out = dir.file("out.jsonl");
  test::write_file(dir.file("p.yaml"), fmt::format(R"(pipeline: big
settings: {{state: {}, batch: 50}}
nodes:
  - {{id: src, type: source.list, template: "https://example.com/{{n}}/{}", to: 4000}}
  - {{id: lines, type: sink.jsonl, path: {}, fields: [n, url], buffer: 64KiB}}
edges:
  - src -> lines
)",
                                                   dir.file("run.state"), std::string(1000, 'a'), out));
  test::Process first(
      {"/bin/sh", "-c", "ulimit -f 2048 && exec \"$0\" run -q \"$1\"", SLUICE_BINARY, dir.file("p.yaml")},
      dir.file("stdout"), dir.file("stderr"));
  CHECK(first.wait() == 1);
  CHECK_THAT(test::read_file(dir.file("stderr")), Catch::Contains("File too large"));
  const auto kept = test::lines_of(test::read_file(out)).size();
  CHECK(kept > 0);
  CHECK(kept < 4000);
  test::Process resumed({SLUICE_BINARY, "run", "-q", dir.file("p.yaml"), "--resume"}, dir.file("stdout"),
                        dir.file("stderr"));
  INFO(test::read_file(dir.file("stderr")));
  CHECK(resumed.wait() == 0);
  const auto lines = test::lines_of(test::read_file(out));
  CHECK(lines.size() == 4000);  // each line once: the kept ones were not written again
  CHECK(std::set<std::string>(lines.begin(), lines.end()).size() == 4000);
}

TEST_CASE("a resumed run skips every record an earlier run recorded, also from ranges that touch or overlap",
          "[resume]") {
  // Earlier builds recorded a record a hosting store had committed once more when its permit was
  // released, so ranges of their files overlap; a lookup that took the nearest range before a
  // position for the only one redid positions 103 and 108 of such a file, which were done.
  TempDir dir;
  const std::string path = dir.file("state.db");
  write_older_state(path,
                    "INSERT INTO sluice_source_done VALUES ('pages', 0, 7), ('pages', 0, 7), ('pages', 8, 8),"
                    " ('pages', 96, 103), ('pages', 102, 102), ('pages', 104, 105), ('pages', 107, 108),"
                    " ('pages', 107, 107), ('pages', 120, 130), ('pages', 122, 125), ('other', 50, 50);");
  auto resumed = RunState::open(path, "p", true);
  std::vector<std::uint64_t> done;
  for (std::uint64_t seq = 0; seq < 140; ++seq) {
    if (resumed->source_done("pages", seq)) done.push_back(seq);
  }
  std::vector<std::uint64_t> expected;
  for (auto [first, last] : {std::pair{0, 8}, {96, 105}, {107, 108}, {120, 130}}) {
    for (auto seq = first; seq <= last; ++seq) expected.push_back(static_cast<std::uint64_t>(seq));
  }
  CHECK(done == expected);
  CHECK(resumed->source_done("other", 50));
  CHECK_FALSE(resumed->source_done("other", 49));
  CHECK_FALSE(resumed->source_done("none", 0));
}

TEST_CASE("a state file in a folder that does not exist, or that is a folder or a device, is refused saying so",
          "[resume]") {
  // The lock file beside it is opened first.
  CHECK_THROWS_WITH(RunState::open("/proc/sluice-no-such-dir/state.db", "p", false),
                    "cannot open state file '/proc/sluice-no-such-dir/state.db': No such file or directory (its lock "
                    "'/proc/sluice-no-such-dir/state.db.lock') (the folder '/proc/sluice-no-such-dir' does not exist)");
  TempDir dir;
  CHECK_THROWS_WITH(RunState::open(dir.path().string(), "p", false),
                    fmt::format("cannot open state file '{}': it is a folder, not a file", dir.path().string()));
  CHECK_THROWS_WITH(RunState::open("/dev/null", "p", false), "cannot open state file '/dev/null': not a regular file");
}

TEST_CASE("a resumable run refuses a store without a key, and --resume without a state file", "[resume]") {
  fixture::FixtureServer server;
  TempDir dir;
  std::string yaml = list_pipeline(server, dir.file("db"), dir.file("state"));
  yaml.replace(yaml.find("    key: [url]\n"), 15, "");
  test::write_file(dir.file("p.yaml"), yaml);
  test::Process p({SLUICE_BINARY, "run", "-q", dir.file("p.yaml")}, dir.file("stdout"), dir.file("stderr"));
  CHECK(p.wait() == 1);
  CHECK_THAT(test::read_file(dir.file("stderr")),
             Catch::Contains("node 'store': table 'pages' has no key: a resumable run (settings.state) redoes"));

  test::write_file(dir.file("q.yaml"), list_pipeline(server, dir.file("db"), ""));
  test::Process q({SLUICE_BINARY, "run", "-q", dir.file("q.yaml"), "--resume"}, dir.file("stdout"), dir.file("stderr"));
  CHECK(q.wait() == 2);
  CHECK_THAT(test::read_file(dir.file("stderr")), Catch::Contains("--resume needs settings.state"));
}

TEST_CASE("a pipeline that serves its own site is resumed on the port of the run it continues", "[resume]") {
  // The URLs the state recorded (sources, frontier) name the site's port: a new one would make
  // them another run's.
  TempDir dir;
  test::write_file(dir.file("s.yaml"), test::served_crawl(dir, 40, 1, dir.file("served.db"),
                                                          fmt::format("  state: {}\n  max_items: 10\n  batch: 1\n",
                                                                      dir.file("served.state"))));
  auto run = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {SLUICE_BINARY, "run", "-q", dir.file("s.yaml")};
    args.insert(args.end(), extra.begin(), extra.end());
    test::Process p(args, dir.file("stdout"), dir.file("stderr"));
    return p.wait();
  };
  auto rows = [&] {
    return query(dir.file("served.db"),
                 "SELECT count(*), count(DISTINCT page_url) FROM pages WHERE title LIKE 'page %'");
  };

  REQUIRE(run({}) == 0);  // stopped by max_items: 10 of the 40 pages
  CHECK(rows() != std::vector<std::string>{"40|40"});
  const auto recorded = RunState::recorded(dir.file("served.state"), "serve_url");
  REQUIRE(recorded);
  CHECK(recorded->starts_with("http://127.0.0.1:"));

  SECTION("resumed on the same port until every page is stored once") {
    for (int i = 0; i < 6 && rows() != std::vector<std::string>{"40|40"}; ++i) {
      INFO(test::read_file(dir.file("stderr")));
      REQUIRE(run({"--resume"}) == 0);
      CHECK(RunState::recorded(dir.file("served.state"), "serve_url") == recorded);
    }
    CHECK(rows() == std::vector<std::string>{"40|40"});
  }
  SECTION("a port in use by then is said, not taken for sources that changed") {
    const int port = std::stoi(recorded->substr(recorded->rfind(':') + 1));
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr = test::loopback();
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(fd, 1) == 0);
    CHECK(run({"--resume"}) == 2);
    ::close(fd);
    CHECK_THAT(test::read_file(dir.file("stderr")),
               Catch::Contains(fmt::format("settings.serve: --resume serves '{}' on port {} again, where the run "
                                           "recorded in '{}' served it (its URLs name that port), but the port is in "
                                           "use; free it, or run without --resume",
                                           dir.file("site"), port, dir.file("served.state"))));
  }
}

TEST_CASE("a resumed run refuses a state whose sources changed: other settings or another URL file", "[resume]") {
  // Resuming skips source records by their position: with another list it would skip the wrong ones.
  TempDir dir;
  test::write_file(dir.file("urls.txt"), "https://a.example/1\nhttps://a.example/2\n");
  auto pipeline = [&](const std::string& source) {
    test::write_file(dir.file("p.yaml"), fmt::format(R"(pipeline: changing
settings:
  state: {0}
nodes:
  - id: src
    type: source.list
{1}
  - id: store
    type: store.sqlite
    path: {0}
    table: t
    columns: {{url: TEXT}}
    key: [url]
edges:
  - src -> store
)",
                                                     dir.file("out.db"), source));
  };
  auto resume = [&] { return test::sluice_cli(dir, {"run", "-q", dir.file("p.yaml"), "--resume"}); };
  const std::string refused = "the sources of pipeline 'changing' changed since the run recorded in";

  pipeline(fmt::format("    file: {}", dir.file("urls.txt")));
  REQUIRE(test::sluice_cli(dir, {"run", "-q", dir.file("p.yaml")}).code == 0);
  // The same list written again is the same source.
  test::write_file(dir.file("urls.txt"), "https://a.example/1\nhttps://a.example/2\n");
  auto same = resume();
  CHECK(same.code == 0);
  CHECK_THAT(same.err, Catch::Contains("already finished"));

  test::write_file(dir.file("urls.txt"), "https://a.example/0\nhttps://a.example/1\nhttps://a.example/2\n");
  auto edited = resume();
  CHECK(edited.code == 1);
  CHECK_THAT(edited.err, Catch::Contains(refused));

  pipeline("    template: \"https://a.example/{n}\"\n    to: 10");
  REQUIRE(test::sluice_cli(dir, {"run", "-q", dir.file("p.yaml")}).code == 0);
  pipeline("    template: \"https://a.example/{n}\"\n    from: 2\n    to: 10");
  auto shifted = resume();
  CHECK(shifted.code == 1);
  CHECK_THAT(shifted.err, Catch::Contains(refused));

  // A state file of another pipeline is refused too (this refusal crashed the runner: the report
  // read nodes that were never set up).
  std::string other = test::read_file(dir.file("p.yaml"));
  other.replace(other.find("pipeline: changing"), 18, "pipeline: another");
  test::write_file(dir.file("p.yaml"), other);
  auto foreign = resume();
  CHECK(foreign.code == 1);
  CHECK_THAT(foreign.err, Catch::Contains("belongs to pipeline 'changing', not 'another'"));

  // Standard input cannot be checked: resuming goes on, with a warning.
  pipeline("    file: \"-\"");
  REQUIRE(test::sluice_cli(dir, {"run", "-q", dir.file("p.yaml")}).code == 0);
  CHECK_THAT(resume().err, Catch::Contains("sluice: warning: source 'src' reads standard input (file: -): --resume "
                                           "cannot check that it gives the lines of the interrupted run"));
}

TEST_CASE("a second run on a state file in use is refused, naming the run that holds it", "[resume]") {
  fixture::FixtureServer server;
  TempDir dir;
  const std::string pipeline = dir.file("run.yaml");
  // 80 requests of 200 ms, 8 at a time: 2 s, long enough to start another run meanwhile.
  std::string text = list_pipeline(server, dir.file("run.db"), dir.file("run.state"));
  text.replace(text.find("/delay/4"), 8, "/delay/200");
  text.replace(text.find("to: 600"), 7, "to: 80");
  test::write_file(pipeline, text);
  test::Process first({SLUICE_BINARY, "run", "-q", pipeline}, dir.file("first.out"), dir.file("first.err"));
  // Running once the lock file names it.
  for (int i = 0; i < 500 && test::read_file(dir.file("run.state.lock")) != std::to_string(first.pid()); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  REQUIRE(test::read_file(dir.file("run.state.lock")) == std::to_string(first.pid()));
  // Cron starting the next run while this one goes: it must not resume the same work twice.
  test::Process second({SLUICE_BINARY, "run", "-q", pipeline, "--resume"}, dir.file("second.out"),
                       dir.file("second.err"));
  CHECK(second.wait() == 1);
  CHECK_THAT(test::read_file(dir.file("second.err")),
             Catch::Contains(fmt::format("state file '{}' is in use by another run (pid {}): wait for it to end",
                                         dir.file("run.state"), first.pid())));
  first.signal(SIGINT);
  CHECK(first.wait() == 130);
  // The lock goes with the run: the interrupted run resumes.
  test::Process third({SLUICE_BINARY, "run", "-q", pipeline, "--resume"}, dir.file("third.out"), dir.file("third.err"));
  CHECK(third.wait() == 0);
  CHECK(query(dir.file("run.db"), "SELECT count(*) FROM pages") == std::vector<std::string>{"80"});
}

TEST_CASE("a resumed run cuts off the piece of a record a killed run left at the end of its text files", "[resume]") {
  fixture::FixtureServer server;
  TempDir dir;
  const std::string state = dir.file("run.state");
  const std::string pipeline = dir.file("run.yaml");
  // 300 records, 4 at a time, each 10 ms at the server: killed after 200 ms, a third of the way.
  test::write_file(pipeline, fmt::format(R"(pipeline: pieces
settings:
  state: {}
nodes:
  - {{id: pages, type: source.list, template: "{}?n={{n}}", to: 300}}
  - {{id: lim, type: limit, max_in_flight: 4}}
  - {{id: get, type: fetch, robots: ignore}}
  - {{id: note, type: set, fields: {{note: "line one\nline two"}}}}
  - {{id: lines, type: sink.jsonl, path: {}, fields: [n], buffer: 1KiB}}
  - {{id: zipped, type: sink.jsonl, path: {}, fields: [n], buffer: 1KiB}}
  - {{id: sheet, type: sink.csv, path: {}, fields: [n, note], buffer: 1KiB}}
edges:
  - pages -> lim -> get -> note
  - note -> lines
  - note -> zipped
  - note -> sheet
)",
                                         state, server.url("/delay/10"), dir.file("out.jsonl"),
                                         dir.file("out.jsonl.gz"), dir.file("out.csv")));
  test::Process first({SLUICE_BINARY, "run", "-q", pipeline}, dir.file("stdout"), dir.file("stderr"));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  first.signal(SIGKILL);
  REQUIRE(first.wait() == 128 + SIGKILL);
  // What a write cut short leaves: half a line, half a row (its quoted cell's line break included),
  // half a gzip member.
  auto append = [](const std::string& path, const std::string& text) {
    test::write_file(path, test::read_file(path) + text);
  };
  append(dir.file("out.jsonl"), "{\"n\":29");
  append(dir.file("out.csv"), "29,\"line one\nline");
  const std::string member = test::gzip("{\"n\":29}\n{\"n\":30}\n");
  append(dir.file("out.jsonl.gz"), member.substr(0, member.size() / 2));

  test::Process resumed({SLUICE_BINARY, "run", "-q", pipeline, "--resume"}, dir.file("stdout"), dir.file("stderr"));
  INFO(test::read_file(dir.file("stderr")));
  REQUIRE(resumed.wait() == 0);
  // Every line whole, every n there (work in flight at the kill may be there twice).
  auto complete = [](const std::string& text) {
    std::set<int> seen;
    for (const auto& line : test::lines_of(text)) {
      INFO(line);
      REQUIRE(line.starts_with("{\"n\":"));
      REQUIRE(line.ends_with("}"));
      seen.insert(std::stoi(line.substr(5, line.size() - 6)));
    }
    return seen.size() == 300 && *seen.begin() == 1 && *seen.rbegin() == 300;
  };
  CHECK(complete(test::read_file(dir.file("out.jsonl"))));
  std::string error;
  auto unzipped = parse::gunzip(test::read_file(dir.file("out.jsonl.gz")), error);
  INFO(error);
  REQUIRE(unzipped);  // whole members only
  CHECK(complete(*unzipped));
  // The CSV file: the header, then whole rows of two cells, the second with its line break.
  const std::string csv = test::read_file(dir.file("out.csv"));
  REQUIRE(csv.starts_with("n,note\n"));
  std::set<int> rows;
  std::size_t at = 7;
  while (at < csv.size()) {
    const auto end = csv.find("\"\n", at);
    REQUIRE(end != std::string::npos);
    const std::string row = csv.substr(at, end + 2 - at);
    INFO(row);
    const auto comma = row.find(',');
    REQUIRE(row.substr(comma) == ",\"line one\nline two\"\n");
    rows.insert(std::stoi(row.substr(0, comma)));
    at = end + 2;
  }
  CHECK(rows.size() == 300);
}

TEST_CASE("a resumed run leaves a gzip file with bytes that are no gzip data as it is, and fails saying so",
          "[resume][gzip]") {
  TempDir dir;
  const std::string out = dir.file("out.jsonl.gz");
  auto plan = [&](const std::string& fail_at) {
    return test::plan_of(fmt::format(R"(pipeline: corrupt
settings:
  state: {}
  batch: 10
nodes:
  - {{id: src, type: source.list, template: "u{{n}}", to: 100}}
  - {{id: boom, type: test.fail, equals: "{}"}}
  - {{id: out, type: sink.jsonl, path: {}, buffer: 64}}
edges:
  - src -> boom -> out
)",
                                     dir.file("run.state"), fail_at, out));
  };
  // A run that fails at record 60 (not finished: resumable), its file in whole members.
  RunReport first = run_pipeline(plan("60"));
  REQUIRE(first.status == RunStatus::failed);
  std::string error;
  REQUIRE(parse::gunzip(test::read_file(out), error));
  // Someone's bytes in the middle: a member with a broken byte, then a whole one.
  std::string bad = test::gzip("{\"url\":\"x\"}\n");
  bad[bad.size() / 2] ^= 0x5a;
  const std::string corrupt = test::read_file(out) + bad + test::gzip("{\"url\":\"y\"}\n");
  test::write_file(out, corrupt);
  RunOptions resume;
  resume.resume = true;
  RunReport second = run_pipeline(plan("none"), resume);
  CHECK(second.status == RunStatus::failed);
  REQUIRE(second.errors.size() == 1);
  CHECK(second.errors[0].to_string().starts_with(
      fmt::format("node 'out': cannot resume '{}': it is no whole gzip file from byte ", out)));
  CHECK(test::read_file(out) == corrupt);  // not cut
}

TEST_CASE("a download that a run killed, cancelled or stopped mid-way leaves is continued by the next run",
          "[resume][download]") {
  fixture::FixtureServer server;
  TempDir dir;
  const std::string files = dir.file("files");
  const std::string state = dir.file("run.state");
  const std::string pipeline = dir.file("run.yaml");
  // 2 MiB in 64 KiB blocks 20 ms apart: about 0.65 s for the whole file.
  const std::size_t size = 2 << 20;
  const std::string url = server.url(fmt::format("/ranged/big/{}?seed=9&pace=20", size));
  const std::string key = fmt::format("{:016x}", fnv1a64(url));
  const std::string part = files + "/.sluice-" + key + ".part";
  test::write_file(pipeline, fmt::format(R"(pipeline: big_file
settings:
  state: {}
nodes:
  - {{id: src, type: source.list, urls: ["{}"]}}
  - {{id: get, type: fetch, robots: ignore, download: {{dir: {}, sha256: true}}}}
  - {{id: out, type: sink.jsonl, path: {}, fields: [status, file_size, sha256]}}
edges:
  - src -> get -> out
)",
                                         state, url, files, dir.file("out.jsonl")));
  // Starts a run and stops it with `signals` once its file has 512 KiB (or lets it end by itself);
  // returns the file's size when it has ended.
  auto interrupted = [&](std::vector<std::string> args, std::vector<int> signals, int code) {
    REQUIRE_FALSE(std::filesystem::exists(part));
    test::Process run(std::move(args), dir.file("stdout"), dir.file("stderr"));
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    std::error_code ec;
    while (!(std::filesystem::file_size(part, ec) >= 512 * 1024 && !ec)) {
      REQUIRE(std::chrono::steady_clock::now() < until);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    for (int sig : signals) {
      run.signal(sig);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    INFO(test::read_file(dir.file("stderr")));
    CHECK(run.wait() == code);
    // The file stays, with the URL and the version its bytes are of.
    REQUIRE(std::filesystem::exists(part));
    CHECK(test::read_file(part + ".meta") == fmt::format("sluice download 1\n{}\n\"r9-{}\"\n", url, size));
    const std::string bytes = test::read_file(part);
    CHECK(bytes == fixture::random_bytes(size, 9).substr(0, bytes.size()));
    return bytes.size();
  };
  const std::string whole = fixture::random_bytes(size, 9);
  const std::string hashed_name = files + "/" + key;

  // Killed: the resumed run asks for the rest only, and the hash covers the whole file.
  const std::size_t first = interrupted({SLUICE_BINARY, "run", "-q", pipeline}, {SIGKILL}, 128 + SIGKILL);
  CHECK(first < size);
  {
    test::Process resumed({SLUICE_BINARY, "run", pipeline, "--resume"}, dir.file("stdout"), dir.file("stderr"));
    REQUIRE(resumed.wait() == 0);
    INFO(test::read_file(dir.file("stderr")));
    CHECK(server.counter(fmt::format("range:bytes={}-", first)).requests == 1);
    CHECK(test::contains(test::read_file(dir.file("stderr")),
                         fmt::format("download: continued 1 file that an earlier run left unfinished ({:.1f} MiB of it "
                                     "not fetched again)",
                                     first / 1048576.0)));
  }
  CHECK(test::read_file(hashed_name) == whole);
  CHECK(test::read_file(dir.file("out.jsonl")) ==
        fmt::format("{{\"status\":200,\"file_size\":{},\"sha256\":\"{}\"}}\n", size, test::sha256_hex(whole)));
  CHECK_FALSE(std::filesystem::exists(part));
  CHECK_FALSE(std::filesystem::exists(part + ".meta"));

  // Cancelled (another node fails half a second in, while the file comes): the same, and any later
  // run continues it, not only a resumed one.
  std::filesystem::remove(hashed_name);
  server.reset_counters();
  const std::string failing = dir.file("failing.yaml");
  std::string text = test::read_file(pipeline);
  text.replace(text.find("edges:"), 6, R"(  - {id: ticker, type: source.list, urls: [a]}
  - {id: boom, type: test.fail, field: url, equals: a, delay: 500ms}
edges:
  - ticker -> boom -> out)");
  test::write_file(failing, text);
  const std::size_t second = interrupted({SLUICE_BINARY, "run", "-q", failing}, {}, 1);
  {
    test::Process again({SLUICE_BINARY, "run", "-q", pipeline}, dir.file("stdout"), dir.file("stderr"));
    REQUIRE(again.wait() == 0);
    CHECK(server.counter(fmt::format("range:bytes={}-", second)).requests == 1);
  }
  CHECK(test::read_file(hashed_name) == whole);
  CHECK(test::read_file(dir.file("out.jsonl")) ==
        fmt::format("{{\"status\":200,\"file_size\":{},\"sha256\":\"{}\"}}\n", size, test::sha256_hex(whole)));
  CHECK(files_of(files) == std::vector<std::string>{key});

  // Stopped gracefully (one Ctrl-C): the run does not wait for the download to finish; it keeps the
  // file for the next run, and the record is not done.
  std::filesystem::remove(hashed_name);
  server.reset_counters();
  const std::size_t stopped = interrupted({SLUICE_BINARY, "run", "-q", pipeline}, {SIGINT}, 130);
  CHECK(stopped < size);  // (a download that went on to its end would have left no .part file)
  CHECK_FALSE(std::filesystem::exists(hashed_name));
  {
    test::Process resumed({SLUICE_BINARY, "run", "-q", pipeline, "--resume"}, dir.file("stdout"), dir.file("stderr"));
    REQUIRE(resumed.wait() == 0);
    CHECK(server.counter(fmt::format("range:bytes={}-", stopped)).requests == 1);
  }
  CHECK(test::read_file(hashed_name) == whole);
  CHECK(files_of(files) == std::vector<std::string>{key});

  // A file that changed since (its bytes are of another version): the server sends it whole
  // (If-Range), and it starts over.
  std::filesystem::remove(hashed_name);
  server.reset_counters();
  const std::size_t third = interrupted({SLUICE_BINARY, "run", "-q", pipeline}, {SIGKILL}, 128 + SIGKILL);
  test::write_file(part + ".meta", fmt::format("sluice download 1\n{}\n\"r8-{}\"\n", url, size));
  {
    test::Process resumed({SLUICE_BINARY, "run", pipeline, "--resume"}, dir.file("stdout"), dir.file("stderr"));
    REQUIRE(resumed.wait() == 0);
    CHECK(server.counter(fmt::format("range:bytes={}-", third)).requests == 1);
    CHECK_FALSE(test::contains(test::read_file(dir.file("stderr")), "continued"));
  }
  CHECK(test::read_file(hashed_name) == whole);
  CHECK(files_of(files) == std::vector<std::string>{key});
}

TEST_CASE("retries.idempotency_key: a resumed run sends a request again with the key the stopped run sent it with",
          "[resume][fetch]") {
  fixture::FixtureServer server;
  TempDir dir;
  const std::string state = dir.file("run.state");
  // 12 records, each made into two identical POSTs (two items of one page): /flaky/kN lists every
  // key it was sent. The run fails at the first POST of record 5, so record 5 and what was in
  // flight are not done, and the resumed run sends them again.
  auto plan = [&](const std::string& fail_at) {
    return test::plan_of(fmt::format(R"(pipeline: keyed_posts
settings:
  state: {}
nodes:
  - {{id: src, type: source.list, template: "{}/flaky/k{{n}}?fail=0&keys=1", to: 12}}
  - {{id: lim, type: limit, max_in_flight: 4}}
  - {{id: twice, type: set, fields: {{body: '[{{{{"u": "{{url}}", "n": {{n}}}}}}, {{{{"u": "{{url}}", "n": {{n}}}}}}]'}}}}
  - {{id: items, type: parse.json, items: '', fields: {{url: u, n: n}}}}
  - id: post
    type: fetch
    method: POST
    json: {{n: "{{n}}"}}
    robots: ignore
    circuit_breaker: {{failure_threshold: 0}}
    retries: {{idempotency_key: Idempotency-Key}}
  - {{id: boom, type: test.fail, equals: "{}"}}
  - {{id: out, type: sink.jsonl, path: {}, fields: [n, idempotency_key]}}
edges:
  - src -> lim -> twice -> items -> post -> boom -> out
)",
                                     state, server.url(""), fail_at, dir.file("out.jsonl")));
  };
  // The keys each record's POSTs were sent with, all runs so far, in the order they came.
  auto keys_sent = [&] {
    std::map<int, std::vector<std::string>> keys;
    for (int n = 1; n <= 12; ++n) {
      const auto [status, body] = test::http(server.url(fmt::format("/flaky/k{}?fail=0&keys=1", n)));
      REQUIRE(status == 200);
      std::istringstream words(body.substr(body.find(':') + 1));
      for (std::string key; words >> key;) keys[n].push_back(key);  // this GET's own key is empty
    }
    return keys;
  };
  RunReport first = run_pipeline(plan("5"));
  REQUIRE(first.status == RunStatus::failed);
  auto before = keys_sent();
  REQUIRE(before[5].size() >= 1);
  RunOptions resume;
  resume.resume = true;
  RunReport second = run_pipeline(plan("none"), resume);
  INFO((second.errors.empty() ? std::string() : second.errors[0].to_string()));
  REQUIRE(second.status == RunStatus::succeeded);
  auto after = keys_sent();
  CHECK(after[5].size() >= 3);  // sent by the failed run, and both of its POSTs again
  std::set<std::string> all;
  for (int n = 1; n <= 12; ++n) {
    INFO("record " << n << ": " << before[n].size() << " POSTs by the failed run, " << after[n].size() << " in all");
    const std::set<std::string> distinct(after[n].begin(), after[n].end());
    CHECK(distinct.size() == 2);  // the two identical POSTs: a key each, in both runs alike
    // The failed run may have sent one of a record's two POSTs when it was cancelled (seen: 1 run
    // in about 40); the resumed run sends both of a record that was not done, or neither.
    CHECK((after[n].size() - before[n].size()) % 2 == 0);
    for (const auto& key : distinct) {
      REQUIRE(key.size() == 36);
      CHECK(key[14] == '5');          // a name-based UUID
      CHECK(all.insert(key).second);  // no other record's
    }
  }
  // The records' idempotency_key fields are the keys sent.
  for (const auto& line : test::lines_of(test::read_file(dir.file("out.jsonl")))) {
    const auto at = line.find("\"idempotency_key\":\"");
    REQUIRE(at != std::string::npos);
    CHECK(all.count(line.substr(at + 19, 36)) == 1);
  }
  // A fresh run (no --resume) is a run of its own, with keys of its own.
  RunReport third = run_pipeline(plan("none"));
  REQUIRE(third.status == RunStatus::succeeded);
  auto fresh = keys_sent();
  for (int n = 1; n <= 12; ++n) {
    INFO("record " << n);
    CHECK(std::set<std::string>(fresh[n].begin(), fresh[n].end()).size() == 4);
  }
}

TEST_CASE("a run's id: made by a fresh run and kept by --resume, and a record's origin, its first tracked permit",
          "[resume]") {
  TempDir dir;
  const std::string path = dir.file("run.state");
  std::string id;
  {
    auto state = RunState::open(path, "p", false);
    id = state->run_id();
    REQUIRE(id.size() == 36);
    CHECK(id[14] == '4');
    CHECK(query(path, "SELECT value FROM sluice_run WHERE key = 'run_id'") == std::vector<std::string>{id});
    // Tracked: a source's progress (tag: the position) and a frontier's URLs (tag: the hash).
    struct Quiet final : PermitSource {
      void on_release(std::uint64_t) noexcept override {}
    } limit, progress, frontier;
    state->track(progress, "pages", false);
    state->track(frontier, "crawl", true);
    state->start();
    const PermitRef slot = std::make_shared<const Permit>(limit, 3);
    const PermitRef record = std::make_shared<const Permit>(progress, 7);
    const PermitRef url = std::make_shared<const Permit>(frontier, 0xabcdef);
    const std::vector<PermitRef> permits{slot, nullptr, record, url};
    auto origin = state->origin(permits);
    REQUIRE(origin);
    CHECK(*origin->node == "pages");
    CHECK(origin->tag == 7);
    CHECK(origin->permit->get() == record.get());
    origin = state->origin({url, slot});
    REQUIRE(origin);
    CHECK(*origin->node == "crawl");
    CHECK(origin->tag == 0xabcdef);
    CHECK_FALSE(state->origin({slot}));
    CHECK_FALSE(state->origin({}));
    state->close(false);
  }
  CHECK(RunState::open(path, "p", true)->run_id() == id);  // resumed: the same run
  auto fresh = RunState::open(path, "p", false);           // a run of its own
  CHECK(fresh->run_id() != id);
  CHECK(fresh->run_id().size() == 36);
  fresh.reset();
  // A file of a sluice that kept no id: its resumed run makes one, and keeps it.
  const std::string older = dir.file("older.state");
  write_older_state(older, "");
  const std::string made = RunState::open(older, "p", true)->run_id();
  CHECK(made.size() == 36);
  CHECK(RunState::open(older, "p", true)->run_id() == made);
}
