#include "expect.hpp"

#include <fmt/format.h>
#include <sqlite3.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <set>

namespace sluice::cli {

namespace {

std::string status_name(RunStatus s) {
  return s == RunStatus::succeeded ? "succeeded" : s == RunStatus::failed ? "failed" : "interrupted";
}

std::string quote_identifier(std::string_view name) {
  std::string out = "\"";
  for (char c : name) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// Rows of a read-only query as "a|b|c" strings; throws with SQLite's message.
std::vector<std::string> query(const std::string& path, const std::string& sql, int limit = -1) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    std::string why = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    throw std::runtime_error(fmt::format("cannot open '{}': {}", path, why));
  }
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
    std::string why = sqlite3_errmsg(db);
    sqlite3_close(db);
    throw std::runtime_error(fmt::format("'{}' on '{}': {}", sql, path, why));
  }
  std::vector<std::string> rows;
  while ((limit < 0 || static_cast<int>(rows.size()) < limit) && sqlite3_step(st) == SQLITE_ROW) {
    std::string row;
    for (int i = 0; i < sqlite3_column_count(st); ++i) {
      const unsigned char* text = sqlite3_column_text(st, i);
      if (i) row += '|';
      row += text ? reinterpret_cast<const char*>(text) : "NULL";
    }
    rows.push_back(std::move(row));
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return rows;
}

std::vector<std::pair<std::string, std::string>> store_tables(const Plan& plan) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& n : plan.nodes) {
    if (n.type->name == "store.sqlite") out.emplace_back(n.config.string("path"), n.config.string("table"));
  }
  return out;
}

// The database an assertion reads: its own `db`, else the one file every store writes to.
std::string database_of(const Plan& plan, const Config& c) {
  if (c.has("db")) return c.string("db");
  std::set<std::string> files;
  for (const auto& [path, table] : store_tables(plan)) files.insert(path);
  if (files.size() == 1) return *files.begin();
  throw std::runtime_error(fmt::format("{}: an assertion needs 'db:' here: the pipeline's stores write to {} files",
                                       plan.file, files.size()));
}

std::string range_text(std::int64_t low, std::int64_t high) {
  if (low == high) return std::to_string(low);
  if (high == std::numeric_limits<std::int64_t>::max()) return fmt::format("{}..", low);
  if (low == 0) return fmt::format("..{}", high);
  return fmt::format("{}..{}", low, high);
}

}  // namespace

std::vector<ExpectResult> check_expectations(const Plan& plan, const RunReport& report) {
  std::vector<ExpectResult> out;
  const std::string wanted = plan.expect ? plan.expect->string("status") : "succeeded";
  out.push_back(ExpectResult{status_name(report.status) == wanted,
                             fmt::format("the run {}, expected {}", status_name(report.status), wanted)});
  if (!plan.expect) return out;
  const Config& e = *plan.expect;
  auto attempt = [&](const std::function<ExpectResult()>& check) {
    try {
      out.push_back(check());
    } catch (const std::exception& ex) {
      out.push_back(ExpectResult{false, ex.what()});
    }
  };
  for (const auto& item : e.list("tables")) {
    const Config& t = *std::get<ConfigValue::Object>(item.v);
    const std::string table = t.string("table");
    if (t.has("rows")) {
      attempt([&] {
        std::string db = database_of(plan, t);
        std::int64_t low = 0, high = 0;
        parse_count_range(t.scalar("rows").to_text(), low, high);
        auto rows = query(db, "SELECT count(*) FROM " + quote_identifier(table));
        std::int64_t n = std::stoll(rows.at(0));
        return ExpectResult{n >= low && n <= high,
                            fmt::format("rows of '{}' in {}: {}, expected {}", table, db, n, range_text(low, high))};
      });
    }
    for (const auto& column : t.list("required")) {
      attempt([&] {
        std::string db = database_of(plan, t);
        std::string name = std::get<Value>(column.v).to_text();
        auto rows = query(db, fmt::format("SELECT count(*) FROM {} WHERE {} IS NULL OR {} = ''",
                                          quote_identifier(table), quote_identifier(name), quote_identifier(name)));
        return ExpectResult{rows.at(0) == "0", fmt::format("'{}.{}' is set in every row of {}: {} rows without it",
                                                           table, name, db, rows.at(0))};
      });
    }
  }
  for (const auto& item : e.list("queries")) {
    const Config& q = *std::get<ConfigValue::Object>(item.v);
    attempt([&] {
      std::string db = database_of(plan, q);
      std::vector<std::string> expected;
      for (const auto& row : q.list("equals")) expected.push_back(std::get<Value>(row.v).to_text());
      auto rows = query(db, q.string("sql"));
      auto joined = [](const std::vector<std::string>& r) { return fmt::format("[{}]", fmt::join(r, ", ")); };
      return ExpectResult{rows == expected, rows == expected
                                                ? fmt::format("'{}' gives {}", q.string("sql"), joined(rows))
                                                : fmt::format("'{}' gives {}, expected {}", q.string("sql"),
                                                              joined(rows), joined(expected))};
    });
  }
  for (const auto& item : e.list("files")) {
    const Config& f = *std::get<ConfigValue::Object>(item.v);
    const std::string path = f.string("path");
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      out.push_back(ExpectResult{false, fmt::format("cannot read '{}': {}", path, std::strerror(errno))});
      continue;
    }
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (f.has("lines")) {
      std::int64_t low = 0, high = 0;
      parse_count_range(f.scalar("lines").to_text(), low, high);
      auto n = static_cast<std::int64_t>(std::count(text.begin(), text.end(), '\n') +
                                         (!text.empty() && text.back() != '\n' ? 1 : 0));
      out.push_back(ExpectResult{n >= low && n <= high,
                                 fmt::format("lines of '{}': {}, expected {}", path, n, range_text(low, high))});
    }
    for (const auto& piece : f.list("contains")) {
      const std::string text_wanted = std::get<Value>(piece.v).to_text();
      const bool found = text.find(text_wanted) != std::string::npos;
      out.push_back(
          ExpectResult{found, fmt::format("'{}' {} '{}'", path, found ? "holds" : "does not hold", text_wanted)});
    }
  }
  for (const std::string_view counts : {"errors", "dropped", "warnings"}) {
    for (const auto& [id, count] : e.map(std::string(counts))) {
      std::int64_t low = 0, high = 0;
      parse_count_range(std::get<Value>(count.v).to_text(), low, high);
      std::int64_t n = 0;
      std::string first;  // a warning says what it was
      if (counts == "warnings") {
        for (const auto& w : report.notices) {
          if (w.node != id) continue;
          if (n++ == 0) first = fmt::format(" (the first: {})", w.message);
        }
      } else {
        for (const auto& s : report.nodes) {
          if (s.id == id) n = static_cast<std::int64_t>(counts == "errors" ? s.errors : s.dropped);
        }
      }
      const bool ok = n >= low && n <= high;
      out.push_back(ExpectResult{ok, fmt::format("{} of node '{}': {}, expected {}{}", counts, id, n,
                                                 range_text(low, high), ok ? "" : first)});
    }
  }
  return out;
}

std::string preview_stores(const Plan& plan, int limit) {
  std::string out;
  for (const auto& [db, table] : store_tables(plan)) {
    try {
      auto count = query(db, "SELECT count(*) FROM " + quote_identifier(table));
      auto rows = query(db, "SELECT * FROM " + quote_identifier(table), limit);
      out += fmt::format("\n{} in {}: {} rows{}\n", table, db, count.at(0), rows.empty() ? "" : ", the first:");
      for (const auto& r : rows) out += "  " + (r.size() > 160 ? r.substr(0, 157) + "..." : r) + "\n";
    } catch (const std::exception& e) {
      out += fmt::format("\n{} in {}: {}\n", table, db, e.what());
    }
  }
  return out;
}

}  // namespace sluice::cli
