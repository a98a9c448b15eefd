// sqlite_loop: the reference for the store benchmark: one connection, one prepared INSERT, one
// BEGIN IMMEDIATE ... COMMIT per batch, the same pragmas as store.sqlite, rows of the same six
// columns as bench/store_rows.yaml.
//   sqlite_loop DB ROWS BATCH
#include <fmt/format.h>
#include <sqlite3.h>

#include <cstdlib>
#include <string>

int main(int argc, char** argv) {
  if (argc < 4) {
    fmt::print(stderr, "usage: sqlite_loop DB ROWS BATCH\n");
    return 2;
  }
  const long rows = std::atol(argv[2]);
  const long batch = std::atol(argv[3]);
  sqlite3* db = nullptr;
  if (sqlite3_open(argv[1], &db) != SQLITE_OK) return 1;
  sqlite3_exec(db,
               "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-16384;"
               "PRAGMA wal_autocheckpoint=10000; PRAGMA journal_size_limit=67108864; PRAGMA temp_store=MEMORY;"
               "CREATE TABLE items (url TEXT, n INTEGER, name TEXT, price REAL, shop TEXT, ok INTEGER)",
               nullptr, nullptr, nullptr);
  sqlite3_stmt* insert = nullptr;
  sqlite3_prepare_v3(db, "INSERT INTO items (url, n, name, price, shop, ok) VALUES (?, ?, ?, ?, ?, ?)", -1,
                     SQLITE_PREPARE_PERSISTENT, &insert, nullptr);
  std::string url, name;
  for (long n = 1; n <= rows;) {
    sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
    for (long k = 0; k < batch && n <= rows; ++k, ++n) {
      url = fmt::format("https://bench.example/item/{}", n);
      name = fmt::format("item {}", n);
      sqlite3_bind_text(insert, 1, url.data(), static_cast<int>(url.size()), SQLITE_TRANSIENT);
      sqlite3_bind_int64(insert, 2, n);
      sqlite3_bind_text(insert, 3, name.data(), static_cast<int>(name.size()), SQLITE_TRANSIENT);
      sqlite3_bind_double(insert, 4, 9.5);
      sqlite3_bind_text(insert, 5, "bench", 5, SQLITE_STATIC);
      sqlite3_bind_int(insert, 6, 1);
      if (sqlite3_step(insert) != SQLITE_DONE) return 1;
      sqlite3_reset(insert);
    }
    if (sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) return 1;
  }
  sqlite3_finalize(insert);
  sqlite3_close(db);
  return 0;
}
