#include "sqlite_query.hpp"

#include <fmt/format.h>

#include <filesystem>
#include <set>

#include "sluice/diagnostics.hpp"
#include "sluice/node.hpp"

namespace sluice::nodes {
namespace {

// SQLite reads a file's header only at the first statement that needs it: a file that is not a
// database (a CSV given by mistake) would otherwise fail later, in words about whatever statement
// came first (a PRAGMA, the query's copy). Any other error is left to that statement, which knows
// more (a database locked by another writer waits out busy_timeout there).
void check_database(sqlite3* db, const std::string& path) {
  if (sqlite3_exec(db, "PRAGMA schema_version", nullptr, nullptr, nullptr) == SQLITE_NOTADB) {
    std::string why = sqlite3_errmsg(db);
    sqlite3_close(db);
    throw NodeError(fmt::format("cannot open database '{}': {}", path, why));
  }
}

}  // namespace

sqlite3* open_readonly(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    throw NodeError(fmt::format("cannot open database '{}': no such file{}", path, missing_folder_note(path)));
  }
  if (auto why = not_a_file(path); !why.empty()) {
    throw NodeError(fmt::format("cannot open database '{}': {}", path, why));
  }
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string why = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    throw NodeError(fmt::format("cannot open database '{}': {}", path, why));
  }
  check_database(db, path);
  return db;
}

sqlite3* open_writable(const std::string& path) {
  if (auto why = not_a_file(path); !why.empty()) {
    throw NodeError(fmt::format("cannot open database '{}': {}", path, why));
  }
  sqlite3* db = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string why = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    throw NodeError(fmt::format("cannot open database '{}': {}{}", path, why, missing_folder_note(path)));
  }
  check_database(db, path);
  return db;
}

sqlite3_stmt* prepare_select(sqlite3* db, const std::string& path, const std::string& query,
                             std::vector<std::string>& names) {
  sqlite3_stmt* stmt = nullptr;
  const char* tail = nullptr;
  if (sqlite3_prepare_v2(db, query.c_str(), static_cast<int>(query.size()), &stmt, &tail) != SQLITE_OK) {
    throw NodeError(fmt::format("query on '{}': {}", path, sqlite3_errmsg(db)));
  }
  if (!stmt) throw NodeError("query is empty: expected a SELECT");
  try {
    // Anything after the first statement but blanks, semicolons and comments is a second statement.
    while (tail && *tail) {
      sqlite3_stmt* second = nullptr;
      const char* rest = nullptr;
      if (sqlite3_prepare_v2(db, tail, -1, &second, &rest) != SQLITE_OK || second) {
        sqlite3_finalize(second);
        throw NodeError("query holds more than one statement: expected one SELECT");
      }
      if (rest == tail) break;
      tail = rest;
    }
    if (sqlite3_bind_parameter_count(stmt) > 0) {
      throw NodeError(
          fmt::format("query has parameters ({}): nothing binds them; write the values in the query, "
                      "or ${{NAME}} for an environment variable",
                      sqlite3_bind_parameter_name(stmt, 1) ? sqlite3_bind_parameter_name(stmt, 1) : "?"));
    }
    if (!sqlite3_stmt_readonly(stmt)) {
      throw NodeError(fmt::format("query must only read (a SELECT): '{}'", sqlite3_sql(stmt)));
    }
    const int columns = sqlite3_column_count(stmt);
    if (columns == 0) throw NodeError(fmt::format("query returns no columns: '{}'", sqlite3_sql(stmt)));
    std::set<std::string> seen;
    names.clear();
    for (int i = 0; i < columns; ++i) {
      std::string name = sqlite3_column_name(stmt, i);
      if (!seen.insert(name).second) {
        throw NodeError(fmt::format(
            "query returns two columns named '{}': each column becomes the record field of its name; rename one "
            "with AS",
            name));
      }
      names.push_back(std::move(name));
    }
  } catch (...) {
    sqlite3_finalize(stmt);
    throw;
  }
  return stmt;
}

}  // namespace sluice::nodes
