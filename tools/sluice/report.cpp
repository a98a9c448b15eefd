#include "report.hpp"

#include <fmt/format.h>

#include <ctime>

#include "log.hpp"
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

std::string byte_rate_text(double per_second) {
  if (per_second >= 1024.0 * 1024 * 1024) return fmt::format("{:.1f} GiB/s", per_second / (1024.0 * 1024 * 1024));
  if (per_second >= 1024.0 * 1024) return fmt::format("{:.1f} MiB/s", per_second / (1024.0 * 1024));
  if (per_second >= 1024.0) return fmt::format("{:.0f} KiB/s", per_second / 1024.0);
  return fmt::format("{:.0f} B/s", per_second);
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

// A table cell: numbers with three decimals at most, text as it is.
std::string cell_text(const Value& v) {
  if (const double* d = v.as_double()) return fmt::format("{:.3f}", *d);
  if (v.is_null()) return "";
  return v.to_text();
}

// A cell that shows nothing: empty, or zero as printed (0.0001 s is 0.000).
bool blank(const std::string& cell) {
  return cell.empty() || cell == "0" || cell == "0.000";
}

}  // namespace

void print_tables(std::FILE* out, const RunReport& report) {
  const std::size_t max_rows = kShownTableRows;
  constexpr std::size_t kMaxWidth = 60;  // a longer text (a host name) is cut, with "..."
  for (const auto& table : report.tables) {
    if (table.rows.empty()) continue;
    const std::size_t shown = std::min(max_rows, table.rows.size());
    const auto& columns = table.rows.front().fields();
    // Per column: shown at all (a value in some row), its width, and whether it holds text.
    std::vector<bool> keep(columns.size(), false), text(columns.size(), false);
    std::vector<std::size_t> width(columns.size(), 0);
    std::vector<std::vector<std::string>> cells(shown, std::vector<std::string>(columns.size()));
    for (std::size_t c = 0; c < columns.size(); ++c) {
      width[c] = columns[c].first.size();
      for (std::size_t r = 0; r < shown; ++r) {
        const Value* v = table.rows[r].get(columns[c].first);
        if (!v) continue;
        text[c] = text[c] || v->as_string() != nullptr;
        std::string t = cell_text(*v);
        keep[c] = keep[c] || !blank(t) || c == 0;
        if (t.size() > kMaxWidth) {
          std::size_t cut = kMaxWidth - 3;
          while (cut > 0 && (static_cast<unsigned char>(t[cut]) & 0xC0) == 0x80) --cut;  // not inside a UTF-8 character
          t = t.substr(0, cut) + "...";
        }
        width[c] = std::max(width[c], t.size());
        cells[r][c] = std::move(t);
      }
    }
    fmt::print(out, "\nnode '{}': {} ({}{})\n", table.node, table.name,
               table.rows.size() == 1 ? "1 row" : fmt::format("{} rows", table.rows.size()),
               shown < table.rows.size() ? fmt::format(", the first {} shown; --stats-json has all", shown) : "");
    auto line = [&](auto&& value_of) {
      std::string l;
      for (std::size_t c = 0; c < columns.size(); ++c) {
        if (!keep[c]) continue;
        if (!l.empty()) l += "  ";
        l += text[c] ? fmt::format("{:<{}}", value_of(c), width[c]) : fmt::format("{:>{}}", value_of(c), width[c]);
      }
      while (!l.empty() && l.back() == ' ') l.pop_back();
      fmt::print(out, "{}\n", l);
    };
    line([&](std::size_t c) -> const std::string& { return columns[c].first; });
    for (std::size_t r = 0; r < shown; ++r) line([&](std::size_t c) -> const std::string& { return cells[r][c]; });
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

}  // namespace

std::string report_json(const Plan& plan, const RunReport& report, std::size_t max_table_rows) {
  std::string out = fmt::format(
      R"({{"pipeline": {}, "file": {}, "status": "{}", "exit_code": {}, "abandoned": {}, "elapsed_s": {:.6f}, )",
      json_quoted(plan.settings.name), json_quoted(plan.file), status_name(report.status), report.exit_code(),
      report.abandoned, std::chrono::duration<double>(report.elapsed).count());
  out += "\"nodes\": [";
  for (std::size_t i = 0; i < report.nodes.size(); ++i) {
    const auto& n = report.nodes[i];
    out +=
        fmt::format(R"({}{{"id": {}, "type": {}, "in": {}, "out": {}, "errors": {}, "dropped": {}, "busy_s": {:.6f}, )"
                    R"("bytes": {}}})",
                    i ? ", " : "", json_quoted(n.id), json_quoted(n.type), n.records_in, n.records_out, n.errors,
                    n.dropped, std::chrono::duration<double>(n.busy).count(), n.bytes);
  }
  out += "], \"errors\": [";
  for (std::size_t i = 0; i < report.errors.size(); ++i) {
    const auto& e = report.errors[i];
    out += fmt::format(R"({}{{"node": {}, "record": {}, "message": {}}})", i ? ", " : "", json_quoted(e.node),
                       json_quoted(e.record), json_quoted(e.message));
  }
  out += fmt::format("], \"errors_not_kept\": {}, \"skipped\": [", report.errors_not_kept);
  for (std::size_t i = 0; i < report.skipped.size(); ++i) {
    const auto& s = report.skipped[i];
    out += fmt::format(R"({}{{"node": {}, "count": {}, "record": {}, "message": {}}})", i ? ", " : "",
                       json_quoted(s.node), s.count, json_quoted(s.record), json_quoted(s.message));
  }
  out += "], \"notices\": [";
  for (std::size_t i = 0; i < report.notices.size(); ++i) {
    out += fmt::format(R"({}{{"node": {}, "message": {}}})", i ? ", " : "", json_quoted(report.notices[i].node),
                       json_quoted(report.notices[i].message));
  }
  out += "], \"tables\": ";
  append_tables_json(out, report.tables, max_table_rows);
  out += "}\n";
  return out;
}

void append_tables_json(std::string& out, const std::vector<NodeTable>& tables, std::size_t max_rows) {
  out += "[";
  for (std::size_t i = 0; i < tables.size(); ++i) {
    const auto& t = tables[i];
    out += fmt::format(R"({}{{"node": {}, "name": {}, "rows_total": {}, "rows": [)", i ? ", " : "", json_quoted(t.node),
                       json_quoted(t.name), t.rows.size());
    for (std::size_t r = 0; r < t.rows.size() && r < max_rows; ++r) {
      if (r) out += ", ";
      append_json(out, t.rows[r]);
    }
    out += "]}";
  }
  out += "]";
}

void log_report(std::FILE* out, const Plan& plan, const RunReport& report, bool warnings, std::string_view summary,
                std::string_view hint, bool stats_written) {
  for (const auto& s : report.skipped) {
    if (!warnings) break;
    const std::string text =
        s.message.empty() ? fmt::format("node '{}' skipped {} records of other kinds", s.node, s.count)
                          : fmt::format("node '{}' skipped {} record(s) like {}{}", s.node, s.count,
                                        s.record.empty() ? "" : fmt::format("record '{}': ", s.record), s.message);
    log_json(out, "warning", "skipped", text,
             fmt::format(R"("node": {}, "count": {}, "record": {}, "error": {})", json_quoted(s.node), s.count,
                         json_quoted(s.record), json_quoted(s.message)));
  }
  for (const auto& e : report.errors) {
    log_json(out, "error", "error", e.to_string(),
             fmt::format(R"("node": {}, "record": {}, "error": {})", json_quoted(e.node), json_quoted(e.record),
                         json_quoted(e.message)));
  }
  if (!hint.empty()) log_json(out, "info", "hint", hint);
  const int code = report.exit_code() == 0 && !stats_written ? 1 : report.exit_code();
  std::string_view level = report.status == RunStatus::failed        ? "error"
                           : report.status == RunStatus::interrupted ? "warning"
                           : code != 0                               ? "error"
                                                                     : "info";
  std::string text(summary);
  if (text.empty()) text = fmt::format("pipeline '{}' succeeded", plan.settings.name);
  std::string fields =
      fmt::format(R"("status": "{}", "exit_code": {}, "elapsed_s": {:.3f}, "report": )", status_name(report.status),
                  code, std::chrono::duration<double>(report.elapsed).count());
  std::string json = report_json(plan, report, kShownTableRows);  // a log line stays short
  while (!json.empty() && json.back() == '\n') json.pop_back();
  fields += json;
  log_json(out, level, "end", text, fields);
}

ProgressLine::ProgressLine(const Plan& plan, std::FILE* out, Mode mode, std::chrono::nanoseconds log_every,
                           bool warnings)
    : plan_(plan), out_(out), mode_(mode), warnings_(warnings), log_every_(log_every), next_log_(log_every) {}

// A warning while the run goes: a JSON line of `event` with `fields`, or text (over the live line,
// or time-stamped in a log).
void ProgressLine::warn(std::string_view event, const std::string& text, const std::string& fields) {
  if (json_log()) {
    log_json(out_, "warning", event, text, fields);
  } else if (mode_ == Mode::live) {
    fmt::print(out_, "\r\033[Kwarning: {}\n", text);
  } else {
    fmt::print(out_, "sluice: {} warning: {}\n", utc_now(), text);
  }
}

void ProgressLine::notice(const Notice& n) {
  ++notices_shown_;
  if (!warnings_) return;
  warn("notice", fmt::format("node '{}': {}", n.node, n.message),
       fmt::format(R"("node": {}, "notice": {})", json_quoted(n.node), json_quoted(n.message)));
}

void ProgressLine::finish(const RunReport& report) {
  std::lock_guard lock(mutex_);
  for (std::size_t i = notices_shown_; i < report.notices.size(); ++i) notice(report.notices[i]);
  std::fflush(out_);
}

void ProgressLine::update(const RunProgress& p) {
  const bool log = mode_ == Mode::logged;
  std::lock_guard lock(mutex_);
  for (const auto& n : p.new_notices) notice(n);
  for (const auto& s : p.new_skips) {
    if (!warnings_) break;
    warn("skip", skip_text(s) + " (more like it are counted)",
         fmt::format(R"("node": {}, "record": {}, "error": {})", json_quoted(s.node), json_quoted(s.record),
                     json_quoted(s.message)));
  }
  if (mode_ == Mode::none || (log && p.elapsed < next_log_)) {
    std::fflush(out_);
    return;
  }
  std::uint64_t fetched = 0, stored = 0, errors = 0, bytes = 0;
  bool fetches = false;
  for (std::size_t i = 0; i < p.nodes.size() && i < plan_.nodes.size(); ++i) {
    const NodeType& type = *plan_.nodes[i].type;
    if (type.name == "fetch") {
      fetches = true;
      fetched += p.nodes[i].records_out + p.nodes[i].errors;
    }
    bytes += p.nodes[i].bytes;
    if (type.kind == NodeKind::sink) stored += p.nodes[i].records_in;
    errors += p.nodes[i].errors;
  }
  if (!fetches) fetched = stored;  // the rate of a pipeline that fetches nothing: records stored per second
  double dt = std::chrono::duration<double>(p.elapsed - last_elapsed_).count();
  if (dt > 0) {
    double now = static_cast<double>(fetched - last_fetched_) / dt;
    double bytes_now = static_cast<double>(bytes - last_bytes_) / dt;
    const bool smooth = drawn_ && !log;  // live: smoothed over the last few updates
    rate_ = smooth ? 0.5 * rate_ + 0.5 * now : now;
    byte_rate_ = smooth ? 0.5 * byte_rate_ + 0.5 * bytes_now : bytes_now;
  }
  last_fetched_ = fetched;
  last_bytes_ = bytes;
  last_elapsed_ = p.elapsed;
  // Bytes per second too where nodes count them (fetch): a download of a few big files shows its
  // progress while no page is done.
  const std::string byte_rate = bytes > 0 ? " | " + byte_rate_text(byte_rate_) : "";
  std::string line = fmt::format("{:.0f} {}/s{} | {} in flight | {} queued | {} stored | {} errors | {:.1f}s", rate_,
                                 fetches ? "pages" : "records", byte_rate, p.in_flight, p.queued, stored, errors,
                                 std::chrono::duration<double>(p.elapsed).count());
  if (p.stopping) line += " | stopping: finishing work in flight (Ctrl-C again aborts)";
  if (log && json_log()) {
    while (next_log_ <= p.elapsed) next_log_ += log_every_;
    std::string fields =
        fmt::format(R"("{}": {:.1f}, "bytes_per_s": {:.0f}, "bytes": {}, "in_flight": {}, "queued": {}, )"
                    R"("stored": {}, "errors": {}, "elapsed_s": {:.3f}, "stopping": {})",
                    fetches ? "pages_per_s" : "records_per_s", rate_, byte_rate_, bytes, p.in_flight, p.queued, stored,
                    errors, std::chrono::duration<double>(p.elapsed).count(), p.stopping);
    if (!p.tables.empty()) {  // fetch's hosts so far, the worst first: a log collector sees which site fails
      fields += ", \"tables\": ";
      append_tables_json(fields, p.tables, kShownTableRows);
    }
    log_json(out_, "info", "progress", line, fields);
  } else if (log) {
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
