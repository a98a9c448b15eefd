#include "file_names.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <utility>

#include "../text.hpp"
#include "sluice/template.hpp"

namespace sluice::nodes {

namespace {

std::string_view trimmed(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The `filename*` or `filename` parameter of a Content-Disposition value; "" when it has neither.
std::string disposition_filename(std::string_view header) {
  std::string plain, extended;
  std::size_t i = header.find(';');
  while (i != std::string_view::npos && i < header.size()) {
    ++i;  // past ';'
    const std::size_t eq = header.find('=', i);
    if (eq == std::string_view::npos) break;
    const std::string name = to_lower(trimmed(header.substr(i, eq - i)));
    std::size_t at = eq + 1;
    while (at < header.size() && (header[at] == ' ' || header[at] == '\t')) ++at;
    std::string value;
    if (at < header.size() && header[at] == '"') {  // a quoted string, with \-escapes
      for (++at; at < header.size() && header[at] != '"'; ++at) {
        if (header[at] == '\\' && at + 1 < header.size()) ++at;
        value += header[at];
      }
      i = header.find(';', at);
    } else {
      i = header.find(';', at);
      value = std::string(trimmed(header.substr(at, i == std::string_view::npos ? std::string_view::npos : i - at)));
    }
    if (name == "filename") plain = value;
    if (name == "filename*") {  // charset'language'percent-encoded
      const std::size_t first = value.find('\''),
                        second = first == std::string::npos ? first : value.find('\'', first + 1);
      if (second != std::string::npos) {
        const std::string charset = to_lower(value.substr(0, first));
        std::string bytes = percent_decoded(std::string_view(value).substr(second + 1));
        if (charset == "iso-8859-1") {  // each byte is its code point
          std::string utf8;
          for (unsigned char c : bytes) {
            if (c < 0x80) {
              utf8 += static_cast<char>(c);
            } else {
              utf8 += static_cast<char>(0xC0 | (c >> 6));
              utf8 += static_cast<char>(0x80 | (c & 0x3F));
            }
          }
          bytes = std::move(utf8);
        }
        if (charset == "utf-8" || charset == "iso-8859-1") extended = std::move(bytes);
      }
    }
  }
  return extended.empty() ? plain : extended;
}

}  // namespace

bool RunFiles::claim(std::string_view path, std::string_view url, std::string_view final_url) {
  const std::uint64_t u = fnv1a64(url);
  const std::uint64_t f = final_url.empty() ? u : fnv1a64(final_url);
  const auto [it, inserted] = owners_.try_emplace(fnv1a64(path), Owner{u, f});
  if (inserted) return true;
  const Owner& o = it->second;
  return u == o.url || u == o.final_url || f == o.url || f == o.final_url;
}

std::string RunFiles::conflict(std::string_view path) {
  return fmt::format(
      "'{}' is the file of another URL of this run already: `path` gives both one name (add {{url:hash}} "
      "to it to tell them apart)",
      path);
}

std::string served_name(std::string_view disposition, std::string_view url) {
  std::string name = disposition_filename(disposition);
  // A name with a path in it (some servers send one) is its last part.
  if (const auto slash = name.find_last_of("/\\"); slash != std::string::npos) name = name.substr(slash + 1);
  if (name.empty()) {
    std::string_view path = url.substr(0, url.find_first_of("?#"));
    if (const auto scheme = path.find("://"); scheme != std::string_view::npos) {
      path.remove_prefix(scheme + 3);
      path = path.find('/') == std::string_view::npos ? std::string_view() : path.substr(path.find('/'));
    }
    name = percent_decoded(path.substr(path.rfind('/') == std::string_view::npos ? 0 : path.rfind('/') + 1));
  }
  if (name.empty()) name = "download";
  std::string out;
  append_file_name(out, name);
  return out;
}

std::string extension_for(std::string_view url, std::string_view content_type) {
  if (std::string ext = url_extension(url);
      !ext.empty() && ext.size() <= 8 &&
      std::all_of(ext.begin(), ext.end(), [](unsigned char c) { return std::isalnum(c); })) {
    ext.insert(ext.begin(), '.');
    return ext;
  }
  const std::string type = to_lower(content_type.substr(0, content_type.find(';')));
  static constexpr std::pair<std::string_view, std::string_view> kTypes[] = {{"text/html", ".html"},
                                                                             {"application/xhtml+xml", ".html"},
                                                                             {"application/json", ".json"},
                                                                             {"application/xml", ".xml"},
                                                                             {"text/xml", ".xml"},
                                                                             {"text/plain", ".txt"},
                                                                             {"text/csv", ".csv"},
                                                                             {"application/pdf", ".pdf"},
                                                                             {"image/jpeg", ".jpg"},
                                                                             {"image/png", ".png"},
                                                                             {"image/gif", ".gif"},
                                                                             {"image/webp", ".webp"},
                                                                             {"image/avif", ".avif"},
                                                                             {"image/svg+xml", ".svg"},
                                                                             {"application/zip", ".zip"},
                                                                             {"application/gzip", ".gz"},
                                                                             {"application/x-gzip", ".gz"},
                                                                             {"application/rss+xml", ".xml"},
                                                                             {"application/atom+xml", ".xml"}};
  for (const auto& [name, ext] : kTypes) {
    if (type == name) return std::string(ext);
  }
  return "";
}

std::string checked_relative(const std::string& rendered, std::string& error) {
  if (rendered.find('\0') != std::string::npos) {
    error = "path refused: it has a NUL byte";
    return "";
  }
  if (rendered.starts_with('/')) {
    error = fmt::format("path refused: '{}' is absolute; it must be relative to dir", rendered);
    return "";
  }
  std::string out;
  std::size_t start = 0;
  while (start <= rendered.size()) {
    std::size_t end = rendered.find('/', start);
    if (end == std::string::npos) end = rendered.size();
    const std::string_view part = std::string_view(rendered).substr(start, end - start);
    if (part == "..") {
      error =
          fmt::format("path refused: '{}' leaves dir ('..'); {{field:file}} makes scraped text a safe name", rendered);
      return "";
    }
    if (!part.empty() && part != ".") {
      if (!out.empty()) out += '/';
      out += part;
    }
    start = end + 1;
  }
  if (out.empty() || rendered.ends_with('/')) {
    error = fmt::format("path refused: '{}' names no file", rendered);
    return "";
  }
  return out;
}

std::string hashed_name(std::string_view url, std::string_view content_type) {
  return fmt::format("{:016x}{}", fnv1a64(url), extension_for(url, content_type));
}

bool PartFiles::make_dirs(const std::string& folder, std::string& error) {
  if (folder.empty() || made_.count(folder)) return true;
  std::error_code ec;
  std::filesystem::create_directories(folder, ec);
  if (ec) {
    error = fmt::format("cannot create folder: {}: '{}'",
                        ec == std::errc::not_a_directory ? "a file of that name is in its path" : ec.message(), folder);
    return false;
  }
  made_.insert(folder);
  remove_stale(folder);
  return true;
}

namespace {

constexpr std::string_view kMetaHeader = "sluice download 1\n";

// The KEY of a resumable file's name (.sluice-KEY.part) or its meta's (.sluice-KEY.part.meta).
std::optional<std::string_view> resumable_key(std::string_view name) {
  if (!name.starts_with(".sluice-")) return std::nullopt;
  name.remove_prefix(8);
  if (name.ends_with(".meta")) name.remove_suffix(5);
  if (!name.ends_with(".part") || name.size() != 16 + 5) return std::nullopt;
  name.remove_suffix(5);
  if (!std::all_of(name.begin(), name.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); }))
    return std::nullopt;
  return name;
}

// Locks `fd`, the file opened as `path`, for this transfer: false when another holds it, or when
// the name no longer leads to it (a run that held it renamed or removed it before letting go).
// `held` gets the file's status.
bool lock_file(int fd, const std::string& path, struct stat& held) {
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) return false;
  struct stat named {};
  return ::fstat(fd, &held) == 0 && held.st_nlink > 0 && ::stat(path.c_str(), &named) == 0 &&
         held.st_dev == named.st_dev && held.st_ino == named.st_ino;
}

bool write_meta(const std::string& temp, std::string_view url, std::string_view version) {
  if (url.find('\n') != std::string_view::npos || version.find('\n') != std::string_view::npos) return false;
  const std::string meta = temp + ".meta";
  const int fd = ::open(meta.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  const std::string text = fmt::format("{}{}\n{}\n", kMetaHeader, url, version);
  const bool ok = PartFiles::write_all(fd, text.data(), text.size()) == 0;
  if (::close(fd) != 0 || !ok) {
    ::unlink(meta.c_str());
    return false;
  }
  return true;
}

}  // namespace

// A temporary file is stale when the process named in it (.NAME.sluice-PID-N.part) is gone and it
// has not been written for kStaleAfter: a run killed (SIGKILL, a power cut) before it could remove
// it. A live download writes far more often (its timeout ends it otherwise), and a process of that
// PID alive here keeps the file, so a run on another machine that shares the folder is safe too
// unless its download stalls for an hour.
//
// A resumable file (.sluice-KEY.part) is kept for a later run to continue: it is removed when no
// transfer holds its lock and it has not been written for kResumableFor, or, without its meta, for
// kStaleAfter. A meta whose file is gone goes after kStaleAfter too.
void PartFiles::remove_stale(const std::string& folder) {
  DIR* dir = ::opendir(folder.c_str());
  if (!dir) return;
  const std::time_t now = std::time(nullptr);
  while (const dirent* entry = ::readdir(dir)) {
    std::string_view name = entry->d_name;
    if (const auto key = resumable_key(name)) {
      struct stat st {};
      if (::fstatat(::dirfd(dir), entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
      const std::string part = fmt::format(".sluice-{}.part", *key);
      if (name.ends_with(".meta")) {
        struct stat file {};
        if (now - st.st_mtime >= kStaleAfter && ::fstatat(::dirfd(dir), part.c_str(), &file, AT_SYMLINK_NOFOLLOW) != 0)
          ::unlinkat(::dirfd(dir), entry->d_name, 0);  // not counted: it is no .part file
        continue;
      }
      struct stat meta {};
      const bool has_meta = ::fstatat(::dirfd(dir), (part + ".meta").c_str(), &meta, AT_SYMLINK_NOFOLLOW) == 0;
      if (now - st.st_mtime < (has_meta ? kResumableFor : kStaleAfter)) continue;
      const int fd = ::openat(::dirfd(dir), entry->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
      if (fd < 0) continue;
      if (::flock(fd, LOCK_EX | LOCK_NB) == 0 && ::unlinkat(::dirfd(dir), entry->d_name, 0) == 0) {
        ++stale_removed_;
        if (has_meta) ::unlinkat(::dirfd(dir), (part + ".meta").c_str(), 0);
      }
      ::close(fd);
      continue;
    }
    if (name.size() < 2 || name[0] != '.' || !name.ends_with(".part")) continue;
    name.remove_suffix(5);
    const auto at = name.rfind(".sluice-");
    if (at == std::string_view::npos) continue;
    const std::string_view tail = name.substr(at + 8);  // PID-N
    long pid = 0;
    unsigned long n = 0;
    auto [dash, ec] = std::from_chars(tail.data(), tail.data() + tail.size(), pid);
    if (ec != std::errc() || dash == tail.data() + tail.size() || *dash != '-' || pid <= 0) continue;
    auto [end, ec2] = std::from_chars(dash + 1, tail.data() + tail.size(), n);
    if (ec2 != std::errc() || end != tail.data() + tail.size()) continue;
    if (pid == ::getpid() || ::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
    struct stat st {};
    if (::fstatat(::dirfd(dir), entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
    if (now - st.st_mtime < kStaleAfter) continue;
    if (::unlinkat(::dirfd(dir), entry->d_name, 0) == 0) ++stale_removed_;
  }
  ::closedir(dir);
}

int PartFiles::open(const std::string& folder, std::string_view name, std::string& temp, std::string& error) {
  if (!make_dirs(folder, error)) return -1;
  temp = fmt::format("{}/.{}.sluice-{}-{}.part", folder, name.substr(0, 100), ::getpid(), ++count_);
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int e = errno;  // for the caller too (EMFILE: wait for a descriptor)
    error = fmt::format("cannot write: {}: '{}'", std::strerror(e), temp);
    temp.clear();
    errno = e;
  }
  return fd;
}

int PartFiles::open_resumable(const std::string& folder, std::string_view key, std::string_view url,
                              std::string_view version, std::string& temp) {
  std::string error;
  if (!make_dirs(folder, error)) return -1;
  std::string path = fmt::format("{}/.sluice-{}.part", folder, key);
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return -1;
  // Truncated only when there is something to cut: ext4 writes a file that was truncated to zero
  // back at once when it is closed (auto_da_alloc), which made every download wait for the disk.
  struct stat st {};
  if (!lock_file(fd, path, st) || (st.st_size > 0 && ::ftruncate(fd, 0) != 0) || !write_meta(path, url, version)) {
    ::close(fd);  // a lock of ours goes with it; the file is left to whoever holds it
    return -1;
  }
  temp = std::move(path);
  return fd;
}

void PartFiles::set_version(const std::string& temp, std::string_view url, std::string_view version) {
  if (version.empty() || !write_meta(temp, url, version)) ::unlink((temp + ".meta").c_str());
}

std::optional<PartFiles::Resumable> PartFiles::adopt(const std::string& folder, std::string_view key,
                                                     std::string_view url, std::uint64_t max_size) {
  Resumable r;
  r.temp = fmt::format("{}/.sluice-{}.part", folder, key);
  r.fd = ::open(r.temp.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (r.fd < 0) return std::nullopt;
  struct stat st {};
  if (!lock_file(r.fd, r.temp, st)) {
    ::close(r.fd);
    return std::nullopt;
  }
  std::string text;
  if (std::FILE* f = std::fopen((r.temp + ".meta").c_str(), "re")) {
    char buffer[4096];
    for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, f)) > 0 && text.size() < 65536;)
      text.append(buffer, n);
    std::fclose(f);
  }
  std::string_view rest = text;
  bool ok = rest.starts_with(kMetaHeader) && rest.ends_with('\n');
  if (ok) {
    rest.remove_prefix(kMetaHeader.size());
    const auto eol = rest.find('\n');
    ok = rest.substr(0, eol) == url && eol + 1 < rest.size();
    r.version = std::string(rest.substr(eol + 1, rest.size() - eol - 2));
    ok = ok && !r.version.empty() && r.version.find('\n') == std::string::npos;
  }
  r.size = ok && st.st_size > 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
  if (r.size == 0 || r.size > max_size) {  // nothing worth keeping: the transfer starts from nothing
    remove_temp(r.temp, true);
    ::close(r.fd);
    return std::nullopt;
  }
  ::lseek(r.fd, 0, SEEK_END);  // the rest is written after it
  return r;
}

void PartFiles::remove_temp(const std::string& temp, bool resumable) {
  ::unlink(temp.c_str());
  if (resumable) ::unlink((temp + ".meta").c_str());
}

int PartFiles::write_all(int fd, const char* data, std::size_t size) {
  for (std::size_t done = 0; done < size;) {
    const ssize_t n = ::write(fd, data + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? errno : ENOSPC;
    done += static_cast<std::size_t>(n);
  }
  return 0;
}

std::string check_path_template(const Value& v) {
  if (v.to_text().empty()) return "empty: leave path out to name files by their URL's hash";
  std::string error;
  return FieldTemplate::compile(v.to_text(), &error) ? "" : error;
}

}  // namespace sluice::nodes
