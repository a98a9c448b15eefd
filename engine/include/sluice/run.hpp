// Running a Plan: a fresh oneTBB flow graph per run, under its own task_group_context, with
// TaskGroup failure semantics. Produces a RunReport.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "sluice/pipeline.hpp"
#include "sluice/value.hpp"

namespace sluice {

struct NodeStats {
  std::string id;
  std::string type;
  std::uint64_t records_in = 0;
  std::uint64_t records_out = 0;
  std::uint64_t errors = 0;
  std::chrono::nanoseconds busy{0};  // time spent in the node's own code
  // Records the node ended without output or error: URLs a frontier had seen, and at a graceful
  // stop the records waiting at a limit and the requests fetch had not started.
  std::uint64_t dropped = 0;
  // Bytes the node took in from outside as they arrived (fetch: response bodies, decoded, counted
  // while the transfers run), for a download's progress; 0 for nodes that do not say.
  std::uint64_t bytes = 0;
};

// One error of a run: which node, which record (its URL when it has one), what happened.
struct RunError {
  std::string node;
  std::string record;  // empty when the error is not about one record
  std::string message;

  // "node 'x': record 'https://...': message"
  std::string to_string() const;
};

// Records a node dropped with on_error: skip, grouped by kind: the first record of a group and how
// many records failed that way. A kind is the message up to its first ": ", with the record's own
// text (its URL) taken out: "timeout: Operation timed out after 10001 milliseconds" and "dns: Could
// not resolve host: a.example" are the kinds "timeout" and "dns", "HTTP 404" and "HTTP 500" two
// kinds. A node keeps at most SkippedErrors::kGroupsPerNode groups; the skips of any other kind are
// counted in one more group with an empty message.
struct SkippedErrors {
  static constexpr std::size_t kGroupsPerNode = 16;
  std::string node;
  std::string record;   // the first record of the group (empty for a sink's lost batch)
  std::string message;  // its message; empty: other kinds, past kGroupsPerNode
  std::uint64_t count = 0;
};

enum class RunStatus {
  succeeded,    // every source reached its end and nothing failed
  failed,       // a node failed with on_error: fail (or the engine found a bug); see errors
  interrupted,  // stopped from outside (StopSignal); what was received was committed
};

// Something a node wants the person running the pipeline to know that is not a record's error: a
// host's circuit breaker opened or closed, a host was found overloaded. At most
// Notice::kPerNode per node are kept and shown; the rest are counted in one last notice.
struct Notice {
  static constexpr std::size_t kPerNode = 100;
  std::string node;
  std::string message;
};

// A table a node gave the report when its work was done (NodeContext::table): fetch's hosts.
struct NodeTable {
  std::string node;
  std::string name;  // "hosts"
  std::vector<Record> rows;
  // A copy with the first `n` rows only.
  NodeTable head(std::size_t n) const {
    return NodeTable{node, name, std::vector<Record>(rows.begin(), rows.begin() + std::min(n, rows.size()))};
  }
};

struct RunReport {
  RunStatus status = RunStatus::succeeded;
  std::vector<RunError> errors;        // every error, in the order they happened (first kept_errors)
  std::uint64_t errors_not_kept = 0;   // errors beyond the kept ones, counted only
  std::vector<SkippedErrors> skipped;  // on_error: skip, grouped; in the order groups appeared
  std::vector<Notice> notices;         // in the order they came
  std::vector<NodeTable> tables;       // plan order of their nodes
  std::vector<NodeStats> nodes;        // plan order
  std::chrono::nanoseconds elapsed{0};
  int stop_signal = 0;            // the signal number given to StopSignal::request, if any
  bool already_finished = false;  // --resume of a run whose state says it finished: nothing ran
  // Cancelled work did not end within settings.abort_timeout (code stuck in a node): the run
  // stopped waiting for it. Its sinks committed what they received and the stuck nodes are in
  // `errors`, but threads of the run are still running: the process should exit soon, with
  // std::_Exit (static destructors could wait for those threads).
  bool abandoned = false;

  // 0 succeeded, 1 failed, 128+signal (130 SIGINT, 143 SIGTERM, 129 SIGHUP) interrupted.
  int exit_code() const;
};

// Stops a run from another thread (a signal watcher, a time limit). The first request is graceful:
// sources stop, work in flight drains, sinks commit. A second request aborts: the graph is cancelled
// like a failure, and sinks still commit what they received. A third one stops waiting for
// cancelled work at once (see RunReport::abandoned) instead of after abort_timeout. Thread-safe;
// the object must outlive the run it is given to. Not async-signal-safe: call it from a watcher
// thread, not a handler.
class StopSignal {
 public:
  void request(int signal_number = 0);
  int requests() const { return requests_.load(); }
  int signal_number() const { return signal_.load(); }

  // Used by the engine: called on every request (with the running count) while a run is active.
  void attach(std::function<void(int)> on_request);
  void detach();

 private:
  std::mutex mutex_;
  std::function<void(int)> on_request_;
  std::atomic<int> requests_{0};
  std::atomic<int> signal_{0};
};

// A live view of a running pipeline, for progress displays.
struct RunProgress {
  std::chrono::nanoseconds elapsed{0};
  std::vector<NodeStats> nodes;  // plan order; counts so far
  std::int64_t in_flight = 0;    // records holding a limit slot, over every limit
  std::int64_t queued = 0;       // records waiting in front of a limit
  bool stopping = false;         // a graceful stop is under way
  // Groups of skipped errors (on_error: skip) that appeared since the previous progress call, with
  // their first record and message, so that an unattended run can log why it skips records when it
  // starts to (each kind once), not only at its end.
  std::vector<SkippedErrors> new_skips;
  // Notices that came since the previous progress call (the report has them all).
  std::vector<Notice> new_notices;
  // The nodes' tables so far (NodeContext::table: fetch's hosts, given every second while it
  // works), their first kTableRows rows each.
  static constexpr std::size_t kTableRows = 100;
  std::vector<NodeTable> tables;
};

struct RunOptions {
  StopSignal* stop = nullptr;
  // Called every progress_interval while the run is going, on an engine thread; must be quick. Also
  // on the thread that called run_pipeline() while the nodes are being made, when a factory gives a
  // notice (a sink waiting for its FIFO's reader); never two calls at once.
  std::function<void(const RunProgress&)> progress;
  std::chrono::milliseconds progress_interval{250};
  std::size_t kept_errors = 1000;
  // Continue the run recorded in settings.state instead of starting afresh.
  bool resume = false;
  // Kept with the run in settings.state for a later --resume (RunState::recorded()): a name and a
  // value each.
  std::vector<std::pair<std::string, std::string>> facts;
};

// What to say of a std::system_error from starting a thread (std::thread's constructor): the
// system's reason and the limits that usually cause it.
std::string thread_refused(const std::system_error& error);

// Instantiates the plan's nodes, runs them to the end and reports. Never throws for pipeline
// problems (they are errors in the report); returns only after every engine thread has joined,
// except when the run is abandoned (RunReport::abandoned): then the Run is never destroyed.
// A factory error (a file that cannot be opened, ...) fails the run before anything starts.
RunReport run_pipeline(const Plan& plan, const RunOptions& options = {});

}  // namespace sluice
