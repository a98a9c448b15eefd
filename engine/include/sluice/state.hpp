// RunState: what a resumable run (`settings.state`, `sluice run --resume`) has finished, kept in
// SQLite so that a run killed at any point — SIGKILL included — can continue where it was.
//
// Progress is an ordered log: which records of each source are done, and for each frontier every
// URL it accepted (the seen set), whether it is done, and where it came from. A record is done when
// it and everything derived from it has left the graph, so after every row it produced was
// committed; a frontier logs the URLs a page discovered before that page is done. Any prefix of the
// log is therefore a consistent state that trails the stores.
//
// Where it is written:
// - When `state` is the database of a store.sqlite node (the usual setup), that store writes the
//   log inside its own batch transactions, just before COMMIT: progress and rows commit together.
//   Records whose last holder is the batch being committed are marked done in that same
//   transaction, so a resumed run redoes only what had not been committed.
// - Otherwise the state's own writer thread writes the log to the file in small transactions.
// Stores of a resumable run must have a `key` (UPSERT): a redone record replaces its rows.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "sluice/permit.hpp"

struct sqlite3;

namespace sluice {

class RunState {
 public:
  struct Url {
    std::uint64_t hash = 0;
    std::string url;
    std::string from_url;
    std::int32_t depth = 0;
    std::string fields;  // the fields its record carried, as a JSON object ("" for none)
  };
  // What a frontier accepted in earlier runs.
  struct FrontierState {
    std::vector<std::uint64_t> seen;  // every URL hash it ever accepted
    std::vector<Url> pending;         // accepted and not done: parked, or in flight when the run ended
    // depth-0 URLs, and the pages depth-1 links came from (a seed after its redirects): their
    // hosts bound same_host
    std::vector<std::string> seeds;
    // every accepted URL counted by its scheme and authority ("https://shop.example"): its host's
    // max_pages_per_host
    std::unordered_map<std::string, std::uint64_t> origins;
  };

  // Main thread. Opens or creates the state file of pipeline `pipeline`. Without `resume` any earlier
  // state in the file is cleared (a fresh run); with it, the earlier state is loaded. `sources`
  // describes what the sources will produce (their settings, the files they read): a resumed run
  // whose sources differ from the interrupted run's would skip the wrong records. Throws
  // std::runtime_error with the path and the cause when the file cannot be used, when another run
  // uses it (an exclusive flock() on `path`.lock, held until this object goes, so that a run started
  // by cron while the last one still goes cannot resume the same work twice), when it belongs to
  // another pipeline, or when the sources changed.
  // `facts`: what the runner keeps with the run for a later --resume (a name and a value each: the
  // port of settings.serve's site), written with it and read back by recorded().
  using Facts = std::vector<std::pair<std::string, std::string>>;
  static std::unique_ptr<RunState> open(const std::string& path, const std::string& pipeline, bool resume,
                                        const std::string& sources = "", const Facts& facts = {});
  // Before a run: the fact `name` the run recorded in the state file at `path` kept, or nullopt (no
  // such file, run or fact). Opens the file read-only; never creates it.
  static std::optional<std::string> recorded(const std::string& path, const std::string& name);
  ~RunState();
  RunState(const RunState&) = delete;
  RunState& operator=(const RunState&) = delete;

  const std::string& path() const { return path_; }
  // A resumed state whose run had already finished: there is nothing left to do.
  bool finished() const { return finished_; }
  // The run continues an earlier one (--resume): file sinks append instead of starting over.
  bool resumed() const { return resumed_; }

  // The run's own identity: 16 random bytes (as a UUID's 36 characters) that a fresh run makes and
  // every run that resumes it keeps. Read-only after open(), any thread. Fetch derives the
  // idempotency keys of its POSTs from it (retries.idempotency_key), so that a request a killed run
  // sent goes with the same key when the resumed run sends it again.
  const std::string& run_id() const { return run_id_; }

  // Where a record's work is tracked: the node and tag of a permit whose release means progress.
  struct Origin {
    const std::string* node = nullptr;  // the source or frontier
    std::uint64_t tag = 0;              // the source record's position, the frontier URL's hash
    const PermitRef* permit = nullptr;  // that permit, in `permits` (valid while it is)
  };
  // Any thread, after the factories (track()): the first of `permits` that a source or a frontier
  // tracks (the same in a resumed run for the same record or URL), or nullopt (a source that
  // resumes itself, a record made outside a source).
  std::optional<Origin> origin(const std::vector<PermitRef>& permits) const;

  // Any thread, read-only after open(): was record `seq` of source `node` done in an earlier run?
  bool source_done(const std::string& node, std::uint64_t seq) const;
  // Factories (main thread): what frontier `node` had accepted.
  const FrontierState& frontier(const std::string& node) const;

  // Any thread: records progress. Queued in order and written by the state's own thread (or a
  // hosting store's next transaction). A record or URL that write_in() recorded already, as its
  // permit's last holder committed, is not recorded again when the permit is released.
  void record_done(const std::string& node, std::uint64_t seq);  // record `seq` of source `node`
  void url_accepted(const std::string& node, const Url& url);
  void url_done(const std::string& node, std::uint64_t hash);

  // Factories (main thread): declares that releases of `source`'s permits mean progress of `node`
  // (a source's records, tag = position; a frontier's URLs, tag = URL hash).
  void track(const PermitSource& source, const std::string& node, bool frontier);
  // store.sqlite factories (main thread): true when `store_path` is the state file; the store then
  // calls write_in() in every transaction it commits, and the state starts no writer of its own.
  bool host(const std::string& store_path);
  // Main thread, after the factories: starts the writer thread unless a store hosts the state.
  void start();

  // A hosting store's thread, inside its open transaction on `db`, before COMMIT: writes the queued
  // progress and marks done the tracked records of which `held` (the batch's permits) holds the
  // last references. Throws std::runtime_error on a SQLite error (the store rolls back). The store
  // then calls committed() once its COMMIT succeeded, or rolled_back() when the transaction was
  // rolled back (the progress it took is queued again; the batch's records are not done).
  void write_in(sqlite3* db, const std::vector<PermitRef>& held);
  void committed(sqlite3* db);
  void rolled_back(sqlite3* db);
  // Any thread: progress is waiting for a hosting store's next transaction.
  bool has_pending() const;

  // Any thread: the run was cancelled; later progress is not recorded (cancelled work is not done),
  // what was queued before is still written. (A graceful stop does not freeze: the records it drops
  // undone carry permits marked unfinished, whose release records nothing.)
  void freeze();
  // Main thread, once, after the run (stores closed): writes what is queued and whether the run
  // finished.
  void close(bool finished);

 private:
  RunState() = default;
  struct Writer;
  bool same_file(const std::string& path) const;
  void stop_writer();
  static std::string quote(const std::string& text);

  std::string path_;
  std::string run_id_;
  sqlite3* db_ = nullptr;  // loads and status; the writer thread's connection
  bool hosted_ = false;
  bool finished_ = false;
  bool resumed_ = false;
  std::unordered_map<std::string, std::map<std::uint64_t, std::uint64_t>> done_;  // node -> first -> last
  std::unordered_map<std::string, FrontierState> frontiers_;
  std::unique_ptr<Writer> writer_;
  int lock_fd_ = -1;  // <path>.lock, flock()ed while the run lasts: one run per state file
};

}  // namespace sluice
