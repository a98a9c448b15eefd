// What `sluice run` shows a person: the live progress line, the stats table and --stats-json.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>

#include "sluice/pipeline.hpp"
#include "sluice/run.hpp"

namespace sluice::cli {

// The per-node stats table, with the run's elapsed time.
void print_stats(std::FILE* out, const RunReport& report);
// What on_error: skip dropped, per node: how many records and why, one line per kind of error
// (RunReport::skipped), each with its first record. Nothing when no node skipped a record.
void print_skipped(std::FILE* out, const RunReport& report, std::string_view indent = "");
// The rows of a node's table that a person sees: printed, and in the `end` event of a JSON log.
inline constexpr std::size_t kShownTableRows = 10;
// The nodes' tables (RunReport::tables: fetch's hosts), each with its first kShownTableRows rows
// and without the columns that are empty or zero in all of them. Nothing when no node gave a table.
void print_tables(std::FILE* out, const RunReport& report);
// One skipped error as the run meets a new kind: "node 'get' skipped record 'URL': message".
std::string skip_text(const SkippedErrors& skipped);
// The report as JSON: pipeline, status, exit code, elapsed, per-node stats, errors, skipped
// records, notices and the nodes' tables (each with `rows_total` and its first `max_table_rows`
// rows).
std::string report_json(const Plan& plan, const RunReport& report, std::size_t max_table_rows = SIZE_MAX);
// `tables` as a JSON array appended to `out`: each {node, name, rows_total, rows: its first
// `max_rows` rows as objects}.
void append_tables_json(std::string& out, const std::vector<NodeTable>& tables, std::size_t max_rows);
// The end of a run under --log-format json: a `skipped` event per kind of skipped error (when
// `warnings`), an `error` event per error, a `hint` event when `hint` is not empty, and the `end`
// event: `summary` (or "pipeline 'NAME' succeeded") as its message, status, exit code (1 when
// `stats_written` is false and the run succeeded) and the report_json() as `report`, its tables cut
// to kShownTableRows rows.
void log_report(std::FILE* out, const Plan& plan, const RunReport& report, bool warnings, std::string_view summary,
                std::string_view hint, bool stats_written);

// Progress as `sluice run` shows it: pages/s, records in flight and queued at limits, records
// stored, errors, elapsed; while a graceful stop runs it says so and that a second Ctrl-C aborts.
// Mode live (a terminal): one line redrawn in place a few times a second; logged (a log file,
// journald, CI): one line every `log_every`, time-stamped, with the pages/s of that span; none: no
// progress. In every mode, a kind of skipped error (on_error: skip) the run meets for the first
// time is written at once as a warning line (time-stamped unless live; each kind once, the summary
// at the end counts them all), unless `warnings` is false. update() is called from an engine thread.
class ProgressLine {
 public:
  enum class Mode { live, logged, none };
  ProgressLine(const Plan& plan, std::FILE* out, Mode mode, std::chrono::nanoseconds log_every, bool warnings);
  void update(const RunProgress& progress);
  // Erases the live line (before the stats table or any other output).
  void clear();
  // After the run: the nodes' notices that came after the last update().
  void finish(const RunReport& report);

 private:
  const Plan& plan_;
  std::FILE* out_;
  Mode mode_;
  bool warnings_;
  std::chrono::nanoseconds log_every_;
  std::chrono::nanoseconds next_log_;
  std::mutex mutex_;
  // With mutex_ held:
  void warn(std::string_view event, const std::string& text, const std::string& fields);
  void notice(const Notice& n);

  bool drawn_ = false;
  std::size_t notices_shown_ = 0;
  std::uint64_t last_fetched_ = 0;
  std::uint64_t last_bytes_ = 0;
  std::chrono::nanoseconds last_elapsed_{0};
  double rate_ = 0;
  double byte_rate_ = 0;  // body bytes fetched per second
};

}  // namespace sluice::cli
