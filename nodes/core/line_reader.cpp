#include "line_reader.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "sluice/node.hpp"

namespace sluice::nodes {

struct LineReader::Inflater {
  z_stream z{};
  Inflater() {
    if (inflateInit2(&z, 15 + 16) != Z_OK) throw NodeError("gzip: cannot start zlib");  // 16: a gzip header
  }
  ~Inflater() { inflateEnd(&z); }
};

LineReader::LineReader(const std::string& path, std::stop_token stop, std::function<void()> idle, std::size_t max_line)
    : path_(path == "-" ? "stdin" : path),
      max_line_(max_line),
      capacity_(2 * max_line),
      stop_(std::move(stop)),
      idle_(std::move(idle)),
      buffer_(std::make_unique_for_overwrite<char[]>(capacity_)) {
  // O_NONBLOCK: open(2) of a FIFO would wait for a writer, in the factory, where no stop reaches it;
  // read_some() polls instead (until a writer has written and closed it, poll(2) says nothing).
  fd_ = path == "-" ? STDIN_FILENO : ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd_ < 0) throw NodeError(fmt::format("cannot open '{}': {}", path_, std::strerror(errno)));
  owns_fd_ = path != "-";
  struct stat st {};
  const bool known = ::fstat(fd_, &st) == 0;
  if (known && S_ISDIR(st.st_mode)) {
    close_fd();
    throw NodeError(fmt::format("cannot read '{}': it is a directory", path_));
  }
  regular_ = known && S_ISREG(st.st_mode);
  if (regular_ && owns_fd_) ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) & ~O_NONBLOCK);
}

LineReader::~LineReader() {
  close_fd();
}

bool LineReader::next(std::string_view& line) {
  while (true) {
    const char* from = buffer_.get() + begin_;
    // The bytes of a long line searched before the last refill hold no line break: not again.
    const void* nl = std::memchr(from + searched_, '\n', end_ - begin_ - searched_);
    const std::size_t length = nl ? static_cast<std::size_t>(static_cast<const char*>(nl) - from) : end_ - begin_;
    if (length > max_line_) {
      throw NodeError(fmt::format("line {} of '{}' is longer than {} MiB: expected text with one value per line",
                                  line_number_ + 1, path_, max_line_ >> 20));
    }
    if (nl || (at_end_ && begin_ < end_)) {
      line = std::string_view(from, length);
      begin_ += nl ? length + 1 : length;
      searched_ = 0;
      // A byte order mark (a file saved by a Windows editor or a spreadsheet) is not text.
      if (++line_number_ == 1 && line.starts_with("\xEF\xBB\xBF")) line.remove_prefix(3);
      return true;
    }
    if (at_end_) return false;
    searched_ = end_ - begin_;
    if (begin_ > 0) {  // the partial line to the front, to make room
      std::memmove(buffer_.get(), from, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    at_end_ = !fill();
  }
}

bool LineReader::fill() {
  if (z_) return inflate_more();
  const std::size_t n = read_some(buffer_.get() + end_, std::min(capacity_ - end_, kChunk));
  end_ += n;
  const bool magic_first = end_ > 0 && static_cast<unsigned char>(buffer_[0]) == 0x1f;
  if (!sniffed_ && end_ > 0 && (end_ >= 2 || !magic_first || n == 0)) {  // a pipe may bring one byte first
    sniffed_ = true;
    if (end_ >= 2 && magic_first && static_cast<unsigned char>(buffer_[1]) == 0x8b) {
      // A gzip file: what was read is compressed input; the text comes from inflating it.
      raw_ = std::exchange(buffer_, std::make_unique_for_overwrite<char[]>(capacity_));
      raw_begin_ = 0;
      raw_end_ = std::exchange(end_, 0);
      searched_ = 0;  // those bytes were not text
      z_ = std::make_unique<Inflater>();
      return inflate_more();
    }
  }
  return n > 0;
}

bool LineReader::inflate_more() {
  z_stream& z = z_->z;
  while (true) {
    if (raw_begin_ == raw_end_) {
      raw_begin_ = 0;
      raw_end_ = read_some(raw_.get(), std::min(capacity_, kChunk));
      if (raw_end_ == 0) {
        if (member_ended_ || (!regular_ && stop_.stop_requested())) return false;
        throw NodeError(fmt::format("'{}' is cut off: its gzip data ends before the file it holds", path_));
      }
    }
    if (member_ended_) {
      // Zero bytes after a member are padding (a tape block, a disk image), skipped as gunzip does.
      while (raw_begin_ < raw_end_ && raw_[raw_begin_] == '\0') ++raw_begin_;
      if (raw_begin_ == raw_end_) continue;
      inflateReset(&z);  // another gzip member follows the last one (gzip a >> f; gzip b >> f)
      member_ended_ = false;
    }
    z.next_in = reinterpret_cast<Bytef*>(raw_.get() + raw_begin_);
    z.avail_in = static_cast<uInt>(raw_end_ - raw_begin_);
    const std::size_t room = std::min(capacity_ - end_, kChunk);
    z.next_out = reinterpret_cast<Bytef*>(buffer_.get() + end_);
    z.avail_out = static_cast<uInt>(room);
    const int rc = ::inflate(&z, Z_NO_FLUSH);
    const std::size_t produced = room - z.avail_out;
    raw_begin_ = raw_end_ - z.avail_in;
    end_ += produced;
    if (rc == Z_STREAM_END) {
      member_ended_ = true;
    } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
      throw NodeError(fmt::format("'{}' is not a valid gzip file: {}", path_, z.msg ? z.msg : "corrupt data"));
    }
    if (produced > 0) return true;
  }
}

std::size_t LineReader::read_some(char* to, std::size_t room) {
  while (true) {
    if (!regular_) {
      if (stop_.stop_requested()) return 0;
      pollfd p{fd_, POLLIN, 0};
      // Nothing to read for 10 ms: the lines read so far go on (a producer that writes a line now
      // and then should not wait for a whole batch), then the wait goes on in 100 ms steps.
      int ready = ::poll(&p, 1, waited_ ? 100 : 10);
      if (ready < 0 && errno == EINTR) continue;
      if (ready == 0) {
        if (!waited_) idle_();
        waited_ = true;
        continue;
      }
      waited_ = false;
    }
    ssize_t n = ::read(fd_, to, room);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) throw NodeError(fmt::format("error reading '{}': {}", path_, std::strerror(errno)));
    return static_cast<std::size_t>(n);
  }
}

void LineReader::close_fd() {
  if (owns_fd_ && fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

}  // namespace sluice::nodes
