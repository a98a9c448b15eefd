// fetch's `cache`: successful responses kept in a SQLite file, so that a pipeline run again (a
// parser being written, the fix of a failed run) takes its pages from disk instead of the site.
#pragma once

#include <sqlite3.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/value.hpp"

namespace sluice::fetch {

// One response as the cache keeps it.
struct CachedResponse {
  std::string key;        // cache_key() of the request
  std::string url;        // the URL requested (before redirects)
  std::string final_url;  // where it landed
  long status = 0;
  std::optional<std::string> content_type;
  std::string headers;    // the final response's headers: "name: value\n" each, names in lower case
  Bytes body;             // decoded
  double fetched_at = 0;  // seconds since the Unix epoch, when it came or was last confirmed (304)
  bool stale = false;     // find(): older than max_age
  bool refresh = false;   // store(): only its fetched_at changes (the server confirmed it: 304)
};

// Seconds since the Unix epoch, as CachedResponse::fetched_at and fetch's `fetched_at` field hold.
double unix_now();

// The key of a request: the SHA-256 (32 bytes) of its method, URL, body and request headers (the
// User-Agent, the same for every request of a node, is not among them).
std::string cache_key(std::string_view method, std::string_view url, const std::optional<std::string>& body,
                      const std::vector<std::string>& headers);

// The values of the header `name` (lower case) in CachedResponse::headers, joined with ", " as
// keep_headers joins repeated ones; nullopt when the response had none.
std::optional<std::string> cached_header(std::string_view headers, std::string_view name);

// The SQLite file: one table of responses by key. Made on the main thread, then used by one thread
// at a time (fetch's cache thread). Every method throws NodeError naming the file when SQLite fails.
class ResponseCache {
 public:
  // Opens `path`, creating it when missing, and with `sweep` removes the responses older than
  // `max_age` (none: kept for ever) that name no version a server could confirm (ETag,
  // Last-Modified). A file that holds other tables is refused: it is not a cache.
  ResponseCache(std::string path, std::optional<std::chrono::nanoseconds> max_age, bool sweep = true);
  ~ResponseCache();
  ResponseCache(const ResponseCache&) = delete;
  ResponseCache& operator=(const ResponseCache&) = delete;

  // The response stored under `key`, if any (`stale` when it is older than max_age).
  std::optional<CachedResponse> find(std::string_view key);
  // Stores `responses` in one transaction, each replacing one of the same key (a `refresh` only
  // sets the fetched_at of the one there). Bodies are compressed (zlib) where that makes them
  // smaller.
  void store(const std::vector<CachedResponse>& responses);
  const std::string& path() const { return path_; }

 private:
  sqlite3_stmt* prepare(const char* sql);
  [[noreturn]] void fail(std::string_view what) const;
  // Runs `sql`; throws NodeError saying `what` failed (default: the statement).
  void exec(const char* sql, std::string_view what = {});

  std::string path_;
  std::optional<std::chrono::nanoseconds> max_age_;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* find_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;
  sqlite3_stmt* refresh_ = nullptr;
  std::string zipped_;  // store()'s compression buffer
};

}  // namespace sluice::fetch
