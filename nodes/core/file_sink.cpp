#include "file_sink.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

namespace sluice::nodes {

FileSink::FileSink(const std::string& path, bool append, std::size_t buffer, std::chrono::nanoseconds interval,
                   RunState* state)
    : path_(path == "-" ? "stdout" : path), flush_at_(buffer), interval_(interval), hold_(state != nullptr) {
  // A resumed run skips what the earlier one finished: its lines are in the file already.
  if (state && state->resumed()) append = true;
  if (path == "-") {
    fd_ = STDOUT_FILENO;
  } else {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0644);
    if (fd_ < 0) throw NodeError(fmt::format("cannot open '{}' for writing: {}", path, std::strerror(errno)));
    owns_fd_ = true;
    struct stat st {};
    had_content_ = append && ::fstat(fd_, &st) == 0 && st.st_size > 0;
  }
  buffer_.reserve(flush_at_ + 4096);
}

FileSink::~FileSink() {
  if (owns_fd_ && fd_ >= 0) ::close(fd_);
}

void FileSink::preamble(const std::string& text) {
  buffer_ = text;  // from a constructor: nothing is buffered yet
  preamble_ = text.size();
}

void FileSink::write(std::vector<Record>& records) {
  std::optional<SinkBatchError> failed;
  for (Record& r : records) {
    format(r, buffer_);
    ends_.push_back(buffer_.size());
    if (hold_) {
      for (auto& permit : r.permits) held_.push_back(std::move(permit));
      r.permits.clear();
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
  write_buffer();
  if (owns_fd_) {
    if (::fsync(fd_) != 0 && errno != EINVAL) fail("fsync");
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail("close");
  }
}

// Writes the buffer. When that fails part way (a full disk), a file is cut back to the end of its
// last whole record, so that it stays valid JSON Lines or CSV, and the records that did not make it
// are counted as lost.
void FileSink::write_buffer() {
  std::size_t done = 0;
  while (done < buffer_.size()) {
    ssize_t n = ::write(fd_, buffer_.data() + done, buffer_.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      // buffer_[0, whole) is the preamble and the whole records that reached the file
      const auto kept = static_cast<std::size_t>(std::upper_bound(ends_.begin(), ends_.end(), done) - ends_.begin());
      const std::size_t whole = kept ? ends_[kept - 1] : std::min(done, preamble_);
      if (whole < done && owns_fd_) {
        const off_t end = ::lseek(fd_, 0, SEEK_CUR);
        if (end >= 0) (void)!::ftruncate(fd_, end - static_cast<off_t>(done - whole));
      }
      const std::size_t lost = ends_.size() - kept;
      buffer_.clear();
      ends_.clear();
      preamble_ = 0;
      held_.clear();
      throw SinkBatchError(fmt::format("write to '{}' failed: {}", path_, std::strerror(error)), lost);
    }
    done += static_cast<std::size_t>(n);
  }
  buffer_.clear();
  ends_.clear();
  preamble_ = 0;
  held_.clear();  // in the file: these records are done
}

void FileSink::fail(const char* what) {
  throw NodeError(fmt::format("{} to '{}' failed: {}", what, path_, std::strerror(errno)));
}

}  // namespace sluice::nodes
