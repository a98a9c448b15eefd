#include "cache.hpp"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <zlib.h>

#include <stdexcept>

#include "../store/sqlite_query.hpp"
#include "sluice/node.hpp"

namespace sluice::fetch {
namespace {

// PRAGMA application_id of a cache file ("slcc"): a file that says otherwise is someone else's.
constexpr int kApplicationId = 0x736c6363;
// Bodies shorter than this are stored as they are: zlib would save next to nothing.
constexpr std::size_t kMinCompressed = 256;

std::string_view column_text(sqlite3_stmt* st, int i) {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_blob(st, i));
  return p ? std::string_view(p, static_cast<std::size_t>(sqlite3_column_bytes(st, i))) : std::string_view();
}

}  // namespace

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string cache_key(std::string_view method, std::string_view url, const std::optional<std::string>& body,
                      const std::vector<std::string>& headers) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr)) {
    EVP_MD_CTX_free(ctx);
    throw std::bad_alloc();
  }
  // Each part ends with a NUL, which none of them can hold but a body: the body goes last, after
  // its length, so that no two requests give the same bytes.
  const auto add = [ctx](std::string_view part) {
    EVP_DigestUpdate(ctx, part.data(), part.size());
    EVP_DigestUpdate(ctx, "", 1);
  };
  add(method);
  add(url);
  for (const auto& h : headers) add(h);
  add(body ? fmt::format("body {}", body->size()) : std::string("no body"));
  if (body) EVP_DigestUpdate(ctx, body->data(), body->size());
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_DigestFinal_ex(ctx, digest, &size);
  EVP_MD_CTX_free(ctx);
  return std::string(reinterpret_cast<const char*>(digest), size);
}

std::optional<std::string> cached_header(std::string_view headers, std::string_view name) {
  std::optional<std::string> value;
  while (!headers.empty()) {
    const auto end = headers.find('\n');
    std::string_view line = headers.substr(0, end);
    headers.remove_prefix(end == std::string_view::npos ? headers.size() : end + 1);
    if (line.size() < name.size() + 2 || !line.starts_with(name) || line.substr(name.size(), 2) != ": ") continue;
    line.remove_prefix(name.size() + 2);
    if (value) {
      value->append(", ").append(line);
    } else {
      value.emplace(line);
    }
  }
  return value;
}

ResponseCache::ResponseCache(std::string path, std::optional<std::chrono::nanoseconds> max_age, bool sweep)
    : path_(std::move(path)), max_age_(max_age) {
  try {
    db_ = nodes::open_writable(path_);
  } catch (const NodeError& e) {
    throw NodeError(std::string("cache: ") + e.what());
  }
  try {
    exec("PRAGMA busy_timeout=5000");
    sqlite3_stmt* st = prepare("PRAGMA application_id");
    const int id = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    if (id != kApplicationId) {
      st = prepare("SELECT count(*) FROM sqlite_master");
      const int objects = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
      sqlite3_finalize(st);
      if (objects != 0) {
        throw NodeError(fmt::format(
            "cache: '{}' is not a response cache (it holds other tables): give the cache a file of its own", path_));
      }
      exec(fmt::format("PRAGMA application_id={}", kApplicationId).c_str());
    }
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=NORMAL");  // Debian's default is FULL, even in WAL mode
    exec("PRAGMA cache_size=-16384");   // 16 MiB of pages: a large cache's index stays in memory
    exec(R"(CREATE TABLE IF NOT EXISTS responses (
      key BLOB PRIMARY KEY, url TEXT NOT NULL, final_url TEXT NOT NULL, status INTEGER NOT NULL,
      content_type TEXT, headers TEXT NOT NULL, body BLOB NOT NULL, size INTEGER NOT NULL,
      compressed INTEGER NOT NULL, fetched_at REAL NOT NULL))");
    exec("CREATE INDEX IF NOT EXISTS responses_fetched_at ON responses (fetched_at)");
    if (max_age_ && sweep) {
      // Those that name no version (ETag, Last-Modified) are of no more use: a request for one is
      // answered whole. The others can still be confirmed by a 304.
      st = prepare(
          "DELETE FROM responses WHERE fetched_at < ? AND char(10) || headers NOT LIKE '%' || char(10) || 'etag: %' "
          "AND char(10) || headers NOT LIKE '%' || char(10) || 'last-modified: %'");
      sqlite3_bind_double(st, 1, unix_now() - std::chrono::duration<double>(*max_age_).count());
      const int step = sqlite3_step(st);
      sqlite3_finalize(st);
      if (step != SQLITE_DONE) fail("removing old responses");
    }
    find_ = prepare(
        "SELECT url, final_url, status, content_type, headers, body, size, compressed, fetched_at FROM responses "
        "WHERE key = ?");
    insert_ = prepare(
        "INSERT OR REPLACE INTO responses (key, url, final_url, status, content_type, headers, body, size, "
        "compressed, fetched_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    refresh_ = prepare("UPDATE responses SET fetched_at = ? WHERE key = ?");
  } catch (...) {
    sqlite3_finalize(find_);
    sqlite3_finalize(insert_);
    sqlite3_finalize(refresh_);
    sqlite3_close(db_);
    throw;
  }
}

ResponseCache::~ResponseCache() {
  sqlite3_finalize(find_);
  sqlite3_finalize(insert_);
  sqlite3_finalize(refresh_);
  sqlite3_close(db_);
}

void ResponseCache::fail(std::string_view what) const {
  throw NodeError(fmt::format("cache: {} in '{}' failed: {}", what, path_, sqlite3_errmsg(db_)));
}

void ResponseCache::exec(const char* sql, std::string_view what) {
  if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) != SQLITE_OK) fail(what.empty() ? sql : what);
}

sqlite3_stmt* ResponseCache::prepare(const char* sql) {
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db_, sql, -1, &st, nullptr) != SQLITE_OK) fail(sql);
  return st;
}

std::optional<CachedResponse> ResponseCache::find(std::string_view key) {
  sqlite3_reset(find_);
  sqlite3_bind_blob(find_, 1, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
  const int rc = sqlite3_step(find_);
  if (rc == SQLITE_DONE) return std::nullopt;
  if (rc != SQLITE_ROW) fail("looking a response up");
  const double fetched_at = sqlite3_column_double(find_, 8);
  CachedResponse r;
  r.stale = max_age_ && fetched_at < unix_now() - std::chrono::duration<double>(*max_age_).count();
  r.key = key;
  r.url = column_text(find_, 0);
  r.final_url = column_text(find_, 1);
  r.status = static_cast<long>(sqlite3_column_int64(find_, 2));
  if (sqlite3_column_type(find_, 3) != SQLITE_NULL) r.content_type.emplace(column_text(find_, 3));
  r.headers = column_text(find_, 4);
  const std::string_view stored = column_text(find_, 5);
  const auto size = static_cast<std::size_t>(sqlite3_column_int64(find_, 6));
  if (sqlite3_column_int(find_, 7) != 0) {
    std::string body(size, '\0');
    uLongf out = static_cast<uLongf>(size);
    if (uncompress(reinterpret_cast<Bytef*>(body.data()), &out, reinterpret_cast<const Bytef*>(stored.data()),
                   static_cast<uLong>(stored.size())) != Z_OK ||
        out != size) {
      throw NodeError(fmt::format("cache: the stored body of '{}' in '{}' is damaged", r.url, path_));
    }
    r.body = Bytes(std::move(body));
  } else {
    r.body = Bytes(std::string(stored));
  }
  r.fetched_at = fetched_at;
  sqlite3_reset(find_);
  return r;
}

void ResponseCache::store(const std::vector<CachedResponse>& responses) {
  const std::string what = fmt::format("storing {} response{}", responses.size(), responses.size() == 1 ? "" : "s");
  exec("BEGIN IMMEDIATE", what);
  try {
    for (const auto& r : responses) {
      if (r.refresh) {
        sqlite3_reset(refresh_);
        sqlite3_bind_double(refresh_, 1, r.fetched_at);
        sqlite3_bind_blob(refresh_, 2, r.key.data(), static_cast<int>(r.key.size()), SQLITE_STATIC);
        if (sqlite3_step(refresh_) != SQLITE_DONE) fail(what);
        continue;
      }
      const std::string_view body = r.body.view();
      std::string_view kept = body;
      bool compressed = false;
      if (body.size() >= kMinCompressed) {
        uLongf size = compressBound(static_cast<uLong>(body.size()));
        zipped_.resize(size);
        if (compress2(reinterpret_cast<Bytef*>(zipped_.data()), &size, reinterpret_cast<const Bytef*>(body.data()),
                      static_cast<uLong>(body.size()), 1) == Z_OK &&
            size < body.size()) {
          kept = std::string_view(zipped_.data(), size);
          compressed = true;
        }
      }
      sqlite3_reset(insert_);
      sqlite3_bind_blob(insert_, 1, r.key.data(), static_cast<int>(r.key.size()), SQLITE_STATIC);
      sqlite3_bind_text(insert_, 2, r.url.data(), static_cast<int>(r.url.size()), SQLITE_STATIC);
      sqlite3_bind_text(insert_, 3, r.final_url.data(), static_cast<int>(r.final_url.size()), SQLITE_STATIC);
      sqlite3_bind_int64(insert_, 4, r.status);
      if (r.content_type) {
        sqlite3_bind_text(insert_, 5, r.content_type->data(), static_cast<int>(r.content_type->size()), SQLITE_STATIC);
      } else {
        sqlite3_bind_null(insert_, 5);
      }
      sqlite3_bind_text(insert_, 6, r.headers.data(), static_cast<int>(r.headers.size()), SQLITE_STATIC);
      if (kept.empty()) {  // a null pointer would bind NULL
        sqlite3_bind_zeroblob(insert_, 7, 0);
      } else {
        sqlite3_bind_blob64(insert_, 7, kept.data(), kept.size(), SQLITE_STATIC);
      }
      sqlite3_bind_int64(insert_, 8, static_cast<sqlite3_int64>(body.size()));
      sqlite3_bind_int(insert_, 9, compressed ? 1 : 0);
      sqlite3_bind_double(insert_, 10, r.fetched_at);
      if (sqlite3_step(insert_) != SQLITE_DONE) fail(what);
    }
    sqlite3_reset(insert_);
    sqlite3_reset(refresh_);
    exec("COMMIT", what);
  } catch (...) {
    sqlite3_reset(insert_);
    sqlite3_reset(refresh_);
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

}  // namespace sluice::fetch
