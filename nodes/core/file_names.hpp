// Names of the files that save writes, and fetch's download: writes: a template's rendered path made
// safe, or a URL's hash and an extension.
#pragma once

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "sluice/value.hpp"

namespace sluice::nodes {

// An extension for a file named without a `path` template: the URL's own (".jpg" of /a/b.jpg?x=1),
// else one for its Content-Type, else none.
std::string extension_for(std::string_view url, std::string_view content_type);

// `rendered` as a relative path of plain components: empty and "." components are dropped; an
// absolute path, "..", a NUL byte or nothing at all is refused (a scraped value must never write
// outside `dir`). Returns "" and sets `error` when refused.
std::string checked_relative(const std::string& rendered, std::string& error);

// The name of a file with no `path` template: 16 hex digits of the URL's hash and extension_for().
std::string hashed_name(std::string_view url, std::string_view content_type);

// The name a server gives the file it sends: the Content-Disposition header's `filename*` (RFC
// 8187: UTF-8 or ISO-8859-1, percent-encoded) or `filename` (a token or a quoted string), else the
// last segment of the URL's path, percent-decoded; "download" when neither has one. Made safe as
// one file name (append_file_name(): no '/', no leading '.'): the server's text is untrusted.
std::string served_name(std::string_view disposition, std::string_view url);

// Checks a `path` option: a template that compiles and is not empty. "" when it is fine.
std::string check_path_template(const Value& v);

// The files a node wrote (or kept) in this run, by path, with the URLs they came from: a `path`
// template that gives two URLs one name ({server_filename} "report.pdf" of two reports, "{sku}.jpg"
// of two images) must not let the second replace the first one's file while the first record goes
// on naming it (or, with exists: keep, pass the first one's file on as its own). One thread only.
class RunFiles {
 public:
  // True when `path` is new to this run, or its file came from the same resource: `url` or
  // `final_url` (where it redirected to; empty: none) is the URL or final URL of the first. False
  // when another URL has that file: the caller fails its record with conflict().
  bool claim(std::string_view path, std::string_view url, std::string_view final_url = {});
  // The error of a record that claim() refused.
  static std::string conflict(std::string_view path);

 private:
  struct Owner {
    std::uint64_t url, final_url;
  };
  std::unordered_map<std::uint64_t, Owner> owners_;  // by the hash of the path
};

// How save and fetch's download write a file whole or not at all: under a temporary name in its
// final folder (`.NAME.sluice-PID-N.part`), renamed into place when complete. One thread only.
// The first time a run uses a folder, it removes the stale temporary files that runs killed before
// they could remove them left there (remove_stale()).
class PartFiles {
 public:
  // mkdir -p, remembering the folders made or found (most files of a run share a few).
  bool make_dirs(const std::string& folder, std::string& error);
  // Stale temporary files removed so far.
  std::uint64_t stale_removed() const { return stale_removed_; }
  // A new temporary file in `folder` (made when missing) for the file `name`: its descriptor, and
  // its path in `temp`; -1 with `error` when it cannot be created.
  int open(const std::string& folder, std::string_view name, std::string& temp, std::string& error);
  // Writes all of `data` to `fd`: 0, or the errno of the failed write (ENOSPC when nothing was written).
  static int write_all(int fd, const char* data, std::size_t size);

  // Resumable temporary files, for fetch's download: a file whose server names the version it
  // sends (a strong ETag or Last-Modified) is written to `.sluice-KEY.part` (KEY: 16 hex digits of
  // the hash of the URL the record asked for), with `.sluice-KEY.part.meta` beside it (that URL and
  // the version), under an flock held as long as a transfer of this run has it. A run that ends
  // before the file is whole (cancelled, killed) leaves both; a later run that downloads the same
  // URL into the same folder continues the file (adopt()) instead of fetching it all again.
  //
  // Opens the resumable file of `key` in `folder` (made when missing), emptied and locked, and
  // writes its meta; -1 when another transfer, of this run or another, holds it, or it cannot be
  // made: the caller then writes an ordinary temporary file (open()).
  int open_resumable(const std::string& folder, std::string_view key, std::string_view url, std::string_view version,
                     std::string& temp);
  // The resumable file `temp` now holds another version of its URL (a server sent the whole file
  // again): its meta says so, or is removed when `version` is empty (the file cannot be resumed).
  static void set_version(const std::string& temp, std::string_view url, std::string_view version);
  // A resumable file that an earlier run left for `url` in `folder`, locked for this run: its
  // descriptor (open for reading and writing, at its end), path, size and version. Nullopt when
  // there is none, another transfer holds it, or it is unusable (empty, larger than `max_size`, its
  // meta missing, cut short or for another URL: then it is removed).
  struct Resumable {
    int fd = -1;
    std::string temp;
    std::uint64_t size = 0;
    std::string version;
  };
  std::optional<Resumable> adopt(const std::string& folder, std::string_view key, std::string_view url,
                                 std::uint64_t max_size);
  // Removes a temporary file: a resumable one (open_resumable, adopt) with its meta.
  static void remove_temp(const std::string& temp, bool resumable);

 private:
  static constexpr std::time_t kStaleAfter = 3600;
  // A resumable file nobody continued for this long is removed (remove_stale()).
  static constexpr std::time_t kResumableFor = 7 * 24 * 3600;
  void remove_stale(const std::string& folder);
  std::unordered_set<std::string> made_;
  std::uint64_t count_ = 0;
  std::uint64_t stale_removed_ = 0;
};

}  // namespace sluice::nodes
