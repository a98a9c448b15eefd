// What servers answer: fetch (and a crawl behind it) against a raw server on 127.0.0.1 that sends
// the input's bytes as its responses — any status line, headers, framing, encoding, redirect,
// Retry-After, rate-limit headers, Content-Disposition, Content-Range, robots.txt, oauth2's token,
// NTLM challenges (of the server and of the proxy) —
// through a whole run. Every request
// goes to that server: it is the node's proxy, so a Location naming any host still stays on
// loopback (https:// is a CONNECT it answers too).
//
// The input: two bytes of flags (the fetch options below), then the responses, separated by a line
// "@@". The k-th request the server sees (over the input's runs) gets response k modulo their
// number, then the server shuts its side of the connection.
//
// Checked beyond crashes: the run succeeds (every fetch failure is routed, so a failed run is an
// engine or node bug: a leaked limit slot, an exception); every URL of the list comes out once, as
// a result or an error; a result has a status in ok_status, an http(s) final URL and a body within
// max_body, or a downloaded file whose size and SHA-256 are what the record says, under the
// download folder; an error has a reason. With the cache, a second run offline answers every URL
// as the first run did, without a connection. With `again`, a download or cache run is made twice
// instead, on the same folder: what the first run left (files kept, downloads continued, cached
// responses asked for again with their validators) passes the same checks.
#include <openssl/evp.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <vector>

#include "../raw_server.hpp"
#include "fuzz.hpp"
#include "sluice/run.hpp"

namespace {

using namespace sluice;
namespace fs = std::filesystem;

// The records the collecting sinks received, by sink id.
std::mutex collected_mutex;
std::map<std::string, std::vector<Record>> collected;

class Collect final : public SinkNode {
 public:
  explicit Collect(std::string id) : id_(std::move(id)) {}
  void write(std::vector<Record>& records) override {
    std::lock_guard lock(collected_mutex);
    auto& into = collected[id_];
    for (auto& r : records) {
      // Kept without its limit slots: a record that has reached a sink has left the graph.
      r.permits.clear();
      r.fetch_permits.clear();
      into.push_back(std::move(r));
    }
    records.clear();
  }
  void close() override {}

 private:
  std::string id_;
};

const Registry& registry() {
  static const Registry r = [] {
    Registry reg;
    register_builtin_nodes(reg);
    NodeType t;
    t.name = "fuzz.collect";
    t.kind = NodeKind::sink;
    t.summary = "keeps what it receives for the fuzz target's checks";
    t.ports = {{"in", PortDirection::input, "records"}};
    t.factory = [](const NodeContext& c) -> std::unique_ptr<Node> { return std::make_unique<Collect>(c.id); };
    reg.add(std::move(t), "fuzz target");
    return reg;
  }();
  return r;
}

// The folder of a process's files (downloads, the cache), emptied for each input, removed at exit.
struct WorkDir {
  fs::path path = fs::temp_directory_path() / ("sluice-fuzz-responses-" + std::to_string(::getpid()));
  ~WorkDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

struct Flags {
  explicit Flags(fuzz::Input& in) {
    const std::uint8_t a = in.byte();
    const std::uint8_t b = in.byte();
    robots = a & 1;
    download = a & 2;
    cache = (a & 4) && !download;
    small_body = a & 8;
    no_redirects = a & 16;
    uncompressed = a & 32;
    one_attempt = a & 64;
    server_filename = a & 128;
    crawl = (b & 1) && !download;
    https = b & 2;
    html_only = b & 4;
    head = (b & 8) && !download;  // a HEAD with download is an error when the pipeline loads
    keep = b & 16;
    again = b & 32;
    rate_limit = b & 64;
    oauth2 = b & 128;
    // NTLM with the server (auth) and with the proxy (proxy_auth), on the bits of cache and crawl,
    // which a download leaves unused (auth cannot stand beside oauth2).
    ntlm = (a & 4) && download && !oauth2;
    proxy_ntlm = (b & 1) && download;
  }
  bool robots, download, cache, small_body, no_redirects, uncompressed, one_attempt, server_filename;
  bool crawl, https, html_only, head, keep, again, rate_limit, oauth2, ntlm, proxy_ntlm;
  std::int64_t max_body() const { return small_body ? 300 : 1 << 20; }
};

std::vector<std::string> urls_of(const Flags& f) {
  if (f.crawl) return {f.https ? "https://shop.example/" : "http://shop.example/"};
  return {"http://shop.example/one", "http://shop.example/two?x=1",
          f.https ? "https://files.example/three.pdf" : "http://files.example/three.pdf"};
}

enum class Pass { first, offline, again };

std::string pipeline_text(const Flags& f, int port, const fs::path& dir, Pass pass) {
  std::string urls;
  for (const auto& u : urls_of(f)) urls += (urls.empty() ? "" : ", ") + ("\"" + u + "\"");
  std::string fetch = std::string("    proxy: http://") + (f.proxy_ntlm ? "FUZZ%5Cann:s3cret@" : "") +
                      "127.0.0.1:" + std::to_string(port) + R"(
    timeout: 2s
    connect_timeout: 1s
    circuit_breaker: {failure_threshold: 3, recovery_timeout: 10ms}
    max_crawl_delay: 100ms
    keep_headers: [etag, last-modified, content-disposition, location, retry-after]
    on_error: route
)";
  fetch += std::string("    retries: {attempts: ") + (f.one_attempt ? "1" : "3") + ", base: 1ms, max: 10ms}\n";
  fetch += std::string("    robots: ") + (f.robots ? "obey" : "ignore") + "\n";
  fetch += "    max_body: " + std::to_string(f.max_body()) + "\n";
  fetch += std::string("    max_redirects: ") + (f.no_redirects ? "0" : "3") + "\n";
  fetch += std::string("    compressed: ") + (f.uncompressed ? "false" : "true") + "\n";
  fetch += std::string("    method: ") + (f.head ? "HEAD" : "GET") + "\n";
  if (f.html_only) fetch += "    content_types: [text/html, application/xhtml+xml]\n";
  if (f.rate_limit) fetch += "    rate_limit_headers: true\n";
  if (f.small_body) fetch += "    error_body: true\n";  // an error's body, held to max_body too
  // libcurl's NTLM handshakes (its challenge read, its answer made) against whatever comes back.
  if (f.ntlm) fetch += "    auth: {user: 'FUZZ\\ann', password: s3cret, scheme: ntlm}\n";
  if (f.proxy_ntlm) fetch += "    proxy_auth: ntlm\n";
  // The token request is answered by the server too (directly, or as the proxy): any answer. With
  // `keep` (a download's flag) the refresh token grant, from a file that a new refresh token in an
  // answer replaces.
  if (f.oauth2) {
    fetch += "    oauth2: {token_url: \"http://127.0.0.1:" + std::to_string(port) +
             "/token\", client_id: fuzz, client_secret: s3cret";
    if (f.keep) {
      const fs::path file = dir / "refresh-token";
      if (!fs::exists(file)) std::ofstream(file) << "rt-fuzz\n";
      fetch += ", refresh_token_file: \"" + file.string() + "\"";
    }
    fetch += "}\n";
  }
  if (f.download) {
    fetch += "    download: {dir: \"" + (dir / "files").string() + "\", sha256: true";
    if (f.keep) fetch += ", exists: keep";
    fetch += f.server_filename ? ", path: \"{server_filename}\"}\n" : "}\n";
  }
  if (f.cache) {
    fetch += "    cache: {path: \"" + (dir / "cache.db").string() + "\"";
    fetch += pass == Pass::offline ? ", offline: true}\n" : pass == Pass::again ? ", max_age: 0s}\n" : "}\n";
  }
  std::string text = "pipeline: fuzz_responses\nsettings: {batch: 4}\nnodes:\n  - id: src\n    type: source.list\n";
  text += "    urls: [" + urls + "]\n";
  text += "  - id: lim\n    type: limit\n    max_in_flight: 1\n";
  text += "  - id: get\n    type: fetch\n" + fetch;
  text += "  - id: ok\n    type: fuzz.collect\n  - id: bad\n    type: fuzz.collect\n";
  if (f.crawl) {
    text += R"(  - id: frontier
    type: frontier
    same_host: false
    max_depth: 2
    max_pages: 6
  - id: pages
    type: parse.html
    fields: {title: title}
    links: a[href]
    on_error: route
  - id: parsed
    type: fuzz.collect
edges:
  - src -> frontier -> lim -> get -> ok
  - get -> pages -> parsed
  - pages.links -> frontier
  - get.error -> bad
  - pages.error -> bad
)";
  } else {
    text += "edges:\n  - src -> lim -> get -> ok\n  - get.error -> bad\n";
  }
  return text;
}

Plan load(const std::string& text) {
  Diagnostics diags;
  auto plan = load_pipeline_text(text, "fuzz.yaml", registry(), fuzz::load_options(), diags);
  if (!plan) {
    std::fprintf(stderr, "the fuzz target's own pipeline is invalid:\n%s\n%s\n", diags.to_string().c_str(),
                 text.c_str());
    std::abort();
  }
  return std::move(*plan);
}

std::map<std::string, std::vector<Record>> run(const std::string& text) {
  {
    std::lock_guard lock(collected_mutex);
    collected.clear();
  }
  const Plan plan = load(text);
  RunOptions options;
  const RunReport report = run_pipeline(plan, options);
  if (report.status != RunStatus::succeeded || !report.errors.empty() || report.abandoned) {
    for (const auto& e : report.errors) std::fprintf(stderr, "run error: %s\n", e.to_string().c_str());
    FUZZ_CHECK(false, "the run did not succeed although every failure is routed");
  }
  for (const auto& n : report.nodes) {
    if (n.id != "get") continue;
    FUZZ_CHECK(n.records_in == n.records_out + n.errors + n.dropped, "fetch lost or made records");
  }
  std::lock_guard lock(collected_mutex);
  // SLUICE_FUZZ_VERBOSE=1: what each run gave, to see what an input does.
  if (std::getenv("SLUICE_FUZZ_VERBOSE")) {
    for (const auto& [sink, records] : collected) {
      for (const auto& r : records) {
        std::string line;
        for (const auto& [name, value] : r.fields()) {
          if (name.rfind("time_", 0) == 0) continue;
          std::string shown = value.to_text();
          if (shown.size() > 60) shown = shown.substr(0, 60) + "...";
          line += " " + name + "=" + shown;
        }
        if (r.error) line += " | " + r.error->node + ": " + r.error->message;
        std::fprintf(stderr, "%s:%s\n", sink.c_str(), line.c_str());
      }
    }
  }
  return std::move(collected);
}

const std::string* text_field(const Record& r, std::string_view name) {
  const Value* v = r.get(name);
  return v ? v->as_string() : nullptr;
}

std::string file_sha256(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  unsigned char sum[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), sum, &len, EVP_sha256(), nullptr);
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) {
    constexpr char kDigits[] = "0123456789abcdef";
    hex += kDigits[sum[i] >> 4];
    hex += kDigits[sum[i] & 15];
  }
  return hex;
}

void check_result(const Record& r, const Flags& f, const fs::path& dir) {
  const Value* attempts = r.get("attempts");
  FUZZ_CHECK(attempts && attempts->as_int(), "a result without its attempts");
  // exists: keep passes a file that is there on without a request: no status, no final URL.
  const bool kept = f.download && f.keep && *attempts->as_int() == 0;
  const Value* status = r.get("status");
  FUZZ_CHECK(kept || (status && status->as_int() && *status->as_int() >= 200 && *status->as_int() <= 299),
             "a result whose status is not in ok_status");
  // A piece of a resource is no result: only a resumed download asks for one, and ends whole (200).
  FUZZ_CHECK(kept || *status->as_int() != 206, "a 206 Partial Content passed for the whole resource");
  const std::string* final_url = text_field(r, "final_url");
  FUZZ_CHECK(kept || (final_url && (final_url->rfind("http://", 0) == 0 || final_url->rfind("https://", 0) == 0)),
             "a result whose final_url is not http(s)");
  if (f.download) {
    const std::string* file = text_field(r, "file");
    FUZZ_CHECK(file != nullptr, "a download without its file");
    const fs::path path = fs::weakly_canonical(*file);
    const fs::path root = fs::weakly_canonical(dir / "files");
    FUZZ_CHECK(path.string().rfind(root.string() + "/", 0) == 0, "a download outside its folder");
    FUZZ_CHECK(fs::is_regular_file(path), "a download's file is not there");
    const Value* size = r.get("file_size");
    FUZZ_CHECK(size && size->as_int() && static_cast<std::uintmax_t>(*size->as_int()) == fs::file_size(path),
               "a download's file_size is not its file's");
    FUZZ_CHECK(*size->as_int() <= f.max_body(), "a download beyond max_body");
    // sha256 is null for a file that was there (exists: keep): it was not fetched.
    const Value* sha = r.get("sha256");
    FUZZ_CHECK(sha && (sha->is_null() ? f.keep : sha->to_text() == file_sha256(path)),
               "a download's sha256 is not its file's");
    return;
  }
  const Value* body = r.get("body");
  FUZZ_CHECK(body != nullptr, "a result without a body");
  const std::size_t size = body->as_bytes() ? body->as_bytes()->size() : body->is_null() ? 0 : body->to_text().size();
  FUZZ_CHECK(static_cast<std::int64_t>(size) <= f.max_body(), "a body beyond max_body");
  if (f.head) FUZZ_CHECK(size == 0, "a HEAD request with a body");
}

// A routed error says which node failed and why; fetch's also give a reason.
void check_error(const Record& r, const Flags& f) {
  FUZZ_CHECK(r.error && !r.error->message.empty(), "a routed record without its error");
  if (r.error->node != "get") return;
  const std::string* reason = text_field(r, "reason");
  FUZZ_CHECK(reason && !reason->empty(), "a fetch error without a reason");
  // error_body: an HTTP status's answer keeps its body (bytes; none from the cache's offline pass).
  const Value* body = r.get("body");
  if (f.small_body && *reason == "http_status")
    FUZZ_CHECK(body && body->as_bytes() && body->as_bytes()->size() <= static_cast<std::size_t>(f.max_body()),
               "an HTTP status's error without its body, or one beyond max_body");
  else
    FUZZ_CHECK(!body, "an error with a body it should not have");
}

// Results by URL: status, final URL and body as text.
std::map<std::string, std::string> by_url(const std::vector<Record>& records) {
  std::map<std::string, std::string> out;
  for (const auto& r : records) {
    const std::string* url = text_field(r, "url");
    FUZZ_CHECK(url != nullptr, "a record without its url");
    const Value* body = r.get("body");
    out[*url] = r.get("status")->to_text() + " " + *text_field(r, "final_url") + " " + (body ? body->to_text() : "");
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static test::RawServer server;
  static const WorkDir work;
  fuzz::Input in(data, size);
  const Flags flags(in);
  std::vector<std::string> responses;
  std::string_view rest = in.rest();
  for (;;) {
    const auto at = rest.find("\n@@\n");
    responses.emplace_back(rest.substr(0, at));
    if (at == std::string_view::npos) break;
    rest.remove_prefix(at + 4);
  }
  std::error_code ec;
  fs::remove_all(work.path, ec);
  fs::create_directories(work.path);

  // One run and the checks of its records. The server's responses go on from run to run.
  server.begin(responses);
  auto checked_run = [&](Pass pass) {
    auto got = run(pipeline_text(flags, server.port(), work.path, pass));
    const std::size_t connections = server.end();
    FUZZ_CHECK(pass != Pass::offline || connections == 0, "an offline run connected to the server");
    for (const auto& r : got["ok"]) check_result(r, flags, work.path);
    for (const auto& r : got["bad"]) check_error(r, flags);
    if (flags.oauth2 && flags.keep) {  // the refresh token file holds one token, the first or a new one, whole
      std::ifstream file(work.path / "refresh-token");
      std::string token, more;
      std::getline(file, token);
      FUZZ_CHECK(!token.empty() && !std::getline(file, more) && token.find_first_of(" \r\t") == std::string::npos,
                 "the refresh token file holds other than one token");
    }
    if (flags.crawl) {
      FUZZ_CHECK(got["ok"].size() <= 6, "a crawl fetched more pages than max_pages");
    } else {
      FUZZ_CHECK(got["ok"].size() + got["bad"].size() == urls_of(flags).size(), "a URL came out other than once");
    }
    return got;
  };
  auto first = checked_run(Pass::first);
  if (flags.crawl) return 0;
  if (flags.again && (flags.download || flags.cache)) {
    checked_run(Pass::again);
    return 0;
  }
  if (flags.cache) {
    auto second = checked_run(Pass::offline);
    for (const auto& r : second["ok"]) {
      const Value* cached = r.get("cached");
      FUZZ_CHECK(cached && cached->as_bool() && *cached->as_bool(), "an offline result not from the cache");
    }
    FUZZ_CHECK(by_url(second["ok"]) == by_url(first["ok"]), "the cache answered otherwise than the server did");
  }
  return 0;
}
