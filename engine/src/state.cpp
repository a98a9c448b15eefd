#include "sluice/state.hpp"

#include <fmt/format.h>
#include <pthread.h>
#include <sqlite3.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <variant>

namespace sluice {

namespace {

using Clock = std::chrono::steady_clock;

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

class Db {
 public:
  explicit Db(const std::string& path) : path_(path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        nullptr) != SQLITE_OK) {
      std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      throw std::runtime_error(fmt::format("cannot open state file '{}': {}", path, why));
    }
  }
  ~Db() {
    for (sqlite3_stmt* s : statements_) sqlite3_finalize(s);
    sqlite3_close(db_);
  }
  void exec(const char* sql) {
    char* error = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &error) != SQLITE_OK) {
      std::string why = error ? error : sqlite3_errmsg(db_);
      sqlite3_free(error);
      throw std::runtime_error(fmt::format("state file '{}': {}", path_, why));
    }
  }
  sqlite3_stmt* prepare(const char* sql) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql, -1, &s, nullptr) != SQLITE_OK) {
      throw std::runtime_error(fmt::format("state file '{}': {}", path_, sqlite3_errmsg(db_)));
    }
    statements_.push_back(s);
    return s;
  }
  sqlite3* handle() { return db_; }

 private:
  std::string path_;
  sqlite3* db_ = nullptr;
  std::vector<sqlite3_stmt*> statements_;
};

std::string column_text(sqlite3_stmt* s, int i) {
  const unsigned char* t = sqlite3_column_text(s, i);
  return t ? reinterpret_cast<const char*>(t) : "";
}

}  // namespace

// The state's own thread: takes queued progress and writes it in one transaction per wake-up
// (at most every few milliseconds), so that no other thread ever waits on the state file.
struct RunState::Writer {
  explicit Writer(const std::string& path) : db(path) {
    db.exec(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;"
        "CREATE TABLE IF NOT EXISTS run (key TEXT PRIMARY KEY, value TEXT);"
        "CREATE TABLE IF NOT EXISTS source_done (node TEXT, first INTEGER, last INTEGER);"
        "CREATE TABLE IF NOT EXISTS frontier (node TEXT, hash INTEGER, url TEXT, from_url TEXT, depth INTEGER,"
        " done INTEGER, PRIMARY KEY (node, hash)) WITHOUT ROWID;");
    range_ = db.prepare("INSERT INTO source_done (node, first, last) VALUES (?, ?, ?)");
    accepted_ = db.prepare(
        "INSERT OR IGNORE INTO frontier (node, hash, url, from_url, depth, done) VALUES (?, ?, ?, ?, ?, 0)");
    done_ = db.prepare("UPDATE frontier SET done = 1 WHERE node = ? AND hash = ?");
    status_ = db.prepare("INSERT OR REPLACE INTO run (key, value) VALUES (?, ?)");
  }

  void start() {
    thread = std::thread([this] { loop(); });
  }

  void push(Op op) {
    {
      std::lock_guard lock(mutex);
      if (frozen) return;
      queue.push_back(std::move(op));
    }
    cv.notify_one();
  }

  void loop() {
    pthread_setname_np(pthread_self(), "state");
    std::unique_lock lock(mutex);
    while (true) {
      cv.wait(lock, [&] { return quit || !queue.empty(); });
      if (queue.empty() && quit) return;
      // A short pause gathers a burst of progress into one transaction.
      cv.wait_for(lock, std::chrono::milliseconds(5), [&] { return quit; });
      std::deque<Op> ops = std::move(queue);
      queue.clear();
      lock.unlock();
      write(ops);
      lock.lock();
    }
  }

  void write(const std::deque<Op>& ops) {
    if (broken) return;
    try {
      db.exec("BEGIN IMMEDIATE");
      std::map<std::string, std::vector<std::pair<std::uint64_t, std::uint64_t>>> ranges;
      for (const Op& op : ops) {
        if (const auto* r = std::get_if<RangeDone>(&op)) {
          ranges[r->node].emplace_back(r->first, r->last);
        } else {
          std::visit([this](const auto& o) { apply(o); }, op);
        }
      }
      // Records end out of order: merge the ones that touch into ranges, one row each.
      for (auto& [node, list] : ranges) {
        std::sort(list.begin(), list.end());
        std::pair<std::uint64_t, std::uint64_t> open = list.front();
        for (std::size_t i = 1; i <= list.size(); ++i) {
          if (i < list.size() && list[i].first <= open.second + 1) {
            open.second = std::max(open.second, list[i].second);
            continue;
          }
          apply(RangeDone{node, open.first, open.second});
          if (i < list.size()) open = list[i];
        }
      }
      db.exec("COMMIT");
    } catch (const std::exception& e) {
      sqlite3_exec(db.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
      broken = true;  // later progress would not be a prefix of the log any more
      error = e.what();
    }
  }

  void step(sqlite3_stmt* s) {
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc != SQLITE_DONE) throw std::runtime_error(sqlite3_errmsg(db.handle()));
  }
  void bind_text(sqlite3_stmt* s, int i, const std::string& t) {
    sqlite3_bind_text(s, i, t.data(), static_cast<int>(t.size()), SQLITE_TRANSIENT);
  }
  void apply(const RangeDone& o) {
    bind_text(range_, 1, o.node);
    sqlite3_bind_int64(range_, 2, static_cast<sqlite3_int64>(o.first));
    sqlite3_bind_int64(range_, 3, static_cast<sqlite3_int64>(o.last));
    step(range_);
  }
  void apply(const UrlAccepted& o) {
    bind_text(accepted_, 1, o.node);
    sqlite3_bind_int64(accepted_, 2, static_cast<sqlite3_int64>(o.url.hash));
    bind_text(accepted_, 3, o.url.url);
    bind_text(accepted_, 4, o.url.from_url);
    sqlite3_bind_int(accepted_, 5, o.url.depth);
    step(accepted_);
  }
  void apply(const UrlDone& o) {
    bind_text(done_, 1, o.node);
    sqlite3_bind_int64(done_, 2, static_cast<sqlite3_int64>(o.hash));
    step(done_);
  }
  void set_status(const std::string& key, const std::string& value) {
    bind_text(status_, 1, key);
    bind_text(status_, 2, value);
    step(status_);
  }

  void stop() {
    {
      std::lock_guard lock(mutex);
      quit = true;
    }
    cv.notify_one();
    if (thread.joinable()) thread.join();
  }

  Db db;
  sqlite3_stmt* range_ = nullptr;
  sqlite3_stmt* accepted_ = nullptr;
  sqlite3_stmt* done_ = nullptr;
  sqlite3_stmt* status_ = nullptr;
  std::thread thread;
  std::mutex mutex;
  std::condition_variable cv;
  std::deque<Op> queue;
  bool quit = false, frozen = false, broken = false;
  std::string error;
};

std::unique_ptr<RunState> RunState::open(const std::string& path, const std::string& pipeline, bool resume) {
  std::unique_ptr<RunState> state(new RunState());
  state->path_ = path;
  state->writer_ = std::make_unique<Writer>(path);
  Db& db = state->writer_->db;
  std::string owner, status;
  sqlite3_stmt* run = db.prepare("SELECT key, value FROM run");
  while (sqlite3_step(run) == SQLITE_ROW) {
    std::string key = column_text(run, 0);
    if (key == "pipeline") owner = column_text(run, 1);
    if (key == "status") status = column_text(run, 1);
  }
  if (resume) {
    if (!owner.empty() && owner != pipeline) {
      throw std::runtime_error(
          fmt::format("state file '{}' belongs to pipeline '{}', not '{}'", path, owner, pipeline));
    }
    state->finished_ = status == "finished";
    sqlite3_stmt* ranges = db.prepare("SELECT node, first, last FROM source_done");
    while (sqlite3_step(ranges) == SQLITE_ROW) {
      state->done_[column_text(ranges, 0)][static_cast<std::uint64_t>(sqlite3_column_int64(ranges, 1))] =
          static_cast<std::uint64_t>(sqlite3_column_int64(ranges, 2));
    }
    sqlite3_stmt* urls = db.prepare("SELECT node, hash, url, from_url, depth, done FROM frontier");
    while (sqlite3_step(urls) == SQLITE_ROW) {
      FrontierState& f = state->frontiers_[column_text(urls, 0)];
      Url u{static_cast<std::uint64_t>(sqlite3_column_int64(urls, 1)), column_text(urls, 2), column_text(urls, 3),
            sqlite3_column_int(urls, 4)};
      f.seen.push_back(u.hash);
      if (u.depth == 0) f.seeds.push_back(u.url);
      if (sqlite3_column_int(urls, 5) == 0) f.pending.push_back(std::move(u));
    }
  } else {
    db.exec("BEGIN IMMEDIATE; DELETE FROM run; DELETE FROM source_done; DELETE FROM frontier; COMMIT");
  }
  if (!state->finished_) {
    db.exec("BEGIN IMMEDIATE");
    state->writer_->set_status("pipeline", pipeline);
    state->writer_->set_status("status", "running");
    db.exec("COMMIT");
  }
  state->writer_->start();
  return state;
}

RunState::~RunState() {
  if (writer_) writer_->stop();
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

void RunState::source_range_done(const std::string& node, std::uint64_t first, std::uint64_t last) {
  writer_->push(RangeDone{node, first, last});
}

void RunState::url_accepted(const std::string& node, const Url& url) {
  writer_->push(UrlAccepted{node, url});
}

void RunState::url_done(const std::string& node, std::uint64_t hash) {
  writer_->push(UrlDone{node, hash});
}

void RunState::freeze() {
  std::lock_guard lock(writer_->mutex);
  writer_->frozen = true;
}

void RunState::close(bool finished) {
  freeze();
  writer_->stop();
  if (writer_->broken) {
    throw std::runtime_error(fmt::format("state file '{}': progress could not be written: {}", path_, writer_->error));
  }
  if (finished_) return;  // a finished run that was resumed: nothing changed
  writer_->db.exec("BEGIN IMMEDIATE");
  writer_->set_status("status", finished ? "finished" : "interrupted");
  writer_->db.exec("COMMIT");
}

}  // namespace sluice
