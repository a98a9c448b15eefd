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

std::string skip_text(const SkippedErrors& s) {
  if (s.message.empty()) return fmt::format("node '{}' skipped records of other kinds", s.node);
  if (s.record.empty()) return fmt::format("node '{}' skipped: {}", s.node, s.message);
  return fmt::format("node '{}' skipped record '{}': {}", s.node, s.record, s.message);
}

void print_skipped(std::FILE* out, const RunReport& report, std::string_view indent) {
  for (const auto& n : report.nodes) {
    std::uint64_t total = 0;
    for (const auto& s : report.skipped) total += s.node == n.id ? s.count : 0;
    if (total == 0) continue;
    fmt::print(out, "{}warning: node '{}' skipped {} record{} that failed (on_error: skip):\n", indent, n.id, total,
               total == 1 ? "" : "s");
    for (const auto& s : report.skipped) {
      if (s.node != n.id) continue;
      if (s.message.empty()) {
        fmt::print(out, "{}  {} of other kinds\n", indent, s.count);
      } else if (s.record.empty()) {
        fmt::print(out, "{}  {} like: {}\n", indent, s.count, s.message);
      } else {
        fmt::print(out, "{}  {} like record '{}': {}\n", indent, s.count, s.record, s.message);
      }
    }
  }
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

// The time as a log line shows it: 2026-12-02T02:50:00Z.
std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec);
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
  out += fmt::format("], \"errors_not_kept\": {}, \"skipped\": [", report.errors_not_kept);
  for (std::size_t i = 0; i < report.skipped.size(); ++i) {
    const auto& s = report.skipped[i];
    out += fmt::format(R"({}{{"node": {}, "count": {}, "record": {}, "message": {}}})", i ? ", " : "", quoted(s.node),
                       s.count, quoted(s.record), quoted(s.message));
  }
  out += "]}\n";
  return out;
}

ProgressLine::ProgressLine(const Plan& plan, std::FILE* out, Mode mode, std::chrono::nanoseconds log_every,
                           bool warnings)
    : plan_(plan), out_(out), mode_(mode), warnings_(warnings), log_every_(log_every), next_log_(log_every) {}

void ProgressLine::update(const RunProgress& p) {
  const bool log = mode_ == Mode::logged;
  std::lock_guard lock(mutex_);
  for (const auto& s : p.new_skips) {
    if (!warnings_) break;
    if (mode_ == Mode::live) {
      fmt::print(out_, "\r\033[Kwarning: {} (more like it are counted)\n", skip_text(s));
    } else {
      fmt::print(out_, "sluice: {} warning: {} (more like it are counted)\n", utc_now(), skip_text(s));
    }
  }
  if (mode_ == Mode::none || (log && p.elapsed < next_log_)) {
    std::fflush(out_);
    return;
  }
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
    fmt::print(out_, "sluice: {} progress: {}\n", utc_now(), line);
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
