// What `sluice run` shows a person: the live progress line, the stats table and --stats-json.
#pragma once

#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>

#include "sluice/pipeline.hpp"
#include "sluice/run.hpp"

namespace sluice::cli {

// The per-node stats table, with the run's elapsed time.
void print_stats(std::FILE* out, const RunReport& report);
// The report as JSON: pipeline, status, exit code, elapsed, per-node stats and errors.
std::string report_json(const Plan& plan, const RunReport& report);

// Progress as `sluice run` shows it: pages/s, records in flight and queued at limits, records
// stored, errors, elapsed; while a graceful stop runs it says so and that a second Ctrl-C aborts.
// On a terminal (`log_every` zero) one line redrawn in place a few times a second; otherwise (a
// log file, journald, CI) one line every `log_every`, time-stamped, with the pages/s of that span.
// update() is called from an engine thread.
class ProgressLine {
 public:
  ProgressLine(const Plan& plan, std::FILE* out, std::chrono::nanoseconds log_every = {});
  void update(const RunProgress& progress);
  // Erases the live line (before the stats table or any other output).
  void clear();

 private:
  const Plan& plan_;
  std::FILE* out_;
  std::chrono::nanoseconds log_every_;
  std::chrono::nanoseconds next_log_;
  std::mutex mutex_;
  bool drawn_ = false;
  std::uint64_t last_fetched_ = 0;
  std::chrono::nanoseconds last_elapsed_{0};
  double rate_ = 0;
};

}  // namespace sluice::cli
