// Lines of a file, a pipe or standard input ('-'), read lazily through a bounded buffer. Reads of
// anything but a regular file wait in poll() with a short timeout and give up when the run stops: a
// pipe or a terminal may have nothing to say for hours, and a source blocked in read() would hold a
// stopping run open. A gzip file (or stream: `zcat` is not needed) is read as the text it holds,
// recognised by its first bytes. Used by the sources that read files (source.list, source.csv, source.jsonl).
#pragma once

#include <functional>
#include <memory>
#include <stop_token>
#include <string>
#include <string_view>

struct z_stream_s;

namespace sluice::nodes {

class LineReader {
 public:
  static constexpr std::size_t kMaxLine = 1 << 20;

  // Opens `path` ('-': standard input). `idle` is called when a pipe falls silent for 10 ms (the
  // records read so far should go on). A line may be `max_line` bytes long. Throws NodeError when it
  // cannot be opened or is a directory.
  LineReader(const std::string& path, std::stop_token stop, std::function<void()> idle,
             std::size_t max_line = kMaxLine);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // The next line, without its '\n' (the last one may have none) and, for the first, without a
  // UTF-8 byte order mark; valid until the next call. False
  // at the end of the input, and when the run stops while a pipe has nothing to read. A line longer
  // than max_line is an error (a binary file, or a file with no newlines), not read on.
  bool next(std::string_view& line);
  // Lines returned so far: the number of the last one.
  std::size_t line_number() const { return line_number_; }
  // "stdin" for '-', else the path: for messages.
  const std::string& name() const { return path_; }

 private:
  // Bytes read (or inflated) at a time: the buffer holds twice the longest line, but only the pages
  // that lines reach are touched, so a long limit costs no memory until a line needs it.
  static constexpr std::size_t kChunk = 2 * kMaxLine;

  bool fill();
  // Reads what the file has next into `to` (at most `room` bytes): how many, 0 at its end and when
  // the run stops while a pipe has nothing to say.
  std::size_t read_some(char* to, std::size_t room);
  // gzip: inflates what raw_ holds into the buffer, reading more when it needs more.
  bool inflate_more();
  void close_fd();

  std::string path_;
  std::size_t max_line_;
  std::size_t capacity_;  // of each buffer: twice max_line_
  std::stop_token stop_;
  std::function<void()> idle_;
  bool waited_ = false;  // poll() found nothing since the last read
  int fd_ = -1;
  bool owns_fd_ = false;
  bool regular_ = false;
  bool at_end_ = false;
  // Not initialised: only the pages that lines reach are ever touched (resident).
  std::unique_ptr<char[]> buffer_;
  std::size_t begin_ = 0, end_ = 0;  // unread bytes
  std::size_t searched_ = 0;         // of them, the first ones known to hold no line break
  std::size_t line_number_ = 0;
  bool sniffed_ = false;  // the first bytes were looked at (gzip or not)
  // gzip: the compressed bytes read and not inflated yet, and the inflater (null for plain text).
  std::unique_ptr<char[]> raw_;
  std::size_t raw_begin_ = 0, raw_end_ = 0;
  struct Inflater;
  std::unique_ptr<Inflater> z_;
  bool member_ended_ = false;  // the last gzip member is complete (the input may end here)
};

}  // namespace sluice::nodes
