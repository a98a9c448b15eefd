// The sluice binary as users run it: exit codes, messages, signals.
#include <fmt/format.h>
#include <simdjson.h>
#include <catch2/catch.hpp>

#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <arpa/inet.h>
#include <netdb.h>

#include "../process.hpp"
#include "../support.hpp"
#include "fixture_server.hpp"

using namespace sluice;
using test::ScopedEnv;
using test::TempDir;

namespace {

using test::Result;
using test::sluice_cli;

const char* kValid = R"(pipeline: cli
nodes:
  - id: src
    type: source.list
    template: "u{n}"
    to: ${CLI_TO:-5}
  - id: boom
    type: test.fail
    equals: "${CLI_FAIL_ON:-none}"
  - id: out
    type: sink.jsonl
    path: ${CLI_OUT}
edges:
  - src -> boom -> out
)";

// Five records that test.fail fails and skips, 150 ms each.
const char* kSkipping = R"(pipeline: skipping
settings: {batch: 1}
nodes:
  - {id: src, type: source.list, template: "u{n}", to: 5}
  - {id: boom, type: test.fail, message: "timeout: after {n} ms", delay: 150ms, on_error: skip}
  - {id: out, type: sink.jsonl, path: "${CLI_OUT}"}
edges:
  - src -> boom -> out
)";

// Waits (up to 10 s) until records are flowing into `output`, then sends `sig`.
void interrupt_when_written(test::Process& p, const std::string& output, int sig = SIGINT) {
  for (int i = 0; i < 200 && !(std::filesystem::exists(output) && std::filesystem::file_size(output) > 0); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  p.signal(sig);
}

}  // namespace

TEST_CASE("sluice validate prints every error of every file and exits 2", "[cli]") {
  TempDir dir;
  test::write_file(dir.file("bad.yaml"),
                   "pipeline: bad\nnodes:\n  - id: a\n    type: filtr\n  - id: a\n    type: set\n");
  test::write_file(dir.file("good.yaml"),
                   "pipeline: good\nnodes:\n  - id: s\n    type: source.list\n    urls: [x]\n"
                   "  - id: o\n    type: sink.jsonl\nedges:\n  - s -> o\n");
  Result r = sluice_cli(dir, {"validate", dir.file("good.yaml"), dir.file("bad.yaml")});
  CHECK(r.code == 2);
  CHECK(r.out == dir.file("good.yaml") + ": ok\n");
  CHECK(r.err == fmt::format("{0}:4:11: error: unknown node type 'filtr' (did you mean 'filter'?)\n"
                             "{0}:5:5: error: set needs at least one of 'fields', 'rename' or 'remove'\n"
                             "{0}:5:9: error: duplicate node id 'a' (first defined at line 3)\n",
                             dir.file("bad.yaml")));
  CHECK(sluice_cli(dir, {"validate", dir.file("good.yaml")}).code == 0);
}

TEST_CASE("a pipeline path that is missing, a directory or endless is refused with exit 2", "[cli]") {
  TempDir dir;
  Result missing = sluice_cli(dir, {"validate", dir.file("none.yaml")});
  CHECK(missing.code == 2);
  CHECK(missing.err == dir.file("none.yaml") + ": error: cannot read pipeline file: No such file or directory\n");
  Result directory = sluice_cli(dir, {"run", dir.path().string()});
  CHECK(directory.code == 2);
  CHECK(directory.err == dir.path().string() + ": error: cannot read pipeline file: it is a directory\n");
  // Read up to 4 MiB, not until memory runs out.
  Result endless = sluice_cli(dir, {"test", "/dev/zero"});
  CHECK(endless.code == 2);
  CHECK_THAT(endless.err, Catch::Contains("/dev/zero: error: cannot read pipeline file: larger than 4 MiB"));
}

TEST_CASE("sluice run on an invalid pipeline exits 2 and runs nothing", "[cli]") {
  TempDir dir;
  std::string out = dir.file("out.jsonl");
  test::write_file(dir.file("p.yaml"),
                   fmt::format("pipeline: p\nnodes:\n  - id: s\n    type: source.list\n    urls: [x]\n"
                               "  - id: o\n    type: sink.jsonl\n    path: {}\n    pth: typo\n"
                               "edges:\n  - s -> o\n",
                               out));
  Result r = sluice_cli(dir, {"run", dir.file("p.yaml")});
  CHECK(r.code == 2);
  CHECK(r.err ==
        dir.file("p.yaml") + ":9:5: error: unknown key 'pth' in node 'o' (sink.jsonl) (did you mean 'path'?)\n");
  CHECK_FALSE(std::filesystem::exists(out));
}

TEST_CASE("settings given with --set override the file, and a bad value is a usage error", "[cli]") {
  TempDir dir;
  test::write_file(dir.file("p.yaml"), kValid);
  ScopedEnv out("CLI_OUT", dir.file("out.jsonl").c_str());
  Result bad = sluice_cli(dir, {"run", dir.file("p.yaml"), "--set", "batch=lots"});
  CHECK(bad.code == 2);
  CHECK(bad.err == "--set batch: error: batch: expected an int, got 'lots'\n");
  Result unknown = sluice_cli(dir, {"run", dir.file("p.yaml"), "--set", "bacth=3"});
  CHECK(unknown.code == 2);
  CHECK(unknown.err == "--set bacth: error: unknown key 'bacth' in settings (did you mean 'batch'?)\n");
  Result ok = sluice_cli(dir, {"run", "-q", dir.file("p.yaml"), "--set", "batch=2"});
  CHECK(ok.code == 0);
  CHECK(test::lines_of(test::read_file(dir.file("out.jsonl"))).size() == 5);
}

TEST_CASE("a node's config is overridden with --set ID.KEY=VALUE, nested keys and flow lists included", "[cli]") {
  TempDir dir;
  test::write_file(dir.file("p.yaml"), kValid);
  ScopedEnv out("CLI_OUT", dir.file("out.jsonl").c_str());
  // A scalar, a key the file does not have, and a flow list for the sink's fields.
  Result ok = sluice_cli(dir, {"run", "-q", dir.file("p.yaml"), "--set", "src.to=3", "--set", "src.field=link", "--set",
                               "out.fields=[link, n]", "--set", "batch=2"});
  CHECK(ok.code == 0);
  CHECK(test::read_file(dir.file("out.jsonl")) ==
        "{\"link\":\"u1\",\"n\":1}\n{\"link\":\"u2\",\"n\":2}\n{\"link\":\"u3\",\"n\":3}\n");
  // A nested key: boom's on_error and a value it checks.
  Result skip =
      sluice_cli(dir, {"run", "-q", dir.file("p.yaml"), "--set", "boom.equals=2", "--set", "boom.on_error=skip"});
  CHECK(skip.code == 0);
  CHECK(test::lines_of(test::read_file(dir.file("out.jsonl"))).size() == 4);

  Result bad = sluice_cli(dir, {"run", dir.file("p.yaml"), "--set", "src.to=many", "--set", "nosuch.x=1", "--set",
                                "out.type=sink.csv", "--set", "src.tmeplate=x"});
  CHECK(bad.code == 2);
  CHECK(bad.err ==
        "--set nosuch.x: error: no node 'nosuch' in this pipeline\n"
        "--set out.type: error: a node's id and type cannot be set from the command line\n"
        "--set src.tmeplate: error: unknown key 'tmeplate' in node 'src' (source.list) (did you mean "
        "'template'?)\n"
        "--set src.to: error: to: expected an int, got 'many'\n");
  // A flow list that is not valid YAML: its one error, not also the node's "got null".
  Result unclosed = sluice_cli(dir, {"run", dir.file("p.yaml"), "--set", "out.fields=[link, n"});
  CHECK(unclosed.code == 2);
  CHECK(unclosed.err.starts_with("--set out.fields:"));
  CHECK(unclosed.err.find("end of sequence flow not found; the '[' at line 1, column 1 is never closed") !=
        std::string::npos);
  CHECK(test::lines_of(unclosed.err).size() == 1);
}

TEST_CASE("a failed run exits 1 and lists its errors with node and record", "[cli]") {
  TempDir dir;
  test::write_file(dir.file("p.yaml"), kValid);
  ScopedEnv out("CLI_OUT", dir.file("out.jsonl").c_str()), fail_on("CLI_FAIL_ON", "3");
  Result r = sluice_cli(dir, {"run", "-q", dir.file("p.yaml")});
  CHECK(r.code == 1);
  CHECK(r.err ==
        "error: node 'boom': record 'u3': injected failure\nsluice: pipeline 'cli' failed with 1 error(s)\n"
        "sluice: a failed record stops the run because node 'boom' has on_error: fail (the default); on_error: "
        "skip drops such records and goes on, route sends them to 'boom.error'\n");
}

TEST_CASE("a run that skips failed records says why: a warning when a kind first happens, a summary at the end",
          "[cli]") {
  // Before, on_error: skip was only a count in the stats table.
  TempDir dir;
  test::write_file(dir.file("p.yaml"), kSkipping);
  ScopedEnv out("CLI_OUT", dir.file("out.jsonl").c_str());
  Result r = sluice_cli(dir, {"run", "-q", "--stats-json", dir.file("stats.json"), dir.file("p.yaml")});
  CHECK(r.code == 0);
  INFO(r.err);
  auto lines = test::lines_of(r.err);
  REQUIRE(lines.size() == 3);
  // Logged as it happens (the records take 750 ms), time-stamped: standard error is not a terminal.
  CHECK(lines[0].starts_with("sluice: 20"));
  CHECK(lines[0].substr(28) ==
        " warning: node 'boom' skipped record 'u1': timeout: after 1 ms (more like it are counted)");
  CHECK(lines[1] == "warning: node 'boom' skipped 5 records that failed (on_error: skip):");
  CHECK(lines[2] == "  5 like record 'u1': timeout: after 1 ms");
  CHECK(test::read_file(dir.file("stats.json"))
            .find(R"("skipped": [{"node": "boom", "count": 5, "record": "u1", "message": "timeout: after 1 ms"}])") !=
        std::string::npos);
  // --log-level error leaves the warnings out.
  Result quiet = sluice_cli(dir, {"--log-level", "error", "run", "-q", dir.file("p.yaml")});
  CHECK(quiet.code == 0);
  CHECK(quiet.err.empty());
}

namespace {

// The lines of a --log-format json standard error, each parsed; a line that is not a JSON object
// with a time, a level, an event and a message fails the test.
struct JsonLog {
  std::vector<simdjson::dom::element> events;
  std::vector<std::string> lines;

  explicit JsonLog(const std::string& err) : lines(test::lines_of(err)) {
    for (const auto& line : lines) {
      INFO(line);
      // dom::parser reuses its buffer on each parse: a document per line needs a parser per line.
      parsers.emplace_back(std::make_unique<simdjson::dom::parser>());
      simdjson::dom::element e;
      REQUIRE(parsers.back()->parse(line).get(e) == simdjson::SUCCESS);
      REQUIRE(e.is_object());
      std::string_view time, level, event, message;
      REQUIRE(e["time"].get(time) == simdjson::SUCCESS);
      CHECK(time.size() == 24);  // 2026-12-02T09:41:58.588Z
      CHECK(time.ends_with('Z'));
      REQUIRE(e["level"].get(level) == simdjson::SUCCESS);
      CHECK((level == "info" || level == "warning" || level == "error" || level == "debug"));
      REQUIRE(e["event"].get(event) == simdjson::SUCCESS);
      REQUIRE(e["message"].get(message) == simdjson::SUCCESS);
      events.push_back(e);
    }
  }
  // The events named `name`.
  std::vector<simdjson::dom::element> named(std::string_view name) const {
    std::vector<simdjson::dom::element> out;
    for (const auto& e : events)
      if (std::string_view(e["event"]) == name) out.push_back(e);
    return out;
  }

 private:
  std::vector<std::unique_ptr<simdjson::dom::parser>> parsers;
};

std::string text(const simdjson::dom::element& e, const char* key) {
  return std::string(std::string_view(e[key]));
}

}  // namespace

TEST_CASE(
    "sluice run --log-format json writes one JSON object per line on standard error (progress, skips, errors, the "
    "end)",
    "[cli]") {
  TempDir dir;
  test::write_file(dir.file("p.yaml"), kSkipping);
  ScopedEnv out("CLI_OUT", dir.file("out.jsonl").c_str());
  SECTION("a run that skips records") {
    Result r = sluice_cli(dir, {"run", "--log-format", "json", "--progress-every", "100ms", dir.file("p.yaml")});
    CHECK(r.code == 0);
    INFO(r.err);
    JsonLog log(r.err);
    // The first record of a kind skipped, as it happens.
    auto skip = log.named("skip");
    REQUIRE(skip.size() == 1);
    CHECK(text(skip[0], "level") == "warning");
    CHECK(text(skip[0], "node") == "boom");
    CHECK(text(skip[0], "record") == "u1");
    CHECK(text(skip[0], "error") == "timeout: after 1 ms");
    // Progress every 100 ms of a 750 ms run, its figures as numbers.
    auto progress = log.named("progress");
    CHECK(progress.size() >= 3);
    for (const auto& p : progress) {
      double rate = -1, elapsed = -1;
      std::int64_t stored = -1;
      CHECK(p["records_per_s"].get(rate) == simdjson::SUCCESS);
      CHECK(p["elapsed_s"].get(elapsed) == simdjson::SUCCESS);
      CHECK(p["stored"].get(stored) == simdjson::SUCCESS);
      CHECK(stored == 0);  // every record fails
      CHECK(elapsed > 0);
    }
    // The summary of the skipped records, and the end with the whole report.
    auto skipped = log.named("skipped");
    REQUIRE(skipped.size() == 1);
    CHECK(std::int64_t(skipped[0]["count"]) == 5);
    auto end = log.named("end");
    REQUIRE(end.size() == 1);
    CHECK(text(end[0], "level") == "info");
    CHECK(text(end[0], "status") == "succeeded");
    CHECK(std::int64_t(end[0]["exit_code"]) == 0);
    CHECK(text(end[0]["report"], "pipeline") == "skipping");
    CHECK(std::int64_t(end[0]["report"]["nodes"].at(1)["errors"]) == 5);
    CHECK(log.lines.back().find(R"("event": "end")") != std::string::npos);  // the last line
  }
  SECTION("a run that fails") {
    test::write_file(dir.file("f.yaml"), kValid);
    ScopedEnv fail_on("CLI_FAIL_ON", "3");
    Result r = sluice_cli(dir, {"--log-format", "json", "run", dir.file("f.yaml")});
    CHECK(r.code == 1);
    INFO(r.err);
    JsonLog log(r.err);
    auto errors = log.named("error");
    REQUIRE(errors.size() == 1);
    CHECK(text(errors[0], "level") == "error");
    CHECK(text(errors[0], "node") == "boom");
    CHECK(text(errors[0], "record") == "u3");
    CHECK(text(errors[0], "error") == "injected failure");
    REQUIRE(log.named("hint").size() == 1);
    auto end = log.named("end");
    REQUIRE(end.size() == 1);
    CHECK(text(end[0], "level") == "error");
    CHECK(text(end[0], "message") == "pipeline 'cli' failed with 1 error(s)");
    CHECK(std::int64_t(end[0]["exit_code"]) == 1);
  }
  SECTION("an invalid pipeline and a usage error") {
    test::write_file(dir.file("bad.yaml"), "pipeline: bad\nnodes:\n  - {id: src, type: source.lst}\n");
    Result bad = sluice_cli(dir, {"run", "--log-format", "json", dir.file("bad.yaml")});
    CHECK(bad.code == 2);
    INFO(bad.err);
    JsonLog log(bad.err);
    auto invalid = log.named("invalid");
    REQUIRE(invalid.size() >= 1);
    CHECK(text(invalid[0], "file") == dir.file("bad.yaml"));
    CHECK(std::int64_t(invalid[0]["line"]) == 3);
    CHECK(std::int64_t(invalid[0]["column"]) == 21);
    CHECK(text(invalid[0], "message").starts_with("unknown node type 'source.lst'"));
    Result usage = sluice_cli(dir, {"run", "--log-format", "json", "--progress-every", "soon", dir.file("p.yaml")});
    CHECK(usage.code == 2);
    JsonLog usage_log(usage.err);
    REQUIRE(usage_log.events.size() == 1);
    CHECK(text(usage_log.events[0], "event") == "usage");
    CHECK(text(usage_log.events[0], "message") == "--progress-every: 'soon' is not a duration (60s, 5m, 0 for never)");
  }
}

namespace {

// The address a run started with --metrics 0 says it serves at, in its standard error `err`
// (waited for); "" if it does not say within 10 s.
std::string metrics_url(const std::string& err) {
  for (int i = 0; i < 200; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const std::string text = test::read_file(err);
    if (auto at = text.find("sluice: metrics at "); at != std::string::npos && text.find('\n', at) != std::string::npos)
      return text.substr(at + 19, text.find('\n', at) - at - 19);
  }
  return "";
}

}  // namespace

TEST_CASE("sluice run --metrics serves the run's figures in the Prometheus text format while it goes", "[cli]") {
  TempDir dir;
  test::write_file(dir.file("p.yaml"), kValid);
  ScopedEnv out("CLI_OUT", dir.file("out.jsonl").c_str()), to("CLI_TO", "1000000000");
  test::Process p({SLUICE_BINARY, "run", "--metrics", "0", dir.file("p.yaml")}, dir.file("stdout"), dir.file("stderr"));
  // Port 0 picks a free port; the log says which.
  const std::string url = metrics_url(dir.file("stderr"));
  REQUIRE(url.starts_with("http://127.0.0.1:"));
  REQUIRE(url.ends_with("/metrics"));
  // The source's count of records out, from one scrape.
  auto emitted = [](const std::string& text) {
    const std::string key = R"(sluice_node_records_out_total{pipeline="cli",node="src",type="source.list"} )";
    const auto at = text.find(key);
    return at == std::string::npos ? -1.0 : std::stod(text.substr(at + key.size()));
  };
  std::vector<double> counts;
  for (int scrape = 0; scrape < 2; ++scrape) {
    if (scrape) std::this_thread::sleep_for(std::chrono::milliseconds(400));  // the figures change every 250 ms
    auto [status, body] = test::http(url);
    REQUIRE(status == 200);
    INFO(body);
    // Every line a comment (# HELP, # TYPE) or a sample: name{labels} value.
    for (const auto& line : test::lines_of(body)) {
      CAPTURE(line);
      if (line.starts_with("# ")) {
        CHECK((line.starts_with("# HELP sluice_") || line.starts_with("# TYPE sluice_")));
        continue;
      }
      const auto close = line.find("} ");
      REQUIRE(close != std::string::npos);
      CHECK(line.starts_with("sluice_"));
      CHECK(line.find("{pipeline=\"cli\"") != std::string::npos);
      CHECK_NOTHROW(std::stod(line.substr(close + 2)));
    }
    CHECK(body.find("# TYPE sluice_node_records_in_total counter\n") != std::string::npos);
    CHECK(body.find(R"(sluice_node_received_bytes_total{pipeline="cli",node="src",type="source.list"} 0)") !=
          std::string::npos);
    CHECK(body.find("sluice_finished{pipeline=\"cli\"} 0\n") != std::string::npos);
    CHECK(body.find(R"(sluice_node_errors_total{pipeline="cli",node="boom",type="test.fail"} 0)") != std::string::npos);
    counts.push_back(emitted(body));
  }
  CHECK(counts[0] >= 0);
  CHECK(counts[1] > counts[0]);  // counters of a running pipeline grow
  p.signal(SIGINT);
  CHECK(p.wait() == 130);
  CHECK(test::http(url).first == 0);  // the server ends with the run
}

TEST_CASE("sluice run --metrics serves fetch's table of hosts while the run goes", "[cli][fetch]") {
  fixture::FixtureServer server;
  TempDir dir;
  // 640 requests of 20 ms with a 500 after every eighth, 4 at a time (about 3.5 s).
  std::string urls;
  for (int n = 1; n <= 720; ++n) urls += server.url(n % 9 ? fmt::format("/delay/20?n={}", n) : "/status/500") + "\n";
  test::write_file(dir.file("urls.txt"), urls);
  test::write_file(dir.file("p.yaml"), fmt::format(R"(pipeline: hosts
nodes:
  - {{id: src, type: source.list, file: {}}}
  - {{id: lim, type: limit, max_in_flight: 4}}
  - {{id: get, type: fetch, robots: ignore, retries: {{attempts: 1}}, circuit_breaker: {{failure_threshold: 0}},
      on_error: skip}}
  - {{id: out, type: drop}}
edges:
  - src -> lim -> get -> out
)",
                                                   dir.file("urls.txt")));
  test::Process p({SLUICE_BINARY, "run", "-q", "--metrics", "0", dir.file("p.yaml")}, dir.file("stdout"),
                  dir.file("stderr"));
  const std::string url = metrics_url(dir.file("stderr"));
  REQUIRE(!url.empty());
  const std::string labels =
      fmt::format(R"({{pipeline="hosts",node="get",host="http://127.0.0.1:{}"}} )", server.port());
  auto sample = [&](const std::string& body, const std::string& name) {
    const auto at = body.find(name + labels);
    return at == std::string::npos ? -1.0 : std::stod(body.substr(at + name.size() + labels.size()));
  };
  // The table comes about every second (at the I/O loop's first turn after one): scrape until it
  // is there, then until it has changed (a scrape 1.1 s later saw the same table under ASan).
  std::vector<std::string> bodies;
  for (int i = 0; i < 100 && bodies.size() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto [status, body] = test::http(url);
    REQUIRE(status == 200);
    const double requests = sample(body, "sluice_host_requests_total");
    if (requests > (bodies.empty() ? 0 : sample(bodies[0], "sluice_host_requests_total"))) bodies.push_back(body);
  }
  REQUIRE(bodies.size() == 2);
  INFO(bodies[1]);
  CHECK(bodies[1].find("# TYPE sluice_host_requests_total counter\n") != std::string::npos);
  CHECK(bodies[1].find("# TYPE sluice_host_mean_seconds gauge\n") != std::string::npos);
  CHECK(bodies[1].find("sluice_host_failures") == std::string::npos);  // text: left out
  const double before = sample(bodies[0], "sluice_host_requests_total");
  const double after = sample(bodies[1], "sluice_host_requests_total");
  CHECK(after > before);  // live, not only at the end
  CHECK(after < 720);
  CHECK(sample(bodies[1], "sluice_host_http_5xx_total") > 0);
  CHECK(sample(bodies[1], "sluice_host_http_5xx_total") + sample(bodies[1], "sluice_host_http_2xx_total") == after);
  CHECK(sample(bodies[1], "sluice_host_mean_seconds") > 0.01);
  CHECK(sample(bodies[1], "sluice_host_bytes_total") > 0);
  p.signal(SIGINT);
  CHECK(p.wait() == 130);
}

TEST_CASE("sluice run --metrics refuses a malformed or taken address before running", "[cli]") {
  TempDir dir;
  test::write_file(dir.file("p.yaml"), kValid);
  ScopedEnv out("CLI_OUT", dir.file("out.jsonl").c_str());
  Result bad = sluice_cli(dir, {"run", "--metrics", "localhost:http", dir.file("p.yaml")});
  CHECK(bad.code == 2);
  CHECK(bad.err ==
        "sluice: error: --metrics: 'localhost:http' is not an address (write PORT, HOST:PORT or [IPv6]:PORT; port 0 "
        "picks a free one)\n");
  fixture::FixtureServer taken;
  Result busy = sluice_cli(dir, {"run", "--metrics", fmt::format("127.0.0.1:{}", taken.port()), dir.file("p.yaml")});
  CHECK(busy.code == 2);
  CHECK(busy.err ==
        fmt::format("sluice: error: --metrics: cannot listen on 127.0.0.1:{}: Address already in use\n", taken.port()));
  CHECK_FALSE(std::filesystem::exists(dir.file("out.jsonl")));  // nothing ran
}

TEST_CASE("SIGINT stops a running pipeline gracefully with exit 130 and whole output", "[cli][signal]") {
  TempDir dir;
  test::write_file(dir.file("p.yaml"), kValid);
  ScopedEnv out("CLI_OUT", dir.file("out.jsonl").c_str()), to("CLI_TO", "1000000000");
  test::Process p({SLUICE_BINARY, "run", dir.file("p.yaml")}, dir.file("stdout"), dir.file("stderr"));
  interrupt_when_written(p, dir.file("out.jsonl"));
  CHECK(p.wait() == 130);
  std::string err = test::read_file(dir.file("stderr"));
  CHECK(err.find("sluice: stopping: finishing work in flight (press Ctrl-C again to abort)") != std::string::npos);
  CHECK(err.find("interrupted; records received by sinks were committed") != std::string::npos);
  auto lines = test::lines_of(test::read_file(dir.file("out.jsonl")));
  REQUIRE_FALSE(lines.empty());
  // Every record the source emitted was written, in order, and no line is cut short.
  CHECK(lines.back() == fmt::format("{{\"url\":\"u{0}\",\"n\":{0}}}", lines.size()));
}

TEST_CASE("a sink's path /dev/stdout is the run's standard output: appended to, never truncated", "[cli]") {
  // Opened anew, /dev/stdout truncated what it pointed to (`sluice run p.yaml >> log` lost the log)
  // and wrote from offset 0 over the shell's other output.
  TempDir dir;
  test::write_file(dir.file("p.yaml"), kValid);
  const std::string path = GENERATE(std::string("/dev/stdout"), std::string("/dev/fd/1"), std::string("-"));
  CAPTURE(path);
  ScopedEnv out("CLI_OUT", path.c_str()), to("CLI_TO", "3");
  test::write_file(dir.file("log"), "earlier\n");
  const int fd = ::open(dir.file("log").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  REQUIRE(fd >= 0);
  int code = -1;
  {
    test::Process p({SLUICE_BINARY, "run", "-q", dir.file("p.yaml")}, fd, dir.file("stderr"));
    code = p.wait();
  }
  ::close(fd);
  CHECK(code == 0);
  CHECK(test::read_file(dir.file("stderr")).empty());
  CHECK(test::read_file(dir.file("log")) ==
        "earlier\n{\"url\":\"u1\",\"n\":1}\n{\"url\":\"u2\",\"n\":2}\n{\"url\":\"u3\",\"n\":3}\n");
}

TEST_CASE("a pipeline that serves its own site under a low limit of open files fetches every page", "[cli][fetch]") {
  // Each request to the served site holds both ends of its connection in this one process, and the
  // server one more for the file: counted as one, 200 requests at a time under ulimit -n 120 left
  // the site no descriptor for its files, and it answered 404 for pages that exist.
  TempDir dir;
  test::write_file(dir.file("p.yaml"), test::served_crawl(dir, 600, 200, dir.file("p.db"), "", "    per_host: 200\n"));
  test::Process p({"/bin/sh", "-c", "ulimit -n 120 && exec \"$0\" run -q \"$1\"", SLUICE_BINARY, dir.file("p.yaml")},
                  dir.file("stdout"), dir.file("stderr"));
  CHECK(p.wait() == 0);
  const std::string err = test::read_file(dir.file("stderr"));
  CHECK(
      test::contains(err, "a request to the site this run serves (settings.serve) holds both ends of its connection"));
  CHECK(test::query(dir.file("p.db"), "SELECT count(*) FROM pages") == std::vector<std::string>{"601"});
}

TEST_CASE("a run whose standard error is not a terminal logs a time-stamped progress line every --progress-every",
          "[cli]") {
  TempDir dir;
  test::write_file(dir.file("p.yaml"), kValid);
  ScopedEnv out("CLI_OUT", dir.file("out.jsonl").c_str()), to("CLI_TO", "1000000000");
  test::Process p({SLUICE_BINARY, "run", "--progress-every", "100ms", dir.file("p.yaml")}, dir.file("stdout"),
                  dir.file("stderr"));
  auto progress_lines = [&] {
    std::vector<std::string> found;
    for (const auto& l : test::lines_of(test::read_file(dir.file("stderr"))))
      if (l.find(" progress: ") != std::string::npos) found.push_back(l);
    return found;
  };
  for (int i = 0; i < 200 && progress_lines().size() < 3; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  p.signal(SIGINT);
  CHECK(p.wait() == 130);
  auto lines = progress_lines();
  REQUIRE(lines.size() >= 3);
  // sluice: 2026-12-02T00:33:00Z progress: 615827 records/s | 0 in flight | 0 queued | 616448 stored | 0 errors | 0.1s
  for (const auto& l : lines) {
    CAPTURE(l);
    CHECK(l.starts_with("sluice: 20"));
    CHECK(l.substr(28, 11) == " progress: ");
    CHECK(l.find(" records/s | 0 in flight | 0 queued | ") != std::string::npos);
    CHECK(l.find(" stored | 0 errors | ") != std::string::npos);
  }
  // One line per interval: the k-th line comes no sooner than k intervals into the run (its
  // elapsed time is printed to 0.1 s). A line that comes late, under load, delays no other.
  std::vector<double> elapsed;
  // (A line logged after the SIGINT ends in " | stopping: ...": the time is the field after the errors.)
  for (const auto& l : lines) elapsed.push_back(std::stod(l.substr(l.find(" errors | ") + 10)));
  for (std::size_t i = 1; i < elapsed.size(); ++i) CHECK(elapsed[i] >= elapsed[i - 1]);
  for (std::size_t i = 0; i < elapsed.size(); ++i) CHECK(elapsed[i] >= 0.1 * static_cast<double>(i + 1) - 0.05);
  // No live line (carriage returns, escape sequences) in a log.
  CHECK(test::read_file(dir.file("stderr")).find('\r') == std::string::npos);
}

TEST_CASE("a run logs no progress with --progress-every 0, and a value that is not a duration is a usage error",
          "[cli]") {
  TempDir dir;
  test::write_file(dir.file("p.yaml"), kValid);
  ScopedEnv out("CLI_OUT", dir.file("out.jsonl").c_str());
  Result off = sluice_cli(dir, {"run", "--progress-every", "0", dir.file("p.yaml")});
  CHECK(off.code == 0);
  CHECK(off.err.find("progress") == std::string::npos);
  std::filesystem::remove(dir.file("out.jsonl"));
  Result bad = sluice_cli(dir, {"run", "--progress-every", "soon", dir.file("p.yaml")});
  CHECK(bad.code == 2);
  CHECK(bad.err == "sluice: error: --progress-every: 'soon' is not a duration (60s, 5m, 0 for never)\n");
  CHECK_FALSE(std::filesystem::exists(dir.file("out.jsonl")));
}

TEST_CASE("SIGHUP (the terminal closed) stops a running pipeline gracefully too, with exit 129", "[cli][signal]") {
  // Its default action killed the process with the sinks' last records uncommitted.
  TempDir dir;
  test::write_file(dir.file("p.yaml"), kValid);
  ScopedEnv out("CLI_OUT", dir.file("out.jsonl").c_str()), to("CLI_TO", "1000000000");
  test::Process p({SLUICE_BINARY, "run", "-q", dir.file("p.yaml")}, dir.file("stdout"), dir.file("stderr"));
  interrupt_when_written(p, dir.file("out.jsonl"), SIGHUP);
  CHECK(p.wait() == 129);
  auto lines = test::lines_of(test::read_file(dir.file("out.jsonl")));
  REQUIRE_FALSE(lines.empty());
  CHECK(lines.back() == fmt::format("{{\"url\":\"u{0}\",\"n\":{0}}}", lines.size()));
}

TEST_CASE("a signal the run was started ignoring stays ignored: nohup's SIGHUP does not stop it", "[cli][signal]") {
  // Blocked for sigwait, an ignored signal was taken as any: `nohup sluice run ...` stopped when
  // the terminal closed. (A job a non-interactive shell starts in the background ignores SIGINT.)
  TempDir dir;
  test::write_file(dir.file("p.yaml"), kValid);
  ScopedEnv out("CLI_OUT", dir.file("out.jsonl").c_str()), to("CLI_TO", "1000000000");
  test::Process p({SLUICE_BINARY, "run", "-q", dir.file("p.yaml")}, dir.file("stdout"), dir.file("stderr"), {SIGHUP});
  interrupt_when_written(p, dir.file("out.jsonl"), SIGHUP);
  CHECK_FALSE(p.wait_for(std::chrono::milliseconds(300)));  // still running
  p.signal(SIGTERM);                                        // the signals it was not started ignoring still stop it
  CHECK(p.wait() == 143);
  auto lines = test::lines_of(test::read_file(dir.file("out.jsonl")));
  REQUIRE_FALSE(lines.empty());
  CHECK(lines.back() == fmt::format("{{\"url\":\"u{0}\",\"n\":{0}}}", lines.size()));
}

TEST_CASE("SIGINT stops a pipeline that serves a folder gracefully too", "[cli][signal]") {
  // settings.serve starts the fixture server's threads before the run: they must block the signals
  // as well, or the kernel delivers SIGINT there and the default action kills the process with
  // nothing committed (10 of 10 times before the fix).
  TempDir dir;
  std::filesystem::create_directories(dir.file("site"));
  test::write_file(dir.file("site/index.html"), "hi");
  test::write_file(dir.file("p.yaml"), fmt::format(R"(pipeline: served
settings:
  serve: site
nodes:
  - id: src
    type: source.list
    template: "${{SERVE_URL}}/delay/20?n={{n}}"
    to: 100000
  - id: lim
    type: limit
    max_in_flight: 2
  - id: get
    type: fetch
  - id: out
    type: sink.jsonl
    path: {}
    fields: [url, status]
edges:
  - src -> lim -> get -> out
)",
                                                   dir.file("out.jsonl")));
  test::Process p({SLUICE_BINARY, "run", dir.file("p.yaml")}, dir.file("stdout"), dir.file("stderr"));
  interrupt_when_written(p, dir.file("out.jsonl"));
  CHECK(p.wait() == 130);
  CHECK_THAT(test::read_file(dir.file("stderr")),
             Catch::Contains("interrupted; records received by sinks were committed"));
  auto lines = test::lines_of(test::read_file(dir.file("out.jsonl")));
  REQUIRE_FALSE(lines.empty());
  CHECK_THAT(lines.back(), Catch::Contains(R"("status":200)"));
}

TEST_CASE("sluice nodes and describe are generated from the node schemas", "[cli]") {
  TempDir dir;
  Result nodes = sluice_cli(dir, {"nodes"});
  CHECK(nodes.code == 0);
  CHECK(nodes.out.find("source.list      source     emits records from an inline list") != std::string::npos);
  Result describe = sluice_cli(dir, {"describe", "sink.jsonl"});
  CHECK(describe.code == 0);
  CHECK(describe.out.find("  path      string                  default: -       file to write") != std::string::npos);
  // A cell longer than its column keeps two spaces before the next one.
  Result fetch = sluice_cli(dir, {"describe", "fetch"});
  CHECK(
      fetch.out.find(
          "  method                    one of GET|HEAD|POST|PUT|PATCH|DELETE  default: GET          HTTP method (HEAD: "
          "the headers only); kept past redirects, but a 303 or a POST's 301 or 302 continues as a GET\n") !=
      std::string::npos);
  Result typo = sluice_cli(dir, {"describe", "sink.json"});
  CHECK(typo.code == 2);
  CHECK(typo.err == "sluice: error: unknown node type 'sink.json' (did you mean 'sink.jsonl'?)\n");
}

TEST_CASE("a download shows its bytes per second while no page is done, and the report counts its bytes", "[cli]") {
  fixture::FixtureServer server;
  TempDir dir;
  // Two files of 2 MiB, each in 32 blocks 25 ms apart: about 0.8 s, and no page done before the end.
  test::write_file(dir.file("p.yaml"), fmt::format(R"(pipeline: big
nodes:
  - {{id: src, type: source.list, urls: ["{0}?pace=25&f=1", "{0}?pace=25&f=2"]}}
  - {{id: lim, type: limit, max_in_flight: 2}}
  - {{id: get, type: fetch, robots: ignore, max_body: 4MiB, download: {{dir: {1}}}}}
  - {{id: out, type: drop}}
edges:
  - src -> lim -> get -> out
)",
                                                   server.url("/huge/2097152"), dir.file("files")));
  Result r = sluice_cli(dir, {"run", "--log-format", "json", "--progress-every", "100ms", "--stats-json",
                              dir.file("stats.json"), dir.file("p.yaml")});
  INFO(r.err);
  REQUIRE(r.code == 0);
  JsonLog log(r.err);
  auto progress = log.named("progress");
  REQUIRE(progress.size() >= 3);
  int downloading = 0;  // progress while bytes come and no page is done
  std::int64_t last = 0;
  for (const auto& p : progress) {
    std::int64_t bytes = -1, stored = -1;
    double rate = -1;
    REQUIRE(p["bytes"].get(bytes) == simdjson::SUCCESS);
    REQUIRE(p["bytes_per_s"].get(rate) == simdjson::SUCCESS);
    REQUIRE(p["stored"].get(stored) == simdjson::SUCCESS);
    CHECK(bytes >= last);
    last = bytes;
    if (stored == 0 && bytes > 0 && rate > 0) {
      ++downloading;
      CHECK(text(p, "message").find(" MiB/s | ") != std::string::npos);
    }
  }
  CHECK(downloading >= 2);
  // The progress events carry fetch's table of hosts so far (given once its first request is
  // queued, then every second).
  int with_table = 0;
  for (const auto& p : progress) {
    simdjson::dom::array tables;
    if (p["tables"].get(tables) != simdjson::SUCCESS) continue;
    ++with_table;
    REQUIRE(tables.size() == 1);
    CHECK(text(tables.at(0), "node") == "get");
    CHECK(text(tables.at(0), "name") == "hosts");
    simdjson::dom::array rows;
    REQUIRE(tables.at(0)["rows"].get(rows) == simdjson::SUCCESS);
    REQUIRE(rows.size() == 1);
    CHECK(text(rows.at(0), "host") == fmt::format("http://127.0.0.1:{}", server.port()));
    std::int64_t requests = -1;
    CHECK(rows.at(0)["requests"].get(requests) == simdjson::SUCCESS);
    CHECK(requests >= 0);
  }
  CHECK(with_table >= 2);
  // The report: fetch took in both files, the other nodes nothing.
  const std::string stats = test::read_file(dir.file("stats.json"));
  CHECK(test::contains(stats,
                       R"("id": "get", "type": "fetch", "in": 2, "out": 2, "errors": 0, "dropped": 0, "busy_s": )"));
  CHECK(test::contains(stats, R"("bytes": 4194304})"));
  CHECK(test::contains(stats,
                       R"("id": "out", "type": "drop", "in": 2, "out": 0, "errors": 0, "dropped": 0, "busy_s": )"));
}

TEST_CASE("a table of many hosts: ten rows printed and in the JSON log's end event, all in --stats-json", "[cli]") {
  TempDir dir;
  // Twelve hosts where nothing listens (12 ports): one failed record each. (free_port() may give a
  // port twice: it was free, and is again; seen in CI as 11 hosts.)
  std::set<int> ports;
  while (ports.size() < 12) ports.insert(test::free_port());
  std::string urls;
  for (int port : ports) urls += fmt::format("{}\"http://127.0.0.1:{}/x\"", urls.empty() ? "" : ", ", port);
  test::write_file(dir.file("p.yaml"), fmt::format(R"(pipeline: hosts
nodes:
  - id: src
    type: source.list
    urls: [{}]
  - id: lim
    type: limit
    max_in_flight: 4
  - id: get
    type: fetch
    robots: ignore
    on_error: skip
    retries: {{attempts: 1}}
  - id: out
    type: drop
edges:
  - src -> lim -> get -> out
)",
                                                   urls));
  Result shown = sluice_cli(dir, {"run", "--stats-json", dir.file("stats.json"), dir.file("p.yaml")});
  CHECK(shown.code == 0);
  INFO(shown.err);
  auto out = test::lines_of(shown.err);
  auto title =
      std::find(out.begin(), out.end(), "node 'get': hosts (12 rows, the first 10 shown; --stats-json has all)");
  REQUIRE(out.end() - title >= 12);
  CHECK(title[1].starts_with("host "));
  // (mean_s and max_s show when a refused connection took a millisecond or more)
  CHECK(test::contains(title[1], "  requests  failed  no_response  "));
  CHECK(title[1].ends_with("  failures"));
  for (int i = 2; i < 12; ++i) {
    CHECK(test::contains(title[i], "       1       1            1  "));
    CHECK(title[i].ends_with("  connect 1"));
  }
  CHECK((title + 12 == out.end() || !title[12].starts_with("http://")));

  auto rows_of = [](simdjson::dom::element report) {
    simdjson::dom::array tables = report["tables"];
    REQUIRE(tables.size() == 1);
    simdjson::dom::element table = tables.at(0);
    CHECK(std::string_view(table["name"]) == "hosts");
    CHECK(std::int64_t(table["rows_total"]) == 12);
    return simdjson::dom::array(table["rows"]).size();
  };
  simdjson::dom::parser parser;
  CHECK(rows_of(parser.parse(test::read_file(dir.file("stats.json")))) == 12);
  Result json = sluice_cli(dir, {"run", "--log-format", "json", dir.file("p.yaml")});
  CHECK(json.code == 0);
  JsonLog log(json.err);
  auto end = log.named("end");
  REQUIRE(end.size() == 1);
  CHECK(rows_of(end[0]["report"]) == 10);
}

TEST_CASE("a host's circuit breaker opening is a warning as it happens, a notice event in a JSON log", "[cli]") {
  fixture::FixtureServer server;
  TempDir dir;
  test::write_file(dir.file("p.yaml"), fmt::format(R"(pipeline: breaker
settings: {{batch: 1}}
nodes:
  - id: src
    type: source.list
    urls: ["{0}", "{0}", "{0}", "{0}"]
  - id: lim
    type: limit
    max_in_flight: 1
  - id: get
    type: fetch
    robots: ignore
    on_error: skip
    retries: {{attempts: 1}}
    circuit_breaker: {{failure_threshold: 2, recovery_timeout: 1h}}
  - id: out
    type: sink.jsonl
    path: {1}
edges:
  - src -> lim -> get -> out
)",
                                                   server.url("/status/503"), dir.file("out.jsonl")));
  const std::string notice = fmt::format(
      "node 'get': host http://127.0.0.1:{}: circuit breaker open after 2 failures in a row (last: HTTP 503); its "
      "requests fail with reason circuit_open until a probe in 3600s",
      server.port());
  Result r = sluice_cli(dir, {"run", "-q", "--stats-json", dir.file("stats.json"), dir.file("p.yaml")});
  CHECK(r.code == 0);
  INFO(r.err);
  const std::string stats = test::read_file(dir.file("stats.json"));
  CHECK(test::contains(stats, fmt::format("\"notices\": [{{\"node\": \"get\", \"message\": \"{}\"}}], ",
                                          notice.substr(std::string("node 'get': ").size()))));
  // The host's row in the table of hosts: two answers, four records failed, the breaker opened once.
  CHECK(test::contains(
      stats, fmt::format("\"tables\": [{{\"node\": \"get\", \"name\": \"hosts\", \"rows_total\": 1, \"rows\": "
                         "[{{\"host\":\"http://127.0.0.1:{}\",\"requests\":2,\"ok\":0,\"failed\":4,"
                         "\"retries\":0,\"http_2xx\":0,\"http_3xx\":0,\"http_4xx\":0,\"http_5xx\":2,"
                         "\"http_other\":0,\"no_response\":0,\"bytes\":",
                         server.port())));
  CHECK(test::contains(stats, "\"breaker_opened\":1,\"failures\":\"http_status 2, circuit_open 2\"}]}]}\n"));
  auto lines = test::lines_of(r.err);
  CHECK(std::count_if(lines.begin(), lines.end(), [&](const std::string& l) {
          return l.starts_with("sluice: 20") && l.ends_with(" warning: " + notice);
        }) == 1);
  CHECK(server.counter("/status").requests == 2);

  Result json = sluice_cli(dir, {"run", "-q", "--log-format", "json", dir.file("p.yaml")});
  CHECK(json.code == 0);
  JsonLog log(json.err);
  auto notices = log.named("notice");
  REQUIRE(notices.size() == 1);
  CHECK(text(notices[0], "level") == "warning");
  CHECK(text(notices[0], "node") == "get");
  CHECK(text(notices[0], "message") == notice);

  // Without -q the stats table is followed by the table of hosts, without its columns that are zero
  // in every row.
  Result shown = sluice_cli(dir, {"run", dir.file("p.yaml")});
  CHECK(shown.code == 0);
  auto out = test::lines_of(shown.err);
  auto title = std::find(out.begin(), out.end(), "node 'get': hosts (1 row)");
  REQUIRE(title != out.end());
  REQUIRE(out.end() - title >= 3);
  const std::string host = fmt::format("http://127.0.0.1:{}", server.port());
  CHECK(title[1].starts_with(fmt::format("{:<{}}  requests  failed  http_5xx", "host", host.size())));
  CHECK(title[1].ends_with("breaker_opened  failures"));
  CHECK(title[2].starts_with(fmt::format("{}         2       4         2", host)));
  CHECK(title[2].ends_with("1  http_status 2, circuit_open 2"));
}

namespace {

// The pipeline of the tests of descriptors: a source.list with `source` (its keys), then a limit and
// a fetch of 100 in flight (and its keys `more`; robots.txt ignored unless `obey_robots`); successes to
// out.jsonl, failures to failed.jsonl in `dir`.
std::string descriptors_pipeline(const std::string& source, const TempDir& dir, const std::string& more = "",
                                 bool obey_robots = false) {
  return fmt::format(R"(pipeline: descriptors
settings: {{batch: 10}}
nodes:
  - id: src
    type: source.list
    {0}
  - id: lim
    type: limit
    max_in_flight: 100
  - id: get
    type: fetch
    per_host: 100
    robots: {4}
    retries: {{attempts: 1}}
    on_error: route{3}
  - id: out
    type: sink.jsonl
    path: {1}
    fields: [url, status]
  - id: failed
    type: sink.jsonl
    path: {2}
edges:
  - src -> lim -> get -> out
  - get.error -> failed
)",
                     source, dir.file("out.jsonl"), dir.file("failed.jsonl"), more.empty() ? "" : "\n    " + more,
                     obey_robots ? "obey" : "ignore");
}

// The run of the tests of descriptors with a second host: 300 requests to `first` that each take
// `first_delay_ms`, then 100 to `second_url` (scheme, host and port) of 20 ms each.
void write_two_host_run(const TempDir& dir, const fixture::FixtureServer& first, int first_delay_ms,
                        const std::string& second_url, bool obey_robots) {
  std::string urls;
  for (int i = 0; i < 300; ++i) urls += first.url(fmt::format("/delay/{}?n={}\n", first_delay_ms, i));
  for (int i = 0; i < 100; ++i) urls += fmt::format("{}/delay/20?n={}\n", second_url, i);
  test::write_file(dir.file("urls.txt"), urls);
  test::write_file(dir.file("p.yaml"), descriptors_pipeline("file: " + dir.file("urls.txt"), dir, "", obey_robots));
}

// `sluice run -q` of dir/p.yaml after a shell's `ulimit` command, its output in `dir`.
class LimitedRun {
 public:
  LimitedRun(const std::string& ulimit, const TempDir& dir)
      : dir_(dir),
        process_({"/bin/sh", "-c", ulimit + " && exec \"$@\"", "sh", SLUICE_BINARY, "run", "-q", dir.file("p.yaml")},
                 dir.file("stdout"), dir.file("stderr")) {}
  pid_t pid() const { return process_.pid(); }
  // Once `server` has seen `requests` requests under `path` (at most 30 s), lowers the run's limit
  // of open files (soft and hard) to `files`, or to the files it has open then, as if the rest of
  // the process had taken them; gives the limit set.
  rlim_t lower_limit_after(const fixture::FixtureServer& server, const std::string& path, std::uint64_t requests,
                           std::optional<rlim_t> files = std::nullopt) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (server.counter(path).requests < requests && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    REQUIRE(server.counter(path).requests >= requests);
    if (!files) {
      files = 0;
      for ([[maybe_unused]] const auto& fd : std::filesystem::directory_iterator(fmt::format("/proc/{}/fd", pid())))
        ++*files;
    }
    const rlimit lowered{*files, *files};
    REQUIRE(::prlimit(pid(), RLIMIT_NOFILE, &lowered, nullptr) == 0);
    return *files;
  }
  Result wait() {
    return Result{process_.wait(), test::read_file(dir_.file("stdout")), test::read_file(dir_.file("stderr"))};
  }

 private:
  const TempDir& dir_;
  test::Process process_;
};

// UBSan's vptr check reads memory through a pipe() of its own (sanitizer_common's
// IsAccessibleMemoryRange: the object, its vtable, and the type_info it walks to find the object's
// bases). In a process with no descriptor left it takes that memory for unreadable and reports "...
// which does not point to an object of type T", with "note: object has invalid vptr" or with "note:
// object is of type" a class derived from T, where nothing is wrong (seen in these tests under
// ASan+UBSan, at the end of a std::thread, a shared_ptr and a permit). So in the runs that use their
// descriptors up on purpose that one check cannot be judged: under a sanitizer build they go on after
// a UBSan report, and only_vptr_reports() checks that every report was of that check; any other kind
// of undefined behaviour still fails them, and ASan still stops at its first error. The rest of the
// suite runs the same code with the vptr check whole. Empty without UBSan.
std::vector<std::unique_ptr<ScopedEnv>> ubsan_goes_on() {
  std::vector<std::unique_ptr<ScopedEnv>> env;
  const char* ubsan = std::getenv("UBSAN_OPTIONS");
  if (!ubsan) return env;
  // No suppressions file either: UBSan reads it at its first report, and without a descriptor it
  // cannot, and stops the run (the file only suppresses vptr reports, which these runs let pass).
  env.push_back(
      std::make_unique<ScopedEnv>("UBSAN_OPTIONS", (std::string(ubsan) + ":halt_on_error=0:suppressions=").c_str()));
  // A report that passes names its types through __cxa_demangle, whose result UBSan never frees:
  // LeakSanitizer found it at exit in 2 of 12 runs (tests/lsan.supp). Its suppression matches a frame
  // that only the full unwinder reaches (libstdc++ has no frame pointers).
  const char* asan = std::getenv("ASAN_OPTIONS");
  env.push_back(std::make_unique<ScopedEnv>("ASAN_OPTIONS",
                                            (std::string(asan ? asan : "") + ":fast_unwind_on_malloc=0").c_str()));
  return env;
}

// Whether every UBSan report in `err` is of the vptr check (ubsan_goes_on()).
bool only_vptr_reports(const std::string& err) {
  for (auto at = err.find("runtime error:"); at != std::string::npos;) {
    const auto next = err.find("runtime error:", at + 1);
    const std::string report = err.substr(at, next - at);  // to the next report (type names can be long)
    at = next;
    if (!test::contains(report, "which does not point to an object of type")) return false;
  }
  return true;
}

// The requests at a time that fetch node `node` allowed itself for the limit of open files, from its
// warning ("node 'get': at most 22 requests at a time for the limit of open files: ..."); 0 if none.
std::size_t descriptor_budget(const std::string& err, const std::string& node) {
  const std::string mark = fmt::format("warning: node '{}': at most ", node);
  const auto at = err.find(mark);
  if (at == std::string::npos || !test::contains(err, "requests at a time for the limit of open files")) return 0;
  return std::stoul(err.substr(at + mark.size()));
}

}  // namespace

TEST_CASE("a run short of descriptors for its sockets waits for free ones: every request succeeds, a notice says why",
          "[cli][fetch]") {
  const auto ubsan = ubsan_goes_on();  // its runs use their descriptors up
  fixture::FixtureServer server;
  TempDir dir;
  test::write_file(
      dir.file("p.yaml"),
      descriptors_pipeline(fmt::format("template: \"{}?n={{n}}\"\n    to: 200", server.url("/delay/50")), dir));
  // `ulimit -n` sets the soft and the hard limit; -S the soft one only, which sluice raises.
  auto run = [&](const std::string& ulimit) { return LimitedRun(ulimit, dir).wait(); };
  SECTION("a hard limit of 48 open files") {
    Result r = run("ulimit -n 48");
    INFO(r.err);
    CHECK(r.code == 0);
    CHECK(only_vptr_reports(r.err));
    CHECK(test::lines_of(test::read_file(dir.file("out.jsonl"))).size() == 200);
    CHECK(test::read_file(dir.file("failed.jsonl")).empty());
    // The node keeps to what the limit leaves it (about 20 here), so the rest of the run has its own.
    const std::size_t budget = descriptor_budget(r.err, "get");
    CHECK(test::contains(r.err,
                         "requests at a time for the limit of open files: this process may have 48 open files "
                         "(ulimit -n), "));
    CHECK(budget > 10);
    CHECK_FALSE(test::contains(r.err, "circuit breaker"));  // the host is not to blame
    const int most = server.counter("/delay").max_concurrent;
    CHECK(most > 10);
    CHECK(static_cast<std::size_t>(most) <= budget);
    CHECK(server.counter("/delay").requests == 200);  // none sent twice
  }
  SECTION("downloads: a file is a descriptor too") {
    // Each transfer's file is opened at its first bytes, after its socket; under the limit some found
    // none and failed ("download: cannot write: Too many open files", 1-10 of 300): now they wait.
    test::write_file(
        dir.file("p.yaml"),
        descriptors_pipeline(fmt::format("template: \"{}?seed={{n}}\"\n    to: 300", server.url("/bytes/20000")), dir,
                             fmt::format("download: {{dir: {}}}", dir.file("files"))));
    Result r = run("ulimit -n 48");
    INFO(r.err);
    INFO(test::read_file(dir.file("failed.jsonl")));
    CHECK(r.code == 0);
    CHECK(only_vptr_reports(r.err));
    CHECK(test::lines_of(test::read_file(dir.file("out.jsonl"))).size() == 300);
    CHECK(test::read_file(dir.file("failed.jsonl")).empty());
    std::size_t files = 0, parts = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir.file("files"))) {
      ++(entry.path().extension() == ".part" ? parts : files);
      CHECK(entry.file_size() == 20000);
    }
    CHECK(files == 300);
    CHECK(parts == 0);
    CHECK(test::contains(r.err, "and each download takes two (its socket and its file)"));
    CHECK(static_cast<std::size_t>(server.counter("/bytes").max_concurrent) <= descriptor_budget(r.err, "get"));
  }
  SECTION("a soft limit of 48 below a higher hard one: raised, and more than 48 run at once") {
    rlimit limit{};
    ::getrlimit(RLIMIT_NOFILE, &limit);
    REQUIRE(limit.rlim_max >= 256);  // the machines sluice is tested on allow that much
    // Requests of 400 ms: more than 48 overlap even when a loaded machine (the sanitizer build, tests
    // in parallel) opens connections slowly; with 50 ms ones one run reached only 42 at once.
    test::write_file(
        dir.file("p.yaml"),
        descriptors_pipeline(fmt::format("template: \"{}?n={{n}}\"\n    to: 200", server.url("/delay/400")), dir));
    Result r = run("ulimit -S -n 48");
    INFO(r.err);
    CHECK(r.code == 0);
    CHECK(only_vptr_reports(r.err));
    CHECK(test::lines_of(test::read_file(dir.file("out.jsonl"))).size() == 200);
    CHECK_FALSE(test::contains(r.err, "no socket"));
    CHECK(server.counter("/delay").max_concurrent > 48);
  }
}

namespace {

// A name of this machine for a loopback address, and the address, as getaddrinfo() finds them (in
// /etc/hosts: Debian gives the machine's own name 127.0.1.1); empty if it has none. libcurl looks
// such a name up on a thread of its own (localhost it answers itself).
std::pair<std::string, std::string> loopback_name() {
  std::vector<std::string> names;
  char own[256] = {};
  if (::gethostname(own, sizeof own - 1) == 0) names.emplace_back(own);
  for (const std::string& line : test::lines_of(test::read_file("/etc/hosts"))) {
    std::istringstream words(line);
    std::string address, name;
    if (!(words >> address) || !address.starts_with("127.")) continue;
    while (words >> name && !name.starts_with('#')) {
      if (!name.ends_with("localhost")) names.push_back(name);
    }
  }
  for (const std::string& name : names) {
    addrinfo hints{};
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (::getaddrinfo(name.c_str(), nullptr, &hints, &found) != 0) continue;
    const auto* in = reinterpret_cast<const sockaddr_in*>(found->ai_addr);
    char text[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
    ::freeaddrinfo(found);
    if (std::string_view(text).starts_with("127.")) return {name, text};
  }
  return {};
}

// A fixture server on the loopback address that loopback_name() finds, and that name.
std::pair<std::string, std::unique_ptr<fixture::FixtureServer>> server_by_name() {
  const auto [name, address] = loopback_name();
  INFO("this test needs a name for a loopback address in /etc/hosts, such as the machine's own");
  REQUIRE(!name.empty());
  return {name, std::make_unique<fixture::FixtureServer>("", 0, 256, false, 1, address)};
}

// What every run of the tests of descriptors with a second host ends with: 400 records stored, none
// failed, `warning` given, no breaker opened, and the second host asked 100 times, none twice.
void check_all_fetched(const Result& r, const TempDir& dir, const fixture::FixtureServer& second,
                       const std::string& warning) {
  INFO(r.err);
  INFO(test::read_file(dir.file("failed.jsonl")));
  CHECK(r.code == 0);
  CHECK(only_vptr_reports(r.err));
  CHECK(test::lines_of(test::read_file(dir.file("out.jsonl"))).size() == 400);
  CHECK(test::read_file(dir.file("failed.jsonl")).empty());
  CHECK(test::contains(r.err, warning));
  CHECK_FALSE(test::contains(r.err, "circuit breaker"));
  CHECK(second.counter("/delay").requests == 100);
}
}  // namespace

TEST_CASE(
    "short of descriptors, a second host gets those idle connections to the first hold, and a name's lookup waits "
    "instead of failing",
    "[cli][fetch]") {
  // 300 slow requests to one host take every descriptor a limit of 48 leaves the node (their
  // connections stay open, idle, when they end); then 100 to another host. libcurl 7.88 keeps idle
  // connections and reports a lookup without descriptors as "Could not resolve host": before, all 100
  // failed (connect, or dns and then circuit_open).
  const auto ubsan = ubsan_goes_on();  // its runs use their descriptors up
  fixture::FixtureServer first;
  TempDir dir;
  auto run = [&](fixture::FixtureServer& second, const std::string& second_url, bool robots = false) {
    write_two_host_run(dir, first, 100, second_url, robots);  // with robots, each host's robots.txt first
    Result r = LimitedRun("ulimit -n 48", dir).wait();
    check_all_fetched(r, dir, second, "requests at a time for the limit of open files: this process may have 48");
    CHECK(descriptor_budget(r.err, "get") > 10);
    CHECK(first.counter("/delay").requests == 300);
  };
  SECTION("the second host by its address") {
    fixture::FixtureServer second;
    run(second, fmt::format("http://127.0.0.1:{}", second.port()));
  }
  SECTION("the second host by a name looked up") {
    auto [name, second] = server_by_name();
    SECTION("robots.txt ignored") {
      run(*second, fmt::format("http://{}:{}", name, second->port()));
    }
    SECTION("robots.txt obeyed: its fetch waits the same way") {
      // Before, robots.txt's lookup failed ("Could not resolve host") and the host was disallowed.
      run(*second, fmt::format("http://{}:{}", name, second->port()), true);
    }
  }
}

TEST_CASE(
    "the limit of open files lowered under a run: a new host's lookups and robots.txt wait for descriptors "
    "instead of failing",
    "[cli][fetch]") {
  // Once 150 of 300 slow requests to one host have come, the run's limit is lowered to the files it
  // has open (prlimit), as if the rest of the process had taken them: then 100 requests to a host by
  // a name to look up. libcurl's resolver needs a socketpair for each lookup, and reports a lookup
  // without one as "Could not resolve host" or "getaddrinfo() thread failed to start"; before, every
  // one failed (dns, then circuit_open; with robots.txt obeyed, the host disallowed).
  const auto ubsan = ubsan_goes_on();  // its runs use their descriptors up
  fixture::FixtureServer first;
  const auto [name, second] = server_by_name();
  TempDir dir;
  auto run = [&](bool robots) {
    write_two_host_run(dir, first, 200, fmt::format("http://{}:{}", name, second->port()), robots);
    LimitedRun p("ulimit -n 4096", dir);
    const rlim_t open = p.lower_limit_after(first, "/delay", 150);
    Result r = p.wait();
    INFO(fmt::format("limit lowered to {} files", open));
    CHECK(open > 100);  // the first host's 100 connections, and the rest of the run's files
    check_all_fetched(
        r, dir, *second,
        fmt::format("no socket for a request: this process has reached its limit of {} open files", open));
  };
  SECTION("robots.txt ignored") {
    run(false);
  }
  SECTION("robots.txt obeyed") {
    run(true);
  }
}

TEST_CASE(
    "the limit of open files lowered below a run's open sockets: fetch, which cannot poll them, looks at them "
    "every 2 ms and every request completes",
    "[cli][fetch]") {
  // poll() refuses more descriptors than the limit allows (EINVAL), and libcurl's curl_multi_poll()
  // returns at once: the I/O thread spun, and libcurl 7.88 leaked its array of descriptors each time.
  const auto ubsan = ubsan_goes_on();  // the run has fewer descriptors than it holds
  fixture::FixtureServer server;
  TempDir dir;
  test::write_file(
      dir.file("p.yaml"),
      descriptors_pipeline(fmt::format("template: \"{}?n={{n}}\"\n    to: 100", server.url("/delay/1500")), dir));
  LimitedRun p("ulimit -n 4096", dir);
  p.lower_limit_after(server, "/delay", 100, 40);  // below the 100 connections and the run's other files
  Result r = p.wait();
  INFO(r.err);
  CHECK(r.code == 0);
  CHECK(only_vptr_reports(r.err));
  CHECK(test::lines_of(test::read_file(dir.file("out.jsonl"))).size() == 100);
  CHECK(test::read_file(dir.file("failed.jsonl")).empty());
  CHECK(test::contains(r.err,
                       "warning: node 'get': cannot wait for its connections: Unrecoverable error in select/poll (more "
                       "sockets than the limit of open files allows: was ulimit -n lowered under the run?); the node "
                       "looks at them every 2 ms instead until it can"));
  CHECK(server.counter("/delay").requests == 100);
}

TEST_CASE(
    "two fetch nodes share a limit of 64 open files: what each leaves itself does not fit, and requests and "
    "lookups that find no descriptor wait",
    "[cli][fetch]") {
  // Each node keeps to what the limit leaves when it starts (about 34 here): two of them together
  // run out, and the node that finds no descriptor (for a socket, or for the lookup of a name) waits.
  const auto ubsan = ubsan_goes_on();  // its runs use their descriptors up
  fixture::FixtureServer first;
  const auto [name, second] = server_by_name();
  TempDir dir;
  auto run = [&](const std::string& robots) {
    test::write_file(dir.file("p.yaml"), fmt::format(R"(pipeline: two_fetches
settings: {{batch: 10}}
nodes:
  - id: src_a
    type: source.list
    template: "{0}?n={{n}}"
    to: 300
  - id: lim_a
    type: limit
    max_in_flight: 100
  - id: get_a
    type: fetch
    per_host: 100
    robots: ignore
    retries: {{attempts: 1}}
    on_error: route
  - id: src_b
    type: source.list
    template: "http://{1}:{2}/delay/20?n={{n}}"
    to: 100
  - id: lim_b
    type: limit
    max_in_flight: 100
  - id: get_b
    type: fetch
    per_host: 100
    robots: {3}
    retries: {{attempts: 1}}
    on_error: route
  - id: out
    type: sink.jsonl
    path: {4}
    fields: [url, status]
  - id: failed
    type: sink.jsonl
    path: {5}
edges:
  - src_a -> lim_a -> get_a -> out
  - src_b -> lim_b -> get_b -> out
  - get_a.error -> failed
  - get_b.error -> failed
)",
                                                     first.url("/delay/100"), name, second->port(), robots,
                                                     dir.file("out.jsonl"), dir.file("failed.jsonl")));
    Result r = LimitedRun("ulimit -n 64", dir).wait();
    check_all_fetched(r, dir, *second, "no socket for a request: this process has reached its limit of 64 open files");
    CHECK(first.counter("/delay").requests == 300);
  };
  SECTION("robots.txt ignored") {
    run("ignore");
  }
  SECTION("robots.txt obeyed") {
    run("obey");
  }
}
