#include "sluice/state.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <iterator>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <variant>

#include "sluice/diagnostics.hpp"

namespace sluice {

namespace {

struct RangeDone {
  std::string node;
  std::uint64_t first, last;
};
struct UrlAccepted {
  std::string node;
  RunState::Url url;
};
struct UrlDone {
  std::string node;
  std::uint64_t hash;
};
using Op = std::variant<RangeDone, UrlAccepted, UrlDone>;

const char* kSchema =
    "CREATE TABLE IF NOT EXISTS sluice_run (key TEXT PRIMARY KEY, value TEXT);"
    "CREATE TABLE IF NOT EXISTS sluice_source_done (node TEXT, first INTEGER, last INTEGER);"
    "CREATE TABLE IF NOT EXISTS sluice_frontier (node TEXT, hash INTEGER, url TEXT, from_url TEXT, depth INTEGER,"
    " done INTEGER, PRIMARY KEY (node, hash)) WITHOUT ROWID;";

// 16 random bytes from OpenSSL's generator, written as a version 4 UUID: a run's id.
std::string random_id() {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof b) != 1) throw std::runtime_error("state: no random bytes from OpenSSL for the run's id");
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  std::string id;
  for (int i = 0; i < 16; ++i) id += fmt::format("{}{:02x}", i == 4 || i == 6 || i == 8 || i == 10 ? "-" : "", b[i]);
  return id;
}

// The keys of sluice_run that hold the runner's facts (RunState::Facts): "fact.serve_url".
const std::string kFactPrefix = "fact.";

void exec(sqlite3* db, const std::string& sql, const std::string& path) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
    std::string why = error ? error : sqlite3_errmsg(db);
    sqlite3_free(error);
    throw std::runtime_error(fmt::format("state in '{}': {}", path, why));
  }
}

std::string column_text(sqlite3_stmt* s, int i) {
  const unsigned char* t = sqlite3_column_text(s, i);
  return t ? reinterpret_cast<const char*>(t) : "";
}

bool has_column(sqlite3* db, const char* table, const char* column) {
  sqlite3_stmt* s = nullptr;
  bool found = false;
  if (sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info(?) WHERE name = ?", -1, &s, nullptr) == SQLITE_OK) {
    sqlite3_bind_text(s, 1, table, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, column, -1, SQLITE_STATIC);
    found = sqlite3_step(s) == SQLITE_ROW;
  }
  sqlite3_finalize(s);
  return found;
}

// Writes progress entries with statements prepared on one connection, inside the caller's
// transaction. Records end out of order: source records that touch are merged into one row.
class OpWriter {
 public:
  OpWriter(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {
    range_ = prepare("INSERT INTO sluice_source_done (node, first, last) VALUES (?, ?, ?)");
    accepted_ = prepare(
        "INSERT OR IGNORE INTO sluice_frontier (node, hash, url, from_url, depth, done, fields)"
        " VALUES (?, ?, ?, ?, ?, 0, ?)");
    done_ = prepare("UPDATE sluice_frontier SET done = 1 WHERE node = ? AND hash = ?");
  }
  ~OpWriter() {
    sqlite3_finalize(range_);
    sqlite3_finalize(accepted_);
    sqlite3_finalize(done_);
  }
  OpWriter(const OpWriter&) = delete;
  OpWriter& operator=(const OpWriter&) = delete;

  void write(const std::deque<Op>& ops) {
    std::map<std::string, std::vector<std::pair<std::uint64_t, std::uint64_t>>> ranges;
    for (const Op& op : ops) {
      if (const auto* r = std::get_if<RangeDone>(&op)) {
        ranges[r->node].emplace_back(r->first, r->last);
      } else if (const auto* a = std::get_if<UrlAccepted>(&op)) {
        text(accepted_, 1, a->node);
        sqlite3_bind_int64(accepted_, 2, static_cast<sqlite3_int64>(a->url.hash));
        text(accepted_, 3, a->url.url);
        text(accepted_, 4, a->url.from_url);
        sqlite3_bind_int(accepted_, 5, a->url.depth);
        if (a->url.fields.empty()) {
          sqlite3_bind_null(accepted_, 6);
        } else {
          text(accepted_, 6, a->url.fields);
        }
        step(accepted_);
      } else {
        const auto& d = std::get<UrlDone>(op);
        text(done_, 1, d.node);
        sqlite3_bind_int64(done_, 2, static_cast<sqlite3_int64>(d.hash));
        step(done_);
      }
    }
    for (auto& [node, list] : ranges) {
      std::sort(list.begin(), list.end());
      auto open = list.front();
      for (std::size_t i = 1; i <= list.size(); ++i) {
        if (i < list.size() && list[i].first <= open.second + 1) {
          open.second = std::max(open.second, list[i].second);
          continue;
        }
        text(range_, 1, node);
        sqlite3_bind_int64(range_, 2, static_cast<sqlite3_int64>(open.first));
        sqlite3_bind_int64(range_, 3, static_cast<sqlite3_int64>(open.second));
        step(range_);
        if (i < list.size()) open = list[i];
      }
    }
  }

 private:
  sqlite3_stmt* prepare(const char* sql) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql, -1, &s, nullptr) != SQLITE_OK) {
      throw std::runtime_error(fmt::format("state in '{}': {}", path_, sqlite3_errmsg(db_)));
    }
    return s;
  }
  void text(sqlite3_stmt* s, int i, const std::string& t) {
    sqlite3_bind_text(s, i, t.data(), static_cast<int>(t.size()), SQLITE_TRANSIENT);
  }
  void step(sqlite3_stmt* s) {
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc != SQLITE_DONE) throw std::runtime_error(fmt::format("state in '{}': {}", path_, sqlite3_errmsg(db_)));
  }

  sqlite3* db_;
  std::string path_;
  sqlite3_stmt* range_ = nullptr;
  sqlite3_stmt* accepted_ = nullptr;
  sqlite3_stmt* done_ = nullptr;
};

}  // namespace

// The queue of progress entries and, when no store hosts the state, the thread that writes them
// to the state file in one transaction per burst.
struct RunState::Writer {
  std::mutex mutex;
  std::condition_variable cv;
  std::deque<Op> queue;
  bool quit = false, frozen = false, broken = false;
  std::string error;
  std::thread thread;
  // Permit sources whose releases mean progress: source records (tag = position) and URLs a
  // frontier let out (tag = URL hash).
  std::unordered_map<const PermitSource*, std::pair<std::string, bool>> tracked;  // -> node, is frontier
  // (node, tag) of the permits a hosting store's write_in() recorded as done before their release:
  // their release records nothing more.
  std::set<std::pair<std::string, std::uint64_t>> recorded;
  // A hosting store's transaction (by its connection) between write_in() and its end, committed()
  // or rolled_back(): the queued entries it took, and the records it wrote as done.
  struct Open {
    std::deque<Op> taken;
    std::vector<std::pair<std::string, std::uint64_t>> done;
  };
  std::map<const sqlite3*, Open> open;

  void push(Op op) {
    {
      std::lock_guard lock(mutex);
      if (frozen) return;
      queue.push_back(std::move(op));
    }
    cv.notify_one();
  }
  // A tracked permit of `node` tagged `tag` was released: `op` is its progress, unless recorded.
  void released(const std::string& node, std::uint64_t tag, Op op) {
    {
      std::lock_guard lock(mutex);
      if (!recorded.empty() && recorded.erase({node, tag}) > 0) return;
      if (frozen) return;
      queue.push_back(std::move(op));
    }
    cv.notify_one();
  }
  std::deque<Op> take() {
    std::lock_guard lock(mutex);
    std::deque<Op> ops = std::move(queue);
    queue.clear();
    return ops;
  }
};

namespace {

// Takes the exclusive flock() of `path`.lock (created when missing, left in place: unlinking a lock
// file races with a run that has just opened it) and writes this process's id into it. Returns its
// descriptor; throws when another run holds it, naming that run's process.
int lock_run(const std::string& path) {
  const std::string lock_path = path + ".lock";
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw std::runtime_error(fmt::format("cannot open state file '{}': {} (its lock '{}'){}", path,
                                         std::strerror(errno), lock_path, missing_folder_note(lock_path)));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    char pid[32] = {};
    const ssize_t n = ::pread(fd, pid, sizeof pid - 1, 0);
    ::close(fd);
    if (e == EWOULDBLOCK) {
      const std::string who = n > 0 ? fmt::format(" (pid {})", std::string(pid, static_cast<std::size_t>(n))) : "";
      throw std::runtime_error(fmt::format(
          "state file '{}' is in use by another run{}: wait for it to end, or give this run its own state file", path,
          who));
    }
    throw std::runtime_error(fmt::format("cannot lock '{}': {}", lock_path, std::strerror(e)));
  }
  // Without the id the lock still holds; only a second run's message would lack it.
  const std::string pid = std::to_string(::getpid());
  [[maybe_unused]] const bool noted = ::ftruncate(fd, 0) == 0 && ::pwrite(fd, pid.data(), pid.size(), 0) >= 0;
  return fd;
}

}  // namespace

std::unique_ptr<RunState> RunState::open(const std::string& path, const std::string& pipeline, bool resume,
                                         const std::string& sources, const Facts& facts) {
  if (auto why = not_a_file(path); !why.empty()) {
    throw std::runtime_error(fmt::format("cannot open state file '{}': {}", path, why));
  }
  std::unique_ptr<RunState> state(new RunState());
  state->path_ = path;
  state->lock_fd_ = lock_run(path);
  state->writer_ = std::make_unique<Writer>();
  if (sqlite3_open_v2(path.c_str(), &state->db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string why = state->db_ ? sqlite3_errmsg(state->db_) : "out of memory";
    throw std::runtime_error(fmt::format("cannot open state file '{}': {}{}", path, why, missing_folder_note(path)));
  }
  sqlite3* db = state->db_;
  exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;", path);
  exec(db, kSchema, path);
  // A state file of an older sluice has no column for the fields a frontier's URLs carry.
  if (!has_column(db, "sluice_frontier", "fields"))
    exec(db, "ALTER TABLE sluice_frontier ADD COLUMN fields TEXT", path);
  std::string owner, status, recorded_sources;
  sqlite3_stmt* run = nullptr;
  sqlite3_prepare_v2(db, "SELECT key, value FROM sluice_run", -1, &run, nullptr);
  while (run && sqlite3_step(run) == SQLITE_ROW) {
    std::string key = column_text(run, 0);
    if (key == "pipeline") owner = column_text(run, 1);
    if (key == "status") status = column_text(run, 1);
    if (key == "sources") recorded_sources = column_text(run, 1);
    if (key == "run_id" && resume) state->run_id_ = column_text(run, 1);
  }
  sqlite3_finalize(run);
  if (resume) {
    if (!owner.empty() && owner != pipeline) {
      throw std::runtime_error(
          fmt::format("state file '{}' belongs to pipeline '{}', not '{}'", path, owner, pipeline));
    }
    if (!recorded_sources.empty() && recorded_sources != sources) {
      throw std::runtime_error(fmt::format(
          "the sources of pipeline '{}' changed since the run recorded in '{}' (their settings, or a file they "
          "read): --resume would skip the wrong records; run without --resume to start over",
          pipeline, path));
    }
    state->finished_ = status == "finished";
    state->resumed_ = true;
    sqlite3_stmt* ranges = nullptr;
    // Ranges of different transactions may touch, and in files of earlier sluice builds (which
    // recorded a record that a hosting store committed once more when it was released) overlap:
    // merged here, so that source_done() finds a position in the one range that holds it.
    sqlite3_prepare_v2(db, "SELECT node, first, last FROM sluice_source_done ORDER BY node, first", -1, &ranges,
                       nullptr);
    while (ranges && sqlite3_step(ranges) == SQLITE_ROW) {
      auto& done = state->done_[column_text(ranges, 0)];
      const auto first = static_cast<std::uint64_t>(sqlite3_column_int64(ranges, 1));
      const auto last = static_cast<std::uint64_t>(sqlite3_column_int64(ranges, 2));
      if (!done.empty() && first <= done.rbegin()->second + 1) {
        done.rbegin()->second = std::max(done.rbegin()->second, last);
      } else {
        done.emplace(first, last);
      }
    }
    sqlite3_finalize(ranges);
    sqlite3_stmt* urls = nullptr;
    sqlite3_prepare_v2(db, "SELECT node, hash, url, from_url, depth, done, fields FROM sluice_frontier", -1, &urls,
                       nullptr);
    std::set<std::pair<std::string, std::string>> seed_pages;  // (node, page) of depth-1 links
    while (urls && sqlite3_step(urls) == SQLITE_ROW) {
      FrontierState& f = state->frontiers_[column_text(urls, 0)];
      Url u{static_cast<std::uint64_t>(sqlite3_column_int64(urls, 1)), column_text(urls, 2), column_text(urls, 3),
            sqlite3_column_int(urls, 4), column_text(urls, 6)};
      f.seen.push_back(u.hash);
      if (const auto authority = u.url.find("://"); authority != std::string::npos)
        ++f.origins[u.url.substr(0, u.url.find_first_of("/?#", authority + 3))];
      if (u.depth == 0) f.seeds.push_back(u.url);
      // The page a depth-1 link was found on is a seed's page after its redirects.
      if (u.depth == 1 && !u.from_url.empty() && seed_pages.emplace(column_text(urls, 0), u.from_url).second)
        f.seeds.push_back(u.from_url);
      if (sqlite3_column_int(urls, 5) == 0) f.pending.push_back(std::move(u));
    }
    sqlite3_finalize(urls);
  } else {
    exec(db, "BEGIN IMMEDIATE; DELETE FROM sluice_run; DELETE FROM sluice_source_done; DELETE FROM sluice_frontier;"
         "COMMIT", path);
  }
  // A fresh run, or one that resumes a file of a sluice that kept no id, makes its own.
  if (state->run_id_.empty()) state->run_id_ = random_id();
  if (!state->finished_) {
    std::string noted;
    for (const auto& [name, value] : facts) {
      noted += fmt::format("INSERT OR REPLACE INTO sluice_run (key, value) VALUES ({}, {});", quote(kFactPrefix + name),
                           quote(value));
    }
    exec(db,
         fmt::format("BEGIN IMMEDIATE; INSERT OR REPLACE INTO sluice_run (key, value) VALUES ('pipeline', {});"
                     "INSERT OR REPLACE INTO sluice_run (key, value) VALUES ('status', 'running');"
                     "INSERT OR REPLACE INTO sluice_run (key, value) VALUES ('sources', {});"
                     "INSERT OR REPLACE INTO sluice_run (key, value) VALUES ('run_id', {});{} COMMIT",
                     quote(pipeline), quote(sources), quote(state->run_id_), noted),
         path);
  }
  return state;
}

std::optional<std::string> RunState::recorded(const std::string& path, const std::string& name) {
  sqlite3* db = nullptr;
  std::optional<std::string> value;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr) == SQLITE_OK) {
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt* q = nullptr;
    if (sqlite3_prepare_v2(db, "SELECT value FROM sluice_run WHERE key = ?", -1, &q, nullptr) == SQLITE_OK) {
      const std::string key = kFactPrefix + name;
      sqlite3_bind_text(q, 1, key.c_str(), static_cast<int>(key.size()), SQLITE_TRANSIENT);
      if (sqlite3_step(q) == SQLITE_ROW) value = column_text(q, 0);
    }
    sqlite3_finalize(q);
  }
  sqlite3_close(db);
  return value;
}

std::string RunState::quote(const std::string& text) {
  char* q = sqlite3_mprintf("%Q", text.c_str());
  std::string out = q ? q : "NULL";
  sqlite3_free(q);
  return out;
}

RunState::~RunState() {
  stop_writer();
  sqlite3_close(db_);
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

bool RunState::same_file(const std::string& path) const {
  std::error_code a, b;
  auto mine = std::filesystem::weakly_canonical(path_, a);
  auto theirs = std::filesystem::weakly_canonical(path, b);
  return !a && !b && mine == theirs;
}

bool RunState::host(const std::string& store_path) {
  if (!same_file(store_path)) return false;
  hosted_ = true;
  return true;
}

void RunState::start() {
  if (hosted_ || writer_->thread.joinable()) return;
  writer_->thread = std::thread([this] {
    pthread_setname_np(pthread_self(), "state");
    OpWriter out(db_, path_);
    std::unique_lock lock(writer_->mutex);
    while (true) {
      writer_->cv.wait(lock, [&] { return writer_->quit || !writer_->queue.empty(); });
      if (writer_->queue.empty() && writer_->quit) return;
      // A short pause gathers a burst of progress into one transaction.
      writer_->cv.wait_for(lock, std::chrono::milliseconds(5), [&] { return writer_->quit; });
      std::deque<Op> ops = std::move(writer_->queue);
      writer_->queue.clear();
      lock.unlock();
      if (!writer_->broken) {
        try {
          exec(db_, "BEGIN IMMEDIATE", path_);
          out.write(ops);
          exec(db_, "COMMIT", path_);
        } catch (const std::exception& e) {
          sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
          writer_->broken = true;  // later progress would not be a prefix of the log any more
          writer_->error = e.what();
        }
      }
      lock.lock();
    }
  });
}

void RunState::stop_writer() {
  if (!writer_) return;
  {
    std::lock_guard lock(writer_->mutex);
    writer_->quit = true;
  }
  writer_->cv.notify_one();
  if (writer_->thread.joinable()) writer_->thread.join();
}

void RunState::track(const PermitSource& source, const std::string& node, bool frontier) {
  writer_->tracked[&source] = {node, frontier};
}

std::optional<RunState::Origin> RunState::origin(const std::vector<PermitRef>& permits) const {
  for (const auto& p : permits) {
    if (!p) continue;
    if (auto it = writer_->tracked.find(p->source()); it != writer_->tracked.end())
      return Origin{&it->second.first, p->tag(), &p};
  }
  return std::nullopt;
}

bool RunState::has_pending() const {
  std::lock_guard lock(writer_->mutex);
  return !writer_->queue.empty();
}

void RunState::write_in(sqlite3* db, const std::vector<PermitRef>& held) {
  // Records whose last holder is this batch are done once it commits: record them in the same
  // transaction. Nobody else holds such a permit, so nobody can copy it any more.
  std::unordered_map<const Permit*, long> counts;
  for (const auto& p : held) {
    if (p && writer_->tracked.count(p->source())) ++counts[p.get()];
  }
  std::deque<Op> ops;
  std::vector<std::pair<std::string, std::uint64_t>> done;
  for (const auto& p : held) {
    auto it = counts.find(p.get());
    if (it == counts.end() || it->second != p.use_count()) continue;
    if (p->unfinished()) continue;  // a graceful stop dropped part of its work: not done
    const auto& [node, frontier] = writer_->tracked.at(p->source());
    if (frontier) {
      ops.push_back(UrlDone{node, p->tag()});
    } else {
      ops.push_back(RangeDone{node, p->tag(), p->tag()});
    }
    done.emplace_back(node, p->tag());
    counts.erase(it);
  }
  std::deque<Op> queued;
  {
    std::lock_guard lock(writer_->mutex);
    // After a cancellation only what was queued before it is written (as the state's own thread
    // does): a record released since may have lost work that was cancelled.
    if (writer_->frozen) {
      ops.clear();
      done.clear();
    }
    queued = std::move(writer_->queue);
    writer_->queue.clear();
    // Kept until the transaction ends: a rollback puts the queued entries back (they are still
    // true), and only a COMMIT makes the batch's records done (their release then records nothing).
    writer_->open[db] = Writer::Open{queued, std::move(done)};
  }
  // Queued entries first: a URL a page discovered is accepted before the page is done.
  for (auto& op : ops) queued.push_back(std::move(op));
  if (queued.empty()) return;
  try {
    OpWriter(db, path_).write(queued);
  } catch (...) {
    rolled_back(db);  // the store rolls back
    throw;
  }
}

void RunState::committed(sqlite3* db) {
  std::lock_guard lock(writer_->mutex);
  auto it = writer_->open.find(db);
  if (it == writer_->open.end()) return;
  for (auto& key : it->second.done) writer_->recorded.insert(std::move(key));
  writer_->open.erase(it);
}

void RunState::rolled_back(sqlite3* db) {
  std::lock_guard lock(writer_->mutex);
  auto it = writer_->open.find(db);
  if (it == writer_->open.end()) return;
  // Its records are not done (their rows were not stored); what it took goes back in front.
  std::deque<Op>& taken = it->second.taken;
  writer_->queue.insert(writer_->queue.begin(), std::make_move_iterator(taken.begin()),
                        std::make_move_iterator(taken.end()));
  writer_->open.erase(it);
}

bool RunState::source_done(const std::string& node, std::uint64_t seq) const {
  auto it = done_.find(node);
  if (it == done_.end()) return false;
  auto r = it->second.upper_bound(seq);
  if (r == it->second.begin()) return false;
  --r;
  return seq >= r->first && seq <= r->second;
}

const RunState::FrontierState& RunState::frontier(const std::string& node) const {
  static const FrontierState kEmpty;
  auto it = frontiers_.find(node);
  return it == frontiers_.end() ? kEmpty : it->second;
}

void RunState::record_done(const std::string& node, std::uint64_t seq) {
  writer_->released(node, seq, RangeDone{node, seq, seq});
}

void RunState::url_accepted(const std::string& node, const Url& url) {
  writer_->push(UrlAccepted{node, url});
}

void RunState::url_done(const std::string& node, std::uint64_t hash) {
  writer_->released(node, hash, UrlDone{node, hash});
}

void RunState::freeze() {
  std::lock_guard lock(writer_->mutex);
  writer_->frozen = true;
}

void RunState::close(bool finished) {
  freeze();
  stop_writer();
  if (writer_->broken) {
    throw std::runtime_error(fmt::format("state file '{}': progress could not be written: {}", path_, writer_->error));
  }
  if (finished_) return;  // a finished run that was resumed: nothing changed
  // A hosting store's last transaction can come before the last releases (a file sink's lines, a
  // record whose last rows another store committed): that progress is written here, with the
  // run's status. (The state's own writer has written everything queued before it ended.)
  const std::deque<Op> ops = writer_->take();
  try {
    exec(db_, "BEGIN IMMEDIATE", path_);
    if (!ops.empty()) OpWriter(db_, path_).write(ops);
    exec(db_,
         fmt::format("INSERT OR REPLACE INTO sluice_run (key, value) VALUES ('status', '{}')",
                     finished ? "finished" : "interrupted"),
         path_);
    exec(db_, "COMMIT", path_);
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

}  // namespace sluice
