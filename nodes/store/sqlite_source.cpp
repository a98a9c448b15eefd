// source.sqlite: the rows of a SQL query as records, one field per result column. For pipelines
// that work from what an earlier one stored: the item URLs a crawl collected, the rows still
// missing a detail, the pages to fetch again.
#include <fmt/format.h>
#include <sqlite3.h>

#include <stop_token>

#include "../builtin.hpp"
#include "sqlite_query.hpp"

namespace sluice::nodes {
namespace {

// The factory prepares the query (so that a typo, a missing table or a statement that writes fails
// the pipeline before anything runs). The first next() copies the query's rows into a temporary
// table, then reads them from there: the query sees one snapshot of the database, taken when the
// source starts, and holds it only while it runs. A statement that streamed its rows for the whole
// run would hold that snapshot as long, and a store writing the same file in the same run could
// then never restart its WAL, which would grow with every row written. Rows go out with the types
// SQLite gives them: INTEGER an int, REAL a double, TEXT a string, BLOB bytes, NULL null.
class SqliteSource final : public SourceNode {
 public:
  SqliteSource(std::string path, const std::string& query, std::stop_token stop)
      : path_(std::move(path)), stop_(std::move(stop)) {
    db_ = open_readonly(path_);
    try {
      sqlite3_busy_timeout(db_, 5000);
      // A query that takes long (a scan of a large table) gives up when the run stops.
      sqlite3_progress_handler(
          db_, 1000, [](void* token) { return static_cast<std::stop_token*>(token)->stop_requested() ? 1 : 0; },
          &stop_);
      query_ = prepare_select(db_, path_, query, names_);
    } catch (...) {
      close();
      throw;
    }
  }
  ~SqliteSource() override { close(); }

  bool next(Record& out) override {
    if (!rows_) {
      if (!db_) return false;
      if (!copy_rows()) {  // the run stopped
        close();
        return false;
      }
    }
    int rc = sqlite3_step(rows_);
    if (rc == SQLITE_DONE) {
      close();
      return false;
    }
    if (rc != SQLITE_ROW) {
      if (stop_.stop_requested()) return false;
      throw NodeError(fmt::format("reading the query's rows of '{}' failed: {}", path_, sqlite3_errmsg(db_)));
    }
    out.reserve(names_.size());
    for (std::size_t i = 0; i < names_.size(); ++i) out.append(names_[i], column(rows_, static_cast<int>(i)));
    return true;
  }

 private:
  // Runs the query into temp.sluice_rows in one transaction. False when the run stopped meanwhile.
  bool copy_rows() {
    std::string create = "CREATE TEMP TABLE sluice_rows (";
    std::string insert = "INSERT INTO temp.sluice_rows VALUES (";
    for (std::size_t i = 0; i < names_.size(); ++i) {
      create += fmt::format("{}c{}", i ? ", " : "", i);  // no type: every value is kept as it is
      insert += i ? ", ?" : "?";
    }
    create += ")";
    insert += ")";
    exec(create);
    exec("BEGIN");
    sqlite3_stmt* put = nullptr;
    if (sqlite3_prepare_v2(db_, insert.c_str(), -1, &put, nullptr) != SQLITE_OK) fail("preparing the copy");
    int rc;
    while ((rc = sqlite3_step(query_)) == SQLITE_ROW) {
      for (int i = 0; i < static_cast<int>(names_.size()); ++i) {
        sqlite3_bind_value(put, i + 1, sqlite3_column_value(query_, i));
      }
      if (sqlite3_step(put) != SQLITE_DONE) {
        sqlite3_finalize(put);
        fail("copying the query's rows");
      }
      sqlite3_reset(put);
    }
    sqlite3_finalize(put);
    sqlite3_finalize(query_);  // ends the read of the snapshot
    query_ = nullptr;
    if (rc != SQLITE_DONE) {
      if (stop_.stop_requested()) return false;
      fail("running the query");
    }
    exec("COMMIT");
    if (sqlite3_prepare_v2(db_, "SELECT * FROM temp.sluice_rows", -1, &rows_, nullptr) != SQLITE_OK) {
      fail("reading the query's rows");
    }
    return true;
  }

  static Value column(sqlite3_stmt* stmt, int i) {
    switch (sqlite3_column_type(stmt, i)) {
      case SQLITE_INTEGER:
        return Value(static_cast<std::int64_t>(sqlite3_column_int64(stmt, i)));
      case SQLITE_FLOAT:
        return Value(sqlite3_column_double(stmt, i));
      case SQLITE_TEXT:
        return Value(std::string(reinterpret_cast<const char*>(sqlite3_column_text(stmt, i)),
                                 static_cast<std::size_t>(sqlite3_column_bytes(stmt, i))));
      case SQLITE_BLOB: {
        const auto* data = static_cast<const char*>(sqlite3_column_blob(stmt, i));
        return Value(Bytes(std::string(data ? data : "", static_cast<std::size_t>(sqlite3_column_bytes(stmt, i)))));
      }
      default:
        return Value();
    }
  }

  void exec(const std::string& sql) {
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) fail(sql);
  }

  [[noreturn]] void fail(const std::string& what) {
    throw NodeError(fmt::format("{} on '{}' failed: {}", what, path_, sqlite3_errmsg(db_)));
  }

  void close() {
    sqlite3_finalize(query_);
    sqlite3_finalize(rows_);
    query_ = rows_ = nullptr;
    sqlite3_close(db_);
    db_ = nullptr;
  }

  std::string path_;
  std::stop_token stop_;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* query_ = nullptr;  // the pipeline's query, until its rows are copied
  sqlite3_stmt* rows_ = nullptr;   // the copied rows, read one per next()
  std::vector<std::string> names_;
};

}  // namespace

NodeType source_sqlite_type() {
  NodeType t;
  t.name = "source.sqlite";
  t.kind = NodeKind::source;
  t.summary = "emits the rows of a SQL query on a SQLite database, one field per column";
  t.ports = {{"out", PortDirection::output, "one record per row"}};
  t.schema = Schema({
      FieldSpec::string("path", "the database file (opened read-only)").make_required(),
      FieldSpec::string("query",
                        "one SELECT; each result column becomes the record field of its name (rename with AS). "
                        "It reads the database as it is when the source starts; a resumed run runs it again")
          .make_required(),
  });
  // A resumed run runs the query again instead of skipping rows by their position: the rows it
  // returns may have changed (a pipeline that stores into the table it reads), and a query written
  // to leave out what is stored (WHERE NOT EXISTS ...) is what tells the work that is left.
  t.resumes_itself = true;
  t.factory = [](const NodeContext& ctx) -> std::unique_ptr<Node> {
    return std::make_unique<SqliteSource>(ctx.config.string("path"), ctx.config.string("query"), ctx.stop);
  };
  t.example = R"(- id: todo
  type: source.sqlite
  path: shop.db
  query: |
    SELECT url FROM items
    WHERE NOT EXISTS (SELECT 1 FROM details WHERE details.url = items.url))";
  return t;
}

}  // namespace sluice::nodes
