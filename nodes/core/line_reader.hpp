// Lines of a file, a pipe or standard input ('-'), read lazily through a bounded buffer. Reads of
// anything but a regular file wait in poll() with a short timeout and give up when the run stops: a
// pipe or a terminal may have nothing to say for hours, and a source blocked in read() would hold a
// stopping run open. Used by the sources that read files (source.list, source.csv).
#pragma once

#include <functional>
#include <memory>
#include <stop_token>
#include <string>
#include <string_view>

namespace sluice::nodes {

class LineReader {
 public:
  static constexpr std::size_t kMaxLine = 1 << 20;

  // Opens `path` ('-': standard input). `idle` is called when a pipe falls silent for 10 ms (the
  // records read so far should go on). Throws NodeError when it cannot be opened or is a directory.
  LineReader(const std::string& path, std::stop_token stop, std::function<void()> idle);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // The next line, without its '\n' (the last one may have none) and, for the first, without a
  // UTF-8 byte order mark; valid until the next call. False
  // at the end of the input, and when the run stops while a pipe has nothing to read. A line longer
  // than kMaxLine is an error (a binary file, or a file with no newlines), not read on.
  bool next(std::string_view& line);
  // Lines returned so far: the number of the last one.
  std::size_t line_number() const { return line_number_; }
  // "stdin" for '-', else the path: for messages.
  const std::string& name() const { return path_; }

 private:
  static constexpr std::size_t kCapacity = 2 * kMaxLine;

  bool fill();
  void close_fd();

  std::string path_;
  std::stop_token stop_;
  std::function<void()> idle_;
  bool waited_ = false;  // poll() found nothing since the last read
  int fd_ = -1;
  bool owns_fd_ = false;
  bool regular_ = false;
  bool at_end_ = false;
  // Not initialised: only the pages that lines reach are ever touched (resident).
  std::unique_ptr<char[]> buffer_ = std::make_unique_for_overwrite<char[]>(kCapacity);
  std::size_t begin_ = 0, end_ = 0;  // unread bytes
  std::size_t line_number_ = 0;
};

}  // namespace sluice::nodes
