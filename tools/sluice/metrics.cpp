#include "metrics.hpp"

#include <fmt/format.h>
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <mutex>
#include <system_error>
#include <thread>

#include "growing_pool.hpp"
#include "sluice/run.hpp"

namespace sluice::cli {
namespace {

// A label value of the text format: backslash, double quote and line feed escaped.
std::string label(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// A metric name's part from a table's or a column's name: letters, digits and '_' kept, the rest '_'.
std::string name_part(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') c = '_';
  }
  return out;
}

// The nodes' tables (fetch's hosts) as metric families: sluice_<row>_<column>, a row being the
// table's name without its plural 's' (sluice_host_requests_total). Each row's first field names it
// (label host="https://shop.example:443"); a column of integers is a counter (_total), one of
// other numbers a gauge (a name ending in _s ends in _seconds); text columns are left out.
void render_tables(std::string& out, const std::string& pipeline, const std::vector<NodeTable>& tables) {
  struct Family {
    std::string type, help, samples;
  };
  std::vector<std::pair<std::string, Family>> families;  // in the order they first came
  for (const auto& t : tables) {
    if (t.rows.empty() || t.rows[0].fields().empty()) continue;
    std::string row = name_part(t.name);
    if (row.size() > 1 && row.back() == 's') row.pop_back();
    std::string key = name_part(t.rows[0].fields()[0].first);
    if (key.empty() || std::isdigit(static_cast<unsigned char>(key[0])) || key == "pipeline" || key == "node" ||
        key.starts_with("__"))
      key = "row";  // a label name of its own, and a valid one
    for (std::size_t c = 1; c < t.rows[0].fields().size(); ++c) {
      const std::string& column = t.rows[0].fields()[c].first;
      const Value& first = t.rows[0].fields()[c].second;
      if (!first.as_int() && !first.as_double()) continue;
      std::string name = fmt::format("sluice_{}_{}", row, name_part(column));
      if (first.as_int()) {
        name += "_total";
      } else if (name.ends_with("_s")) {
        name += "econds";
      }
      auto it = std::find_if(families.begin(), families.end(), [&](const auto& f) { return f.first == name; });
      if (it == families.end()) {
        families.emplace_back(name, Family{first.as_int() ? "counter" : "gauge",
                                           fmt::format("The '{}' column of the '{}' table of a node, as in the run's "
                                                       "report (first {} rows, while the run goes).",
                                                       column, t.name, RunProgress::kTableRows),
                                           ""});
        it = families.end() - 1;
      }
      for (const auto& r : t.rows) {
        if (r.fields().size() <= c || r.fields()[c].first != column) continue;
        const Value& v = r.fields()[c].second;
        const std::string value = v.as_int()      ? fmt::format("{}", *v.as_int())
                                  : v.as_double() ? fmt::format("{}", *v.as_double())
                                                  : std::string();
        if (value.empty()) continue;
        it->second.samples += fmt::format("{}{{pipeline=\"{}\",node=\"{}\",{}=\"{}\"}} {}\n", name, pipeline,
                                          label(t.node), key, label(r.fields()[0].second.to_text()), value);
      }
    }
  }
  for (const auto& [name, f] : families) {
    out += fmt::format("# HELP {0} {1}\n# TYPE {0} {2}\n", name, f.help, f.type);
    out += f.samples;
  }
}

}  // namespace

struct MetricsServer::Impl {
  const Plan& plan;
  httplib::Server server;
  std::thread thread;
  std::string host;
  int port = 0;
  std::mutex mutex;
  RunProgress progress;  // the latest figures (new_skips left out)
  bool finished = false;
  std::atomic<bool> listened{false};  // listen_after_bind() has returned

  explicit Impl(const Plan& p) : plan(p) {}
};

std::unique_ptr<MetricsServer> MetricsServer::start(const std::string& address, const Plan& plan, std::string& error) {
  std::string host = "127.0.0.1";
  std::string port_text = address;
  if (const auto colon = address.rfind(':'); colon != std::string::npos) {
    host = address.substr(0, colon);
    port_text = address.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  }
  int port = -1;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (host.empty() || ec != std::errc() || end != port_text.data() + port_text.size() || port < 0 || port > 65535) {
    error = fmt::format(
        "--metrics: '{}' is not an address (write PORT, HOST:PORT or [IPv6]:PORT; port 0 picks a free one)", address);
    return nullptr;
  }
  auto impl = std::make_unique<Impl>(plan);
  impl->host = host;
  // One request at a time is plenty for a scraper; no connection is kept open to hold the thread.
  impl->server.new_task_queue = [] { return new fixture::GrowingPool(1); };
  impl->server.set_keep_alive_max_count(1);
  // cpp-httplib sets SO_REUSEPORT by default: a second run given the same port would then share it
  // with the first, each answering some scrapes. SO_REUSEADDR alone refuses a port in use.
  impl->server.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  impl->server.set_read_timeout(5, 0);
  impl->server.set_write_timeout(5, 0);
  Impl* raw = impl.get();
  impl->server.Get("/metrics", [raw](const httplib::Request&, httplib::Response& res) {
    std::string body;
    {
      std::lock_guard lock(raw->mutex);
      body = render(raw->plan, raw->progress, raw->finished);
    }
    res.set_content(std::move(body), "text/plain; version=0.0.4; charset=utf-8");
  });
  errno = 0;
  const int bound =
      port == 0 ? impl->server.bind_to_any_port(host) : (impl->server.bind_to_port(host, port) ? port : -1);
  if (bound <= 0) {
    error = fmt::format("--metrics: cannot listen on {}: {}", address,
                        errno ? std::strerror(errno) : "the address is not one of this machine's");
    return nullptr;
  }
  impl->port = bound;
  impl->progress.nodes.reserve(plan.nodes.size());
  for (const auto& n : plan.nodes) impl->progress.nodes.push_back(NodeStats{n.id, n.type->name});
  try {
    impl->thread = std::thread([raw] {
      raw->server.listen_after_bind();
      raw->listened.store(true);
    });
  } catch (const std::system_error& e) {
    error = "--metrics: " + thread_refused(e);
    return nullptr;
  }
  return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(impl)));
}

MetricsServer::MetricsServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

MetricsServer::~MetricsServer() {
  // httplib's stop() does nothing before listen_after_bind() has begun, which would then listen for
  // ever: a run that ends while the thread has not run yet (one of its own threads refused, on a
  // loaded machine) waited here without end. So stop once it listens, or once it has returned.
  while (!impl_->server.is_running() && !impl_->listened.load())
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

void MetricsServer::update(const RunProgress& progress) {
  std::lock_guard lock(impl_->mutex);
  impl_->progress.elapsed = progress.elapsed;
  impl_->progress.in_flight = progress.in_flight;
  impl_->progress.queued = progress.queued;
  impl_->progress.stopping = progress.stopping;
  impl_->progress.nodes = progress.nodes;
  impl_->progress.tables = progress.tables;
}

void MetricsServer::finish(const RunReport& report) {
  std::lock_guard lock(impl_->mutex);
  impl_->progress.elapsed = report.elapsed;
  impl_->progress.in_flight = 0;
  impl_->progress.queued = 0;
  impl_->progress.nodes = report.nodes;
  impl_->progress.tables.clear();
  for (const auto& t : report.tables) impl_->progress.tables.push_back(t.head(RunProgress::kTableRows));
  impl_->finished = true;
}

std::string MetricsServer::url() const {
  const bool v6 = impl_->host.find(':') != std::string::npos;
  return fmt::format("http://{}{}{}:{}/metrics", v6 ? "[" : "", impl_->host, v6 ? "]" : "", impl_->port);
}

std::string MetricsServer::render(const Plan& plan, const RunProgress& p, bool finished) {
  const std::string pipeline = label(plan.settings.name);
  std::string out;
  auto gauge = [&](std::string_view name, std::string_view help, auto value) {
    out += fmt::format("# HELP {0} {1}\n# TYPE {0} gauge\n{0}{{pipeline=\"{2}\"}} {3}\n", name, help, pipeline, value);
  };
  gauge("sluice_elapsed_seconds", "Time since the run started.", std::chrono::duration<double>(p.elapsed).count());
  gauge("sluice_in_flight", "Records holding a limit slot, over every limit.", p.in_flight);
  gauge("sluice_queued", "Records waiting in front of a limit.", p.queued);
  gauge("sluice_stopping", "1 while a graceful stop finishes the work under way.", p.stopping ? 1 : 0);
  gauge("sluice_finished", "1 once the run has ended.", finished ? 1 : 0);
  auto counter = [&](std::string_view name, std::string_view help, auto value_of) {
    out += fmt::format("# HELP {0} {1}\n# TYPE {0} counter\n", name, help);
    for (const auto& n : p.nodes) {
      out += fmt::format("{}{{pipeline=\"{}\",node=\"{}\",type=\"{}\"}} {}\n", name, pipeline, label(n.id),
                         label(n.type), value_of(n));
    }
  };
  counter("sluice_node_records_in_total", "Records a node received.", [](const NodeStats& n) { return n.records_in; });
  counter("sluice_node_records_out_total", "Records a node emitted.", [](const NodeStats& n) { return n.records_out; });
  counter("sluice_node_errors_total", "Records that failed in a node.", [](const NodeStats& n) { return n.errors; });
  counter("sluice_node_dropped_total", "Records a node ended without output or error.",
          [](const NodeStats& n) { return n.dropped; });
  counter("sluice_node_busy_seconds_total", "Time spent in a node's own code.",
          [](const NodeStats& n) { return std::chrono::duration<double>(n.busy).count(); });
  counter("sluice_node_received_bytes_total", "Bytes a node took in as they arrived (fetch: response bodies).",
          [](const NodeStats& n) { return n.bytes; });
  render_tables(out, pipeline, p.tables);
  return out;
}

}  // namespace sluice::cli
