// Helpers shared by the tests: temporary directories, file I/O, running pipelines.
#pragma once

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <csignal>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>

#include "process.hpp"
#include "sluice/pipeline.hpp"
#include "sluice/registry.hpp"
#include "sluice/run.hpp"

namespace sluice::test {

inline const Registry& builtin_registry() {
  static const Registry registry = [] {
    Registry r;
    register_builtin_nodes(r);
    return r;
  }();
  return registry;
}

// A fresh directory under the system temp dir, removed with its contents on destruction.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() / ("sluice-test-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// Runs `plan` with files limited to `bytes` (RLIMIT_FSIZE): a file fills up part way through a write,
// as on a full disk.
inline RunReport run_with_file_limit(const Plan& plan, rlim_t bytes) {
  struct rlimit saved {};
  ::getrlimit(RLIMIT_FSIZE, &saved);
  struct rlimit small = saved;
  small.rlim_cur = bytes;
  auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
  ::setrlimit(RLIMIT_FSIZE, &small);
  RunReport report = run_pipeline(plan);
  ::setrlimit(RLIMIT_FSIZE, &saved);
  ::signal(SIGXFSZ, old_handler);
  return report;
}

// Runs `plan` while another thread asks it to stop `requests` times with `signal_number` (as
// Ctrl-C does), `after` the run starts; requests with a negative `after` come before it starts.
inline RunReport run_stopped_after(const Plan& plan, std::chrono::microseconds after, int signal_number = 2,
                                   int requests = 1) {
  StopSignal stop;
  auto ask = [&] {
    for (int i = 0; i < requests; ++i) stop.request(signal_number);
  };
  std::thread stopper;
  if (after.count() < 0) {
    ask();
  } else {
    stopper = std::thread([&] {
      std::this_thread::sleep_for(after);
      ask();
    });
  }
  RunOptions options;
  options.stop = &stop;
  RunReport report = run_pipeline(plan, options);
  if (stopper.joinable()) stopper.join();
  return report;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// Sets (or, with nullptr, removes) an environment variable for its lifetime, and restores what was
// there. Set it while no thread of the test reads the environment (a run, libcurl starting a transfer).
class ScopedEnv {
 public:
  ScopedEnv(std::string name, const char* value) : name_(std::move(name)) {
    if (const char* old = std::getenv(name_.c_str())) old_ = old;
    if (value) {
      ::setenv(name_.c_str(), value, 1);
    } else {
      ::unsetenv(name_.c_str());
    }
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_.c_str(), old_->c_str(), 1);
    } else {
      ::unsetenv(name_.c_str());
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

// 127.0.0.1:`port` as a socket address.
inline sockaddr_in loopback(int port = 0) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  return addr;
}

// A TCP socket bound to a free port on 127.0.0.1; sets `port`.
inline int bound_socket(int& port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = loopback();
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot bind a socket to 127.0.0.1");
  }
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  port = ntohs(addr.sin_port);
  return fd;
}

// A free TCP port on 127.0.0.1 (the kernel's choice for a socket that is then closed).
inline int free_port() {
  int port = 0;
  ::close(bound_socket(port));
  return port;
}

// `text` as a gzip file (what `gzip` writes), at `level` (0: stored, 9: best).
inline std::string gzip(std::string_view text, int level = 6) {
  z_stream z{};
  if (deflateInit2(&z, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw std::runtime_error("deflateInit2");
  std::string out(deflateBound(&z, static_cast<uLong>(text.size())), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  z.avail_in = static_cast<uInt>(text.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  if (rc != Z_STREAM_END) throw std::runtime_error("deflate");
  return out;
}

// The SHA-256 of `bytes` as hex, as `sha256sum` prints it.
inline std::string sha256_hex(const std::string& bytes) {
  unsigned char sum[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(bytes.data(), bytes.size(), sum, &size, EVP_sha256(), nullptr);
  std::string out;
  static constexpr char kHex[] = "0123456789abcdef";
  for (unsigned int i = 0; i < size; ++i) {
    out.push_back(kHex[sum[i] >> 4]);
    out.push_back(kHex[sum[i] & 15]);
  }
  return out;
}

inline bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

// An environment lookup that sees only `vars`: tests do not depend on the real environment.
inline EnvLookup fixed_env(std::map<std::string, std::string> vars = {}) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

// Loads pipeline text; on invalid input fails the test with the diagnostics.
inline Plan plan_of(const std::string& yaml, const LoadOptions& options = LoadOptions{{}, fixed_env()}) {
  Diagnostics diags;
  auto plan = load_pipeline_text(yaml, "test.yaml", builtin_registry(), options, diags);
  if (!plan) throw std::runtime_error("invalid test pipeline:\n" + diags.to_string());
  return std::move(*plan);
}

inline const NodeStats& stats_of(const RunReport& report, const std::string& id) {
  for (const auto& n : report.nodes) {
    if (n.id == id) return n;
  }
  throw std::runtime_error("no node " + id);
}

// The messages of the notices of node `id`, in the order they came.
inline std::vector<std::string> notices_of(const RunReport& report, const std::string& id) {
  std::vector<std::string> messages;
  for (const auto& n : report.notices) {
    if (n.node == id) messages.push_back(n.message);
  }
  return messages;
}

// What the sluice binary did: exit code, standard output, standard error.
struct Result {
  int code;
  std::string out;
  std::string err;
};

// Runs the sluice binary with `args` to the end, its output captured in files of `dir`.
inline Result sluice_cli(const TempDir& dir, std::vector<std::string> args) {
  args.insert(args.begin(), SLUICE_BINARY);
  Process p(args, dir.file("stdout"), dir.file("stderr"));
  int code = p.wait();
  return {code, read_file(dir.file("stdout")), read_file(dir.file("stderr"))};
}

// Runs SQL statements on a SQLite file (created when missing), to set up a database a test needs.
inline void execute(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  char* error = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  std::string why = error ? error : "";
  sqlite3_free(error);
  sqlite3_close(db);
  if (rc != SQLITE_OK) throw std::runtime_error(why);
}

// Runs a query on a SQLite file and returns its rows as "a|b|c" strings (NULL for null values).
inline std::vector<std::string> query(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* st = nullptr;
  std::vector<std::string> rows;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
    std::string error = sqlite3_errmsg(db);
    sqlite3_close(db);
    throw std::runtime_error(error);
  }
  while (sqlite3_step(st) == SQLITE_ROW) {
    std::string row;
    for (int i = 0; i < sqlite3_column_count(st); ++i) {
      const unsigned char* text = sqlite3_column_text(st, i);
      row += (i ? "|" : "") + std::string(text ? reinterpret_cast<const char*>(text) : "NULL");
    }
    rows.push_back(row);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return rows;
}

// GET or POST `url` with libcurl's blocking API; returns the status (0: no answer) and the body.
inline std::pair<long, std::string> http(const std::string& url, bool post = false) {
  CURL* curl = curl_easy_init();
  std::string body;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  if (post) curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(
      curl, CURLOPT_WRITEFUNCTION, +[](char* data, std::size_t size, std::size_t n, void* out) {
        static_cast<std::string*>(out)->append(data, size * n);
        return size * n;
      });
  long status = 0;
  if (curl_easy_perform(curl) == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(curl);
  return {status, body};
}

// A site in dir/site: index.html (<h1>index</h1>) linking to p0.html ... (<h1>page N</h1>), `pages`
// of them; and the text of a pipeline that serves it (settings.serve) and crawls it, max_in_flight
// `in_flight`, into table pages (title, page_url) of store.sqlite `db`. `settings`, `fetch` and
// `nodes`: lines added to the settings, to the fetch node, and after the nodes (with `edges`).
inline std::string served_crawl(const TempDir& dir, int pages, int in_flight, const std::string& db,
                                const std::string& settings, const std::string& fetch = "",
                                const std::string& nodes = "", const std::string& edges = "") {
  std::filesystem::create_directories(dir.file("site"));
  std::string index = "<h1>index</h1>\n";
  for (int i = 0; i < pages; ++i) {
    index += "<a href=\"p" + std::to_string(i) + ".html\">" + std::to_string(i) + "</a>\n";
    write_file(dir.file("site/p" + std::to_string(i) + ".html"), "<h1>page " + std::to_string(i) + "</h1>");
  }
  write_file(dir.file("site/index.html"), index);
  return "pipeline: served\nsettings:\n  serve: site\n" + settings +
         "nodes:\n"
         "  - {id: seeds, type: source.list, urls: [\"${SERVE_URL}/index.html\"]}\n"
         "  - {id: frontier, type: frontier}\n"
         "  - {id: lim, type: limit, max_in_flight: " +
         std::to_string(in_flight) +
         "}\n"
         "  - id: get\n    type: fetch\n    robots: ignore\n" +
         fetch +
         "  - {id: page, type: parse.html, items: body, links: 'a[href]', fields: {title: h1}}\n"
         "  - id: store\n    type: store.sqlite\n    path: " +
         db + "\n    table: pages\n    columns: {title: TEXT, page_url: TEXT}\n    key: [page_url]\n" + nodes +
         "edges:\n  - seeds -> frontier -> lim -> get -> page -> store\n  - page.links -> frontier\n" + edges;
}

}  // namespace sluice::test
