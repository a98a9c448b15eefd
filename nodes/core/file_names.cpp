#include "file_names.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "../text.hpp"
#include "sluice/template.hpp"

namespace sluice::nodes {

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
  return true;
}

int PartFiles::open(const std::string& folder, std::string_view name, std::string& temp, std::string& error) {
  if (!make_dirs(folder, error)) return -1;
  temp = fmt::format("{}/.{}.sluice-{}-{}.part", folder, name.substr(0, 100), ::getpid(), ++count_);
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    error = fmt::format("cannot write: {}: '{}'", std::strerror(errno), temp);
    temp.clear();
  }
  return fd;
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
