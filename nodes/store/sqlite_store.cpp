// store.sqlite: writes records to a SQLite table in WAL mode, one transaction per batch, on the
// sink's own thread. Nothing from YAML is ever spliced into SQL except checked identifiers (quoted)
// and checked pragma values.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <simdjson.h>
#include <sqlite3.h>

#include <algorithm>
#include <cctype>
#include <optional>
#include <set>

#include "../builtin.hpp"
#include "../core/field_presence.hpp"
#include "../text.hpp"
#include "sluice/json.hpp"
#include "sluice/state.hpp"
#include "sqlite_query.hpp"

namespace sluice::nodes {
namespace {

const std::vector<std::string> kSqlTypes = {"TEXT", "INTEGER", "REAL", "BLOB", "NUMERIC"};

bool plain_identifier(std::string_view name) {
  if (name.empty() || name.size() > 64 || !(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_')) {
    return false;
  }
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

std::string check_identifier(const Value& v) {
  std::string name = v.to_text();
  if (plain_identifier(name)) return "";
  return fmt::format("'{}' is not a plain SQL name (letters, digits and '_', starting with a letter or '_')", name);
}

std::string quote(std::string_view name) {
  return fmt::format("\"{}\"", name);
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

struct Column {
  std::string name;
  std::string type;   // one of kSqlTypes
  std::string field;  // record field it is read from
};

// The rows of one batch as flat values: one cell per column, text and blobs in one buffer, and
// each row's description (for an error message). Binds a row to the INSERT with pointers into
// the buffer, valid until the next add() or clear().
class FlatRows {
 public:
  // What column `c` reads from `r`: its field, or for `_error` the attached error's message
  // (on_error: route), put in `scratch`; null when the record has neither.
  static const Value* value_of(const Record& r, const Column& c, Value& scratch) {
    const Value* v = r.get(c.field);
    if (v || c.field != "_error" || !r.error) return v;
    scratch = Value(r.error->message);
    return &scratch;
  }
  // Whether `r` has a value (not null) for column `c`.
  static bool has_value(const Record& r, const Column& c) {
    Value scratch;
    const Value* v = value_of(r, c, scratch);
    return v && !v->is_null();
  }

  void add(const Record& r, const std::vector<Column>& columns) {
    Value scratch;
    for (const Column& c : columns) cells_.push_back(cell(c, value_of(r, c, scratch)));
    const std::string description = r.describe();
    descriptions_.push_back(Span{text_.size(), description.size()});
    text_ += description;
  }
  std::size_t rows() const { return descriptions_.size(); }
  std::size_t bytes() const { return text_.size() + cells_.size() * sizeof(Cell); }
  std::string_view description(std::size_t row) const {
    return std::string_view(text_).substr(descriptions_[row].offset, descriptions_[row].size);
  }
  void bind(std::size_t row, sqlite3_stmt* insert) const {
    const std::size_t width = cells_.size() / rows();
    for (std::size_t i = 0; i < width; ++i) {
      const Cell& c = cells_[row * width + i];
      const int index = static_cast<int>(i + 1);
      const char* data = text_.data() + c.span.offset;
      switch (c.kind) {
        case Cell::Kind::null:
          sqlite3_bind_null(insert, index);
          break;
        case Cell::Kind::integer:
          sqlite3_bind_int64(insert, index, c.integer);
          break;
        case Cell::Kind::real:
          sqlite3_bind_double(insert, index, c.real);
          break;
        case Cell::Kind::text:
          sqlite3_bind_text(insert, index, data, static_cast<int>(c.span.size), SQLITE_STATIC);
          break;
        case Cell::Kind::blob:
          sqlite3_bind_blob(insert, index, data, static_cast<int>(c.span.size), SQLITE_STATIC);
          break;
      }
    }
  }
  void clear() {
    cells_.clear();
    descriptions_.clear();
    text_.clear();
  }

 private:
  struct Span {
    std::size_t offset = 0, size = 0;
  };
  struct Cell {
    enum class Kind : std::uint8_t { null, integer, real, text, blob } kind = Kind::null;
    std::int64_t integer = 0;
    double real = 0;
    Span span;
  };

  Cell cell(const Column& column, const Value* v) {
    Cell c;
    if (!v || v->is_null()) return c;
    if (const auto* b = v->as_bool()) {
      c.kind = Cell::Kind::integer;
      c.integer = *b ? 1 : 0;
    } else if (const auto* i = v->as_int()) {
      c.kind = Cell::Kind::integer;
      c.integer = *i;
    } else if (const auto* d = v->as_double()) {
      c.kind = Cell::Kind::real;
      c.real = *d;
    } else if (const auto* s = v->as_string()) {
      c.kind = text_or_blob(*s);
      c.span = append(*s);
    } else if (const auto* bytes = v->as_bytes()) {
      c.kind = column.type == "BLOB" ? Cell::Kind::blob : text_or_blob(bytes->view());
      c.span = append(bytes->view());
    } else {
      std::string json;
      append_json(json, *v);
      c.kind = Cell::Kind::text;
      c.span = append(json);
    }
    return c;
  }
  // Text that is not UTF-8 (a page body in Shift_JIS, a URL list in Latin-1) is stored as it is, as
  // a BLOB: as TEXT it would stop readers that decode every TEXT value as UTF-8 (Python's sqlite3
  // fails the whole query), and replacing its bytes would lose the original.
  static Cell::Kind text_or_blob(std::string_view data) {
    return simdjson::validate_utf8(data.data(), data.size()) ? Cell::Kind::text : Cell::Kind::blob;
  }
  Span append(std::string_view data) {
    Span span{text_.size(), data.size()};
    text_ += data;
    return span;
  }

  std::vector<Cell> cells_;
  std::vector<Span> descriptions_;
  std::string text_;
};

class SqliteStore final : public SinkNode {
 public:
  SqliteStore(std::string id, std::string path, std::string table, std::vector<Column> columns,
              std::vector<std::string> key, std::vector<std::string> keep_existing,
              std::vector<std::vector<std::string>> indexes, std::size_t rows, std::chrono::nanoseconds interval,
              std::vector<std::pair<std::string, std::string>> pragmas, RunState* state,
              std::function<void(std::string)> notice)
      : state_(state),
        id_(std::move(id)),
        path_(std::move(path)),
        table_(std::move(table)),
        columns_(std::move(columns)),
        key_(std::move(key)),
        keep_existing_(std::move(keep_existing)),
        indexes_(std::move(indexes)),
        rows_(rows),
        interval_(interval),
        presence_(unkeyed_columns(columns_, key_), "row", "null", notice),
        notice_(std::move(notice)) {
    for (const auto& k : key_) {
      for (const auto& c : columns_) {
        if (c.name == k) key_columns_.push_back(&c);
      }
    }
    db_ = open_writable(path_);
    // synchronous=NORMAL: Debian builds SQLite with FULL as the default even in WAL mode.
    std::vector<std::pair<std::string, std::string>> settings = {
        {"busy_timeout", "5000"}, {"journal_mode", "WAL"},         {"synchronous", "NORMAL"},
        {"cache_size", "-16384"}, {"wal_autocheckpoint", "10000"}, {"journal_size_limit", "67108864"},
        {"temp_store", "MEMORY"},
    };
    for (auto& pragma : pragmas) {
      auto it = std::find_if(settings.begin(), settings.end(), [&](auto& p) { return p.first == pragma.first; });
      if (it != settings.end()) {
        it->second = pragma.second;
      } else {
        settings.push_back(pragma);
      }
    }
    try {
      for (const auto& [name, value] : settings)
        exec(fmt::format("PRAGMA {}={}", name, value), "setting PRAGMA " + name);
      prepare_table();
      make_indexes();
      prepare_insert();
      if (!key_.empty()) empty_at_start_ = max_rowid() == 0;
    } catch (...) {
      sqlite3_finalize(insert_);
      sqlite3_close(db_);
      throw;
    }
  }

  ~SqliteStore() override {
    sqlite3_finalize(insert_);
    sqlite3_close(db_);
  }

  // Rows wait as flat values (batch_) until a batch is due (`rows` rows, kMaxPendingBytes of
  // values, or flush() after `interval`), then go in with one short transaction: the file's write
  // lock is held for the inserts only, not while rows trickle in, so another writer of the same
  // file (a second store, the run state) does not sleep in SQLite's busy handler for up to
  // `interval`. Records are taken apart as they arrive and freed here while their memory is still
  // in cache. Until COMMIT the store keeps the rows' permits, so a limit upstream still counts them
  // as in flight; a failed batch is rolled back whole, and nothing of it is ever visible.
  // A batch that fails to commit does not take the rest of `records` with it: they start the next
  // batch (committed by close() when the run fails), and the error names only the lost rows.
  //
  // A record with no value for a key column is not stored: SQLite's UNIQUE lets any number of
  // NULLs through, so such a row would never be replaced (a resumed run, or the next run, would
  // add it again). Such records are counted as lost, and reported with the first one.
  void write(std::vector<Record>& records) override {
    std::optional<SinkBatchError> failed;
    std::size_t keyless = 0;
    std::string first_keyless;
    for (Record& r : records) {
      if (const Column* missing = missing_key(r)) {
        if (keyless++ == 0) {
          first_keyless =
              fmt::format("key column '{}' has no value (record field '{}' is {}) in record '{}'", missing->name,
                          missing->field, r.get(missing->field) ? "null" : "missing", r.describe());
        }
        continue;
      }
      batch_.add(r, columns_);
      presence_.see(r);
      for (auto& p : r.permits) held_.push_back(std::move(p));
      for (auto& p : r.fetch_permits) held_.push_back(std::move(p));
      if (batch_.rows() >= rows_ || batch_.bytes() >= kMaxPendingBytes) {
        try {
          flush();
        } catch (const SinkBatchError& e) {
          SinkBatchError::collect(failed, e);
        }
      }
    }
    records.clear();
    if (keyless > 0) {
      SinkBatchError::collect(
          failed,
          SinkBatchError(fmt::format("{}{}: not stored, since a row without its key would never be replaced "
                                     "(a filter with 'op: exists' before the store drops such records)",
                                     keyless > 1 ? fmt::format("{} records without a key; the first: ", keyless) : "",
                                     first_keyless),
                         keyless));
    }
    if (failed) throw *failed;
  }

  // A store that hosts the run state also commits progress that waits for a transaction.
  bool buffered() const override { return batch_.rows() > 0 || (state_ && state_->has_pending()); }
  std::chrono::nanoseconds max_delay() const override { return interval_; }

  void flush() override {
    if (batch_.rows() == 0 && (!state_ || !state_->has_pending())) return;
    if (sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) {
      drop_batch("dropped", "", "could not start a transaction: " + sqlite_error());
    }
    for (std::size_t row = 0; row < batch_.rows(); ++row) {
      batch_.bind(row, insert_);
      int rc = sqlite3_step(insert_);
      sqlite3_reset(insert_);
      if (rc != SQLITE_DONE) rollback(std::string(batch_.description(row)));
    }
    if (state_) {
      // The run's progress commits with these rows (see sluice/state.hpp).
      try {
        state_->write_in(db_, held_);
      } catch (const std::exception& e) {
        rollback("", e.what());
      }
    }
    if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) rollback("");
    if (state_) state_->committed(db_);
    committed_ += batch_.rows();
    clear_pending();  // committed: the rows' limit slots are free now
  }

  void close() override {
    presence_.finish();
    flush();
    if (db_) sqlite3_exec(db_, "PRAGMA optimize", nullptr, nullptr, nullptr);
    warn_of_key();
  }

 private:
  // A key that is not unique to a record (items keyed by their page's URL) makes later records
  // replace earlier ones of the same run, and fails nothing: a table that was empty when the run
  // began and holds fewer rows than half the records it was given says so. (Rows of a rowid table
  // get max(rowid) + 1 each, so the rows this run added are the growth of max(rowid); a record
  // that went into a row stored earlier, by this node or another, added none.)
  void warn_of_key() {
    if (!empty_at_start_ || committed_ == 0 || !notice_) return;
    const auto rows = static_cast<std::uint64_t>(std::max<std::int64_t>(0, max_rowid()));
    if (rows == 0 || rows >= committed_ || committed_ - rows <= rows) return;  // 0: no rowid table
    notice_(
        fmt::format("{} records went into {} rows of table '{}': {} had the key ({}) of a row this run "
                    "had stored already, and went into it; if each record is a row of its own, the key is not "
                    "unique to one (a page's items need more than the page's URL: key: [page_url, name])",
                    committed_, rows, table_, committed_ - rows, fmt::join(key_, ", ")));
  }

  // The largest rowid of the table, 0 when it is empty (or not a rowid table).
  std::int64_t max_rowid() const {
    sqlite3_stmt* st = nullptr;
    std::int64_t max = 0;
    if (sqlite3_prepare_v2(db_, fmt::format("SELECT max(rowid) FROM {}", quote(table_)).c_str(), -1, &st, nullptr) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
      max = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return max;
  }

  // The columns a record may lack without an error (one without a key is refused, loudly).
  static std::vector<FieldPresence::Watched> unkeyed_columns(const std::vector<Column>& columns,
                                                             const std::vector<std::string>& key) {
    std::vector<FieldPresence::Watched> watched;
    for (const auto& c : columns) {
      if (std::find(key.begin(), key.end(), c.name) == key.end())
        watched.push_back({fmt::format("column '{}'", c.name), c.field});
    }
    return watched;
  }

  const Column* missing_key(const Record& r) const {
    for (const Column* c : key_columns_) {
      if (!FlatRows::has_value(r, *c)) return c;
    }
    return nullptr;
  }

  [[noreturn]] void rollback(const std::string& record, std::string why = "") {
    if (why.empty()) why = sqlite_error();
    // Progress it took goes back to the queue before the write lock is given up, ahead of what
    // another store's next transaction takes.
    if (state_) state_->rolled_back(db_);
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    drop_batch("rolled back", record, why);
  }

  // The pending rows are lost: dropped, with their permits, and reported with their count. Their
  // records are not done (a resumed run stores them).
  [[noreturn]] void drop_batch(std::string_view what, const std::string& record, const std::string& why) {
    const std::size_t rows = batch_.rows();
    mark_unfinished(held_);
    clear_pending();
    throw SinkBatchError(fmt::format("batch of {} rows {}, nothing of it stored in '{}'{}: {}", rows, what, path_,
                                     record.empty() ? "" : fmt::format(" (at record '{}')", record), why),
                         rows);
  }

  // SQLite's message, and the result code's text when it says more ("NOT NULL constraint failed: t.name
  // (constraint failed)"); not "database or disk is full (database or disk is full)".
  std::string sqlite_error() const {
    std::string message = sqlite3_errmsg(db_);
    std::string code = sqlite3_errstr(sqlite3_extended_errcode(db_));
    return code == message ? message : fmt::format("{} ({})", message, code);
  }

  void clear_pending() {
    batch_.clear();
    held_.clear();
  }

  void exec(const std::string& sql, const std::string& what) {
    char* error = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
      std::string why = error ? error : sqlite3_errmsg(db_);
      sqlite3_free(error);
      throw NodeError(fmt::format("{} on '{}' failed: {}", what, path_, why));
    }
  }

  void prepare_table() {
    std::vector<std::pair<std::string, std::string>> existing;
    sqlite3_stmt* info = nullptr;
    sqlite3_prepare_v2(db_, fmt::format("PRAGMA table_info({})", quote(table_)).c_str(), -1, &info, nullptr);
    while (info && sqlite3_step(info) == SQLITE_ROW) {
      existing.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(info, 1)),
                            upper(reinterpret_cast<const char*>(sqlite3_column_text(info, 2))));
    }
    sqlite3_finalize(info);
    auto describe = [](const auto& cols) {
      std::string out;
      for (const auto& c : cols) out += (out.empty() ? "" : ", ") + c.first + " " + c.second;
      return out;
    };
    std::vector<std::pair<std::string, std::string>> wanted;
    for (const auto& c : columns_) wanted.emplace_back(c.name, c.type);
    if (existing.empty()) {
      std::string defs;
      for (const auto& c : columns_) defs += (defs.empty() ? "" : ", ") + quote(c.name) + " " + c.type;
      if (!key_.empty()) defs += fmt::format(", UNIQUE ({})", quoted_keys());
      exec(fmt::format("CREATE TABLE {} ({})", quote(table_), defs), fmt::format("creating table '{}'", table_));
      return;
    }
    // A column the pipeline gained is added (a scraper grows a field; its older rows hold NULL). A
    // column it no longer writes, or one of another type, is an error: it may be the wrong table.
    std::vector<std::pair<std::string, std::string>> added;
    for (const auto& w : wanted) {
      if (std::find(existing.begin(), existing.end(), w) == existing.end()) added.push_back(w);
    }
    const bool covered = std::all_of(existing.begin(), existing.end(), [&](const auto& e) {
      return std::find(wanted.begin(), wanted.end(), e) != wanted.end();
    });
    if (!covered) {
      throw NodeError(
          fmt::format("table '{}' in '{}' exists with columns ({}), but this node writes ({}); use another "
                      "table or migrate it (a column the node adds is added by itself; one it drops or "
                      "retypes is not)",
                      table_, path_, describe(existing), describe(wanted)));
    }
    if (!added.empty()) {
      std::string sql = "BEGIN IMMEDIATE;";
      for (const auto& [name, type] : added)
        sql += fmt::format(" ALTER TABLE {} ADD COLUMN {} {};", quote(table_), quote(name), type);
      exec(sql + " COMMIT", fmt::format("adding columns to table '{}'", table_));
    }
    if (!key_.empty() && !has_unique_index()) {
      // A key given to a pipeline that had none: the index UPSERT needs is made, unless rows repeat
      // a key already (then which to keep is the user's choice).
      exec(
          fmt::format("CREATE UNIQUE INDEX {} ON {} ({})", quote("sluice_key_" + table_), quote(table_), quoted_keys()),
          fmt::format("making the UNIQUE index key ({}) needs on table '{}' (no two rows may have the same key)",
                      fmt::join(key_, ", "), table_));
    }
  }

  // The `indexes` (CREATE INDEX IF NOT EXISTS: a run again, or another store on the table, finds
  // them made), named after their table and columns: sluice_index_items_category_price.
  void make_indexes() {
    for (const auto& columns : indexes_) {
      std::string quoted;
      for (const auto& c : columns) quoted += (quoted.empty() ? "" : ", ") + quote(c);
      const std::string name = fmt::format("sluice_index_{}_{}", table_, fmt::join(columns, "_"));
      exec(fmt::format("CREATE INDEX IF NOT EXISTS {} ON {} ({})", quote(name), quote(table_), quoted),
           fmt::format("making the index ({}) on table '{}'", fmt::join(columns, ", "), table_));
    }
  }

  // The key's columns as SQL names: "url", "sku"
  std::string quoted_keys() const {
    std::string keys;
    for (const auto& k : key_) keys += (keys.empty() ? "" : ", ") + quote(k);
    return keys;
  }

  bool has_unique_index() {
    std::set<std::string> wanted(key_.begin(), key_.end());
    sqlite3_stmt* list = nullptr;
    sqlite3_prepare_v2(db_, fmt::format("PRAGMA index_list({})", quote(table_)).c_str(), -1, &list, nullptr);
    bool found = false;
    while (!found && list && sqlite3_step(list) == SQLITE_ROW) {
      if (sqlite3_column_int(list, 2) == 0) continue;  // not unique
      std::string index = reinterpret_cast<const char*>(sqlite3_column_text(list, 1));
      sqlite3_stmt* cols = nullptr;
      sqlite3_prepare_v2(db_, fmt::format("PRAGMA index_info({})", quote(index)).c_str(), -1, &cols, nullptr);
      std::set<std::string> have;
      while (cols && sqlite3_step(cols) == SQLITE_ROW) {
        if (const unsigned char* n = sqlite3_column_text(cols, 2)) have.insert(reinterpret_cast<const char*>(n));
      }
      sqlite3_finalize(cols);
      found = have == wanted;
    }
    sqlite3_finalize(list);
    return found;
  }

  void prepare_insert() {
    std::string names, marks, updates;
    for (const auto& c : columns_) {
      names += (names.empty() ? "" : ", ") + quote(c.name);
      marks += marks.empty() ? "?" : ", ?";
      if (std::find(key_.begin(), key_.end(), c.name) == key_.end() &&
          std::find(keep_existing_.begin(), keep_existing_.end(), c.name) == keep_existing_.end()) {
        updates += fmt::format("{}{} = excluded.{}", updates.empty() ? "" : ", ", quote(c.name), quote(c.name));
      }
    }
    std::string sql = fmt::format("INSERT INTO {} ({}) VALUES ({})", quote(table_), names, marks);
    if (!key_.empty()) {
      sql += updates.empty() ? fmt::format(" ON CONFLICT ({}) DO NOTHING", quoted_keys())
                             : fmt::format(" ON CONFLICT ({}) DO UPDATE SET {}", quoted_keys(), updates);
    }
    if (sqlite3_prepare_v3(db_, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &insert_, nullptr) != SQLITE_OK) {
      throw NodeError(fmt::format("preparing the insert into '{}' failed: {}", table_, sqlite3_errmsg(db_)));
    }
  }

  RunState* state_;  // the run state this store hosts, else null
  std::string id_, path_, table_;
  std::vector<Column> columns_;
  std::vector<std::string> key_;
  std::vector<std::string> keep_existing_;         // columns an UPSERT does not update
  std::vector<std::vector<std::string>> indexes_;  // the columns of each index to make
  std::vector<const Column*> key_columns_;         // into columns_
  std::size_t rows_;
  std::chrono::nanoseconds interval_;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;
  // A batch is due at `rows_` rows or at kMaxPendingBytes of values, whichever comes first (pages
  // with large bodies).
  static constexpr std::size_t kMaxPendingBytes = 8 << 20;
  FlatRows batch_;
  std::vector<PermitRef> held_;
  FieldPresence presence_;  // columns no record had
  std::function<void(std::string)> notice_;
  bool empty_at_start_ = false;  // with a key: the table had no rows when the run began
  std::uint64_t committed_ = 0;  // records committed by this node
};

std::string check_pragma_value(const Value& v) {
  std::string text = v.to_text();
  bool number = !text.empty() && std::all_of(text.begin() + (text[0] == '-' ? 1 : 0), text.end(),
                                             [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
  if (number || plain_identifier(text)) return "";
  return fmt::format("'{}' is not a number or a plain word", text);
}

Schema batch_schema() {
  return Schema({
      FieldSpec::integer("rows", "rows per transaction").with_default("1000").at_least(1),
      FieldSpec::duration("interval", "the longest a row waits before its transaction commits").with_default("200ms"),
  });
}

// The columns of an `indexes` entry: "listed", or "category, price" for one index on both.
std::vector<std::string> index_columns(std::string_view spec) {
  std::vector<std::string> out;
  for (std::size_t start = 0; start <= spec.size();) {
    const std::size_t comma = std::min(spec.find(',', start), spec.size());
    out.emplace_back(nodes::trim(spec.substr(start, comma - start), " "));
    start = comma + 1;
  }
  return out;
}

void check(const Config& c, const Location& owner, Diagnostics& diags) {
  if (!c.has("columns")) return;  // missing: reported already
  std::set<std::string> names;
  for (const auto& [name, type] : c.map("columns")) names.insert(name);
  if (names.empty()) diags.error(owner, "store.sqlite needs at least one column in 'columns'");
  for (const auto& k : c.list("key")) {
    std::string name = std::get<Value>(k.v).to_text();
    if (!names.count(name)) diags.error(k.where, fmt::format("key column '{}' is not one of the columns", name));
  }
  for (const auto& [column, field] : c.map("fields")) {
    if (!names.count(column)) {
      diags.error(field.where, fmt::format("fields: '{}' is not one of the columns", column));
    }
  }
  for (const auto& index : c.list("indexes")) {
    for (const auto& column : index_columns(std::get<Value>(index.v).to_text())) {
      if (column.empty()) {
        diags.error(index.where, "indexes: an index names its columns, separated by commas ('category, price')");
      } else if (!names.count(column)) {
        diags.error(index.where, fmt::format("indexes: '{}' is not one of the columns", column));
      }
    }
  }
  std::set<std::string> key;
  for (const auto& k : c.list("key")) key.insert(std::get<Value>(k.v).to_text());
  for (const auto& k : c.list("keep_existing")) {
    std::string name = std::get<Value>(k.v).to_text();
    if (key.empty()) {
      diags.error(k.where, "keep_existing needs a key: without one every record is a row of its own");
      break;
    }
    if (!names.count(name)) {
      diags.error(k.where, fmt::format("keep_existing: '{}' is not one of the columns", name));
    } else if (key.count(name)) {
      diags.error(k.where, fmt::format("keep_existing: '{}' is a key column, which an UPSERT never changes", name));
    }
  }
}

}  // namespace

NodeType store_sqlite_type() {
  NodeType t;
  t.name = "store.sqlite";
  t.kind = NodeKind::sink;
  t.summary = "writes records to a SQLite table (WAL, one transaction per batch, optional UPSERT on a key)";
  t.ports = {{"in", PortDirection::input, "records to store"}};
  auto identifier = [](std::string name, std::string doc) {
    return FieldSpec::string(std::move(name), std::move(doc)).validated_by(check_identifier);
  };
  t.schema = Schema(
      {
          FieldSpec::string("path", "the database file (created when missing)").make_required(),
          identifier("table", "the table (created when missing; an existing one must have the same columns)")
              .make_required(),
          FieldSpec::map("columns", FieldSpec::enumeration("type", kSqlTypes, "SQL type"),
                         "column name -> SQL type, in table order; each column reads the record field of the same "
                         "name unless 'fields' says otherwise")
              .keys_validated_by(check_identifier)
              .make_required(),
          FieldSpec::map("fields", FieldSpec::string("field", "a record field"),
                         "column -> record field, where they differ")
              .with_default(""),
          FieldSpec::list("key", FieldSpec::string("column", "a column").validated_by(check_identifier),
                          "columns that identify a row: writes become UPSERTs (ON CONFLICT DO UPDATE)")
              .with_default(""),
          FieldSpec::list("keep_existing", FieldSpec::string("column", "a column").validated_by(check_identifier),
                          "with key: columns an UPSERT leaves as they are, so that a row keeps the value it was "
                          "first stored with (a first_seen date); every column but the key: a row there is kept "
                          "whole and later records of its key are dropped (ON CONFLICT DO NOTHING)")
              .with_default(""),
          FieldSpec::list("indexes",
                          FieldSpec::string("index", "a column, or several separated by commas ('category, price')"),
                          "indexes to make on the table (if not there yet), for the queries that read it: "
                          "[listed, 'category, price'] (each costs its share of every write)")
              .with_default(""),
          FieldSpec::object_of("batch", batch_schema(), "transaction size and latency").with_default("{}"),
          FieldSpec::map("pragmas",
                         FieldSpec::scalar("value", "a number or a plain word").validated_by(check_pragma_value),
                         "PRAGMA overrides, e.g. {synchronous: FULL, cache_size: -65536}")
              .keys_validated_by(check_identifier)
              .with_default(""),
      },
      check);
  t.factory = [](const NodeContext& ctx) -> std::unique_ptr<Node> {
    const Config& c = ctx.config;
    std::vector<Column> columns;
    for (const auto& [name, type] : c.map("columns")) {
      std::string field = name;
      for (const auto& [column, f] : c.map("fields")) {
        if (column == name) field = std::get<Value>(f.v).to_text();
      }
      columns.push_back(Column{name, std::get<Value>(type.v).to_text(), field});
    }
    std::vector<std::string> key;
    for (const auto& k : c.list("key")) key.push_back(std::get<Value>(k.v).to_text());
    std::vector<std::string> keep_existing;
    for (const auto& k : c.list("keep_existing")) keep_existing.push_back(std::get<Value>(k.v).to_text());
    std::vector<std::vector<std::string>> indexes;
    for (const auto& i : c.list("indexes")) indexes.push_back(index_columns(std::get<Value>(i.v).to_text()));
    if (ctx.state && key.empty()) {
      throw NodeError(fmt::format(
          "table '{}' has no key: a resumable run (settings.state) redoes the work that was in flight when it "
          "stopped, so every store needs a key to replace those rows instead of storing them twice",
          c.string("table")));
    }
    std::vector<std::pair<std::string, std::string>> pragmas;
    for (const auto& [name, value] : c.map("pragmas")) pragmas.emplace_back(name, std::get<Value>(value.v).to_text());
    const Config& batch = c.object("batch");
    RunState* host = ctx.state && ctx.state->host(c.string("path")) ? ctx.state : nullptr;
    return std::make_unique<SqliteStore>(ctx.id, c.string("path"), c.string("table"), std::move(columns),
                                         std::move(key), std::move(keep_existing), std::move(indexes),
                                         static_cast<std::size_t>(batch.integer("rows")), batch.duration("interval"),
                                         std::move(pragmas), host, ctx.notice);
  };
  t.example = R"(- id: store
  type: store.sqlite
  path: shop.db
  table: items
  columns: {url: TEXT, name: TEXT, price: REAL, fetched_at: REAL}
  key: [url]
  batch: {rows: 1000, interval: 200ms})";
  return t;
}

}  // namespace sluice::nodes
