// RunState: what a resumable run (`settings.state`, `sluice run --resume`) has finished, kept in a
// SQLite file so that a run killed at any point — SIGKILL included — can continue where it was.
//
// The file is an ordered log of progress, written by one writer thread of its own in small
// transactions: which ranges of each source's records are done, and for each frontier every URL it
// accepted (the seen set), whether it is done, and where it came from. Progress is recorded only
// when a record and everything derived from it has left the graph — so after every row it produced
// was committed by its store — and a frontier records the URLs a page discovered before that page
// is done. A crash therefore loses at most the tail of the log: the state on disk always trails
// the stores, and a resumed run redoes only what was in flight. Stores of a resumable run must have
// a `key` (UPSERT), which makes redone work replace rows instead of duplicating them.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace sluice {

class RunState {
 public:
  struct Url {
    std::uint64_t hash = 0;
    std::string url;
    std::string from_url;
    std::int32_t depth = 0;
  };
  // What a frontier accepted in earlier runs.
  struct FrontierState {
    std::vector<std::uint64_t> seen;  // every URL hash it ever accepted
    std::vector<Url> pending;         // accepted and not done: parked, or in flight when the run ended
    std::vector<std::string> seeds;   // depth-0 URLs (their hosts bound same_host)
  };

  // Main thread. Opens or creates the state file of pipeline `pipeline`. Without `resume` any earlier
  // state in the file is cleared (a fresh run); with it, the earlier state is loaded. Throws
  // std::runtime_error with the path and the cause when the file cannot be used, or when it belongs
  // to another pipeline.
  static std::unique_ptr<RunState> open(const std::string& path, const std::string& pipeline, bool resume);
  ~RunState();
  RunState(const RunState&) = delete;
  RunState& operator=(const RunState&) = delete;

  const std::string& path() const { return path_; }
  // A resumed state whose run had already finished: there is nothing left to do.
  bool finished() const { return finished_; }

  // Any thread, read-only after open(): was record `seq` of source `node` done in an earlier run?
  bool source_done(const std::string& node, std::uint64_t seq) const;
  // Factories (main thread): what frontier `node` had accepted.
  const FrontierState& frontier(const std::string& node) const;

  // Any thread: records progress. Queued in order and written by the state's own thread.
  void source_range_done(const std::string& node, std::uint64_t first, std::uint64_t last);
  void url_accepted(const std::string& node, const Url& url);
  void url_done(const std::string& node, std::uint64_t hash);

  // Any thread: the run was cancelled; later progress is not recorded (cancelled work is not done).
  void freeze();
  // Main thread, once, after the run: writes what is queued and whether the run finished.
  void close(bool finished);

 private:
  RunState() = default;
  struct Writer;

  std::string path_;
  bool finished_ = false;
  std::unordered_map<std::string, std::map<std::uint64_t, std::uint64_t>> done_;  // node -> first -> last
  std::unordered_map<std::string, FrontierState> frontiers_;
  std::unique_ptr<Writer> writer_;
};

}  // namespace sluice
