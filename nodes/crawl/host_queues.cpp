#include "host_queues.hpp"

#include <fmt/format.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>

#include "sluice/node.hpp"

namespace sluice::nodes {
namespace {

std::atomic<int> next_spill_id{0};

std::string column_text(sqlite3_stmt* st, int column) {
  const unsigned char* t = sqlite3_column_text(st, column);
  return t ? std::string(reinterpret_cast<const char*>(t), static_cast<std::size_t>(sqlite3_column_bytes(st, column)))
           : std::string();
}

}  // namespace

SpillFile::SpillFile(const std::string& dir) {
  path_ = (std::filesystem::path(dir) / fmt::format("sluice-frontier-{}-{}.db", ::getpid(), next_spill_id++)).string();
  try {
    check(sqlite3_open(path_.c_str(), &db_), "cannot create");
    check(sqlite3_exec(db_,
                       "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
                       "CREATE TABLE parked (seq INTEGER PRIMARY KEY, host INTEGER, url TEXT, from_url TEXT,"
                       " depth INTEGER, fields TEXT);"
                       "CREATE INDEX parked_host ON parked (host, seq)",
                       nullptr, nullptr, nullptr),
          "cannot create");
    check(sqlite3_prepare_v2(db_, "INSERT INTO parked (host, url, from_url, depth, fields) VALUES (?, ?, ?, ?, ?)", -1,
                             &insert_, nullptr),
          "cannot prepare");
    check(sqlite3_prepare_v2(db_,
                             "SELECT seq, url, from_url, depth, fields FROM parked WHERE host = ? ORDER BY seq "
                             "LIMIT ?",
                             -1, &select_, nullptr),
          "cannot prepare");
    check(sqlite3_prepare_v2(db_, "DELETE FROM parked WHERE host = ? AND seq <= ?", -1, &remove_, nullptr),
          "cannot prepare");
  } catch (...) {
    close();
    throw;
  }
}

SpillFile::~SpillFile() {
  close();
}

void SpillFile::close() {
  sqlite3_finalize(insert_);
  sqlite3_finalize(select_);
  sqlite3_finalize(remove_);
  insert_ = select_ = remove_ = nullptr;
  if (db_) sqlite3_close(db_);
  db_ = nullptr;
  std::error_code ec;
  std::filesystem::remove(path_, ec);
}

void SpillFile::check(int rc, const char* what) const {
  if (rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW) return;
  throw NodeError(fmt::format("spill file '{}': {}: {}", path_, what, db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc)));
}

void SpillFile::push(std::uint32_t host, const Parked& p) {
  if (!in_txn_) {
    check(sqlite3_exec(db_, "BEGIN", nullptr, nullptr, nullptr), "cannot write");
    in_txn_ = true;
  }
  sqlite3_bind_int64(insert_, 1, host);
  sqlite3_bind_text(insert_, 2, p.url.data(), static_cast<int>(p.url.size()), SQLITE_STATIC);
  sqlite3_bind_text(insert_, 3, p.from_url.data(), static_cast<int>(p.from_url.size()), SQLITE_STATIC);
  sqlite3_bind_int(insert_, 4, p.depth);
  sqlite3_bind_text(insert_, 5, p.fields.data(), static_cast<int>(p.fields.size()), SQLITE_STATIC);
  const int rc = sqlite3_step(insert_);
  sqlite3_reset(insert_);
  sqlite3_clear_bindings(insert_);
  check(rc, "cannot write");
}

std::size_t SpillFile::pop(std::uint32_t host, std::size_t n, std::vector<Parked>& out) {
  if (in_txn_) {
    in_txn_ = false;
    check(sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr), "cannot write");
  }
  sqlite3_bind_int64(select_, 1, host);
  sqlite3_bind_int64(select_, 2, static_cast<sqlite3_int64>(n));
  sqlite3_int64 last = -1;
  std::size_t count = 0;
  int rc;
  while ((rc = sqlite3_step(select_)) == SQLITE_ROW) {
    last = sqlite3_column_int64(select_, 0);
    out.push_back(Parked{column_text(select_, 1), column_text(select_, 2), sqlite3_column_int(select_, 3),
                         column_text(select_, 4)});
    ++count;
  }
  sqlite3_reset(select_);
  check(rc, "cannot read");
  if (count == 0) return 0;
  sqlite3_bind_int64(remove_, 1, host);
  sqlite3_bind_int64(remove_, 2, last);
  rc = sqlite3_step(remove_);
  sqlite3_reset(remove_);
  check(rc, "cannot delete");
  return count;
}

HostQueues::HostQueues(std::size_t memory, std::size_t per_host, std::string spill_dir)
    : memory_(std::max<std::size_t>(memory, 1)), per_host_(per_host), spill_dir_(std::move(spill_dir)) {}

HostQueues::~HostQueues() = default;

void HostQueues::unlist(std::uint32_t id) {
  Host& h = hosts_[id];
  if (!h.listed) return;
  ready_.erase(key(id));
  h.listed = false;
}

void HostQueues::relist(std::uint32_t id) {
  Host& h = hosts_[id];
  const bool eligible = h.in_memory + h.spilled > 0 && (per_host_ == 0 || h.out < per_host_);
  if (eligible == h.listed) return;
  if (eligible) {
    ready_.insert(key(id));
  } else {
    ready_.erase(key(id));
  }
  h.listed = eligible;
}

// A host with nothing parked and nothing out is forgotten: a broad crawl's host table holds only
// the hosts it is working on.
void HostQueues::forget_if_idle(std::uint32_t id) {
  Host& h = hosts_[id];
  if (h.in_memory + h.spilled + h.out > 0) return;
  by_name_.erase(h.name);
  h = Host{};
  free_hosts_.push_back(id);
}

void HostQueues::append(std::uint32_t id, Parked p) {
  std::uint32_t slot;
  if (free_slots_.empty()) {
    slot = static_cast<std::uint32_t>(slots_.size());
    slots_.push_back(Slot{std::move(p), kNone});
  } else {
    slot = free_slots_.back();
    free_slots_.pop_back();
    slots_[slot] = Slot{std::move(p), kNone};
  }
  Host& h = hosts_[id];
  if (h.tail == kNone) {
    h.head = slot;
  } else {
    slots_[h.tail].next = slot;
  }
  h.tail = slot;
  ++h.in_memory;
  ++in_memory_;
}

void HostQueues::push(const std::string& host, Parked p) {
  auto [it, fresh] = by_name_.try_emplace(host, 0);
  if (fresh) {
    if (free_hosts_.empty()) {
      it->second = static_cast<std::uint32_t>(hosts_.size());
      hosts_.emplace_back();
    } else {
      it->second = free_hosts_.back();
      free_hosts_.pop_back();
    }
    hosts_[it->second].name = host;
    hosts_[it->second].used = true;
  }
  const std::uint32_t id = it->second;
  Host& h = hosts_[id];
  // A host's URLs keep their order: once some of them are spilled, the later ones follow them.
  if (h.spilled == 0 && in_memory_ < memory_) {
    append(id, std::move(p));
  } else {
    try {
      if (!spill_) spill_ = std::make_unique<SpillFile>(spill_dir_);
      spill_->push(id, p);
    } catch (...) {
      forget_if_idle(id);
      throw;
    }
    ++h.spilled;
    ++spilled_;
  }
  relist(id);
}

std::optional<HostQueues::Out> HostQueues::pop() {
  if (ready_.empty()) return std::nullopt;
  const std::uint32_t id = std::get<2>(*ready_.begin());
  Host& h = hosts_[id];
  if (h.in_memory == 0) {
    // Its oldest spilled URLs, as many as memory has room for (one at least).
    std::vector<Parked> back;
    const std::size_t room = memory_ > in_memory_ ? memory_ - in_memory_ : 0;
    const std::size_t got =
        spill_->pop(id, std::clamp<std::size_t>(room, 1, std::min<std::size_t>(h.spilled, 1024)), back);
    h.spilled -= got;
    spilled_ -= got;
    for (Parked& p : back) append(id, std::move(p));
    if (got == 0) {
      throw NodeError(fmt::format("spill file '{}': the {} URLs of host '{}' it held are missing", spill_->path(),
                                  h.spilled, h.name));
    }
  }
  unlist(id);
  const std::uint32_t slot = h.head;
  Out out{std::move(slots_[slot].url), id};
  h.head = slots_[slot].next;
  if (h.head == kNone) h.tail = kNone;
  slots_[slot].url = Parked{};
  free_slots_.push_back(slot);
  --h.in_memory;
  --in_memory_;
  ++h.out;
  h.served = ++turn_;
  relist(id);
  return out;
}

void HostQueues::done(std::uint32_t id) {
  unlist(id);
  --hosts_[id].out;
  relist(id);
  forget_if_idle(id);
}

void HostQueues::clear() {
  ready_.clear();
  for (std::uint32_t id = 0; id < hosts_.size(); ++id) {
    Host& h = hosts_[id];
    if (!h.used) continue;
    h.head = h.tail = kNone;
    h.in_memory = h.spilled = 0;
    h.listed = false;
    forget_if_idle(id);
  }
  slots_.clear();
  free_slots_.clear();
  in_memory_ = spilled_ = 0;
  spill_.reset();
}

}  // namespace sluice::nodes
