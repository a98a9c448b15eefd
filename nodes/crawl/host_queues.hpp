// The frontier's parked URLs, queued by host. A URL goes out from the host with the fewest URLs
// out (ties: the host served longest ago), so one site's thousands of links cannot fill the
// window while other sites wait; with a cap per host, a slow site (a low rate, a fragile server)
// holds at most that many URLs — and limit slots — at a time. Each host's URLs go out in the order
// they came. The oldest `memory` URLs are kept in memory, the rest in a SQLite spill file, by host,
// so memory does not grow with a site. Not thread-safe: the frontier guards it with its mutex.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace sluice::nodes {

struct Parked {
  std::string url;
  std::string from_url;
  std::int32_t depth = 0;
  std::string fields;  // the fields its record carried besides these, as a JSON object ("" for none)
};

// Parked URLs past the in-memory bound, in a SQLite file of the frontier thread's own, by host.
// Every method throws NodeError (naming the file and SQLite's message) when SQLite fails — a full
// disk — so that no URL is lost without a word.
class SpillFile {
 public:
  explicit SpillFile(const std::string& dir);
  ~SpillFile();
  SpillFile(const SpillFile&) = delete;
  SpillFile& operator=(const SpillFile&) = delete;

  void push(std::uint32_t host, const Parked& p);
  // Moves up to `n` of `host`'s oldest spilled URLs to the end of `out`; returns how many.
  std::size_t pop(std::uint32_t host, std::size_t n, std::vector<Parked>& out);
  const std::string& path() const { return path_; }

 private:
  void check(int rc, const char* what) const;
  void close();

  std::string path_;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;
  sqlite3_stmt* select_ = nullptr;
  sqlite3_stmt* remove_ = nullptr;
  bool in_txn_ = false;
};

class HostQueues {
 public:
  // `per_host`: URLs of one host out at a time at most (0: no cap). The spill file is created in
  // `spill_dir` when more than `memory` URLs are parked.
  HostQueues(std::size_t memory, std::size_t per_host, std::string spill_dir);
  ~HostQueues();

  void push(const std::string& host, Parked p);
  // The next URL to let out, counted as out for its host until done(host) — or nullopt when no
  // host may let one out (nothing parked, or every host with parked URLs at its cap).
  struct Out {
    Parked url;
    std::uint32_t host;
  };
  std::optional<Out> pop();
  // A URL pop() gave for `host` is done.
  void done(std::uint32_t host);

  std::size_t size() const { return in_memory_ + spilled_; }
  std::size_t in_memory() const { return in_memory_; }
  bool ready() const { return !ready_.empty(); }
  // Hosts known now: with URLs parked or out.
  std::size_t hosts() const { return by_name_.size(); }
  // Drops every parked URL (URLs out stay counted until done()).
  void clear();

 private:
  static constexpr std::uint32_t kNone = 0xffffffffu;
  struct Host {
    std::string name;
    std::uint32_t head = kNone, tail = kNone;  // its URLs in memory, oldest first
    std::size_t in_memory = 0, spilled = 0, out = 0;
    std::uint64_t served = 0;  // when a URL of it last went out
    bool listed = false;       // in ready_
    bool used = false;         // not in free_hosts_
  };
  struct Slot {
    Parked url;
    std::uint32_t next = kNone;
  };
  using Key = std::tuple<std::size_t, std::uint64_t, std::uint32_t>;  // out, served, host

  Key key(std::uint32_t id) const { return {hosts_[id].out, hosts_[id].served, id}; }
  void unlist(std::uint32_t id);
  void relist(std::uint32_t id);
  void forget_if_idle(std::uint32_t id);
  void append(std::uint32_t id, Parked p);

  std::size_t memory_, per_host_;
  std::string spill_dir_;
  std::unique_ptr<SpillFile> spill_;
  std::vector<Host> hosts_;
  std::vector<std::uint32_t> free_hosts_;
  std::unordered_map<std::string, std::uint32_t> by_name_;
  std::deque<Slot> slots_;  // a deque: grows without moving (or doubling) what it holds
  std::vector<std::uint32_t> free_slots_;
  std::set<Key> ready_;  // hosts with parked URLs below their cap
  std::size_t in_memory_ = 0, spilled_ = 0;
  std::uint64_t turn_ = 0;
};

}  // namespace sluice::nodes
