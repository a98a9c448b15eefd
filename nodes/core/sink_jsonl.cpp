// sink.jsonl: writes records as JSON Lines to stdout or a file.
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>

#include "../builtin.hpp"
#include "sluice/json.hpp"

namespace sluice::nodes {
namespace {

class JsonLines final : public SinkNode {
 public:
  JsonLines(const std::string& path, bool append, std::vector<std::string> fields, std::size_t buffer,
            std::chrono::nanoseconds interval)
      : path_(path == "-" ? "stdout" : path), fields_(std::move(fields)), flush_at_(buffer), interval_(interval) {
    if (path == "-") {
      fd_ = STDOUT_FILENO;
    } else {
      fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0644);
      if (fd_ < 0) throw NodeError(fmt::format("cannot open '{}' for writing: {}", path, std::strerror(errno)));
      owns_fd_ = true;
    }
    buffer_.reserve(flush_at_ + 4096);
  }

  ~JsonLines() override {
    if (owns_fd_ && fd_ >= 0) ::close(fd_);
  }

  // A failed write loses the lines of its buffer (counted, see write_buffer()); the rest of `records`
  // still goes on into the next buffer.
  void write(std::vector<Record>& records) override {
    std::optional<SinkBatchError> failed;
    for (const Record& r : records) {
      append_json(buffer_, r, fields_.empty() ? nullptr : &fields_);
      buffer_.push_back('\n');
      ++lines_;
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

  // Lines wait in the buffer at most `interval`, so that a slow run's output (a crawl piped into
  // jq, a file someone tails) appears as it goes. The records themselves (and their limit slots)
  // go when write() returns: the engine does not flush this sink when a limit is full.
  bool buffered() const override { return !buffer_.empty(); }
  std::chrono::nanoseconds max_delay() const override { return interval_; }
  bool keeps_records() const override { return false; }
  void flush() override { write_buffer(); }

  void close() override {
    write_buffer();
    if (owns_fd_) {
      if (::fsync(fd_) != 0 && errno != EINVAL) fail("fsync");
      int fd = fd_;
      fd_ = -1;
      if (::close(fd) != 0) fail("close");
    }
  }

 private:
  // Writes the buffer. When that fails part way (a full disk), a file is cut back to its last whole
  // line, so that it stays valid JSON Lines, and the lines that did not make it are counted as lost.
  void write_buffer() {
    std::size_t done = 0;
    while (done < buffer_.size()) {
      ssize_t n = ::write(fd_, buffer_.data() + done, buffer_.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        const int error = errno;
        std::size_t whole = 0;  // buffer_[0, whole) are whole lines that reached the file
        if (done > 0) {
          const auto last = buffer_.rfind('\n', done - 1);
          whole = last == std::string::npos ? 0 : last + 1;
        }
        if (whole < done && owns_fd_) {
          const off_t end = ::lseek(fd_, 0, SEEK_CUR);
          if (end >= 0) (void)!::ftruncate(fd_, end - static_cast<off_t>(done - whole));
        }
        const auto kept = static_cast<std::size_t>(std::count(buffer_.begin(), buffer_.begin() + whole, '\n'));
        const std::size_t lost = lines_ - kept;
        buffer_.clear();
        lines_ = 0;
        throw SinkBatchError(fmt::format("write to '{}' failed: {}", path_, std::strerror(error)), lost);
      }
      done += static_cast<std::size_t>(n);
    }
    buffer_.clear();
    lines_ = 0;
  }

  [[noreturn]] void fail(const char* what) {
    throw NodeError(fmt::format("{} to '{}' failed: {}", what, path_, std::strerror(errno)));
  }

  std::string path_;
  std::vector<std::string> fields_;
  std::size_t flush_at_;
  std::chrono::nanoseconds interval_;
  int fd_ = -1;
  bool owns_fd_ = false;
  std::string buffer_;
  std::size_t lines_ = 0;  // in buffer_
};

}  // namespace

NodeType sink_jsonl_type() {
  NodeType t;
  t.name = "sink.jsonl";
  t.kind = NodeKind::sink;
  t.summary = "writes each record as one JSON object per line, to stdout or a file";
  t.ports = {{"in", PortDirection::input, "records to write"}};
  t.schema = Schema({
      FieldSpec::string("path", "file to write; '-' writes to standard output").with_default("-"),
      FieldSpec::boolean("append", "append to an existing file instead of replacing it").with_default("false"),
      FieldSpec::list("fields", FieldSpec::string("name", "a field name"),
                      "write only these fields, in this order (missing ones as null); default: all")
          .with_default(""),
      FieldSpec::size("buffer", "bytes collected before each write to the file").with_default("256KiB"),
      FieldSpec::duration("interval", "the longest a line waits in the buffer before it is written")
          .with_default("200ms"),
  });
  t.factory = [](const NodeContext& ctx) -> std::unique_ptr<Node> {
    const Config& c = ctx.config;
    std::vector<std::string> fields;
    for (const auto& f : c.list("fields")) fields.push_back(std::get<Value>(f.v).to_text());
    return std::make_unique<JsonLines>(c.string("path"), c.boolean("append"), std::move(fields),
                                       static_cast<std::size_t>(c.size("buffer")), c.duration("interval"));
  };
  t.example = R"(- id: out
  type: sink.jsonl
  path: items.jsonl)";
  return t;
}

}  // namespace sluice::nodes
