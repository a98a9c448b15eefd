// What the text sinks (sink.jsonl, sink.csv) share: a file or standard output, a buffer of whole
// records written when it is full or has waited `interval`, and a file that never ends in a piece of
// a record. A path ending in ".gz" is written gzipped: each buffer as a gzip member of its own, so
// that the file is a valid gzip file after every write (and an appended run adds members).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "field_presence.hpp"
#include "sluice/node.hpp"
#include "sluice/state.hpp"

namespace sluice::nodes {

class FileSink : public SinkNode {
 public:
  // Where a record's text ends: at each line break (JSON Lines), or at a line break outside double
  // quotes (CSV, whose quoted cells may hold line breaks).
  enum class Framing { lines, csv };

  // Opens `path` ('-': standard output), replacing the file unless `append` or a resumed run. With a
  // run state (ctx.state: a resumable run), the records' permits are held until their text has been
  // written, so that a record counts as done only when it is in the file. A resumed run first cuts
  // off the piece of a record that a killed run may have left at the end of the file (its record was
  // not done, and is written again whole); appending to a text file whose last line has no line
  // break starts with one. A FIFO is waited for until a reader opens it (a notice after a second)
  // or ctx.stop is requested (StoppedWhileMade). Throws NodeError.
  FileSink(const std::string& path, bool append, std::size_t buffer, std::chrono::nanoseconds interval,
           const NodeContext& ctx, Framing framing);
  ~FileSink() override;

  // A failed write loses the records of its buffer (counted, see write_buffer()); the rest of
  // `records` still goes on into the next buffer.
  void write(std::vector<Record>& records) override;

  // Text waits in the buffer at most `interval`, so that a slow run's output (a crawl piped into
  // jq, a file someone tails) appears as it goes. The records themselves (and their limit slots)
  // go when write() returns, unless the run is resumable: the engine then flushes this sink when a
  // limit is full, as it does a store.
  bool buffered() const override { return !buffer_.empty(); }
  std::chrono::nanoseconds max_delay() const override { return interval_; }
  bool keeps_records() const override { return hold_; }
  void flush() override { write_buffer(); }
  void close() override;

 protected:
  // Appends the text of one record, its line end included.
  virtual void format(const Record& record, std::string& out) = 0;
  // Text that belongs to no record (a header line), from a subclass's constructor: written first.
  void preamble(const std::string& text);
  // From a subclass's constructor: the fields it writes by name, each a warning at close() when no
  // record had it.
  void watch(FieldPresence presence) { presence_ = std::move(presence); }
  // True when the file had content before this run (append to a non-empty file).
  bool had_content() const { return had_content_; }
  const std::string& path() const { return path_; }

 private:
  void write_buffer();
  // A resumed run's file: the length of its whole records (gzip: of its whole members).
  std::uint64_t whole_length(Framing framing) const;
  // Writes all of [data, data + size): 0, or the errno of the failed write, with `done` the bytes
  // that did reach the file.
  int write_all(const char* data, std::size_t size, std::size_t& done);
  // Forgets the buffered records: in the file, or counted as lost.
  void clear_buffer();
  // gzip: the buffer as one gzip member, in zipped_.
  void compress();
  [[noreturn]] void fail(const char* what);

  std::string path_;
  std::size_t flush_at_;
  std::chrono::nanoseconds interval_;
  int fd_ = -1;
  bool owns_fd_ = false;
  bool had_content_ = false;
  std::string buffer_;
  std::vector<std::size_t> ends_;  // where each record's text ends in buffer_
  std::size_t preamble_ = 0;       // bytes of buffer_ before the first record that belong to none
  bool hold_ = false;              // a resumable run: permits wait for the write
  std::vector<PermitRef> held_;    // the permits of the records in buffer_
  std::vector<std::size_t> held_ends_;  // where each record's permits end in held_
  struct Deflater;
  std::unique_ptr<Deflater> z_;            // a ".gz" path: the compressor, else null
  std::string zipped_;                     // gzip: the member being written
  bool wrote_ = false;                     // gzip: a member was written by this run
  std::optional<FieldPresence> presence_;  // watch()
};

}  // namespace sluice::nodes
