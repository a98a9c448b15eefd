// What the nodes that use SQLite share: opening a database (read-only for source.sqlite and the
// frontier's `known`, writable for store.sqlite and fetch's cache), and one SELECT checked so that
// a typo, a missing table or a statement that writes fails before anything runs.
#pragma once

#include <sqlite3.h>

#include <string>
#include <vector>

namespace sluice::nodes {

// Opens `path` read-only. Throws NodeError naming it when it is missing or cannot be opened.
sqlite3* open_readonly(const std::string& path);

// Opens `path` for reading and writing, creating it when missing. Throws NodeError naming it (and
// a missing folder) when it cannot be opened.
sqlite3* open_writable(const std::string& path);

// Prepares `query` on `db` (the database at `path`): one statement that only reads, without
// parameters, whose result columns have distinct names (returned in `names`). Throws NodeError
// saying what is wrong.
sqlite3_stmt* prepare_select(sqlite3* db, const std::string& path, const std::string& query,
                             std::vector<std::string>& names);

}  // namespace sluice::nodes
