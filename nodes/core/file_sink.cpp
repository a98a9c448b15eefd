#include "file_sink.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include "../stop_wait.hpp"

namespace sluice::nodes {

struct FileSink::Deflater {
  z_stream z{};
  Deflater() {
    // 15 + 16: a gzip header and trailer; level 6, gzip's own default.
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
      throw NodeError("gzip: cannot start zlib");
  }
  ~Deflater() { deflateEnd(&z); }
};

namespace {

// The process's own standard output or error for "-" and the names of them in /dev: opening
// /dev/stdout anew would truncate what it points to (`sluice run p.yaml >> log` lost the log) and
// write from offset 0 over the shell's other output. -1 for a file.
int standard_stream(const std::string& path) {
  if (path == "-" || path == "/dev/stdout" || path == "/dev/fd/1") return STDOUT_FILENO;
  if (path == "/dev/stderr" || path == "/dev/fd/2") return STDERR_FILENO;
  return -1;
}

// open(2) of a FIFO for writing waits until a reader opens it, on the main thread while the run is
// set up, where no stop request reaches it. So a FIFO is opened without waiting, again every 50 ms,
// until a reader has it or the run stops.
int open_for_writing(const std::string& path, int flags, const NodeContext& ctx) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISFIFO(st.st_mode)) return ::open(path.c_str(), flags, 0644);
  const auto started = std::chrono::steady_clock::now();
  bool told = false;
  while (true) {
    const int fd = ::open(path.c_str(), flags | O_NONBLOCK);
    if (fd >= 0) {
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);  // the sink thread's writes wait for the reader
      return fd;
    }
    if (errno != ENXIO) return -1;  // ENXIO: no reader yet
    if (!told && std::chrono::steady_clock::now() - started >= std::chrono::seconds(1)) {
      ctx.notice(fmt::format("waiting for a reader to open the FIFO '{}'", path));
      told = true;
    }
    if (sleep_for_stopped(ctx.stop, std::chrono::milliseconds(50))) {
      throw StoppedWhileMade(fmt::format("stopped while waiting for a reader to open the FIFO '{}'", path));
    }
  }
}

}  // namespace

FileSink::FileSink(const std::string& path, bool append, std::size_t buffer, std::chrono::nanoseconds interval,
                   const NodeContext& ctx, Framing framing)
    : path_(standard_stream(path) == STDOUT_FILENO   ? "stdout"
            : standard_stream(path) == STDERR_FILENO ? "stderr"
                                                     : path),
      flush_at_(buffer),
      interval_(interval),
      hold_(ctx.state != nullptr) {
  RunState* state = ctx.state;
  // A resumed run skips what the earlier one finished: its lines are in the file already.
  if (state && state->resumed()) append = true;
  if (const int stream = standard_stream(path); stream >= 0) {
    fd_ = stream;
  } else {
    fd_ = open_for_writing(path, O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), ctx);
    if (fd_ < 0) throw NodeError(fmt::format("cannot open '{}' for writing: {}", path, std::strerror(errno)));
    owns_fd_ = true;
    if (path.ends_with(".gz")) z_ = std::make_unique<Deflater>();
    struct stat st {};
    had_content_ = append && ::fstat(fd_, &st) == 0 && st.st_size > 0;
    if (had_content_ && S_ISREG(st.st_mode)) {
      if (state && state->resumed()) {
        // A run killed in a write (SIGKILL stops it between two pages) or a power cut can leave a
        // piece of a record at the end: its record is not done, and this run writes it whole.
        const std::uint64_t whole = whole_length(framing);
        if (whole < static_cast<std::uint64_t>(st.st_size) && ::ftruncate(fd_, static_cast<off_t>(whole)) != 0)
          fail("truncate");
        had_content_ = whole > 0;
      } else if (!z_) {
        // A file someone else wrote, whose last line has no line break: the next record starts a line.
        char last = '\n';
        if (const int in = ::open(path.c_str(), O_RDONLY | O_CLOEXEC); in >= 0) {
          (void)!::pread(in, &last, 1, st.st_size - 1);
          ::close(in);
        }
        if (last != '\n') {
          buffer_.push_back('\n');
          preamble_ = 1;
        }
      }
    }
  }
  buffer_.reserve(flush_at_ + 4096);
}

FileSink::~FileSink() {
  if (owns_fd_ && fd_ >= 0) ::close(fd_);
}

void FileSink::preamble(const std::string& text) {
  buffer_ += text;  // from a constructor: nothing but a line break is buffered yet
  preamble_ = buffer_.size();
}

std::uint64_t FileSink::whole_length(Framing framing) const {
  const int in = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) throw NodeError(fmt::format("cannot read '{}' to resume it: {}", path_, std::strerror(errno)));
  std::vector<char> chunk(1 << 20);
  if (!z_ && framing == Framing::lines) {  // JSON Lines: the last line break, read from the end back
    struct stat st {};
    std::uint64_t end = ::fstat(in, &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
    while (end > 0) {
      const std::uint64_t from = end > chunk.size() ? end - chunk.size() : 0;
      const ssize_t n = ::pread(in, chunk.data(), end - from, static_cast<off_t>(from));
      if (n <= 0) break;
      if (const void* nl = ::memrchr(chunk.data(), '\n', static_cast<std::size_t>(n))) {
        ::close(in);
        return from + static_cast<std::uint64_t>(static_cast<const char*>(nl) - chunk.data()) + 1;
      }
      end = from;
    }
    ::close(in);
    return 0;
  }
  std::vector<char> scratch(z_ ? 1 << 18 : 0);
  std::uint64_t at = 0, whole = 0;
  bool quoted = false;
  z_stream z{};
  if (z_ && inflateInit2(&z, 15 + 16) != Z_OK) {
    ::close(in);
    throw NodeError("gzip: cannot start zlib");
  }
  // CSV quotes and gzip members are only known from the start of the file. A gzip file is cut after
  // its last whole member only when what follows is a member cut short.
  while (true) {
    const ssize_t n = ::read(in, chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (!z_) {
      for (ssize_t i = 0; i < n; ++i) {
        const char c = chunk[static_cast<std::size_t>(i)];
        if (c == '"' && framing == Framing::csv) quoted = !quoted;  // a doubled quote flips twice
        if (c == '\n' && !quoted) whole = at + static_cast<std::uint64_t>(i) + 1;
      }
      at += static_cast<std::uint64_t>(n);
      continue;
    }
    z.next_in = reinterpret_cast<Bytef*>(chunk.data());
    z.avail_in = static_cast<uInt>(n);
    int rc = Z_OK;
    while (z.avail_in > 0 && rc != Z_DATA_ERROR) {
      z.next_out = reinterpret_cast<Bytef*>(scratch.data());
      z.avail_out = static_cast<uInt>(scratch.size());
      rc = ::inflate(&z, Z_NO_FLUSH);
      if (rc == Z_STREAM_END) {  // a whole member: the file may be cut after it
        whole = at + static_cast<std::uint64_t>(n) - z.avail_in;
        inflateReset(&z);
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        rc = Z_DATA_ERROR;
      }
    }
    at += static_cast<std::uint64_t>(n);
    if (rc == Z_DATA_ERROR) {
      // Not a member cut short (that ends the file) but bytes that are no gzip data: cutting there
      // could drop whole members after them, so the file is left as it is.
      inflateEnd(&z);
      ::close(in);
      throw NodeError(fmt::format(
          "cannot resume '{}': it is no whole gzip file from byte {} on (corrupt, or written by something else); "
          "move it away, or run without --resume",
          path_, whole));
    }
  }
  if (z_) inflateEnd(&z);
  ::close(in);
  return whole;
}

void FileSink::write(std::vector<Record>& records) {
  std::optional<SinkBatchError> failed;
  for (Record& r : records) {
    if (presence_) presence_->see(r);
    format(r, buffer_);
    ends_.push_back(buffer_.size());
    if (hold_) {
      for (auto& permit : r.permits) held_.push_back(std::move(permit));
      r.permits.clear();
      held_ends_.push_back(held_.size());
    }
    if (buffer_.size() >= flush_at_) {
      try {
        write_buffer();
      } catch (const SinkBatchError& e) {
        SinkBatchError::collect(failed, e);
      }
    }
  }
  if (failed) throw *failed;
}

void FileSink::close() {
  if (presence_) presence_->finish();
  write_buffer();
  // A gzip file that got no record holds an empty member: an empty file is no gzip file.
  if (z_ && !wrote_ && !had_content_) {
    compress();
    std::size_t done = 0;
    if (write_all(zipped_.data(), zipped_.size(), done) != 0) fail("write");
  }
  if (owns_fd_) {
    if (::fsync(fd_) != 0 && errno != EINVAL) fail("fsync");
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail("close");
  }
}

int FileSink::write_all(const char* data, std::size_t size, std::size_t& done) {
  done = 0;
  while (done < size) {
    ssize_t n = ::write(fd_, data + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    done += static_cast<std::size_t>(n);
  }
  return 0;
}

void FileSink::compress() {
  z_stream& z = z_->z;
  deflateReset(&z);
  zipped_.resize(deflateBound(&z, buffer_.size()));
  z.next_in = reinterpret_cast<Bytef*>(buffer_.data());
  z.next_out = reinterpret_cast<Bytef*>(zipped_.data());
  // zlib counts in 32 bits: a buffer beyond 4 GiB (a huge field) goes in pieces.
  constexpr std::size_t kPiece = std::size_t{1} << 30;
  std::size_t in_left = buffer_.size(), out_left = zipped_.size();
  int rc = Z_OK;
  while (rc == Z_OK) {
    z.avail_in = static_cast<uInt>(std::min(in_left, kPiece));
    z.avail_out = static_cast<uInt>(std::min(out_left, kPiece));
    const uInt in = z.avail_in, out = z.avail_out;
    rc = ::deflate(&z, in == in_left ? Z_FINISH : Z_NO_FLUSH);
    in_left -= in - z.avail_in;
    out_left -= out - z.avail_out;
  }
  if (rc != Z_STREAM_END) throw NodeError(fmt::format("gzip: cannot compress for '{}'", path_));
  zipped_.resize(zipped_.size() - out_left);
}

void FileSink::clear_buffer() {
  buffer_.clear();
  ends_.clear();
  preamble_ = 0;
  held_.clear();  // in the file (or lost, and marked unfinished)
  held_ends_.clear();
}

// Writes the buffer. When that fails part way (a full disk), a file is cut back to the end of its
// last whole record (gzip: of its last whole member), so that it stays valid JSON Lines or CSV,
// and the records that did not make it are counted as lost.
void FileSink::write_buffer() {
  if (buffer_.empty()) return;
  if (z_) compress();
  const std::string& out = z_ ? zipped_ : buffer_;
  std::size_t done = 0;
  if (const int error = write_all(out.data(), out.size(), done); error != 0) {
    std::size_t kept = 0, whole = 0;  // records, and bytes of `out`, that stay in the file
    if (!z_) {
      // buffer_[0, whole) is the preamble and the whole records that reached the file
      kept = static_cast<std::size_t>(std::upper_bound(ends_.begin(), ends_.end(), done) - ends_.begin());
      whole = kept ? ends_[kept - 1] : std::min(done, preamble_);
    }
    if (whole < done && owns_fd_) {
      const off_t end = ::lseek(fd_, 0, SEEK_CUR);
      if (end >= 0) (void)!::ftruncate(fd_, end - static_cast<off_t>(done - whole));
    }
    const std::size_t lost = ends_.size() - kept;
    // The lost records are not done: a resumed run writes them (and not the ones kept).
    mark_unfinished(std::span(held_).subspan(kept && !held_ends_.empty() ? held_ends_[kept - 1] : 0));
    clear_buffer();
    throw SinkBatchError(fmt::format("write to '{}' failed: {}", path_, std::strerror(error)), lost);
  }
  wrote_ = true;
  clear_buffer();
}

void FileSink::fail(const char* what) {
  throw NodeError(fmt::format("{} to '{}' failed: {}", what, path_, std::strerror(errno)));
}

}  // namespace sluice::nodes
