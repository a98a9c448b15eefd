#include <fmt/format.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <chrono>
#include <stop_token>
#include <thread>

#include "../../nodes/core/line_reader.hpp"
#include "../support.hpp"
#include "sluice/node.hpp"

using sluice::nodes::LineReader;
using sluice::test::TempDir;

namespace {

// Every line `reader` gives, in order.
std::vector<std::string> all_lines(LineReader& reader) {
  std::vector<std::string> out;
  std::string_view line;
  while (reader.next(line)) out.emplace_back(line);
  return out;
}

// Writes `pieces` to a pipe, one at a time with a pause between them, from a thread of its own;
// the reading end takes the place of standard input until the writer is joined.
class PipedStdin {
 public:
  explicit PipedStdin(std::vector<std::string> pieces) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    saved_ = ::dup(STDIN_FILENO);
    ::dup2(fds[0], STDIN_FILENO);
    ::close(fds[0]);
    writer_ = std::thread([pieces = std::move(pieces), fd = fds[1]] {
      for (const auto& piece : pieces) {
        for (std::size_t done = 0; done < piece.size();) {
          const ssize_t n = ::write(fd, piece.data() + done, piece.size() - done);
          if (n <= 0) break;
          done += static_cast<std::size_t>(n);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      ::close(fd);
    });
  }
  ~PipedStdin() {
    writer_.join();
    ::dup2(saved_, STDIN_FILENO);
    ::close(saved_);
  }

 private:
  int saved_ = -1;
  std::thread writer_;
};

}  // namespace

TEST_CASE("lines: a gzip stream whose first byte comes alone, and whose text starts with an empty line",
          "[lines][gzip]") {
  const std::string zipped = sluice::test::gzip("\nfirst\n\nlast");
  std::vector<std::string> lines;
  {
    PipedStdin in({zipped.substr(0, 1), zipped.substr(1)});
    std::stop_source stop;
    LineReader reader("-", stop.get_token(), [] {});
    lines = all_lines(reader);
  }
  CHECK(lines == std::vector<std::string>{"", "first", "", "last"});
}

TEST_CASE("lines: a line up to the reader's maximum comes whole over many refills, a longer one is an error",
          "[lines]") {
  TempDir dir;
  const std::size_t most = 6 << 20;  // three times the bytes read at a time
  const std::string whole(most, 'x');
  sluice::test::write_file(dir.file("in.txt"), "a\n" + whole + "\nb\n" + whole + "y\nc\n");
  std::stop_source stop;
  LineReader reader(
      dir.file("in.txt"), stop.get_token(), [] {}, most);
  std::string_view line;
  REQUIRE(reader.next(line));
  CHECK(line == "a");
  REQUIRE(reader.next(line));
  CHECK(line.size() == most);
  CHECK(line == whole);
  REQUIRE(reader.next(line));
  CHECK(line == "b");
  CHECK_THROWS_WITH(reader.next(line), fmt::format("line 4 of '{}' is longer than 6 MiB: expected text with one "
                                                   "value per line",
                                                   dir.file("in.txt")));

  SECTION("through a pipe, in pieces that split the long line") {
    std::vector<std::string> pieces;
    const std::string text = "a\n" + whole + "\nb";
    for (std::size_t at = 0; at < text.size(); at += 1 << 20) pieces.push_back(text.substr(at, 1 << 20));
    std::vector<std::string> lines;
    {
      PipedStdin in(pieces);
      LineReader piped(
          "-", stop.get_token(), [] {}, most);
      lines = all_lines(piped);
    }
    REQUIRE(lines.size() == 3);
    CHECK(lines[1] == whole);
    CHECK(lines[2] == "b");
  }
}
