// Diagnostics: errors about a pipeline file, reported like a compiler does.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace sluice {

// A position in a pipeline file. Line and column are 1-based; 0 means unknown
// (values set with --set on the command line have no position in the file).
struct Location {
  std::string file;
  int line = 0;
  int column = 0;

  bool known() const { return line > 0; }
  // "file:line:col", "file" when the position is unknown.
  std::string to_string() const;
};

struct Diagnostic {
  Location where;
  std::string message;

  // "file:line:col: error: message"
  std::string to_string() const;
};

// Collects every error of a file; the loader never stops at the first one.
class Diagnostics {
 public:
  void error(const Location& where, std::string message);
  bool empty() const { return items_.empty(); }
  const std::vector<Diagnostic>& items() const { return items_; }
  // All diagnostics, one per line, in file order.
  std::string to_string() const;
  void sort();

 private:
  std::vector<Diagnostic> items_;
};

// The closest candidate to `word` by edit distance, or empty when none is close enough to be a
// plausible typo. Used for "did you mean" hints.
std::string closest_match(std::string_view word, const std::vector<std::string>& candidates);

// "'a', 'b', 'c'"
std::string quoted_list(const std::vector<std::string>& names);

// " (the folder 'dir' does not exist)" when the folder `path` would be in is missing, else empty:
// SQLite says "unable to open database file" whatever the cause.
std::string missing_folder_note(const std::string& path);

// "it is a folder, not a file" or "not a regular file" when `path` exists and is not a regular
// file, else empty. For a database: SQLite says "unable to open database file" for a folder, and
// fails on /dev/null only at its first write ("disk I/O error").
std::string not_a_file(const std::string& path);

}  // namespace sluice
