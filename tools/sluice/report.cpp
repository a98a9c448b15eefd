#include "report.hpp"

#include <fmt/format.h>

#include <ctime>

#include "sluice/json.hpp"

namespace sluice::cli {

void print_stats(std::FILE* out, const RunReport& report) {
  fmt::print(out, "{:<16} {:<12} {:>12} {:>12} {:>8} {:>8} {:>10}\n", "node", "type", "in", "out", "errors", "dropped",
             "busy");
  for (const auto& n : report.nodes) {
    fmt::print(out, "{:<16} {:<12} {:>12} {:>12} {:>8} {:>8} {:>9.3f}s\n", n.id, n.type, n.records_in, n.records_out,
               n.errors, n.dropped, std::chrono::duration<double>(n.busy).count());
  }
  fmt::print(out, "elapsed {:.3f}s\n", std::chrono::duration<double>(report.elapsed).count());
}

namespace {

std::string_view status_name(RunStatus s) {
  switch (s) {
    case RunStatus::succeeded:
      return "succeeded";
    case RunStatus::failed:
      return "failed";
    case RunStatus::interrupted:
      return "interrupted";
  }
  return "failed";
}

std::string quoted(std::string_view s) {
  std::string out;
  append_json_string(out, s);
  return out;
}

}  // namespace

std::string report_json(const Plan& plan, const RunReport& report) {
  std::string out = fmt::format(
      R"({{"pipeline": {}, "file": {}, "status": "{}", "exit_code": {}, "abandoned": {}, "elapsed_s": {:.6f}, )",
      quoted(plan.settings.name), quoted(plan.file), status_name(report.status), report.exit_code(), report.abandoned,
      std::chrono::duration<double>(report.elapsed).count());
  out += "\"nodes\": [";
  for (std::size_t i = 0; i < report.nodes.size(); ++i) {
    const auto& n = report.nodes[i];
    out +=
        fmt::format(R"({}{{"id": {}, "type": {}, "in": {}, "out": {}, "errors": {}, "dropped": {}, "busy_s": {:.6f}}})",
                    i ? ", " : "", quoted(n.id), quoted(n.type), n.records_in, n.records_out, n.errors, n.dropped,
                    std::chrono::duration<double>(n.busy).count());
  }
  out += "], \"errors\": [";
  for (std::size_t i = 0; i < report.errors.size(); ++i) {
    const auto& e = report.errors[i];
    out += fmt::format(R"({}{{"node": {}, "record": {}, "message": {}}})", i ? ", " : "", quoted(e.node),
                       quoted(e.record), quoted(e.message));
  }
  out += fmt::format("], \"errors_not_kept\": {}}}\n", report.errors_not_kept);
  return out;
}

ProgressLine::ProgressLine(const Plan& plan, std::FILE* out, std::chrono::nanoseconds log_every)
    : plan_(plan), out_(out), log_every_(log_every), next_log_(log_every) {}

void ProgressLine::update(const RunProgress& p) {
  const bool log = log_every_.count() > 0;
  std::lock_guard lock(mutex_);
  if (log && p.elapsed < next_log_) return;
  std::uint64_t fetched = 0, stored = 0, errors = 0;
  bool fetches = false;
  for (std::size_t i = 0; i < p.nodes.size() && i < plan_.nodes.size(); ++i) {
    const NodeType& type = *plan_.nodes[i].type;
    if (type.name == "fetch") {
      fetches = true;
      fetched += p.nodes[i].records_out + p.nodes[i].errors;
    }
    if (type.kind == NodeKind::sink) stored += p.nodes[i].records_in;
    errors += p.nodes[i].errors;
  }
  if (!fetches) fetched = stored;  // the rate of a pipeline that fetches nothing: records stored per second
  double dt = std::chrono::duration<double>(p.elapsed - last_elapsed_).count();
  if (dt > 0) {
    double now = static_cast<double>(fetched - last_fetched_) / dt;
    rate_ = drawn_ && !log ? 0.5 * rate_ + 0.5 * now : now;  // live: smoothed over the last few updates
  }
  last_fetched_ = fetched;
  last_elapsed_ = p.elapsed;
  std::string line = fmt::format("{:.0f} {}/s | {} in flight | {} queued | {} stored | {} errors | {:.1f}s", rate_,
                                 fetches ? "pages" : "records", p.in_flight, p.queued, stored, errors,
                                 std::chrono::duration<double>(p.elapsed).count());
  if (p.stopping) line += " | stopping: finishing work in flight (Ctrl-C again aborts)";
  if (log) {
    while (next_log_ <= p.elapsed) next_log_ += log_every_;
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    fmt::print(out_, "sluice: {:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z progress: {}\n", tm.tm_year + 1900, tm.tm_mon + 1,
               tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, line);
  } else {
    fmt::print(out_, "\r\033[K{}", line);
    drawn_ = true;
  }
  std::fflush(out_);
}

void ProgressLine::clear() {
  std::lock_guard lock(mutex_);
  if (!drawn_) return;
  fmt::print(out_, "\r\033[K");
  std::fflush(out_);
  drawn_ = false;
}

}  // namespace sluice::cli
