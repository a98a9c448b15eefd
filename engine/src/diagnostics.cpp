#include "sluice/diagnostics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <tuple>

namespace sluice {

std::string Location::to_string() const {
  if (!known()) return file;
  return fmt::format("{}:{}:{}", file, line, column);
}

namespace {

// Control characters in a message (they come from the file: a key or value quoted in it) are
// shown escaped, so that 'sou\u008brce.list' does not print as 'source.list'.
std::string visible(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    const auto next = i + 1 < text.size() ? static_cast<unsigned char>(text[i + 1]) : 0;
    if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else if (c == 0xc2 && next >= 0x80 && next <= 0x9f) {  // UTF-8 of U+0080..U+009F
      out += fmt::format("\\u{:04x}", next);
      ++i;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

}  // namespace

std::string Diagnostic::to_string() const {
  return fmt::format("{}: error: {}", visible(where.to_string()), visible(message));
}

void Diagnostics::error(const Location& where, std::string message) {
  items_.push_back(Diagnostic{where, std::move(message)});
}

void Diagnostics::sort() {
  auto place = [](const Diagnostic& d) { return std::tie(d.where.file, d.where.line, d.where.column); };
  std::stable_sort(items_.begin(), items_.end(),
                   [&](const Diagnostic& a, const Diagnostic& b) { return place(a) < place(b); });
  // A problem found twice at one place (a node named in the middle of an edge chain is the end of
  // one edge and the start of the next) is reported once.
  std::vector<Diagnostic> kept;
  kept.reserve(items_.size());
  for (auto& d : items_) {
    bool repeated = false;
    for (auto it = kept.rbegin(); it != kept.rend() && place(*it) == place(d) && !repeated; ++it) {
      repeated = it->message == d.message;
    }
    if (!repeated) kept.push_back(std::move(d));
  }
  items_ = std::move(kept);
}

std::string Diagnostics::to_string() const {
  std::string out;
  for (const auto& d : items_) {
    out += d.to_string();
    out += '\n';
  }
  return out;
}

namespace {

// Optimal string alignment distance: edits plus adjacent transpositions ("bacth" -> "batch" is 1).
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

}  // namespace

std::string closest_match(std::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_distance = std::max<std::size_t>(1, word.size() / 3) + 1;
  for (const auto& candidate : candidates) {
    std::size_t d = edit_distance(word, candidate);
    if (d < best_distance) {
      best_distance = d;
      best = candidate;
    }
  }
  return best;
}

std::string quoted_list(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) {
    if (!out.empty()) out += ", ";
    out += fmt::format("'{}'", n);
  }
  return out;
}

std::string missing_folder_note(const std::string& path) {
  const auto folder = std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (folder.empty() || std::filesystem::is_directory(folder, ec)) return "";
  return fmt::format(" (the folder '{}' does not exist)", folder.string());
}

std::string not_a_file(const std::string& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status) || std::filesystem::is_regular_file(status)) return "";
  return std::filesystem::is_directory(status) ? "it is a folder, not a file" : "not a regular file";
}

}  // namespace sluice
