// A node stuck in its own code (tests/plugins/stuck.cpp) cannot hold a stopped run open: once
// cancelled work has had abort_timeout to end, sinks commit what they received and sluice exits,
// naming the stuck node. Real `sluice run` processes and real signals.
#include <fmt/format.h>
#include <sys/stat.h>
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <thread>

#include "../process.hpp"
#include "../support.hpp"

using namespace sluice;
using test::TempDir;
using Clock = std::chrono::steady_clock;

namespace {

// A pipeline with the stuck plugin: `settings`, a source.list of 100 records (unless `nodes` has
// its own source `src`), `nodes` (one flow map per line, `{marker}` for the marker file), a store
// that commits only when it closes (so its rows show that the abandoned run closed it), `edges`.
std::string stuck_pipeline(const TempDir& dir, const std::string& settings, const std::string& nodes,
                           const std::string& edges) {
  std::string yaml = "pipeline: stuck\nplugins: [" + std::string(SLUICE_PLUGIN_DIR) + "/test_plugin_stuck.so]\n" +
                     "settings: {" + settings + "}\nnodes:\n";
  if (nodes.find("id: src,") == std::string::npos)
    yaml += "  - {id: src, type: source.list, template: \"item {n}\", to: 100}\n";
  std::string marked = nodes;
  for (auto at = marked.find("{marker}"); at != std::string::npos; at = marked.find("{marker}"))
    marked.replace(at, 8, dir.file("marker"));
  yaml += marked;
  yaml += fmt::format(
      "  - {{id: store, type: store.sqlite, path: {}, table: t, columns: {{n: INTEGER}}, batch: {{rows: 100000, "
      "interval: 1h}}}}\nedges:\n{}",
      dir.file("out.db"), edges);
  return yaml;
}

// Starts the pipeline and waits until a node has got stuck (it creates the marker file).
std::unique_ptr<test::Process> start_until_stuck(const TempDir& dir, const std::string& yaml) {
  test::write_file(dir.file("p.yaml"), yaml);
  auto p = std::make_unique<test::Process>(
      std::vector<std::string>{SLUICE_BINARY, "run", dir.file("p.yaml"), "--stats-json", dir.file("stats.json")},
      dir.file("stdout"), dir.file("stderr"));
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (!std::filesystem::exists(dir.file("marker")) && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  REQUIRE(std::filesystem::exists(dir.file("marker")));
  return p;
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

TEST_CASE(
    "a transform stuck in its code: a stop ends the run after shutdown_timeout and abort_timeout, and the "
    "store commits what it received",
    "[cli][signal][stuck]") {
  TempDir dir;
  auto p =
      start_until_stuck(dir, stuck_pipeline(dir, "batch: 10, shutdown_timeout: 300ms, abort_timeout: 500ms",
                                            "  - {id: hang, type: test.stuck_transform, at: 45, marker: {marker}}\n",
                                            "  - src -> hang -> store\n"));
  const auto stopped = Clock::now();
  p->signal(SIGINT);
  CHECK(p->wait() == 1);
  // shutdown_timeout, then abort_timeout; not forever.
  CHECK(seconds_since(stopped) < 10);
  const std::string err = test::read_file(dir.file("stderr"));
  CHECK_THAT(err,
             Catch::Contains("node 'settings': shutdown_timeout (300ms) ran out before the graceful stop finished"));
  CHECK_THAT(err, Catch::Contains("node 'hang': did not end within abort_timeout (500ms) after the run was cancelled, "
                                  "so sluice stopped waiting for it: the records it held are lost (the sinks "
                                  "committed what they had received)"));
  CHECK_THAT(err, Catch::Contains("sluice: exiting without waiting for the stuck nodes"));
  CHECK_THAT(test::read_file(dir.file("stats.json")),
             Catch::Contains("\"status\": \"failed\", \"exit_code\": 1, \"abandoned\": true"));
  // The four batches before the stuck one went through and were committed when the store closed.
  CHECK(test::query(dir.file("out.db"), "SELECT count(*), min(n), max(n) FROM t") ==
        std::vector<std::string>{"40|1|40"});
}

TEST_CASE("a third stop request ends a run with a stuck node at once", "[cli][signal][stuck]") {
  TempDir dir;
  auto p =
      start_until_stuck(dir, stuck_pipeline(dir, "batch: 10, shutdown_timeout: 1h, abort_timeout: 1h",
                                            "  - {id: hang, type: test.stuck_transform, at: 45, marker: {marker}}\n",
                                            "  - src -> hang -> store\n"));
  p->signal(SIGINT);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  p->signal(SIGINT);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto third = Clock::now();
  p->signal(SIGTERM);
  CHECK(p->wait() == 1);
  CHECK(seconds_since(third) < 10);  // not the hour of either timeout
  const std::string err = test::read_file(dir.file("stderr"));
  CHECK_THAT(err, Catch::Contains("sluice: exiting: no longer waiting for cancelled work; sinks commit what they "
                                  "received"));
  CHECK_THAT(err, Catch::Contains("node 'hang': was still running at the third stop request, so sluice stopped "
                                  "waiting for it"));
  CHECK(test::query(dir.file("out.db"), "SELECT count(*) FROM t") == std::vector<std::string>{"40"});
}

TEST_CASE("a node whose factory never returns: the third stop request still ends the process", "[cli][signal][stuck]") {
  TempDir dir;
  // The factory runs on the main thread while the run is set up, where no stop request reaches a
  // node stuck in its own code: the last resort ends the process 2 x abort_timeout + 2 s after the
  // third request.
  test::write_file(dir.file("p.yaml"), stuck_pipeline(dir, "abort_timeout: 200ms",
                                                      "  - {id: hang, type: test.stuck_factory, marker: {marker}}\n",
                                                      "  - src -> hang\n  - src -> store\n"));
  test::Process p({SLUICE_BINARY, "run", dir.file("p.yaml")}, dir.file("stdout"), dir.file("stderr"));
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (!std::filesystem::exists(dir.file("marker")) && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  REQUIRE(std::filesystem::exists(dir.file("marker")));
  for (int i = 0; i < 3; ++i) {
    p.signal(SIGINT);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const auto third = Clock::now();
  const auto code = p.wait_for(std::chrono::seconds(20));
  REQUIRE(code);
  CHECK(*code == 130);
  CHECK(seconds_since(third) >= 2);  // its grace: 2 x 200ms + 2 s
  CHECK_THAT(test::read_file(dir.file("stderr")),
             Catch::Contains("sluice: exiting: the run has not ended 2.4 s after the third stop request (a node "
                             "stuck where no stop reaches it); what was committed is kept"));
}

TEST_CASE("a sink waiting for a reader to open its FIFO ends at the first stop request, interrupted", "[cli][signal]") {
  TempDir dir;
  // Before, the sink's open(2) waited on the main thread, where no stop reached it: only the third
  // request's last resort ended the process, 2.4 s after it.
  const std::string fifo = dir.file("fifo");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  test::write_file(dir.file("p.yaml"), fmt::format(R"(pipeline: fifo
settings: {{abort_timeout: 200ms}}
nodes:
  - {{id: src, type: source.list, urls: [a, b]}}
  - {{id: out, type: sink.jsonl, path: {}}}
edges:
  - src -> out
)",
                                                   fifo));
  test::Process p({SLUICE_BINARY, "run", dir.file("p.yaml"), "--stats-json", dir.file("stats.json")},
                  dir.file("stdout"), dir.file("stderr"));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const auto stopped = Clock::now();
  p.signal(SIGINT);
  const auto code = p.wait_for(std::chrono::seconds(20));
  REQUIRE(code);
  CHECK(*code == 130);
  CHECK(seconds_since(stopped) < 1.5);
  const std::string err = test::read_file(dir.file("stderr"));
  CHECK_THAT(err, Catch::Contains("waiting for a reader to open the FIFO '" + fifo + "'"));
  CHECK(err.find("waiting for a reader") < err.find("stopping"));  // said while it waited
  CHECK_THAT(err, !Catch::Contains("error:") && !Catch::Contains("has not ended"));
  CHECK_THAT(test::read_file(dir.file("stats.json")),
             Catch::Contains("\"status\": \"interrupted\", \"exit_code\": 130"));
}

TEST_CASE("a source that ignores the stop: the run ends after abort_timeout with what it had emitted",
          "[cli][signal][stuck]") {
  TempDir dir;
  auto p =
      start_until_stuck(dir, stuck_pipeline(dir, "batch: 5, shutdown_timeout: 300ms, abort_timeout: 300ms",
                                            "  - {id: src, type: test.stuck_source, count: 25, marker: {marker}}\n",
                                            "  - src -> store\n"));
  const auto stopped = Clock::now();
  p->signal(SIGTERM);
  CHECK(p->wait() == 1);
  CHECK(seconds_since(stopped) < 10);
  CHECK_THAT(test::read_file(dir.file("stderr")),
             Catch::Contains("node 'src': did not end within abort_timeout (300ms) after the run was cancelled"));
  CHECK(test::query(dir.file("out.db"), "SELECT count(*), max(n) FROM t") == std::vector<std::string>{"25|25"});
}

TEST_CASE("a sink stuck in its write: the other sinks commit everything and the stuck one is named",
          "[cli][signal][stuck]") {
  TempDir dir;
  auto p = start_until_stuck(dir, stuck_pipeline(dir, "batch: 10, shutdown_timeout: 300ms, abort_timeout: 300ms",
                                                 "  - {id: hang, type: test.stuck_sink, marker: {marker}}\n",
                                                 "  - src -> hang\n"
                                                 "  - src -> store\n"));
  // The source has reached its end; the run waits for the stuck sink until it is stopped.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto stopped = Clock::now();
  p->signal(SIGINT);
  CHECK(p->wait() == 1);
  CHECK(seconds_since(stopped) < 10);
  const std::string err = test::read_file(dir.file("stderr"));
  CHECK_THAT(err, Catch::Contains("node 'hang': did not finish writing within abort_timeout (300ms) after the run "
                                  "was cancelled; what it had not committed is lost"));
  CHECK_THAT(err, !(Catch::Contains("node 'store'")));
  CHECK(test::query(dir.file("out.db"), "SELECT count(*) FROM t") == std::vector<std::string>{"100"});
}

TEST_CASE("abort_timeout below 100ms is refused", "[cli][stuck]") {
  TempDir dir;
  test::write_file(dir.file("p.yaml"), R"(pipeline: short
settings: {abort_timeout: 10ms}
nodes:
  - {id: src, type: source.list, urls: [a]}
  - {id: out, type: sink.jsonl, path: /dev/null}
edges:
  - src -> out
)");
  auto r = test::sluice_cli(dir, {"validate", dir.file("p.yaml")});
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("p.yaml:2:27: error: abort_timeout: must be at least 100ms, got 10ms"));
}
